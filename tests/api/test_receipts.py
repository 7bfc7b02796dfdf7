"""Incoming stock through the API, on SQLite and PostgreSQL: scheduling, changing,
cancelling and receiving against receipts, and the dates they give waiting lines
(`OrderLine.expectedFillDate`, `Order.expectedShipDate`, `Product.unitsToReorder`)."""

from __future__ import annotations

from typing import Any

from tests.api.test_schema_and_queries_count import counting_statements
from tests.client import ERRORS, Api, StoreHandle
from tests.conftest import ADMIN_TOKEN, app_client
from tests.ws_support import make_key

RECEIPT = "id quantity received expectedAt reference status createdAt product { sku }"

SCHEDULE = f"""mutation($input: ScheduleReceiptInput!) {{ scheduleReceipt(input: $input) {{
  receipt {{ {RECEIPT} }} {ERRORS} }} }}"""
UPDATE = f"""mutation($input: UpdateReceiptInput!) {{ updateReceipt(input: $input) {{
  receipt {{ {RECEIPT} }} {ERRORS} }} }}"""
CANCEL = f"""mutation($id: ID!) {{ cancelReceipt(id: $id) {{
  receipt {{ {RECEIPT} }} {ERRORS} }} }}"""
RECEIVE = f"""mutation($input: ReceiveStockInput!) {{ receiveStock(input: $input) {{
  product {{ onHand backordered }} filledLines {{ order {{ number }} allocated }}
  receipt {{ {RECEIPT} }} {ERRORS} }} }}"""
PRODUCT = """query($h: String!, $sku: String!) { store(handle: $h) { product(sku: $sku) {
  backordered unitsToReorder incoming { id quantity expectedAt } } } }"""
ORDERS = """query($h: String!, $first: Int!) { store(handle: $h) { orders(first: $first) {
  nodes { number expectedShipDate lines { sku backordered expectedFillDate } } } } }"""
NODE = f"""query($id: ID!) {{ node(id: $id) {{ __typename ... on IncomingReceipt {{
  {RECEIPT} }} }} }}"""


async def schedule(
    api: Api, store: StoreHandle, sku: str, quantity: int, on: str, **more: Any
) -> dict[str, Any]:
    variables = {"storeId": store.id, "sku": sku, "quantity": quantity, "expectedAt": on}
    data = await api.gql(SCHEDULE, {"input": variables | more}, token=store.token)
    result: dict[str, Any] = data["scheduleReceipt"]
    return result


async def update(api: Api, store: StoreHandle, rid: str, **fields: Any) -> dict[str, Any]:
    data = await api.gql(UPDATE, {"input": {"id": rid, **fields}}, token=store.token)
    result: dict[str, Any] = data["updateReceipt"]
    return result


async def cancel(api: Api, store: StoreHandle, rid: str) -> dict[str, Any]:
    result: dict[str, Any] = (await api.gql(CANCEL, {"id": rid}, token=store.token))[
        "cancelReceipt"
    ]
    return result


async def receive(
    api: Api, store: StoreHandle, sku: str, quantity: int, rid: str | None
) -> dict[str, Any]:
    variables = {"storeId": store.id, "sku": sku, "quantity": quantity, "receiptId": rid}
    data = await api.gql(RECEIVE, {"input": variables}, token=store.token)
    result: dict[str, Any] = data["receiveStock"]
    return result


async def product(api: Api, store: StoreHandle, sku: str) -> dict[str, Any]:
    data = await api.gql(PRODUCT, {"h": store.handle, "sku": sku}, token=store.token)
    found: dict[str, Any] = data["store"]["product"]
    return found


async def dates(api: Api, store: StoreHandle) -> dict[int, tuple[Any, dict[str, Any]]]:
    """Per order number: (expectedShipDate, {sku: expectedFillDate})."""
    data = await api.gql(ORDERS, {"h": store.handle, "first": 100}, token=store.token)
    return {
        o["number"]: (
            o["expectedShipDate"],
            {line["sku"]: line["expectedFillDate"] for line in o["lines"]},
        )
        for o in data["store"]["orders"]["nodes"]
    }


def codes(payload: dict[str, Any]) -> list[tuple[str, list[str] | None]]:
    return [(e["code"], e["field"]) for e in payload["userErrors"]]


async def test_a_scheduled_receipt_is_listed_on_its_product_earliest_first(api: Api) -> None:
    store = await api.create_store(policy="ALLOW")
    await api.upsert(store, "MUG")
    late = await schedule(api, store, "MUG", 5, "2027-03-09", reference="  PO-7  ")
    early = await schedule(api, store, "MUG", 4, "2027-03-03")
    assert late["userErrors"] == []
    receipt = late["receipt"]
    assert receipt["quantity"] == 5
    assert receipt["received"] == 0
    assert receipt["expectedAt"] == "2027-03-09"
    assert receipt["reference"] == "PO-7"
    assert receipt["status"] == "OPEN"
    assert receipt["product"] == {"sku": "MUG"}
    incoming = (await product(api, store, "MUG"))["incoming"]
    assert [r["id"] for r in incoming] == [early["receipt"]["id"], receipt["id"]]
    node = (await api.gql(NODE, {"id": receipt["id"]}, token=store.token))["node"]
    assert node["__typename"] == "IncomingReceipt"
    assert node["id"] == receipt["id"]


async def test_scheduling_with_an_idempotency_key_schedules_once(api: Api) -> None:
    store = await api.create_store(policy="ALLOW")
    await api.upsert(store, "MUG")
    first = await schedule(api, store, "MUG", 5, "2027-03-09", idempotencyKey="po-7")
    again = await schedule(api, store, "MUG", 5, "2027-03-09", idempotencyKey="po-7")
    assert again["receipt"]["id"] == first["receipt"]["id"]
    assert len((await product(api, store, "MUG"))["incoming"]) == 1
    other = await schedule(api, store, "MUG", 6, "2027-03-09", idempotencyKey="po-7")
    assert codes(other) == [("IDEMPOTENCY_KEY_REUSED", ["input", "idempotencyKey"])]


async def test_scheduling_refuses_bad_input_and_other_stores(api: Api) -> None:
    store = await api.create_store(policy="ALLOW")
    other = await api.create_store()
    await api.upsert(store, "MUG")
    for quantity in (0, -2, 1_000_000_001):
        bad = await schedule(api, store, "MUG", quantity, "2027-03-09")
        assert codes(bad) == [("INVALID", ["input", "quantity"])]
        assert bad["receipt"] is None
    unknown = await schedule(api, store, "NOPE", 1, "2027-03-09")
    assert codes(unknown) == [("NOT_FOUND", ["input", "sku"])]
    long = await schedule(api, store, "MUG", 1, "2027-03-09", reference="x" * 256)
    assert codes(long) == [("INVALID", ["input", "reference"])]
    elsewhere = {"storeId": other.id, "sku": "MUG", "quantity": 1, "expectedAt": "2027-03-09"}
    data = await api.gql(SCHEDULE, {"input": elsewhere}, token=store.token)
    assert codes(data["scheduleReceipt"]) == [("NOT_FOUND", ["input", "storeId"])]
    assert (await product(api, store, "MUG"))["incoming"] == []


async def test_receipts_need_the_inventory_scope(api: Api) -> None:
    store = await api.create_store(policy="ALLOW")
    await api.upsert(store, "MUG")
    made = (await schedule(api, store, "MUG", 3, "2027-03-09"))["receipt"]
    reader = await make_key(api, [store], ["READ", "ORDERS"])
    variables = {"storeId": store.id, "sku": "MUG", "quantity": 1, "expectedAt": "2027-03-09"}
    for query, args in (
        (SCHEDULE, {"input": variables}),
        (UPDATE, {"input": {"id": made["id"], "quantity": 1}}),
        (CANCEL, {"id": made["id"]}),
    ):
        body = await api.raw(query, args, token=reader.token)
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN", body
    assert (await product(api, store, "MUG"))["incoming"][0]["quantity"] == 3


async def test_updating_and_cancelling_a_receipt(api: Api) -> None:
    store = await api.create_store(policy="ALLOW")
    await api.upsert(store, "MUG")
    rid = (await schedule(api, store, "MUG", 5, "2027-03-09", reference="PO-1"))["receipt"]["id"]
    moved = await update(api, store, rid, expectedAt="2027-04-01", quantity=7)
    assert moved["userErrors"] == []
    assert (moved["receipt"]["expectedAt"], moved["receipt"]["quantity"]) == ("2027-04-01", 7)
    assert moved["receipt"]["reference"] == "PO-1"  # not given: kept
    cleared = await update(api, store, rid, reference=None)
    assert cleared["receipt"]["reference"] is None
    negative = await update(api, store, rid, quantity=-1)
    assert codes(negative) == [("INVALID", ["input", "quantity"])]
    gone = await cancel(api, store, rid)
    assert gone["receipt"]["status"] == "CANCELLED"
    assert (await cancel(api, store, rid))["userErrors"] == []  # again: nothing changes
    assert (await product(api, store, "MUG"))["incoming"] == []
    late = await update(api, store, rid, quantity=3)
    assert codes(late) == [("ALREADY_CLOSED", ["input", "id"])]
    closed = (await schedule(api, store, "MUG", 2, "2027-03-09"))["receipt"]["id"]
    assert (await update(api, store, closed, quantity=0))["receipt"]["status"] == "CLOSED"
    assert codes(await cancel(api, store, closed)) == [("ALREADY_CLOSED", ["id"])]


async def test_another_stores_receipt_is_not_found(api: Api) -> None:
    store = await api.create_store(policy="ALLOW")
    other = await api.create_store(policy="ALLOW")
    for s in (store, other):
        await api.upsert(s, "MUG")
    theirs = (await schedule(api, other, "MUG", 5, "2027-03-09"))["receipt"]["id"]
    assert codes(await update(api, store, theirs, quantity=1)) == [("NOT_FOUND", ["input", "id"])]
    assert codes(await cancel(api, store, theirs)) == [("NOT_FOUND", ["id"])]
    got = await receive(api, store, "MUG", 1, theirs)
    assert codes(got) == [("NOT_FOUND", ["input", "receiptId"])]
    assert codes(await receive(api, store, "MUG", 1, "not-an-id")) == [
        ("NOT_FOUND", ["input", "receiptId"])
    ]
    assert (await api.gql(NODE, {"id": theirs}, token=store.token))["node"] is None
    assert (await product(api, other, "MUG"))["incoming"][0]["quantity"] == 5  # untouched
    assert (await product(api, store, "MUG"))["incoming"] == []


async def test_receiving_against_a_receipt_partly_then_wholly(api: Api) -> None:
    store = await api.create_store(policy="ALLOW")
    await api.upsert(store, "MUG")
    await api.upsert(store, "CUP")
    await api.place(store, [("MUG", 4)])
    rid = (await schedule(api, store, "MUG", 5, "2027-03-09"))["receipt"]["id"]
    part = await receive(api, store, "MUG", 3, rid)
    assert part["userErrors"] == []
    assert part["filledLines"] == [{"order": {"number": 1001}, "allocated": 3}]
    assert (part["receipt"]["quantity"], part["receipt"]["received"]) == (2, 3)
    assert part["receipt"]["status"] == "OPEN"
    wrong = await receive(api, store, "CUP", 1, rid)
    assert codes(wrong) == [("INVALID", ["input", "receiptId"])]
    more = await receive(api, store, "MUG", 6, rid)  # more than expected: allowed, closes
    assert (more["receipt"]["quantity"], more["receipt"]["received"]) == (0, 9)
    assert more["receipt"]["status"] == "CLOSED"
    assert more["product"] == {"onHand": 9, "backordered": 0}
    after = await receive(api, store, "MUG", 1, rid)
    assert codes(after) == [("ALREADY_CLOSED", ["input", "receiptId"])]
    assert (await product(api, store, "MUG"))["incoming"] == []
    plain = await receive(api, store, "MUG", 1, None)  # no receipt: plain stock as ever
    assert plain["receipt"] is None
    assert plain["product"]["onHand"] == 10


async def test_waiting_lines_are_dated_by_the_receipts_in_fill_order(api: Api) -> None:
    store = await api.create_store(policy="ALLOW")
    await api.upsert(store, "A")
    await api.upsert(store, "B", restockDate="2027-03-20")
    await api.place(store, [("A", 3)])  # 1001
    await api.place(store, [("A", 4), ("B", 1)])  # 1002
    await api.place(store, [("A", 5)])  # 1003
    later = (await schedule(api, store, "A", 5, "2027-03-09"))["receipt"]["id"]
    sooner = (await schedule(api, store, "A", 4, "2027-03-03"))["receipt"]["id"]
    # The queue: 1001 (3), 1002 (4), 1003 (5); receipts by date: 4 on 03-03, 5 on 03-09.
    assert await dates(api, store) == {
        1001: ("2027-03-03", {"A": "2027-03-03"}),
        1002: ("2027-03-20", {"A": "2027-03-09", "B": "2027-03-20"}),  # B: its restock date
        1003: (None, {"A": None}),  # 2 units by 03-09, 3 by nothing
    }
    assert (await product(api, store, "A"))["unitsToReorder"] == 3
    assert (await product(api, store, "B"))["unitsToReorder"] == 1  # a restock date orders none

    await receive(api, store, "A", 4, sooner)  # 1001 filled, 1002 gets 1 of 4
    assert await dates(api, store) == {
        1001: (None, {"A": None}),  # nothing waits
        1002: ("2027-03-20", {"A": "2027-03-09", "B": "2027-03-20"}),
        1003: (None, {"A": None}),
    }
    await update(api, store, later, quantity=8)  # now covers 1002's 3 and 1003's 5
    assert (await dates(api, store))[1003] == ("2027-03-09", {"A": "2027-03-09"})
    assert (await product(api, store, "A"))["unitsToReorder"] == 0
    await receive(api, store, "A", 2, later)  # partial: 1002's A gets 2, 6 still expected
    assert (await dates(api, store))[1003] == ("2027-03-09", {"A": "2027-03-09"})
    await update(api, store, later, expectedAt="2027-03-25")  # moved
    assert await dates(api, store) == {
        1001: (None, {"A": None}),
        1002: ("2027-03-25", {"A": "2027-03-25", "B": "2027-03-20"}),
        1003: ("2027-03-25", {"A": "2027-03-25"}),
    }
    await cancel(api, store, later)
    assert (await dates(api, store))[1003] == (None, {"A": None})
    assert (await product(api, store, "A"))["unitsToReorder"] == 6


async def test_the_restock_date_dates_what_no_receipt_covers(api: Api) -> None:
    store = await api.create_store(policy="ALLOW")
    await api.upsert(store, "A", restockDate="2027-04-01")
    await api.place(store, [("A", 2)])
    await api.place(store, [("A", 2)])
    assert await dates(api, store) == {
        1001: ("2027-04-01", {"A": "2027-04-01"}),
        1002: ("2027-04-01", {"A": "2027-04-01"}),
    }
    await schedule(api, store, "A", 3, "2027-03-10")
    assert await dates(api, store) == {
        1001: ("2027-03-10", {"A": "2027-03-10"}),
        1002: ("2027-04-01", {"A": "2027-04-01"}),  # 1 unit by the receipt, 1 by the date
    }
    assert (await product(api, store, "A"))["unitsToReorder"] == 1
    await api.upsert(store, "A", restockDate=None)
    assert (await dates(api, store))[1002] == (None, {"A": None})


FILLS = """query($h: String!, $sku: String!) { store(handle: $h) { product(sku: $sku) {
  expectedFills { expectedFillDate receipt { id reference } firstPosition lines units
    firstLine { order { number } } lastLine { order { number } } }
  backorderQueue(first: 50) { nodes { order { number } queuePosition expectedFillDate } } } } }"""


async def fills(api: Api, store: StoreHandle, sku: str) -> dict[str, Any]:
    data = await api.gql(FILLS, {"h": store.handle, "sku": sku}, token=store.token)
    found: dict[str, Any] = data["store"]["product"]
    return found


def run_of(run: dict[str, Any]) -> tuple[Any, ...]:
    receipt = run["receipt"]["reference"] if run["receipt"] else None
    ends = (run["firstLine"]["order"]["number"], run["lastLine"]["order"]["number"])
    place = (run["firstPosition"], run["lines"], run["units"])
    return (run["expectedFillDate"], receipt, *place, ends)


async def test_the_whole_queue_is_dated_in_runs_that_each_lines_position_finds(
    api: Api,
) -> None:
    store = await api.create_store(policy="ALLOW")
    await api.upsert(store, "A", restockDate="2027-04-01")
    for quantity in (3, 2, 4, 1, 5, 2):  # 1001-1006
        await api.place(store, [("A", quantity)])
    assert [run_of(r) for r in (await fills(api, store, "A"))["expectedFills"]] == [
        ("2027-04-01", None, 1, 6, 17, (1001, 1006))  # all by the restock date
    ]
    await schedule(api, store, "A", 4, "2027-03-03", reference="PO-1")
    await schedule(api, store, "A", 5, "2027-03-09", reference="PO-2")
    await schedule(api, store, "A", 1, "2027-03-09", reference="PO-3")
    found = await fills(api, store, "A")
    # Units in fill order: 1001 (3) 1002 (2) 1003 (4) 1004 (1) 1005 (5) 1006 (2).
    # PO-1's 4 cover 1001 and 1002's first unit; PO-2's 5 the rest of 1002 and 1003;
    # PO-3's 1 covers 1004; 1005 and 1006 are left to the restock date.
    assert [run_of(r) for r in found["expectedFills"]] == [
        ("2027-03-03", "PO-1", 1, 1, 3, (1001, 1001)),
        ("2027-03-09", "PO-2", 2, 2, 6, (1002, 1003)),
        ("2027-03-09", "PO-3", 4, 1, 1, (1004, 1004)),
        ("2027-04-01", None, 5, 2, 7, (1005, 1006)),
    ]
    queue = found["backorderQueue"]["nodes"]
    assert [line["queuePosition"] for line in queue] == [1, 2, 3, 4, 5, 6]
    runs = found["expectedFills"]
    for line in queue:  # each line's date is its run's
        run = next(
            r
            for r in runs
            if r["firstPosition"] <= line["queuePosition"] < r["firstPosition"] + r["lines"]
        )
        assert line["expectedFillDate"] == run["expectedFillDate"]

    await api.upsert(store, "A", restockDate=None)
    await receive(api, store, "A", 4, None)  # 1001 filled, 1002 gets 1 of its 2
    found = await fills(api, store, "A")
    # The receipts still expect 4, 5 and 1: PO-1 covers 1002's last unit and 1003's
    # first 3; PO-2 the rest of 1003, 1004 and 3 of 1005; PO-3 one more; 1005's last unit
    # and 1006 are covered by nothing now the restock date is gone.
    assert [run_of(r) for r in found["expectedFills"]] == [
        ("2027-03-03", "PO-1", 1, 1, 1, (1002, 1002)),
        ("2027-03-09", "PO-2", 2, 2, 5, (1003, 1004)),
        (None, None, 4, 2, 7, (1005, 1006)),
    ]
    queue = found["backorderQueue"]["nodes"]
    assert [(n["order"]["number"], n["queuePosition"]) for n in queue] == [
        (1002, 1),
        (1003, 2),
        (1004, 3),
        (1005, 4),
        (1006, 5),
    ]


async def test_a_product_with_nothing_waiting_has_no_runs_and_lines_no_position(
    api: Api,
) -> None:
    store = await api.create_store(policy="ALLOW")
    await api.upsert(store, "A")
    await api.receive(store, "A", 5)
    await api.place(store, [("A", 2)])  # allocated: nothing waits
    await schedule(api, store, "A", 4, "2027-03-03")
    found = await fills(api, store, "A")
    assert found["expectedFills"] == []
    assert found["backorderQueue"]["nodes"] == []
    data = await api.gql(ORDERS, {"h": store.handle, "first": 5}, token=store.token)
    assert data["store"]["orders"]["nodes"][0]["lines"][0]["expectedFillDate"] is None


async def test_a_product_takes_at_most_100_open_receipts(api: Api) -> None:
    store = await api.create_store(policy="ALLOW")
    await api.upsert(store, "A")
    made = [await schedule(api, store, "A", 1, "2027-03-03") for _ in range(100)]
    assert all(not m["userErrors"] for m in made)
    refused = await schedule(api, store, "A", 1, "2027-03-04")
    assert refused["receipt"] is None
    assert codes(refused) == [("INVALID", ["input", "sku"])]
    assert "100 open receipts" in refused["userErrors"][0]["message"]
    await cancel(api, store, made[0]["receipt"]["id"])  # room again
    assert not (await schedule(api, store, "A", 1, "2027-03-04"))["userErrors"]


PAGE = """query($h: String!, $first: Int!) { store(handle: $h) { orders(first: $first) {
  nodes { number expectedShipDate lines { expectedFillDate } } }
  product(sku: "A") { unitsToReorder } } }"""


async def test_fill_dates_of_a_page_take_a_fixed_number_of_statements(api: Api) -> None:
    store = await api.create_store(policy="ALLOW")
    await api.upsert(store, "A")
    await api.upsert(store, "B")
    for i in range(40):
        await api.place(store, [("A", 1 + i % 3), ("B", 1)])
    await schedule(api, store, "A", 30, "2027-03-03")
    await schedule(api, store, "B", 30, "2027-03-05")
    assert api.db is not None
    counts = {}
    # Without the token cache each request looks its token up: every count includes it.
    async with app_client(api.db, auth_cache_seconds=0) as http:
        uncached = Api(http, ADMIN_TOKEN, api.db)
        for first in (3, 40):
            with counting_statements(api.db) as statements:
                variables = {"h": store.handle, "first": first}
                data = await uncached.gql(PAGE, variables, token=store.token)
            assert len(data["store"]["orders"]["nodes"]) == first
            selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
            loads = [s for s in selects if "FROM incoming_receipts" in s]
            counts[first] = (len(selects), len(loads))
    # The token (three statements uncached), store, orders page, their lines, the
    # products; then the fill dates: the products' waiting lines (with restock dates) and
    # their receipts, for the products in one batch, or in one batch per product when
    # the page's lines become ready at different turns of the event loop: never per order.
    for total, batches in counts.values():
        assert batches <= 2, counts  # two products
        # The rest (token, store, page, lines, products) is 7 or 8 statements by backend
        # and batching; a load per order would be 40 more.
        assert total - 2 * batches <= 8, counts
    nodes = data["store"]["orders"]["nodes"]
    assert nodes[0]["expectedShipDate"] == "2027-03-05"
    assert nodes[-1]["expectedShipDate"] is None  # A's 30 units run out before the last


EVENTS = """query($h: String!) { store(handle: $h) { orders(first: 10) { nodes { number
  expectedShipDate events(first: 20) { nodes { type } } } } } }"""


async def test_re_dated_orders_get_an_expected_ship_date_changed_event(api: Api) -> None:
    store = await api.create_store(policy="ALLOW")
    await api.upsert(store, "A")
    await api.upsert(store, "B")
    await api.place(store, [("A", 2)])  # 1001
    await api.place(store, [("A", 2), ("B", 1)])  # 1002
    await api.place(store, [("B", 1)])  # 1003: waits for B only
    rid = (await schedule(api, store, "A", 4, "2027-03-09"))["receipt"]["id"]
    await schedule(api, store, "B", 2, "2027-03-05")
    await update(api, store, rid, expectedAt="2027-03-02")
    await receive(api, store, "A", 2, rid)  # 1001 filled; 1002 keeps its date

    async def seen() -> dict[int, tuple[Any, int]]:
        data = await api.gql(EVENTS, {"h": store.handle}, token=store.token)
        return {
            o["number"]: (
                o["expectedShipDate"],
                [e["type"] for e in o["events"]["nodes"]].count("EXPECTED_SHIP_DATE_CHANGED"),
            )
            for o in data["store"]["orders"]["nodes"]
        }

    # 1001: dated 03-09, moved to 03-02 (2), then filled. 1002: undated until B's receipt
    # (03-09), then 03-05 when A moved before B. 1003: B's receipt dates it (03-05).
    assert await seen() == {
        1001: (None, 2),
        1002: ("2027-03-05", 2),
        1003: ("2027-03-05", 1),
    }


async def test_a_receipt_reads_its_products_queue_not_the_stores_orders(api: Api) -> None:
    store = await api.create_store(policy="ALLOW")
    await api.upsert(store, "OTHER")
    assert api.db is not None
    counts = []
    for sku, more in (("A", 2), ("B", 30)):
        await api.upsert(store, sku)
        await api.place(store, [(sku, 1)])
        for _ in range(more):
            await api.place(store, [("OTHER", 1)])  # waiting orders of another product
        # Without the token cache each request looks its token up, so both counts include
        # it, whatever the time between them (with the cache, one of them might not).
        async with app_client(api.db, auth_cache_seconds=0) as http:
            uncached = Api(http, ADMIN_TOKEN, api.db)
            with counting_statements(api.db) as statements:
                made = await schedule(uncached, store, sku, 1, "2027-03-09")  # dates the order
        assert made["userErrors"] == []
        # The rate limiter saves its buckets now and then, whatever the request.
        counts.append(len([s for s in statements if "rate_buckets" not in s]))
    # The token (three statements uncached), the product's waiting lines and open
    # receipts, then the re-dated order with its lines (PostgreSQL; SQLite's unit reads on
    # its writer thread, not counted here).
    assert counts[0] == counts[1], counts
    assert counts[1] <= 7, counts

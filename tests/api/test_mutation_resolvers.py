"""Every mutation through its resolver, on the in-memory unit-of-work factory.

The schema runs as served (inputs, resolvers, payloads, error masking), but the
context's factory and loaders are the memory ones: no database, no server.
"""

from __future__ import annotations

import datetime as dt
import types
from typing import Any

import pytest

from ordergraph.resolvers.context import Context, Limits
from ordergraph.schema.build import build_schema
from tests.memory_session import MemoryGuard, MemoryLoaders, MemoryUnits

SCHEMA = build_schema()
ADMIN = "og_admin_memory_test"

CREATE_STORE = """
mutation($input: CreateStoreInput!) {
  createStore(input: $input) {
    store { id handle }
    apiKey { id name scopes stores { handle } revokedAt }
    token
    userErrors { field code message }
  }
}"""
CREATE_KEY = """
mutation($input: CreateApiKeyInput!) {
  createApiKey(input: $input) {
    apiKey { id name scopes stores { handle } }
    token
    userErrors { field code }
  }
}"""
REVOKE_KEY = """
mutation($id: ID!) {
  revokeApiKey(id: $id) { apiKey { id revokedAt } userErrors { field code } }
}"""
UPSERT = """
mutation($input: UpsertProductInput!) {
  upsertProduct(input: $input) {
    product { id sku title backorderPolicy backorderLimit restockDate onHand }
    userErrors { field code }
  }
}"""
RECEIVE = """
mutation($input: ReceiveStockInput!) {
  receiveStock(input: $input) {
    product { sku onHand allocated backordered available }
    filledLines { id allocated backordered }
    userErrors { field code }
  }
}"""
ADJUST = """
mutation($input: AdjustStockInput!) {
  adjustStock(input: $input) {
    product { sku onHand allocated backordered }
    userErrors { field code }
  }
}"""
ORDER_FIELDS = """
  order {
    id number status stockStatus externalId
    lines { id sku quantity allocated backordered shipped cancelled }
  }
  userErrors { field code }
"""


def _order_mutation(name: str, input_type: str) -> str:
    return f"mutation($input: {input_type}!) {{ {name}(input: $input) {{ {ORDER_FIELDS} }} }}"


PLACE = _order_mutation("placeOrder", "PlaceOrderInput")
SHIP = _order_mutation("shipOrder", "ShipOrderInput")
CANCEL = _order_mutation("cancelOrder", "CancelOrderInput")


class MemoryApi:
    """Runs documents against the schema with a context on the memory factory."""

    def __init__(self) -> None:
        self.units = MemoryUnits()
        self.guard = MemoryGuard(self.units)

    def context(self, token: str | None) -> Context:
        ctx = Context(
            db=types.SimpleNamespace(),  # type: ignore[arg-type]  # no database at all
            units=self.units,
            clock=lambda: self.units.now,
            admin_token=ADMIN,
            authorization=f"Bearer {token}" if token else None,
            limits=Limits(idempotency_ttl=dt.timedelta(days=1)),
            guard=self.guard,
        )
        ctx.loaders = MemoryLoaders(self.units)
        return ctx

    async def result(self, document: str, token: str | None, **variables: Any) -> Any:
        return await SCHEMA.execute(
            document, variable_values=variables, context_value=self.context(token)
        )

    async def run(self, document: str, token: str | None = ADMIN, **variables: Any) -> Any:
        result = await self.result(document, token, **variables)
        assert result.errors is None, result.errors
        (payload,) = result.data.values()
        return payload

    async def create_store(self, handle: str = "shop", **extra: Any) -> Store:
        payload = await self.run(
            CREATE_STORE,
            input={"handle": handle, "name": "Shop", "currencyCode": "EUR", "timezone": "UTC"}
            | extra,
        )
        assert payload["userErrors"] == []
        return Store(payload["store"]["id"], payload["token"], payload["apiKey"]["id"])


class Store:
    def __init__(self, gid: str, token: str, key_id: str) -> None:
        self.id, self.token, self.key_id = gid, token, key_id


def codes(payload: dict[str, Any]) -> list[tuple[str, list[str] | None]]:
    return [(e["code"], e["field"]) for e in payload["userErrors"]]


@pytest.fixture
def api() -> MemoryApi:
    return MemoryApi()


async def stocked(api: MemoryApi, on_hand: int = 5, policy: str = "ALLOW") -> Store:
    store = await api.create_store()
    made = await api.run(
        UPSERT,
        store.token,
        input={
            "storeId": store.id,
            "sku": "MUG",
            "title": "Mug",
            "price": "9.50",
            "backorderPolicy": policy,
        },
    )
    assert made["userErrors"] == []
    if on_hand:
        await api.run(
            RECEIVE, store.token, input={"storeId": store.id, "sku": "MUG", "quantity": on_hand}
        )
    return store


async def place(api: MemoryApi, store: Store, quantity: int, **extra: Any) -> Any:
    lines = [{"sku": "MUG", "quantity": quantity}]
    return await api.run(PLACE, store.token, input={"storeId": store.id, "lines": lines} | extra)


# -- admin ------------------------------------------------------------------------


async def test_create_store_answers_the_store_its_first_key_and_token(api: MemoryApi) -> None:
    payload = await api.run(
        CREATE_STORE,
        input={
            "handle": "north",
            "name": "North",
            "currencyCode": "EUR",
            "timezone": "Europe/Berlin",
            "defaultBackorderPolicy": "ALLOW",
        },
    )

    assert payload["userErrors"] == []
    assert payload["store"]["handle"] == "north"
    (session,) = api.units.sessions.values()
    assert session.store.default_backorder_policy.value == "ALLOW"
    assert session.store.timezone == "Europe/Berlin"
    assert payload["apiKey"]["name"] == "north (created with the store)"
    assert sorted(payload["apiKey"]["scopes"]) == ["INVENTORY", "ORDERS", "READ", "WEBHOOKS"]
    assert payload["apiKey"]["stores"] == [{"handle": "north"}]
    assert payload["token"].startswith("og_")


async def test_create_store_refuses_a_taken_handle_and_bad_fields(api: MemoryApi) -> None:
    await api.create_store("north")

    again = await api.run(
        CREATE_STORE,
        input={"handle": "north", "name": "N", "currencyCode": "EUR", "timezone": "UTC"},
    )
    bad_zone = await api.run(
        CREATE_STORE,
        input={"handle": "south", "name": "S", "currencyCode": "EUR", "timezone": "Nowhere/Else"},
    )

    assert codes(again) == [("DUPLICATE", ["input", "handle"])]
    assert again["store"] is again["apiKey"] is again["token"] is None
    assert codes(bad_zone) == [("INVALID", ["input", "timezone"])]


async def test_admin_mutations_need_the_admin_token(api: MemoryApi) -> None:
    store = await api.create_store()

    result = await api.result(
        CREATE_KEY, store.token, input={"name": "k", "storeIds": [store.id], "scopes": ["READ"]}
    )

    assert result.errors is not None
    assert result.errors[0].extensions["code"] == "FORBIDDEN"
    assert len(api.units.keys) == 1


async def test_create_api_key_gives_a_working_token_with_its_scopes(api: MemoryApi) -> None:
    store = await api.create_store()

    made = await api.run(
        CREATE_KEY, input={"name": "packer", "storeIds": [store.id], "scopes": ["READ"]}
    )
    refused = await api.result(
        PLACE, made["token"], input={"storeId": store.id, "lines": [{"sku": "X", "quantity": 1}]}
    )

    assert made["userErrors"] == []
    assert made["apiKey"]["scopes"] == ["READ"]
    assert made["apiKey"]["stores"] == [{"handle": "shop"}]
    assert refused.errors[0].extensions["code"] == "FORBIDDEN"  # READ only, no ORDERS


async def test_create_api_key_reports_unknown_stores_and_missing_scopes(api: MemoryApi) -> None:
    store = await api.create_store()

    unknown = await api.run(
        CREATE_KEY, input={"name": "k", "storeIds": ["not-an-id"], "scopes": ["READ"]}
    )
    no_scope = await api.run(CREATE_KEY, input={"name": "k", "storeIds": [store.id], "scopes": []})

    assert codes(unknown) == [("NOT_FOUND", ["input", "storeIds"])]
    assert codes(no_scope) == [("INVALID", ["input", "scopes"])]
    assert unknown["apiKey"] is unknown["token"] is None


async def test_revoke_api_key_stops_its_token(api: MemoryApi) -> None:
    store = await api.create_store()

    revoked = await api.run(REVOKE_KEY, id=store.key_id)
    refused = await api.result(PLACE, store.token, input={"storeId": store.id, "lines": []})
    unknown = await api.run(REVOKE_KEY, id="not-an-id")

    assert revoked["userErrors"] == []
    assert revoked["apiKey"]["id"] == store.key_id
    assert revoked["apiKey"]["revokedAt"] is not None
    assert refused.errors[0].extensions["code"] == "UNAUTHENTICATED"
    assert codes(unknown) == [("NOT_FOUND", ["input", "id"])]


# -- inventory --------------------------------------------------------------------


async def test_upsert_product_creates_then_changes_only_what_is_given(api: MemoryApi) -> None:
    store = await api.create_store()
    product = {"storeId": store.id, "sku": "MUG"}

    missing = await api.run(UPSERT, store.token, input=product)
    made = await api.run(
        UPSERT,
        store.token,
        input=product | {"title": "Mug", "price": "9.50", "restockDate": "2027-02-01"},
    )
    limited = await api.run(
        UPSERT, store.token, input=product | {"backorderPolicy": "LIMIT", "backorderLimit": 4}
    )
    cleared = await api.run(UPSERT, store.token, input=product | {"restockDate": None})

    assert codes(missing) == [("INVALID", ["input", "title"]), ("INVALID", ["input", "price"])]
    assert missing["product"] is None
    assert made["product"]["title"] == "Mug"
    assert made["product"]["restockDate"] == "2027-02-01"
    assert limited["product"]["backorderPolicy"] == "LIMIT"
    assert limited["product"]["backorderLimit"] == 4
    assert limited["product"]["restockDate"] == "2027-02-01"  # not given: kept
    assert cleared["product"]["restockDate"] is None  # given as null: cleared
    assert cleared["product"]["id"] == made["product"]["id"]


async def test_inventory_mutations_hide_other_stores(api: MemoryApi) -> None:
    mine = await api.create_store("mine")
    theirs = await api.create_store("theirs")

    upsert = await api.run(
        UPSERT, mine.token, input={"storeId": theirs.id, "sku": "A", "title": "A", "price": "1"}
    )
    receive = await api.run(
        RECEIVE, mine.token, input={"storeId": theirs.id, "sku": "A", "quantity": 1}
    )

    assert codes(upsert) == codes(receive) == [("NOT_FOUND", ["input", "storeId"])]
    assert receive["filledLines"] == []


async def test_receive_stock_fills_waiting_lines_once_per_idempotency_key(
    api: MemoryApi,
) -> None:
    store = await stocked(api, on_hand=0)
    waiting = await place(api, store, 3)
    receipt = {"storeId": store.id, "sku": "MUG", "quantity": 5, "idempotencyKey": "asn-1"}

    first = await api.run(RECEIVE, store.token, input=receipt)
    again = await api.run(RECEIVE, store.token, input=receipt)
    reused = await api.run(RECEIVE, store.token, input=receipt | {"quantity": 6})

    assert first["userErrors"] == again["userErrors"] == []
    assert first["product"] == {
        "sku": "MUG",
        "onHand": 5,
        "allocated": 3,
        "backordered": 0,
        "available": 2,
    }
    assert [line["id"] for line in first["filledLines"]] == [waiting["order"]["lines"][0]["id"]]
    assert again == first
    assert codes(reused) == [("IDEMPOTENCY_KEY_REUSED", ["input", "idempotencyKey"])]
    assert reused["product"] is None


async def test_receive_stock_reports_bad_quantities_and_unknown_skus(api: MemoryApi) -> None:
    store = await stocked(api)

    zero = await api.run(
        RECEIVE, store.token, input={"storeId": store.id, "sku": "MUG", "quantity": 0}
    )
    unknown = await api.run(
        RECEIVE, store.token, input={"storeId": store.id, "sku": "NOPE", "quantity": 1}
    )

    assert codes(zero) == [("INVALID", ["input", "quantity"])]
    assert codes(unknown) == [("NOT_FOUND", ["input", "sku"])]


SCHEDULE = """
mutation($input: ScheduleReceiptInput!) {
  scheduleReceipt(input: $input) {
    receipt { id quantity received expectedAt reference status }
    userErrors { field code }
  }
}"""
UPDATE_RECEIPT = """
mutation($input: UpdateReceiptInput!) {
  updateReceipt(input: $input) { receipt { quantity expectedAt status } userErrors { field code } }
}"""
CANCEL_RECEIPT = """
mutation($id: ID!) {
  cancelReceipt(id: $id) { receipt { status } userErrors { field code } }
}"""
RECEIVE_AGAINST = """
mutation($input: ReceiveStockInput!) {
  receiveStock(input: $input) {
    product { onHand } receipt { quantity received status } userErrors { field code }
  }
}"""


async def test_receipts_are_scheduled_moved_received_against_and_cancelled(
    api: MemoryApi,
) -> None:
    store = await stocked(api, on_hand=0)
    order = {"storeId": store.id, "sku": "MUG", "quantity": 5, "expectedAt": "2027-03-09"}
    made = await api.run(SCHEDULE, store.token, input=order | {"reference": "PO-1"})
    assert made["userErrors"] == []
    rid = made["receipt"]["id"]
    assert made["receipt"] | {"id": None} == {
        "id": None,
        "quantity": 5,
        "received": 0,
        "expectedAt": "2027-03-09",
        "reference": "PO-1",
        "status": "OPEN",
    }
    moved = await api.run(
        UPDATE_RECEIPT, store.token, input={"id": rid, "expectedAt": "2027-04-01"}
    )
    assert moved["receipt"] == {"quantity": 5, "expectedAt": "2027-04-01", "status": "OPEN"}
    got = await api.run(
        RECEIVE_AGAINST,
        store.token,
        input={"storeId": store.id, "sku": "MUG", "quantity": 2, "receiptId": rid},
    )
    assert got["receipt"] == {"quantity": 3, "received": 2, "status": "OPEN"}
    assert got["product"] == {"onHand": 2}
    cancelled = await api.run(CANCEL_RECEIPT, store.token, id=rid)
    assert cancelled == {"receipt": {"status": "CANCELLED"}, "userErrors": []}
    unknown = await api.run(SCHEDULE, store.token, input=order | {"sku": "NOPE"})
    assert codes(unknown) == [("NOT_FOUND", ["input", "sku"])]
    late = await api.run(UPDATE_RECEIPT, store.token, input={"id": rid, "quantity": 1})
    assert codes(late) == [("ALREADY_CLOSED", ["input", "id"])]
    assert codes(await api.run(CANCEL_RECEIPT, store.token, id="nope")) == [("NOT_FOUND", ["id"])]


async def test_adjust_stock_takes_back_allocation_below_the_count(api: MemoryApi) -> None:
    store = await stocked(api, on_hand=5)
    order = await place(api, store, 4)

    adjusted = await api.run(
        ADJUST,
        store.token,
        input={"storeId": store.id, "sku": "MUG", "setOnHand": 1, "reason": "count"},
    )
    both = await api.run(
        ADJUST,
        store.token,
        input={"storeId": store.id, "sku": "MUG", "delta": 1, "setOnHand": 1, "reason": "x"},
    )

    assert adjusted["userErrors"] == []
    assert adjusted["product"] == {"sku": "MUG", "onHand": 1, "allocated": 1, "backordered": 3}
    assert order["order"]["lines"][0]["allocated"] == 4
    assert codes(both) == [("INVALID", ["input", "delta"])]


# -- orders -----------------------------------------------------------------------


async def test_place_order_allocates_then_backorders_and_retries_give_the_same_order(
    api: MemoryApi,
) -> None:
    store = await stocked(api, on_hand=2)

    first = await place(api, store, 5, idempotencyKey="po-1", externalId="PO-1")
    again = await place(api, store, 5, idempotencyKey="po-1", externalId="PO-1")

    assert first["userErrors"] == []
    assert first["order"]["number"] == 1001
    assert first["order"]["externalId"] == "PO-1"
    assert first["order"]["stockStatus"] == "PARTIALLY_BACKORDERED"
    assert first["order"]["lines"][0] | {"id": None} == {
        "id": None,
        "sku": "MUG",
        "quantity": 5,
        "allocated": 2,
        "backordered": 3,
        "shipped": 0,
        "cancelled": 0,
    }
    assert again == first
    (session,) = api.units.sessions.values()
    assert len(session.orders) == 1


async def test_place_order_is_all_or_nothing(api: MemoryApi) -> None:
    store = await stocked(api, on_hand=2, policy="DENY")
    lines = [{"sku": "MUG", "quantity": 1}, {"sku": "NOPE", "quantity": 1}]

    unknown = await api.run(PLACE, store.token, input={"storeId": store.id, "lines": lines})
    short = await place(api, store, 3)
    late = await place(api, store, 1, requestedShipDate="0999-01-01")

    assert codes(unknown) == [("NOT_FOUND", ["input", "lines", "1", "sku"])]
    assert codes(short) == [("INSUFFICIENT_STOCK", ["input", "lines", "0", "quantity"])]
    assert codes(late) == [("INVALID", ["input", "requestedShipDate"])]
    assert unknown["order"] is short["order"] is late["order"] is None
    (session,) = api.units.sessions.values()
    assert session.orders == {}
    assert session.sku("MUG").allocated == 0


async def test_ship_order_ships_given_lines_then_the_rest(api: MemoryApi) -> None:
    store = await stocked(api, on_hand=5)
    placed = (await place(api, store, 4))["order"]
    line_id = placed["lines"][0]["id"]

    part = await api.run(
        SHIP,
        store.token,
        input={"orderId": placed["id"], "lines": [{"lineId": line_id, "quantity": 1}]},
    )
    rest = await api.run(
        SHIP, store.token, input={"orderId": placed["id"], "trackingNumber": "TRK-1"}
    )
    closed = await api.run(SHIP, store.token, input={"orderId": placed["id"]})

    assert part["userErrors"] == []
    assert part["order"]["status"] == "PARTIALLY_SHIPPED"
    assert part["order"]["lines"][0]["shipped"] == 1
    assert rest["order"]["status"] == "SHIPPED"
    assert rest["order"]["lines"][0]["shipped"] == 4
    assert codes(closed) == [("ALREADY_CLOSED", ["input", "orderId"])]


async def test_ship_order_reports_lines_it_cannot_ship(api: MemoryApi) -> None:
    store = await stocked(api, on_hand=1)
    placed = (await place(api, store, 3))["order"]
    line_id = placed["lines"][0]["id"]

    too_many = await api.run(
        SHIP,
        store.token,
        input={"orderId": placed["id"], "lines": [{"lineId": line_id, "quantity": 2}]},
    )
    foreign = await api.run(
        SHIP,
        store.token,
        input={"orderId": placed["id"], "lines": [{"lineId": "not-a-line", "quantity": 1}]},
    )
    unknown = await api.run(SHIP, store.token, input={"orderId": "not-an-order"})

    assert codes(too_many) == [("NOT_SHIPPABLE", ["input", "lines", "0", "quantity"])]
    assert codes(foreign) == [("NOT_FOUND", ["input", "lines", "0", "lineId"])]
    assert codes(unknown) == [("NOT_FOUND", ["input", "orderId"])]


async def test_cancel_order_releases_stock_to_the_next_waiting_order(api: MemoryApi) -> None:
    store = await stocked(api, on_hand=2)
    first = (await place(api, store, 2))["order"]
    waiting = (await place(api, store, 2))["order"]

    cancelled = await api.run(
        CANCEL,
        store.token,
        input={"orderId": first["id"], "reason": "CUSTOMER_REQUEST", "idempotencyKey": "c-1"},
    )
    again = await api.run(
        CANCEL,
        store.token,
        input={"orderId": first["id"], "reason": "CUSTOMER_REQUEST", "idempotencyKey": "c-1"},
    )
    closed = await api.run(CANCEL, store.token, input={"orderId": first["id"], "reason": "OTHER"})
    (session,) = api.units.sessions.values()

    assert cancelled["userErrors"] == []
    assert cancelled["order"]["status"] == "CANCELLED"
    assert cancelled["order"]["lines"][0]["cancelled"] == 2
    assert again == cancelled
    assert codes(closed) == [("ALREADY_CLOSED", ["input", "orderId"])]
    (released_to,) = [o for o in session.orders.values() if o.number == waiting["number"]]
    assert released_to.lines[0].allocated == 2  # the waiting order got the released units


async def test_cancel_order_refuses_more_units_than_are_left(api: MemoryApi) -> None:
    store = await stocked(api, on_hand=2)
    placed = (await place(api, store, 2))["order"]
    line_id = placed["lines"][0]["id"]

    too_many = await api.run(
        CANCEL,
        store.token,
        input={
            "orderId": placed["id"],
            "reason": "OTHER",
            "lines": [{"lineId": line_id, "quantity": 3}],
        },
    )

    assert codes(too_many) == [("INVALID", ["input", "lines", "0", "quantity"])]
    assert too_many["order"] is None


# -- the run around every store mutation ----------------------------------------------


async def test_a_conflicting_concurrent_change_is_run_again(api: MemoryApi) -> None:
    store = await stocked(api, on_hand=5)
    opened = api.units.units_opened
    api.units.contend(2)

    placed = await place(api, store, 1)

    assert placed["userErrors"] == []
    assert placed["order"]["number"] == 1001
    assert api.units.units_opened - opened == 3
    (session,) = api.units.sessions.values()
    assert len(session.orders) == 1


async def test_endless_conflicts_end_as_a_masked_error_with_nothing_changed(
    api: MemoryApi,
) -> None:
    store = await stocked(api, on_hand=5)
    api.units.contend(5)

    result = await api.result(
        PLACE, store.token, input={"storeId": store.id, "lines": [{"sku": "MUG", "quantity": 1}]}
    )

    assert result.errors[0].extensions["code"] == "INTERNAL_SERVER_ERROR"
    (session,) = api.units.sessions.values()
    assert session.orders == {}
    assert session.sku("MUG").allocated == 0


async def test_a_bad_idempotency_key_opens_no_unit(api: MemoryApi) -> None:
    store = await stocked(api)
    opened = api.units.units_opened

    refused = await place(api, store, 1, idempotencyKey="x" * 256)

    assert codes(refused) == [("INVALID", ["input", "idempotencyKey"])]
    assert api.units.units_opened == opened

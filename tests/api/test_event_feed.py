"""`Store.events`, the store's event feed: pages of the log, oldest first, with the cursors
of the live subscriptions, so that a client can poll, follow a subscription from its last
cursor, and poll again from the subscription's last cursor with every event exactly once.

The expected log is read from the events table itself; everything else goes through the
API (HTTP for the feed, a real websocket for the subscriptions), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bench import harness
from ordergraph.app import create_app
from ordergraph.clock import Clock
from ordergraph.domain.events import InventoryEventType, OrderEventType
from ordergraph.domain.feed import EventSelection
from ordergraph.domain.paging import decode_cursor, encode_cursor
from ordergraph.resolvers import ids
from ordergraph.settings import Settings
from ordergraph.storage import tables as t
from ordergraph.storage.db import Database
from ordergraph.storage.queries import store_events_page
from tests.api.test_schema_and_queries_count import counting_statements
from tests.client import Api, StoreHandle
from tests.conftest import ADMIN_TOKEN, app_client
from tests.ws_client import WsClient, ws_connect
from tests.ws_support import make_key

FEED = """query($h: String!, $after: String, $first: Int,
  $orderTypes: [OrderEventType!], $inventoryTypes: [InventoryEventType!]) {
  store(handle: $h) {
    events(after: $after, first: $first, orderTypes: $orderTypes,
           inventoryTypes: $inventoryTypes) {
      edges { cursor node { id cursor occurredAt
        orderEvent { cursor type status order { number } }
        inventoryEvent { cursor type onHand available product { sku } } } }
      nodes { id }
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } } }"""
ORDER_EVENTS = """subscription($s: ID!, $after: String) {
  orderEvents(storeId: $s, after: $after) { cursor type order { number } } }"""
INVENTORY_EVENTS = """subscription($s: ID!, $after: String) {
  inventoryEvents(storeId: $s, after: $after) { cursor type product { sku } } }"""
ALL_ORDER_TYPES = [t.value for t in OrderEventType]
ALL_INVENTORY_TYPES = [t.value for t in InventoryEventType]


@dataclass(frozen=True)
class Logged:
    """An event as the events table holds it."""

    seq: int
    stream: str
    type: str


async def logged(db: Database, store: StoreHandle) -> list[Logged]:
    store_id = ids.store_id(store.id)
    async with db.read() as conn:
        rows = await conn.execute(
            select(t.events.c.seq, t.events.c.stream, t.events.c.type)
            .where(t.events.c.store_id == store_id)
            .order_by(t.events.c.seq)
        )
        return [Logged(r.seq, r.stream, r.type) for r in rows]


async def feed_page(api: Api, store: StoreHandle, **args: Any) -> dict[str, Any]:
    data = await api.gql(FEED, {"h": store.handle, **args}, token=store.token)
    page: dict[str, Any] = data["store"]["events"]
    return page


async def poll(
    api: Api, store: StoreHandle, after: str | None, first: int, **filters: Any
) -> tuple[list[dict[str, Any]], str | None, int]:
    """Every event after `after`, page by page until hasNextPage is false: the events,
    the last endCursor and the number of pages."""
    events: list[dict[str, Any]] = []
    pages = 0
    while True:
        page = await feed_page(api, store, after=after, first=first, **filters)
        pages += 1
        edges = page["edges"]
        assert [e["cursor"] for e in edges] == [e["node"]["cursor"] for e in edges]
        if len(edges) == first and page["pageInfo"]["hasNextPage"]:
            assert page["pageInfo"]["endCursor"] == edges[-1]["cursor"]
        events += [edge["node"] for edge in edges]
        after = page["pageInfo"]["endCursor"] or after
        if not page["pageInfo"]["hasNextPage"]:
            return events, after, pages


def kind(event: dict[str, Any]) -> tuple[str, str]:
    """(stream, type) of a feed event; exactly one of its two halves is set."""
    order, inventory = event["orderEvent"], event["inventoryEvent"]
    assert (order is None) != (inventory is None), event
    if order is not None:
        assert order["cursor"] == event["cursor"]
        return "order", order["type"]
    assert inventory["cursor"] == event["cursor"]
    return "inventory", inventory["type"]


async def busy_store(api: Api) -> StoreHandle:
    """A store whose log mixes order and inventory events of many types."""
    store = await api.create_store(policy="ALLOW")
    await api.upsert(store, "A")
    await api.upsert(store, "B")
    await api.receive(store, "A", 4)
    first = (await api.place(store, [("A", 2), ("B", 1)]))["order"]
    second = (await api.place(store, [("A", 3)]))["order"]
    await api.receive(store, "B", 2)
    await api.ship(store, first["id"])
    await api.cancel(store, second["id"])
    await api.adjust(store, "A", setOnHand=1)
    await api.place(store, [("A", 1)])
    return store


# -- pages ---------------------------------------------------------------------------


async def test_pages_give_the_whole_log_oldest_first_with_the_subscriptions_cursors(
    api: Api,
) -> None:
    store = await busy_store(api)
    assert api.db is not None
    log = await logged(api.db, store)
    assert {e.stream for e in log} == {"order", "inventory"}
    assert len(log) > 15

    events, end, pages = await poll(api, store, None, 4)

    assert [kind(e) for e in events] == [(e.stream, e.type) for e in log]
    assert pages == -(-len(log) // 4)
    assert len({e["id"] for e in events}) == len(log)
    assert end == events[-1]["cursor"]
    # An order event's cursor is its cursor in Order.events (which the subscriptions share).
    order = await api.order(store, 1001)
    own = [
        e["cursor"]
        for e in events
        if e["orderEvent"] and e["orderEvent"]["order"]["number"] == 1001
    ]
    assert own == [e["cursor"] for e in order["events"]["nodes"]]
    # Inventory events carry the product's state right after them.
    received = next(e["inventoryEvent"] for e in events if kind(e) == ("inventory", "RECEIVED"))
    assert received["product"]["sku"] == "A"
    assert received["onHand"] == 4


async def test_page_info_and_polling_at_the_end_of_the_log(api: Api) -> None:
    store = await busy_store(api)
    assert api.db is not None
    log = await logged(api.db, store)

    first = await feed_page(api, store, first=3)
    cursors = [edge["cursor"] for edge in first["edges"]]
    assert first["pageInfo"] == {
        "hasNextPage": True,
        "hasPreviousPage": False,
        "startCursor": cursors[0],
        "endCursor": cursors[-1],
    }
    assert [n["id"] for n in first["nodes"]] == [e["node"]["id"] for e in first["edges"]]
    second = await feed_page(api, store, first=3, after=cursors[-1])
    assert second["pageInfo"]["hasPreviousPage"] is True
    assert second["edges"][0]["cursor"] not in cursors

    # The whole log in one page, then nothing new: the end cursor stays where it was.
    whole = await feed_page(api, store, first=250)
    assert len(whole["edges"]) == len(log)
    assert whole["pageInfo"]["hasNextPage"] is False
    end = whole["pageInfo"]["endCursor"]
    caught_up = await feed_page(api, store, after=end)
    assert caught_up["edges"] == []
    assert caught_up["pageInfo"]["endCursor"] == end
    assert caught_up["pageInfo"]["hasNextPage"] is False
    # A new event shows on the next poll, and only it.
    await api.receive(store, "B", 1)
    news = await feed_page(api, store, after=end)
    assert [kind(e["node"]) for e in news["edges"]] == [("inventory", "RECEIVED")]
    # first: 0 gives no events and does not move the cursor.
    none = await feed_page(api, store, after=end, first=0)
    assert none["edges"] == []
    assert none["pageInfo"]["endCursor"] == end
    assert none["pageInfo"]["hasNextPage"] is True


async def test_a_store_without_events_gives_an_empty_page(api: Api) -> None:
    store = await api.create_store()
    page = await feed_page(api, store)
    assert page["edges"] == []
    assert page["pageInfo"] == {
        "hasNextPage": False,
        "hasPreviousPage": False,
        "startCursor": None,
        "endCursor": None,
    }


# -- filters ---------------------------------------------------------------------------


Wanted = Callable[[str, str], bool]  # (stream, type) -> kept
FILTERS: dict[str, tuple[dict[str, Any], Wanted]] = {
    "some-order-types": (
        {"orderTypes": ["SHIPPED", "CANCELLED"]},
        lambda stream, type: stream == "order" and type in ("SHIPPED", "CANCELLED"),
    ),
    "one-inventory-type": (
        {"inventoryTypes": ["RECEIVED"]},
        lambda stream, type: stream == "inventory" and type == "RECEIVED",
    ),
    "both-lists": (
        {"orderTypes": ["PLACED"], "inventoryTypes": ["SHIPPED", "ADJUSTED"]},
        lambda stream, type: (
            (stream, type)
            in {("order", "PLACED"), ("inventory", "SHIPPED"), ("inventory", "ADJUSTED")}
        ),
    ),
    "every-order-type": ({"orderTypes": ALL_ORDER_TYPES}, lambda stream, _: stream == "order"),
    "no-order-type": (
        {"orderTypes": [], "inventoryTypes": ["OUT_OF_STOCK"]},
        lambda stream, type: stream == "inventory" and type == "OUT_OF_STOCK",
    ),
    "both-null": ({"orderTypes": None, "inventoryTypes": None}, lambda _, __: True),
}


@pytest.mark.parametrize("name", list(FILTERS))
async def test_filters_keep_the_named_types_of_the_named_streams(api: Api, name: str) -> None:
    filters, keep = FILTERS[name]
    store = await busy_store(api)
    assert api.db is not None
    log = await logged(api.db, store)
    wanted = [(e.stream, e.type) for e in log if keep(e.stream, e.type)]
    assert 0 < len(wanted) < len(log) or name == "both-null"

    events, end, _ = await poll(api, store, None, 2, **filters)

    assert [kind(e) for e in events] == wanted
    # However few match, the last page ends at the end of the log: nothing is left to read.
    everything = await feed_page(api, store, first=250)
    assert end == everything["pageInfo"]["endCursor"]


async def test_an_empty_list_keeps_none_of_its_stream(api: Api) -> None:
    store = await busy_store(api)
    page = await feed_page(api, store, orderTypes=[])
    assert page["edges"] == []
    # Nothing matched, but the page looked at the whole (short) log: polling moves on.
    assert page["pageInfo"]["endCursor"] == (await feed_page(api, store))["pageInfo"]["endCursor"]
    assert page["pageInfo"]["hasNextPage"] is False


async def test_shipped_means_the_stream_asked_for(api: Api) -> None:
    """SHIPPED is both an order and an inventory event type: each list names its own."""
    store = await busy_store(api)
    orders_only, _, _ = await poll(api, store, None, 50, orderTypes=["SHIPPED"])
    inventory_only, _, _ = await poll(api, store, None, 50, inventoryTypes=["SHIPPED"])
    assert {kind(e) for e in orders_only} == {("order", "SHIPPED")}
    assert {kind(e) for e in inventory_only} == {("inventory", "SHIPPED")}


async def test_a_page_looks_at_a_bounded_window_and_still_moves_on(database: Database) -> None:
    """With filters that skip long runs, a page reads at most `scan` events after its
    cursor: it may come back empty with hasNextPage, its end cursor past the skipped
    events, and the pages together give every matching event once."""
    async with app_client(database) as http:
        api = Api(http, ADMIN_TOKEN, database)
        store = await busy_store(api)
    log = await logged(database, store)
    store_id = ids.store_id(store.id)
    assert store_id is not None
    shipped = EventSelection(frozenset({"SHIPPED"}))
    found: list[int] = []
    after, empty_pages = 0, 0
    while True:
        async with database.read() as conn:
            page = await store_events_page(conn, store_id, after, 5, shipped, scan=3)
        assert page.through <= after + 3
        assert page.through > after or not page.has_next, "a page must move on"
        found += [r.seq for r in page.records]
        empty_pages += not page.records
        after = page.through
        if not page.has_next:
            break
    assert found == [e.seq for e in log if e.stream == "order" and e.type == "SHIPPED"]
    assert empty_pages > 0
    assert after == log[-1].seq


# -- limits, errors and who may read ---------------------------------------------------


def _codes(body: dict[str, Any]) -> list[tuple[str, list[str] | None]]:
    return [(e["extensions"]["code"], e["extensions"].get("field")) for e in body["errors"]]


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"after": "not-a-cursor"}, "after"),
        ({"after": "WyJ4Il0"}, "after"),  # ["x"]: a cursor of text, not a position
        ({"after": "Wy0xXQ"}, "after"),  # [-1]
        ({"first": 251}, "first"),
        ({"first": -1}, "first"),
    ],
)
async def test_a_bad_cursor_or_page_size_is_invalid_as_elsewhere(
    api: Api, args: dict[str, Any], field: str
) -> None:
    store = await busy_store(api)
    body = await api.raw(FEED, {"h": store.handle, **args}, token=store.token)
    assert _codes(body) == [("INVALID", [field])]
    assert body["data"]["store"] is None
    # The orders connection answers the same for the same argument.
    orders = await api.raw(
        """query($h: String!, $after: String, $first: Int) { store(handle: $h) {
          orders(after: $after, first: $first) { nodes { id } } } }""",
        {"h": store.handle, **args},
        token=store.token,
    )
    assert _codes(orders) == [("INVALID", [field])]


async def test_a_cursor_past_the_end_of_the_log_gives_an_empty_page(api: Api) -> None:
    store = await busy_store(api)
    for position in (10**6, 2**63 - 1):  # any position a cursor may name
        cursor = encode_cursor([position])
        page = await feed_page(api, store, after=cursor, orderTypes=["PLACED"])
        assert page["edges"] == []
        assert page["pageInfo"]["endCursor"] == cursor
        assert page["pageInfo"]["hasNextPage"] is False


async def test_another_connections_cursor_is_refused(api: Api) -> None:
    store = await busy_store(api)
    data = await api.gql(
        """query($h: String!) { store(handle: $h) { orders(first: 1) {
             pageInfo { endCursor } } } }""",
        {"h": store.handle},
        token=store.token,
    )
    cursor = data["store"]["orders"]["pageInfo"]["endCursor"]
    body = await api.raw(FEED, {"h": store.handle, "after": cursor}, token=store.token)
    assert _codes(body) == [("INVALID", ["after"])]


async def test_the_default_page_is_50_events_and_the_largest_250(api: Api) -> None:
    store = await api.create_store(policy="ALLOW")
    await api.upsert(store, "A")
    for _ in range(130):  # two events each (PLACED, BACKORDERED): 260
        await api.place(store, [("A", 1)])
    assert len((await feed_page(api, store))["edges"]) == 50
    assert len((await feed_page(api, store, first=250))["edges"]) == 250


async def test_a_page_is_priced_by_its_size_as_every_connection(api: Api) -> None:
    store = await busy_store(api)
    query = """query($h: String!, $first: Int) { store(handle: $h) {
      events(first: $first) { nodes { cursor orderEvent { type } } } } }"""

    async def cost(first: int | None) -> int:
        body = await api.raw(query, {"h": store.handle, "first": first}, token=store.token)
        assert not body.get("errors"), body
        value: int = body["extensions"]["cost"]["requestedQueryCost"]
        return value

    small, default, large = await cost(1), await cost(None), await cost(250)
    # 1.5 for the page, then per event its edge and node and the fields under it.
    assert small < default < large
    assert large - small >= 249 * 0.05


async def test_only_a_read_key_of_the_store_sees_its_feed(api: Api) -> None:
    store = await busy_store(api)
    other = await api.create_store()
    # Another store's key does not find the store at all.
    body = await api.raw(FEED, {"h": store.handle}, token=other.token)
    assert body.get("errors") is None
    assert body["data"]["store"] is None
    # A key of this store without READ, reaching the store through what its mutation
    # returned, is refused the feed.
    writer = await make_key(api, [store], ["ORDERS"], "writer")
    body = await api.raw(
        """mutation($input: PlaceOrderInput!) { placeOrder(input: $input) {
             order { store { events(first: 5) { nodes { id } } } } } }""",
        {"input": {"storeId": store.id, "lines": [{"sku": "A", "quantity": 1}]}},
        token=writer.token,
    )
    assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"]
    # The admin token sees no store data.
    body = await api.raw(FEED, {"h": store.handle}, token=ADMIN_TOKEN)
    assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"]
    # A READ key given both stores reads each one's own log, and no other's.
    both = await make_key(api, [store, other], ["READ"], "both")
    mine = await api.gql(FEED, {"h": store.handle, "first": 250}, token=both.token)
    theirs = await api.gql(FEED, {"h": other.handle, "first": 250}, token=both.token)
    assert len(mine["store"]["events"]["edges"]) == len(await logged_or_fail(api, store))
    assert theirs["store"]["events"]["edges"] == []


async def logged_or_fail(api: Api, store: StoreHandle) -> list[Logged]:
    assert api.db is not None
    return await logged(api.db, store)


# -- batching ---------------------------------------------------------------------------

DEEP = """query($h: String!, $first: Int!) { store(handle: $h) { events(first: $first) {
  nodes { cursor
    orderEvent { type order { number total { amount } lines { sku product { sku onHand } } } }
    inventoryEvent { type product { sku onHand price { amount } } } } } } }"""


async def test_a_page_of_events_with_orders_and_products_runs_a_fixed_number_of_statements(
    api: Api,
) -> None:
    store = await api.create_store(policy="ALLOW")
    for sku in ("A", "B", "C"):
        await api.upsert(store, sku)
    await api.place(store, [("A", 1)])  # order and inventory events from the first page on
    for sku in ("A", "B", "C"):
        await api.receive(store, sku, 500)
    for i in range(40):
        await api.place(store, [("A", 1 + i % 2), ("B", 1), ("C", 1)])
    assert api.db is not None
    async with app_client(api.db, auth_cache_seconds=0) as http:
        uncached = Api(http, ADMIN_TOKEN, api.db)
        counts = {}
        for first in (5, 150):
            with counting_statements(api.db) as statements:
                data = await uncached.gql(
                    DEEP, {"h": store.handle, "first": first}, token=store.token
                )
            nodes = data["store"]["events"]["nodes"]
            assert len(nodes) == first
            assert any(n["orderEvent"] for n in nodes)
            assert any(n["inventoryEvent"] for n in nodes)
            counts[first] = len([s for s in statements if s.lstrip().upper().startswith("SELECT")])
    assert counts[5] == counts[150], counts
    # token (3), store by handle, the page, the orders (2: orders and lines), the products
    assert counts[150] <= 8, counts


# -- the switch: poll, subscribe, poll -------------------------------------------------


@pytest.fixture
async def served(database: Database, clock: Clock) -> AsyncIterator[str]:
    """The app under uvicorn in this test's loop: real websockets, on either database."""
    settings = Settings(database_url=database.url, admin_token=ADMIN_TOKEN, tail_poll_ms=200)
    app = create_app(settings, clock=clock, db=database)
    async with harness.serve_in_loop(app) as url:
        yield url


SWITCHES = {
    # The feed filtered to one stream, and that stream's subscription.
    "order": ({"orderTypes": ALL_ORDER_TYPES}, {"order"}),
    "inventory": ({"inventoryTypes": ALL_INVENTORY_TYPES}, {"inventory"}),
    # The whole feed, and both subscriptions from the same cursor.
    "both": ({}, {"order", "inventory"}),
}


async def _receive(
    ws: WsClient, ops: dict[str, str], want: set[str]
) -> dict[str, list[dict[str, Any]]]:
    """What each subscription sends until every cursor in `want` arrived."""
    got: dict[str, list[dict[str, Any]]] = {stream: [] for stream in ops.values()}
    while want - {e["cursor"] for events in got.values() for e in events}:
        message = await ws.receive(wait=15)
        assert message["type"] == "next", message
        payload = message["payload"]
        assert not payload.get("errors"), payload
        stream = ops[message["id"]]
        field = "orderEvents" if stream == "order" else "inventoryEvents"
        got[stream].append(payload["data"][field])
    return got


@pytest.mark.parametrize("switch", list(SWITCHES))
async def test_poll_then_subscribe_then_poll_gives_every_event_once_in_order(
    served: str, database: Database, switch: str
) -> None:
    filters, streams = SWITCHES[switch]
    async with httpx.AsyncClient(base_url=served, timeout=30) as http:
        api = Api(http, ADMIN_TOKEN, None)
        store = await busy_store(api)

        # Poll a few pages.
        polled, cursor, pages = await poll(api, store, None, 3, **filters)
        assert pages > 2
        assert cursor is not None
        # Events committed between the last poll and the subscription: replayed by it.
        await api.place(store, [("A", 1), ("B", 2)])

        async with ws_connect(served) as ws:
            ack = await ws.init(store.token)
            assert ack["type"] == "connection_ack"
            ops = {}
            if "order" in streams:
                ops[await ws.subscribe(ORDER_EVENTS, {"s": store.id, "after": cursor})] = "order"
            if "inventory" in streams:
                ops[await ws.subscribe(INVENTORY_EVENTS, {"s": store.id, "after": cursor})] = (
                    "inventory"
                )
            await asyncio.sleep(0.2)
            # Events committed while subscribed: delivered live.
            placed = (await api.place(store, [("A", 2)]))["order"]
            await api.receive(store, "A", 5)
            await api.ship(store, placed["id"])

            log = await logged(database, store)
            expected = [e for e in log if e.stream in streams]
            due = {_cursor(e.seq) for e in expected} - {e["cursor"] for e in polled}
            received = await _receive(ws, ops, due)
            for op_id in ops:  # the client stops its subscriptions before it goes
                await ws.send({"id": op_id, "type": "complete"})
            await asyncio.sleep(0.1)
        for events in received.values():
            positions = [_position(e["cursor"]) for e in events]
            assert positions == sorted(set(positions)), "each subscription in order, once"
        # Every event up to the end of the log arrived over the subscriptions: carry on
        # polling from the last cursor received.
        subscribed = sorted(
            (e for events in received.values() for e in events),
            key=lambda e: _position(e["cursor"]),
        )
        resume = subscribed[-1]["cursor"]

        # More events after the subscription closed, then poll again from its cursor.
        await api.place(store, [("B", 1)])
        await api.adjust(store, "B", setOnHand=7)
        again, _, _ = await poll(api, store, resume, 3, **filters)

    log = await logged(database, store)
    expected = [e for e in log if e.stream in streams]
    all_cursors = (
        [e["cursor"] for e in polled]
        + [e["cursor"] for e in subscribed]
        + [e["cursor"] for e in again]
    )
    assert [_position(c) for c in all_cursors] == [e.seq for e in expected]
    assert [kind(e)[1] for e in polled + again] == [
        e.type for e in expected if _cursor(e.seq) in {x["cursor"] for x in polled + again}
    ]
    assert len(polled) > 0
    assert len(subscribed) > 0
    assert len(again) > 0


def _position(cursor: str) -> int:
    value: int = decode_cursor(cursor, 1)[0]
    return value


def _cursor(seq: int) -> str:
    return encode_cursor([seq])

"""Subscriptions over real websockets against a real server, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.client import Api, StoreHandle
from tests.conftest import ADMIN_TOKEN, LiveServer, start_server
from tests.ws_client import LEGACY, TRANSPORT, WsClient, ws_connect

ORDER_EVENTS = """subscription($s: ID!, $after: String, $types: [OrderEventType!], $o: ID) {
  orderEvents(storeId: $s, after: $after, types: $types, orderId: $o) {
    cursor type status stockStatus order { number store { handle } } } }"""
SERVER_ENV = {
    "ORDERGRAPH_WS_INIT_TIMEOUT_SECONDS": "2",
    "ORDERGRAPH_WS_PING_SECONDS": "1",
    "ORDERGRAPH_MAX_SUBSCRIPTIONS_PER_CONNECTION": "3",
    "ORDERGRAPH_TAIL_POLL_MS": "200",
}


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("ws")
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{folder}/ws.db"
    else:
        url = request.getfixturevalue("pg_url")
    live = start_server(url, folder / "server.log", SERVER_ENV)
    yield live
    live.stop()


@pytest.fixture
async def http_api(server: LiveServer) -> AsyncIterator[Api]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        yield Api(http, ADMIN_TOKEN, None)


async def shop(api: Api) -> StoreHandle:
    store = await api.create_store(policy="ALLOW")
    await api.upsert(store, "A")
    await api.upsert(store, "B")
    return store


async def test_refuses_connections_without_a_valid_token(server: LiveServer) -> None:
    for protocol in (TRANSPORT, LEGACY):
        async with ws_connect(server.url, protocol) as ws:
            await ws.send({"type": "connection_init", "payload": {"authorization": "Bearer nope"}})
            assert await ws.closed_code() == 4403
        async with ws_connect(server.url, protocol) as ws:
            await ws.send({"type": "connection_init", "payload": {}})
            assert await ws.closed_code() == 4403


async def test_closes_4401_on_subscribe_before_init_and_4408_without_init(
    server: LiveServer,
) -> None:
    async with ws_connect(server.url) as ws:
        await ws.subscribe(ORDER_EVENTS, {"s": "x"})
        assert await ws.closed_code() == 4401
    for protocol in (TRANSPORT, LEGACY):
        async with ws_connect(server.url, protocol) as ws:
            assert await ws.closed_code(wait=10) == 4408


async def test_streams_live_then_resumes_from_a_cursor_without_gap_or_duplicate(
    server: LiveServer, http_api: Api
) -> None:
    store = await shop(http_api)
    async with ws_connect(server.url) as ws:
        assert (await ws.init(store.token))["type"] == "connection_ack"
        await ws.subscribe(ORDER_EVENTS, {"s": store.id})
        await asyncio.sleep(0.3)
        for _ in range(3):
            await http_api.place(store, [("A", 1)])
        first = [(await ws.next_data())["orderEvents"] for _ in range(6)]
    assert [(e["type"], e["order"]["number"]) for e in first] == [
        ("PLACED", 1001), ("BACKORDERED", 1001),
        ("PLACED", 1002), ("BACKORDERED", 1002),
        ("PLACED", 1003), ("BACKORDERED", 1003),
    ]  # fmt: skip
    assert first[0]["status"] == "OPEN"
    assert first[0]["stockStatus"] == "BACKORDERED"

    # Reconnect after the third event: events 4..6 are replayed, then new ones arrive live.
    await http_api.receive(store, "A", 1)  # fills 1001 while nobody listens
    async with ws_connect(server.url) as ws:
        await ws.init(store.token)
        await ws.subscribe(ORDER_EVENTS, {"s": store.id, "after": first[2]["cursor"]})
        replayed = [(await ws.next_data())["orderEvents"] for _ in range(4)]
        await http_api.place(store, [("B", 2)])
        live = [(await ws.next_data())["orderEvents"] for _ in range(2)]
    got = [(e["type"], e["order"]["number"]) for e in replayed + live]
    assert got == [
        ("BACKORDERED", 1002), ("PLACED", 1003), ("BACKORDERED", 1003),
        ("BACKORDER_FILLED", 1001), ("PLACED", 1004), ("BACKORDERED", 1004),
    ]  # fmt: skip
    assert [e["cursor"] for e in replayed[:3]] == [e["cursor"] for e in first[3:]]
    resumed = [e["cursor"] for e in replayed + live]
    assert len(set(resumed)) == len(resumed)


async def test_filters_by_type_and_order_and_never_leaks_another_store(
    server: LiveServer, http_api: Api
) -> None:
    mine, theirs = await shop(http_api), await shop(http_api)
    async with ws_connect(server.url) as ws:
        await ws.init(mine.token)
        await ws.subscribe(ORDER_EVENTS, {"s": mine.id, "types": ["PLACED"]})
        await ws.subscribe(ORDER_EVENTS, {"s": theirs.id})  # invisible: NOT_FOUND
        refused = await ws.receive()
        assert refused["id"] == "2"
        assert refused["payload"]["errors"][0]["extensions"]["code"] == "NOT_FOUND"
        assert (await ws.receive())["type"] == "complete"
        await asyncio.sleep(0.3)
        for i in range(4):
            await http_api.place(theirs, [("A", 1)])
            await http_api.place(mine, [("A", 1 + i)])
        seen = [(await ws.next_data())["orderEvents"] for _ in range(4)]
        assert [e["order"]["store"]["handle"] for e in seen] == [mine.handle] * 4
        assert [e["type"] for e in seen] == ["PLACED"] * 4
        with pytest.raises(TimeoutError):
            await ws.receive(wait=1)


async def test_inventory_events_carry_stock_right_after_each_event(
    server: LiveServer, http_api: Api
) -> None:
    store = await shop(http_api)
    async with ws_connect(server.url) as ws:
        await ws.init(store.token)
        await ws.subscribe(
            """subscription($s: ID!) { inventoryEvents(storeId: $s, sku: "A") {
                 type onHand available backordered product { sku } } }""",
            {"s": store.id},
        )
        await asyncio.sleep(0.3)
        await http_api.place(store, [("A", 2)])
        await http_api.receive(store, "B", 5)  # another sku: filtered out
        await http_api.receive(store, "A", 5)
        events = [(await ws.next_data())["inventoryEvents"] for _ in range(3)]
    assert [(e["type"], e["onHand"], e["available"], e["backordered"]) for e in events] == [
        ("RECEIVED", 5, 5, 2),
        ("ALLOCATED", 5, 3, 0),
        ("BACK_IN_STOCK", 5, 3, 0),
    ]
    assert {e["product"]["sku"] for e in events} == {"A"}


async def test_backlog_changed_pushes_the_summary_at_once_and_after_changes(
    server: LiveServer, http_api: Api
) -> None:
    store = await shop(http_api)
    async with ws_connect(server.url, LEGACY) as ws:
        await ws.init(store.token)
        await ws.subscribe(
            """subscription($s: ID!) { backlogChanged(storeId: $s) {
                 backlog { orders units } backorders { orders units } } }""",
            {"s": store.id},
        )
        initial = (await ws.next_data())["backlogChanged"]
        assert initial["backlog"] == {"orders": 0, "units": 0}
        for _ in range(5):  # a burst: coalesced into few pushes
            await http_api.place(store, [("A", 1)])
        pushes = []
        while True:
            summary = (await ws.next_data())["backlogChanged"]
            pushes.append(summary)
            if summary["backlog"]["orders"] == 5:
                break
        assert len(pushes) < 5
        assert pushes[-1]["backorders"] == {"orders": 5, "units": 5}


async def test_pings_idle_connections_and_caps_subscriptions_per_connection(
    server: LiveServer, http_api: Api
) -> None:
    store = await shop(http_api)
    async with ws_connect(server.url) as ws:
        await ws.init(store.token)
        raw = json.loads(await asyncio.wait_for(ws.conn.recv(), 5))
        assert raw == {"type": "ping"}
        for _ in range(3):
            await ws.subscribe(ORDER_EVENTS, {"s": store.id})
        await ws.subscribe(ORDER_EVENTS, {"s": store.id})
        refused = await ws.receive()
        assert refused["type"] == "error"
        assert "Subscription limit reached" in json.dumps(refused["payload"])


async def test_identical_subscriptions_each_get_every_event_under_their_own_operation_id(
    server: LiveServer, http_api: Api
) -> None:
    """Identical subscriptions share one execution per event and a ready-made frame; each
    frame must still carry its own operation's id, on every connection and protocol."""
    store = await shop(http_api)
    narrow = """subscription($s: ID!) { orderEvents(storeId: $s) { type order { number } } }"""
    async with (
        ws_connect(server.url) as a,
        ws_connect(server.url) as b,
        ws_connect(server.url, LEGACY) as c,
    ):
        for ws in (a, b, c):
            await ws.init(store.token)
        a_ids = [await a.subscribe(ORDER_EVENTS, {"s": store.id}) for _ in range(2)]
        b_narrow = await b.subscribe(narrow, {"s": store.id})
        b_wide = await b.subscribe(ORDER_EVENTS, {"s": store.id})
        c_wide = await c.subscribe(ORDER_EVENTS, {"s": store.id})
        await asyncio.sleep(0.5)
        for quantity in (1, 2, 3):
            await http_api.place(store, [("A", quantity)])

        async def frames(ws: WsClient, count: int) -> dict[str, list[dict[str, Any]]]:
            by_id: dict[str, list[dict[str, Any]]] = {}
            for _ in range(count):
                message = await ws.receive()
                assert message["type"] in ("next", "data"), message
                assert "errors" not in message["payload"], message
                by_id.setdefault(message["id"], []).append(message["payload"]["data"])
            return by_id

        got_a, got_b, got_c = await frames(a, 12), await frames(b, 12), await frames(c, 6)
    wide = [e["orderEvents"] for e in got_a[a_ids[0]]]
    assert [(e["type"], e["order"]["number"]) for e in wide] == [
        ("PLACED", 1001), ("BACKORDERED", 1001),
        ("PLACED", 1002), ("BACKORDERED", 1002),
        ("PLACED", 1003), ("BACKORDERED", 1003),
    ]  # fmt: skip
    assert set(got_a) == set(a_ids)
    assert set(got_b) == {b_narrow, b_wide}
    assert set(got_c) == {c_wide}
    for same in (got_a[a_ids[1]], got_b[b_wide], got_c[c_wide]):
        assert same == got_a[a_ids[0]]
    assert [e["orderEvents"] for e in got_b[b_narrow]] == [
        {"type": e["type"], "order": {"number": e["order"]["number"]}} for e in wide
    ]

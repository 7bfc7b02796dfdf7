"""Identical live subscriptions served by one fan-out group, against a real server.

After its first live event, a caught-up subscription (either websocket protocol) joins
the group of identical subscriptions: the hub hands it each event directly, the group executes the
event once and writes each member's own `next` frame. Every member must still get every
event once, in order, under its own operation id, while other subscriptions (other
filters, the legacy protocol) go on as before.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.client import Api
from tests.conftest import ADMIN_TOKEN, LiveServer, start_server
from tests.ws_client import LEGACY, WsClient, ws_connect

EVENTS = """subscription($s: ID!, $types: [OrderEventType!]) {
  orderEvents(storeId: $s, types: $types) { cursor type order { number lines { quantity } } } }"""
STOCK = (
    """subscription($s: ID!) { inventoryEvents(storeId: $s, sku: "A") { cursor type onHand } }"""
)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("fanout")
    url = (
        f"sqlite+aiosqlite:///{folder}/fanout.db"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    live = start_server(url, folder / "server.log", {"ORDERGRAPH_TAIL_POLL_MS": "200"})
    yield live
    live.stop()


async def collect(ws: WsClient, count: int) -> dict[str, list[dict[str, Any]]]:
    by_id: dict[str, list[dict[str, Any]]] = {}
    for _ in range(count):
        message = await ws.receive(wait=20)
        assert message["type"] in ("next", "data"), message
        assert "errors" not in message["payload"], message
        by_id.setdefault(message["id"], []).append(message["payload"]["data"])
    return by_id


async def fanout_members(http: httpx.AsyncClient, expected: float) -> float:
    """The fan-out members /metrics counts, once it says `expected` (a subscription joins
    its group after sending its first events itself, on a busy machine a moment later)
    or after 10 s."""
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        text = (await http.get("/metrics")).text
        found = re.search(r"^ordergraph_subscriptions_fanout (\S+)$", text, re.M)
        assert found, text
        members = float(found.group(1))
        if members == expected or asyncio.get_running_loop().time() > deadline:
            return members
        await asyncio.sleep(0.05)


async def frames_sent(http: httpx.AsyncClient) -> tuple[float, float]:
    text = (await http.get("/metrics")).text
    found = dict(re.findall(r'^ordergraph_fanout_frames_total\{path="(\w+)"\} (\S+)$', text, re.M))
    assert set(found) == {"ready", "ordinary"}, text
    return float(found["ready"]), float(found["ordinary"])


async def test_many_identical_subscribers_each_get_every_event_once_in_order(
    server: LiveServer,
) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        api = Api(http, ADMIN_TOKEN, None)
        store = await api.create_store(policy="ALLOW")
        await api.upsert(store, "A")
        connections, per_connection, orders = 6, 4, 12
        async with (
            ws_connect(server.url) as w0, ws_connect(server.url) as w1,
            ws_connect(server.url) as w2, ws_connect(server.url) as w3,
            ws_connect(server.url) as w4, ws_connect(server.url) as w5,
            ws_connect(server.url) as placed_only, ws_connect(server.url) as stock,
            ws_connect(server.url, LEGACY) as legacy,
        ):  # fmt: skip
            group = [w0, w1, w2, w3, w4, w5]
            assert len(group) == connections
            for ws in [*group, placed_only, stock, legacy]:
                await ws.init(store.token)
            ids = {ws: [await ws.subscribe(EVENTS, {"s": store.id}) for _ in range(per_connection)]
                   for ws in group}  # fmt: skip
            await placed_only.subscribe(EVENTS, {"s": store.id, "types": ["PLACED"]})
            await stock.subscribe(STOCK, {"s": store.id})
            await legacy.subscribe(EVENTS, {"s": store.id})
            await asyncio.sleep(0.5)

            # The first order: every subscription sends its events itself, then joins its
            # group (the filtered one forms its own; the legacy-protocol one joins the
            # group of its document, with `data` frames of its own).
            await api.place(store, [("A", 1)])
            first = {ws: await collect(ws, 2 * per_connection) for ws in group}
            await collect(placed_only, 1)
            await collect(legacy, 2)
            members = await fanout_members(http, connections * per_connection + 2)
            assert members == connections * per_connection + 2, members

            # Then bursts, some of them concurrent: delivered through the groups.
            for burst in range(3):
                await asyncio.gather(
                    *(api.place(store, [("A", 2 + burst)]) for _ in range(orders // 3))
                )
            await api.receive(store, "A", 100)
            later = {ws: await collect(ws, (3 * orders + 1) * per_connection)
                     for ws in group}  # fmt: skip
            placed = await collect(placed_only, orders)
            stock_events = await collect(stock, 3)  # placing at zero stock moves none
            legacy_events = await collect(legacy, 3 * orders + 1)
            # The groups wrote their members' frames as ready frames, straight to each
            # socket's transport (live.frames): uvicorn's connection was recognized. This
            # fails when an upgrade of uvicorn or websockets changes what it reads.
            ready, ordinary = await frames_sent(http)
            assert ready >= (3 * orders + 1) * (connections * per_connection + 1), (ready, ordinary)

        reference: list[dict[str, Any]] | None = None
        for ws in group:
            assert set(first[ws]) == set(ids[ws]) == set(later[ws])
            for op_id in ids[ws]:
                events = [e["orderEvents"] for e in first[ws][op_id] + later[ws][op_id]]
                cursors = [e["cursor"] for e in events]
                assert len(set(cursors)) == len(cursors)  # each event once
                if reference is None:
                    reference = events
                assert events == reference  # the same events, in the same order
        assert reference is not None
        numbers = [e["order"]["number"] for e in reference if e["type"] == "PLACED"]
        assert numbers == sorted(numbers) == list(range(1001, 1001 + orders + 1))
        assert [e["type"] for e in reference[-(orders + 1) :]].count(
            "BACKORDER_FILLED"
        ) == orders + 1
        only = [e["orderEvents"] for events in placed.values() for e in events]
        assert [e["type"] for e in only] == ["PLACED"] * orders
        assert [e["order"]["number"] for e in only] == numbers[1:]
        legacy_seen = [e["orderEvents"] for events in legacy_events.values() for e in events]
        assert [e["cursor"] for e in legacy_seen] == [e["cursor"] for e in reference[2:]]
        onhand = [e["inventoryEvents"] for events in stock_events.values() for e in events]
        assert [e["type"] for e in onhand] == ["RECEIVED", "ALLOCATED", "BACK_IN_STOCK"]
        assert onhand[-1]["onHand"] == 100

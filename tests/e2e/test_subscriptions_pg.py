"""Live updates across server processes on one PostgreSQL database, and under faults."""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from ordergraph.domain import services
from ordergraph.live.hub import LISTENER_NAME
from ordergraph.resolvers import ids
from ordergraph.storage.db import Database
from ordergraph.storage.uow import store_session
from tests.client import Api, StoreHandle
from tests.conftest import ADMIN_TOKEN, LiveServer, start_server
from tests.ws_client import WsClient, ws_connect

EVENTS = """subscription($s: ID!, $after: String) { orderEvents(storeId: $s, after: $after) {
  cursor type order { number } } }"""


@pytest.fixture
def two_servers(pg_url: str, tmp_path: Path) -> Iterator[list[LiveServer]]:
    # Slow polling: delivery within a second must come from the NOTIFY wake-up.
    env = {"ORDERGRAPH_TAIL_POLL_MS": "3000"}
    servers = [start_server(pg_url, tmp_path / f"s{i}.log", env) for i in range(2)]
    yield servers
    for server in servers:
        server.stop()


async def _shop(url: str) -> StoreHandle:
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        api = Api(http, ADMIN_TOKEN, None)
        store = await api.create_store(policy="ALLOW")
        await api.upsert(store, "A")
        return store


async def _subscribe(ws: WsClient, store: StoreHandle, after: str | None = None) -> None:
    assert (await ws.init(store.token))["type"] == "connection_ack"
    await ws.subscribe(EVENTS, {"s": store.id, "after": after})
    await asyncio.sleep(0.3)


async def test_a_change_on_one_process_reaches_subscribers_on_the_other_within_a_second(
    two_servers: list[LiveServer],
) -> None:
    writer, reader = two_servers
    store = await _shop(writer.url)
    async with ws_connect(reader.url) as ws, httpx.AsyncClient(base_url=writer.url) as http:
        await _subscribe(ws, store)
        api = Api(http, ADMIN_TOKEN, None)
        delays = []
        for _ in range(5):
            await api.place(store, [("A", 1)])
            committed = time.monotonic()
            first = await ws.next_data(wait=5)
            delays.append(time.monotonic() - committed)
            await ws.next_data(wait=5)  # BACKORDERED
            assert first["orderEvents"]["type"] == "PLACED"
    assert max(delays) < 1.0, delays


async def test_a_killed_listener_connection_reconnects_and_nothing_is_missed(
    two_servers: list[LiveServer], pg_url: str
) -> None:
    writer, reader = two_servers
    store = await _shop(writer.url)
    dsn = pg_url.replace("postgresql+asyncpg", "postgresql")
    async with ws_connect(reader.url) as ws, httpx.AsyncClient(base_url=writer.url) as http:
        await _subscribe(ws, store)
        api = Api(http, ADMIN_TOKEN, None)
        admin = await asyncpg.connect(dsn)
        try:
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = $1",
                LISTENER_NAME,
            )
        finally:
            await admin.close()
        assert killed >= 2  # one listener per server process
        for _ in range(10):
            await api.place(store, [("A", 1)])
        got = [(await ws.next_data(wait=10))["orderEvents"] for _ in range(20)]
    numbers = [e["order"]["number"] for e in got if e["type"] == "PLACED"]
    assert numbers == list(range(1001, 1011))


async def test_clients_of_a_stopped_process_resume_on_another_and_get_each_event_once(
    two_servers: list[LiveServer],
) -> None:
    doomed, survivor = two_servers
    store = await _shop(survivor.url)
    received: list[dict[str, Any]] = []
    total_orders = 30

    async def produce() -> None:
        async with httpx.AsyncClient(base_url=survivor.url, timeout=30) as http:
            api = Api(http, ADMIN_TOKEN, None)
            for _ in range(total_orders):
                await api.place(store, [("A", 1)])
                await asyncio.sleep(0.05)

    async with ws_connect(doomed.url) as ws:
        await _subscribe(ws, store)
        producer = asyncio.create_task(produce())
        while len(received) < 10:
            received.append((await ws.next_data())["orderEvents"])
        doomed.process.send_signal(signal.SIGTERM)
        code = await ws.closed_code(wait=15)
    assert code in (1001, 1012), code  # going away / service restart
    async with ws_connect(survivor.url) as ws:
        await _subscribe(ws, store, after=received[-1]["cursor"])
        while len(received) < 2 * total_orders:
            received.append((await ws.next_data(wait=10))["orderEvents"])
        await producer
        with pytest.raises(TimeoutError):
            await ws.receive(wait=1)
    placed = [e["order"]["number"] for e in received if e["type"] == "PLACED"]
    assert placed == list(range(1001, 1001 + total_orders))
    assert len({e["cursor"] for e in received}) == len(received)


async def test_transactions_finishing_out_of_order_cannot_make_a_subscriber_skip(
    two_servers: list[LiveServer], pg_url: str
) -> None:
    """The first writer takes its log position, then stalls; a second writer on the same
    store starts meanwhile. Under a plain sequence the second could commit first and a
    tail could move past the first's position; here the second waits for the store lock,
    and the subscriber receives both, in order."""
    server = two_servers[1]
    store = await _shop(server.url)
    store_id = ids.store_id(store.id)
    assert store_id is not None
    db = Database(pg_url)

    def now() -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    stalled, release = asyncio.Event(), asyncio.Event()

    async def first() -> None:
        async with store_session(db, store_id, now) as session:
            await services.receive_stock(session, "A", 1)
            stalled.set()
            await release.wait()

    async def second() -> None:
        await stalled.wait()
        async with store_session(db, store_id, now) as session:
            await services.receive_stock(session, "A", 2)

    try:
        async with ws_connect(server.url) as ws:
            assert (await ws.init(store.token))["type"] == "connection_ack"
            await ws.subscribe(
                """subscription($s: ID!) { inventoryEvents(storeId: $s) {
                     cursor type onHand } }""",
                {"s": store.id},
            )
            await asyncio.sleep(0.3)
            tasks = [asyncio.create_task(first()), asyncio.create_task(second())]
            await stalled.wait()
            await asyncio.sleep(0.5)
            release.set()
            await asyncio.gather(*tasks)
            got = [(await ws.next_data())["inventoryEvents"] for _ in range(3)]
    finally:
        await db.dispose()
    assert [(e["type"], e["onHand"]) for e in got] == [
        ("RECEIVED", 1),
        ("BACK_IN_STOCK", 1),
        ("RECEIVED", 3),
    ]

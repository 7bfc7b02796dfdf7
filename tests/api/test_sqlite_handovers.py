"""Thread hand-overs per operation on SQLite: a deterministic guard of the embedded hot path.

SQLite runs in the process; what a statement costs the server is handing it to a driver
thread and back. The async engine's driver (aiosqlite) hands over three or four times
per statement (cursor, execute, fetch, close): a placeOrder was some forty. A store's
unit of work now runs its statements on the writer thread (storage/sqlite_unit.py): one
hand-over opens it (BEGIN IMMEDIATE, the store, the first reads), one writes and commits.

Counted here, after a warm-up, for each operation: the calls handed to the writer thread
(`SqliteWriter.handovers`), and the statements that went through the async engine instead
(each three or four hand-overs; none in a unit of work). The statements the writer thread
ran are counted too: SQLite's own work, kept in a budget so that batching stays batched.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.engine import make_url

from ordergraph.app import create_app
from ordergraph.clock import Clock
from ordergraph.domain import services
from ordergraph.settings import Settings
from ordergraph.storage import queries
from ordergraph.storage import tables as t
from ordergraph.storage.db import Database, SqliteWriter
from ordergraph.storage.uow import store_session
from tests.client import Api, StoreHandle
from tests.conftest import ADMIN_TOKEN

# placeOrder and shipOrder: open and commit (what they read comes with the opening).
PLACE_ORDER_HANDOVERS = 2
SHIP_ORDER_HANDOVERS = 2
# receiveStock filling one waiting order reads its queue on demand besides: the waiting
# lines, their orders and the orders' lines, in one call (SqlStoreSession.reading).
RECEIVE_STOCK_HANDOVERS = 3
# Statements on the writer thread. placeOrder: BEGIN IMMEDIATE, the store, its products and
# the idempotency record; the order, its lines, the product, the events, the tally (the
# last point, the new one), the idempotency record (expired ones out, this one in), the
# counters; COMMIT is the driver's, not a statement. (13 with the idempotency key: one
# spare for a statement the figures may need, such as the oldest backorder recounted.)
PLACE_ORDER_STATEMENTS = 14


@dataclass
class Counts:
    handovers: int = 0  # calls on the writer thread
    engine_statements: int = 0  # through the async engine: three or four hand-overs each
    writer_statements: int = 0  # on the writer thread: no hand-over of their own
    statements: tuple[str, ...] = ()


class Counter:
    def __init__(self, db: Database) -> None:
        writer = db.sqlite_writer
        assert writer is not None, "a file database has a writer thread"
        self.writer: SqliteWriter = writer
        self.engine_sql: list[str] = []
        self.writer_sql: list[str] = []
        event.listen(db.engine.sync_engine, "before_cursor_execute", self._on_engine)
        event.listen(writer.engine, "before_cursor_execute", self._on_writer)

    def _on_engine(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.engine_sql.append(statement)

    def _on_writer(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.writer_sql.append(statement)

    async def count(self, call: Callable[[], Awaitable[dict[str, Any]]]) -> tuple[Counts, Any]:
        self.engine_sql.clear()
        self.writer_sql.clear()
        before = self.writer.handovers
        result = await call()
        counts = Counts(
            self.writer.handovers - before,
            len(self.engine_sql),
            len(self.writer_sql),
            tuple(s.split("\n")[0][:70] for s in [*self.engine_sql, *self.writer_sql]),
        )
        return counts, result


@asynccontextmanager
async def _app(url: str, clock: Clock) -> AsyncIterator[tuple[Api, Database]]:
    db = Database(url)
    # The token stays cached for the whole test: counts are of a key already looked up.
    settings = Settings(database_url=db.url, admin_token=ADMIN_TOKEN, auth_cache_seconds=3600)
    app = create_app(settings, clock=clock, db=db)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield Api(http, ADMIN_TOKEN, db), db
    finally:
        await db.dispose()


async def _fewest(
    counter: Counter, label: str, call: Callable[[], Awaitable[dict[str, Any]]]
) -> tuple[Counts, list[dict[str, Any]]]:
    """The operation three times: the counts of the run with the fewest hand-overs (a
    background task of the app may add a read to one of them, not to all three), and the
    three results."""
    runs = [await counter.count(call) for _ in range(3)]
    counts = min((c for c, _ in runs), key=lambda c: c.handovers + 4 * c.engine_statements)
    print(f"{label}: {counts}")
    return counts, [result for _, result in runs]


async def _shop(api: Api) -> StoreHandle:
    store = await api.create_store(policy="ALLOW")
    for sku in ("A", "B", "C"):
        assert (await api.upsert(store, sku))["userErrors"] == []
    await api.receive(store, "A", 1000)
    await api.receive(store, "B", 1000)
    for _ in range(2):  # warm: every statement compiled once
        placed = await api.place(store, [("A", 1), ("B", 2)], idempotencyKey=_key())
        await api.ship(store, placed["order"]["id"])
    return store


_keys = iter(range(10**6))


def _key() -> str:
    return f"k-{next(_keys)}"


async def test_a_place_order_hands_over_to_the_writer_thread_twice(
    own_sqlite_url: str, clock: Clock
) -> None:
    async with _app(own_sqlite_url, clock) as (api, db):
        store = await _shop(api)
        counter = Counter(db)

        counts, placed = await _fewest(
            counter,
            "placeOrder",
            lambda: api.place(store, [("A", 1), ("B", 2)], idempotencyKey=_key()),
        )
        for result in placed:
            assert [line["allocated"] for line in result["order"]["lines"]] == [1, 2]
        assert counts.engine_statements == 0, counts
        assert counts.handovers <= PLACE_ORDER_HANDOVERS, counts
        assert counts.writer_statements <= PLACE_ORDER_STATEMENTS, counts

        to_ship = [(await api.place(store, [("A", 1)]))["order"]["id"] for _ in range(3)]
        counts, shipped = await _fewest(
            counter, "shipOrder", lambda: api.ship(store, to_ship.pop(0))
        )
        assert [result["order"]["status"] for result in shipped] == ["SHIPPED"] * 3
        assert counts.engine_statements == 0, counts
        assert counts.handovers <= SHIP_ORDER_HANDOVERS, counts

        # Orders wait for C; each delivery fills the oldest waiting one.
        waiting = [(await api.place(store, [("C", 2)]))["order"] for _ in range(3)]
        counts, filled = await _fewest(counter, "receiveStock", lambda: api.receive(store, "C", 2))
        assert [[line["order"]["number"] for line in r["filledLines"]] for r in filled] == [
            [order["number"]] for order in waiting
        ]
        assert counts.engine_statements == 0, counts
        assert counts.handovers <= RECEIVE_STOCK_HANDOVERS, counts


def _hold_write_lock(url: str) -> sqlite3.Connection:
    """Another writer (as another process would be): SQLite's write lock, taken and held."""
    path = make_url(url).database
    assert path is not None
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    return other


async def _handed_over(db: Database, calls: int) -> None:
    """Until the writer thread has been handed more than `calls` calls."""
    writer = db.sqlite_writer
    assert writer is not None
    async with asyncio.timeout(10):
        while writer.handovers <= calls:  # noqa: ASYNC110 (a counter on another thread's side)
            await asyncio.sleep(0.01)


async def _orders_in(db: Database, store_id: int) -> int:
    async with db.read() as conn:
        query = select(func.count()).select_from(t.orders).where(t.orders.c.store_id == store_id)
        return int((await conn.execute(query)).scalar_one())


async def test_a_unit_waiting_for_another_writer_leaves_the_server_answering(
    own_sqlite_url: str, clock: Clock
) -> None:
    async with _app(own_sqlite_url, clock) as (api, db):
        store = await _shop(api)
        other = _hold_write_lock(own_sqlite_url)
        try:
            placing = asyncio.create_task(api.place(store, [("A", 1)]))
            await _handed_over(db, calls=0)
            # The unit waits for the lock on the writer thread; the event loop serves reads.
            for _ in range(3):
                product = await api.product(store, "A")
                assert product["sku"] == "A"
            await asyncio.sleep(0.2)
            assert not placing.done()
        finally:
            other.rollback()
            other.close()
        placed = await asyncio.wait_for(placing, 30)
        assert placed["userErrors"] == []


async def test_a_unit_cancelled_while_waiting_for_the_lock_ends_at_once_and_writes_nothing(
    own_sqlite_url: str, clock: Clock
) -> None:
    async with _app(own_sqlite_url, clock) as (api, db):
        store = await _shop(api)
        async with db.read() as conn:
            found = await queries.store_by_handle(conn, store.handle)
        assert found is not None
        assert db.sqlite_writer is not None
        before = await _orders_in(db, found.id)

        async def place_one() -> None:
            async with store_session(db, found.id, clock) as session:
                order = services.PlaceOrder(lines=[services.LineRequest("A", 1)])
                await services.place_order(session, order)

        other = _hold_write_lock(own_sqlite_url)
        try:
            calls = db.sqlite_writer.handovers
            cut_short = asyncio.create_task(place_one())
            await _handed_over(db, calls)  # its opening is on the writer thread
            await asyncio.sleep(0.1)
            cut_short.cancel()
            async with asyncio.timeout(5):  # at once, though SQLite's lock is still taken
                with pytest.raises(asyncio.CancelledError):
                    await cut_short
            # The next unit queues behind the cancelled one's opening and its rollback.
            after = asyncio.create_task(place_one())
            await asyncio.sleep(0.1)
            assert not after.done()
        finally:
            other.rollback()
            other.close()
        await asyncio.wait_for(after, 30)
        assert await _orders_in(db, found.id) == before + 1

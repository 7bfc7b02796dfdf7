"""The event log on PostgreSQL: a store's positions commit in order, so a tail never skips."""

from __future__ import annotations

import asyncio
import datetime as dt

from sqlalchemy import select

from ordergraph.domain import services
from ordergraph.domain.model import BackorderPolicy
from ordergraph.storage import tables as t
from ordergraph.storage.admin import create_store
from ordergraph.storage.db import Database
from ordergraph.storage.uow import store_session


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def _committed_seqs(db: Database, store_id: int) -> list[int]:
    async with db.read() as conn:
        rows = await conn.execute(
            select(t.events.c.seq).where(t.events.c.store_id == store_id).order_by(t.events.c.seq)
        )
        return [row.seq for row in rows]


async def test_a_later_writer_waits_so_positions_commit_in_order(pg_url: str) -> None:
    """A tail reading `seq > last` can only skip an event if a lower seq commits after a higher
    one. Hold one transaction open after it took its positions: a second writer on the same
    store must not take positions (or commit) until the first commits."""
    db = Database(pg_url)
    try:
        store, _ = await create_store(
            db,
            handle=f"log-{now().timestamp():.0f}-{id(db) % 10_000}",
            name="Log",
            currency_code="USD",
            timezone="UTC",
            default_policy=BackorderPolicy.ALLOW,
            now=now(),
        )
        async with store_session(db, store.id, now) as setup:
            await services.upsert_product(setup, services.UpsertProduct("A", "A", "1.00"))

        first_holds = asyncio.Event()
        release_first = asyncio.Event()
        order_of_commits: list[str] = []

        async def slow_writer() -> None:
            async with store_session(db, store.id, now) as session:
                await services.receive_stock(session, "A", 1)
                first_holds.set()
                await release_first.wait()
            order_of_commits.append("first")

        async def fast_writer() -> None:
            await first_holds.wait()
            async with store_session(db, store.id, now) as session:
                await services.receive_stock(session, "A", 2)
            order_of_commits.append("second")

        slow = asyncio.create_task(slow_writer())
        fast = asyncio.create_task(fast_writer())
        await first_holds.wait()
        await asyncio.sleep(0.3)
        # The second writer is blocked on the store lock: nothing of it is visible.
        assert order_of_commits == []
        assert await _committed_seqs(db, store.id) == []
        release_first.set()
        await asyncio.gather(slow, fast)
        assert order_of_commits == ["first", "second"]
        seqs = await _committed_seqs(db, store.id)
        assert seqs == list(range(1, len(seqs) + 1))
        async with db.read() as conn:
            rows = list(
                await conn.execute(
                    select(t.events.c.seq, t.events.c.data)
                    .where(t.events.c.store_id == store.id, t.events.c.type == "RECEIVED")
                    .order_by(t.events.c.seq)
                )
            )
        assert [row.data["quantity"] for row in rows] == [1, 2]
    finally:
        await db.dispose()


async def test_many_concurrent_writers_leave_a_gapless_log(pg_url: str) -> None:
    db = Database(pg_url, pool_size=10)
    try:
        store, _ = await create_store(
            db,
            handle=f"gapless-{id(db) % 100_000}",
            name="Gapless",
            currency_code="USD",
            timezone="UTC",
            default_policy=BackorderPolicy.ALLOW,
            now=now(),
        )
        async with store_session(db, store.id, now) as setup:
            await services.upsert_product(setup, services.UpsertProduct("A", "A", "1.00"))

        async def place() -> None:
            async with store_session(db, store.id, now) as session:
                await services.place_order(
                    session, services.PlaceOrder([services.LineRequest("A", 1)])
                )

        await asyncio.gather(*(place() for _ in range(40)))
        seqs = await _committed_seqs(db, store.id)
        assert seqs == list(range(1, 81))  # PLACED + BACKORDERED for each order
        async with db.read() as conn:
            numbers = sorted(
                (
                    await conn.execute(
                        select(t.orders.c.number).where(t.orders.c.store_id == store.id)
                    )
                ).scalars()
            )
        assert numbers == list(range(1001, 1041))
    finally:
        await db.dispose()

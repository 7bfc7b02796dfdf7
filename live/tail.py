"""Reading the event log by position, for replays and for the live tail."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ordergraph.domain.reads import EventRecord
from ordergraph.storage import tables as t
from ordergraph.storage.mapping import event_from


async def last_seq(conn: AsyncConnection, store_id: int) -> int:
    e = t.events
    found = (await conn.execute(select(func.max(e.c.seq)).where(e.c.store_id == store_id))).scalar()
    return int(found or 0)


async def events_after(
    conn: AsyncConnection, store_id: int, after: int, limit: int = 500
) -> list[EventRecord]:
    """The store's events with positions after `after`, in order."""
    e = t.events
    rows = await conn.execute(
        select(e).where(e.c.store_id == store_id, e.c.seq > after).order_by(e.c.seq).limit(limit)
    )
    return [event_from(row) for row in rows.mappings()]


async def events_after_many(
    conn: AsyncConnection, positions: Mapping[int, int], limit: int = 2000
) -> list[EventRecord]:
    """New events of several stores at once, each store's in order.

    The `store_id IN (...)` beside the per-store positions names the stores outright, so
    a sharded database (Citus) reads only the shards holding them."""
    if not positions:
        return []
    e = t.events
    clause = or_(*(and_(e.c.store_id == s, e.c.seq > p) for s, p in positions.items()))
    query = select(e).where(e.c.store_id.in_(sorted(positions)), clause)
    rows = await conn.execute(query.order_by(e.c.store_id, e.c.seq).limit(limit))
    return [event_from(row) for row in rows.mappings()]

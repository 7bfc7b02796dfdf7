"""The rate buckets every server process shares on PostgreSQL (ordergraph.throttle).

One statement per reconciliation, for every bucket a process has used lately: the
points it charged since the last one are added to the shared level, which has leaked
at `rate` points per second since it was last written (the database's clock, so the
processes need not agree on theirs), and the new levels come back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Float, bindparam, cast, delete, func, literal_column
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from ordergraph.storage import tables as t

BucketKey = tuple[int, int]  # (store id, api key id)


def _leaked(rate: float, now: Any) -> object:
    b = t.rate_buckets
    elapsed = func.extract("epoch", now - b.c.updated_at)
    return func.greatest(
        cast(0.0, Float), b.c.level - cast(bindparam("rate", rate), Float) * elapsed
    )


async def reconcile(
    conn: AsyncConnection, charges: Mapping[BucketKey, float], rate: float
) -> dict[BucketKey, float]:
    """Add each bucket's new charges to its shared level; the levels after (PostgreSQL)."""
    if not charges:
        return {}
    b = t.rate_buckets
    rows = [
        {"store_id": s, "api_key_id": k, "level": float(c), "updated_at": func.now()}
        for (s, k), c in sorted(charges.items())
    ]
    values = insert(b).values(rows)
    # The conflict branch takes the instant from the row offered (`now()`, evaluated once
    # for the statement): Citus allows no function that is not immutable there.
    now = values.excluded.updated_at
    statement = values.on_conflict_do_update(
        index_elements=[b.c.store_id, b.c.api_key_id],
        set_={"level": _leaked(rate, now) + values.excluded.level, "updated_at": now},
    ).returning(b.c.store_id, b.c.api_key_id, b.c.level)
    found = await conn.execute(statement)
    return {(int(r.store_id), int(r.api_key_id)): float(r.level) for r in found}


async def forget_empty(conn: AsyncConnection, rate: float) -> int:
    """Delete the buckets that have leaked empty; how many."""
    b = t.rate_buckets
    elapsed = func.extract("epoch", func.now() - b.c.updated_at)
    result = await conn.execute(
        delete(b).where(b.c.level <= literal_column(repr(float(rate))) * elapsed)
    )
    return int(result.rowcount or 0)

"""The rate buckets every server process shares on PostgreSQL (ordergraph.throttle).

One statement per reconciliation, for every bucket a process has used lately: the
points it charged since the last one are added to the shared level, which has leaked
at `rate` points per second since it was last written (the database's clock, so the
processes need not agree on theirs), and the new levels come back.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from sqlalchemy import Float, bindparam, cast, delete, func, literal_column
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from ordergraph.storage import tables as t

BucketKey = tuple[int, int]  # (store id, api key id)


def _leaked(now: Any, rate: float) -> Any:
    b = t.rate_buckets
    elapsed = func.extract("epoch", now - b.c.updated_at)
    return func.greatest(cast(0.0, Float), b.c.level - literal_column(repr(rate)) * elapsed)


@lru_cache(maxsize=4)
def _reconcile_statement(rate: float) -> Any:
    """The upsert of one bucket, built once per process (its rate is a setting): executed
    with every bucket's parameters, it goes out as one statement of many rows
    (SQLAlchemy's "insertmanyvalues"), in one round trip, and a reconciliation builds no
    SQL expression. The rate is written into the statement: a parameter outside its
    VALUES would make SQLAlchemy send one statement per bucket."""
    b = t.rate_buckets
    values = insert(b).values(
        store_id=bindparam("store_id"),
        api_key_id=bindparam("api_key_id"),
        level=bindparam("level", type_=Float),
        updated_at=func.now(),
    )
    # The conflict branch takes the instant from the row offered (`now()`, evaluated once
    # for the statement): Citus allows no function that is not immutable there.
    now = values.excluded.updated_at
    return values.on_conflict_do_update(
        index_elements=[b.c.store_id, b.c.api_key_id],
        set_={"level": _leaked(now, rate) + values.excluded.level, "updated_at": now},
    ).returning(b.c.store_id, b.c.api_key_id, b.c.level)


async def reconcile(
    conn: AsyncConnection, charges: Mapping[BucketKey, float], rate: float
) -> dict[BucketKey, float]:
    """Add each bucket's new charges to its shared level; the levels after (PostgreSQL)."""
    if not charges:
        return {}
    rows = [
        {"store_id": s, "api_key_id": k, "level": float(c)} for (s, k), c in sorted(charges.items())
    ]
    found = await conn.execute(_reconcile_statement(float(rate)), rows)
    return {(int(r.store_id), int(r.api_key_id)): float(r.level) for r in found}


_FORGET_EMPTY = delete(t.rate_buckets).where(
    t.rate_buckets.c.level
    <= cast(bindparam("rate"), Float)
    * func.extract("epoch", func.now() - t.rate_buckets.c.updated_at)
)


async def forget_empty(conn: AsyncConnection, rate: float) -> int:
    """Delete the buckets that have leaked empty; how many."""
    result = await conn.execute(_FORGET_EMPTY, {"rate": float(rate)})
    return int(result.rowcount or 0)

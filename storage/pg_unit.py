"""A store's unit of work on PostgreSQL in four round trips.

1. `BEGIN` and the store's row lock, in one simple query;
2. the store row with what the unit will read first (`Reads`: products, orders and
   their lines, the idempotency record), as JSON in one statement;
3. every write the domain decided, as one JSON document to `og_apply` (migration
   0003), which inserts and updates the rows in the order the SQLite path does;
4. `COMMIT`.

The session's reads beyond the first go through SQLAlchemy on the same connection,
which is in autocommit mode so that it never begins a transaction of its own: the
server-side transaction begun in (1) holds them all. The lock is taken in the first
round trip and held until the fourth; the domain's work in between is in memory.

Anything that goes wrong before COMMIT rolls back; a connection in an unknown state
(cancelled mid-statement, say) is closed rather than returned to the pool.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import asyncpg
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection

from ordergraph.storage import history
from ordergraph.storage import tables as t
from ordergraph.storage.db import Database
from ordergraph.storage.jsonrows import from_json, to_json
from ordergraph.storage.notify import NOTIFY_CHANNEL

if TYPE_CHECKING:  # the unit of work uses this module
    from ordergraph.domain.commands import Reads
    from ordergraph.storage.uow import Writes

_ROLLBACK_SECONDS = 5.0

OPEN = """
SELECT to_jsonb(s) AS store,
  (SELECT to_jsonb(k) FROM idempotency_keys k
     WHERE k.store_id = $1 AND k.operation = $2 AND k.key = $3) AS idempotency,
  (SELECT coalesce(jsonb_agg(to_jsonb(p)), '[]'::jsonb) FROM products p
     WHERE p.store_id = $1 AND (p.sku = ANY($4::text[]) OR p.id = ANY($5::bigint[])
       OR p.id IN (SELECT l.product_id FROM order_lines l
                   WHERE l.store_id = $1 AND l.order_id = ANY($6::bigint[])))) AS products,
  (SELECT coalesce(jsonb_agg(to_jsonb(o)), '[]'::jsonb) FROM orders o
     WHERE o.store_id = $1 AND o.id = ANY($6::bigint[])) AS orders,
  (SELECT coalesce(jsonb_agg(to_jsonb(l)), '[]'::jsonb) FROM order_lines l
     WHERE l.store_id = $1 AND l.order_id = ANY($6::bigint[])) AS lines
FROM stores s WHERE s.id = $1
"""

APPLY = "SELECT og_apply($1::jsonb)"


@dataclass
class Opened:
    """The rows read with the lock, typed as a query through the tables gives them."""

    store: dict[str, Any] | None
    idempotency: dict[str, Any] | None = None
    products: list[dict[str, Any]] = field(default_factory=list)
    orders: list[dict[str, Any]] = field(default_factory=list)
    lines: list[dict[str, Any]] = field(default_factory=list)


async def _abandon(conn: AsyncConnection, raw: asyncpg.Connection) -> None:
    """Roll back what the unit began; close the connection if that cannot be done.

    A cancelled unit (a deadline, a client gone) may have stopped mid-statement, even
    mid-BEGIN: the driver then asks the server to cancel the statement, and the ROLLBACK
    waits for that to land first. So it is sent whatever state the connection reports.
    """
    try:
        if not raw.is_closed():
            await asyncio.wait_for(raw.execute("ROLLBACK"), _ROLLBACK_SECONDS)
            return
    except BaseException:  # lost, stuck, or cancelled again: close it instead
        pass
    await conn.invalidate()


@asynccontextmanager
async def locked(
    db: Database, store_id: int
) -> AsyncIterator[tuple[AsyncConnection, asyncpg.Connection]]:
    """A transaction holding the store's row lock; commits when the block ends cleanly.

    Yields the SQLAlchemy connection (autocommit mode: it begins nothing itself) and
    the driver's connection under it.
    """
    async with db.connection() as conn:
        raw: asyncpg.Connection = (await conn.get_raw_connection()).driver_connection
        try:
            # A simple query may hold two statements: one round trip for both. The id is
            # an int, formatted as one. NO KEY UPDATE: units on the store wait for each
            # other, while inserts that only reference the store (their foreign-key
            # checks take KEY SHARE) go on.
            await raw.execute(
                f"BEGIN; SELECT 1 FROM stores WHERE id = {int(store_id)} FOR NO KEY UPDATE"
            )
            locked_at = time.perf_counter()
            yield conn, raw
            await raw.execute("COMMIT")
            db.lock_held(time.perf_counter() - locked_at)
        except BaseException:
            await _abandon(conn, raw)
            raise


def _decoded(value: Any) -> Any:
    """jsonb as the pool's connections decode it (SQLAlchemy sets a codec), or as text."""
    return json.loads(value) if isinstance(value, str) else value


def _rows(table: Table, values: Any) -> list[dict[str, Any]]:
    return [from_json(table, row) for row in _decoded(values)]


async def open_reads(raw: asyncpg.Connection, store_id: int, reads: Reads) -> Opened:
    """The store row and what `reads` names, in one statement (under the lock)."""
    operation, key = reads.idempotency or ("", "")
    row = await raw.fetchrow(
        OPEN,
        store_id,
        operation,
        key,
        list(reads.skus),
        list(reads.product_ids),
        list(reads.order_ids),
    )
    if row is None:
        return Opened(store=None)
    idempotency = row["idempotency"]
    return Opened(
        store=from_json(t.stores, _decoded(row["store"])),
        idempotency=from_json(t.idempotency_keys, _decoded(idempotency))
        if idempotency is not None
        else None,
        products=_rows(t.products, row["products"]),
        orders=_rows(t.orders, row["orders"]),
        lines=_rows(t.order_lines, row["lines"]),
    )


def _document(store_id: int, writes: Writes) -> dict[str, Any]:
    doc: dict[str, Any] = {"store_id": store_id}
    for name, table, rows in (
        ("new_products", t.products, writes.new_products),
        ("products", t.products, writes.products),
        ("new_orders", t.orders, writes.new_orders),
        ("new_lines", t.order_lines, writes.new_lines),
        ("orders", t.orders, writes.orders),
        ("lines", t.order_lines, writes.lines),
        ("events", t.events, writes.events),
        ("remember", t.idempotency_keys, writes.remember),
    ):
        if rows:
            doc[name] = [to_json(table, row) for row in rows]
    if writes.tally is not None:
        doc["tally"] = history.change_json(writes.tally, writes.seq, writes.at)
    if writes.forget_before is not None:
        doc["forget_before"] = writes.forget_before.isoformat()
    if writes.notify is not None:
        doc["notify"] = {"channel": NOTIFY_CHANNEL, "payload": writes.notify}
    if writes.counters is not None:
        doc["counters"] = to_json(t.stores, writes.counters)
    return doc


async def apply(raw: asyncpg.Connection, store_id: int, writes: Writes) -> None:
    """Every write of the unit, in one round trip."""
    doc = _document(store_id, writes)
    if len(doc) > 1:
        # The pool's connections take jsonb parameters as text (SQLAlchemy's codec) and
        # give jsonb results decoded.
        await raw.execute(APPLY, json.dumps(doc, separators=(",", ":")))

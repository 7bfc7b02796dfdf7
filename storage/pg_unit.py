"""A store's unit of work on PostgreSQL in three round trips.

1. `BEGIN`;
2. `og_open` (migrations 0003, 0013): the store's row lock, then the store row with what the
   unit will read first (`Reads`: products, orders and their lines, the idempotency
   record), as one JSON document;
3. every write the domain decided, as one JSON document to `og_write` (`og_apply` and
   the functions beside it), which inserts and updates the rows in the order the SQLite
   path does, and `COMMIT`, in one simple query.

The lock is held from the second round trip to the end of the third; the domain's
work in between is in memory. The session's reads beyond the first go through
SQLAlchemy on the same connection, which is in autocommit mode so that it never
begins a transaction of its own: the server-side transaction holds them all.

Anything that goes wrong before COMMIT rolls back; a connection in an unknown state
(cancelled mid-statement, say) is closed rather than returned to the pool.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import asyncpg
import orjson
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection

from ordergraph.storage import history
from ordergraph.storage import tables as t
from ordergraph.storage.db import Database, pooled
from ordergraph.storage.jsonrows import from_json, to_json
from ordergraph.storage.notify import NOTIFY_CHANNEL

if TYPE_CHECKING:  # the unit of work uses this module
    from ordergraph.domain.commands import Reads
    from ordergraph.storage.uow import Writes

_ROLLBACK_SECONDS = 5.0

OPEN = "SELECT og_open($1, $2, $3, $4::text[], $5::bigint[], $6::bigint[])"
# The idempotency records of a unit's other keyed changes (resolvers/batches.py): one
# more round trip, under the lock, for all of them.
MORE_KEYS = (
    "SELECT coalesce(jsonb_agg(to_jsonb(i)), '[]'::jsonb) FROM idempotency_keys i"
    " WHERE i.store_id = $1 AND (i.operation, i.key) IN"
    " (SELECT * FROM unnest($2::text[], $3::text[]))"
)


@dataclass
class Opened:
    """The rows read with the lock, typed as a query through the tables gives them."""

    store: dict[str, Any] | None
    idempotency: dict[str, Any] | None = None
    products: list[dict[str, Any]] = field(default_factory=list)
    orders: list[dict[str, Any]] = field(default_factory=list)
    lines: list[dict[str, Any]] = field(default_factory=list)
    # The records of `Reads.more_keys`, None where there is none.
    more_keys: dict[tuple[str, str], dict[str, Any] | None] = field(default_factory=dict)


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


# What a connection the server closed raises at its first statement (a restart, a
# terminated backend, noticed by the driver only now).
_LOST = (
    OSError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
)
_BEGIN_ATTEMPTS = 3


@asynccontextmanager
async def transaction(db: Database) -> AsyncIterator[tuple[AsyncConnection, asyncpg.Connection]]:
    """A transaction that `commit` ends; rolled back if the block fails or ends without.

    Yields the SQLAlchemy connection (autocommit mode: it begins nothing itself) and
    the driver's connection under it. A connection found closed at BEGIN, before
    anything was done, is dropped and another one tried.
    """
    for attempt in range(_BEGIN_ATTEMPTS):
        async with db.connection() as conn:
            raw: asyncpg.Connection = (await pooled(conn)).driver_connection
            try:
                await raw.execute("BEGIN")
            except _LOST:
                await conn.invalidate()
                if attempt == _BEGIN_ATTEMPTS - 1:
                    raise
                continue
            try:
                yield conn, raw
                if raw.is_in_transaction():  # the block ended without committing
                    await raw.execute("ROLLBACK")
            except BaseException:
                await _abandon(conn, raw)
                raise
            return


def _decoded(value: Any) -> Any:
    """jsonb as the pool's connections decode it (SQLAlchemy sets a codec), or as text."""
    return json.loads(value) if isinstance(value, str) else value


def _rows(table: Table, values: Any) -> list[dict[str, Any]]:
    return [from_json(table, row) for row in values]


async def open_reads(raw: asyncpg.Connection, store_id: int, reads: Reads) -> Opened:
    """Take the store's lock; then the store row and what `reads` names. One round trip
    (two when `reads` names more than one idempotency key)."""
    operation, key = reads.idempotency or ("", "")
    found = await raw.fetchval(
        OPEN,
        store_id,
        operation,
        key,
        list(reads.skus),
        list(reads.product_ids),
        list(reads.order_ids),
    )
    if found is None:
        return Opened(store=None)
    row = _decoded(found)
    idempotency = row["idempotency"]
    opened = Opened(
        store=from_json(t.stores, row["store"]),
        idempotency=from_json(t.idempotency_keys, idempotency) if idempotency is not None else None,
        products=_rows(t.products, row["products"]),
        orders=_rows(t.orders, row["orders"]),
        lines=_rows(t.order_lines, row["lines"]),
    )
    if reads.more_keys:
        opened.more_keys = dict.fromkeys(reads.more_keys)
        records = await raw.fetchval(
            MORE_KEYS,
            store_id,
            [operation for operation, _ in reads.more_keys],
            [key for _, key in reads.more_keys],
        )
        for record in _rows(t.idempotency_keys, _decoded(records)):
            opened.more_keys[(record["operation"], record["key"])] = record
    return opened


def _document(store_id: int, writes: Writes) -> dict[str, Any]:
    doc: dict[str, Any] = {"store_id": store_id}
    for name, table, rows in (
        ("new_products", t.products, writes.new_products),
        ("products", t.products, writes.products),
        ("new_orders", t.orders, writes.new_orders),
        ("new_lines", t.order_lines, writes.new_lines),
        ("orders", t.orders, writes.orders),
        ("lines", t.order_lines, writes.lines),
        ("new_receipts", t.incoming_receipts, writes.new_receipts),
        ("receipts", t.incoming_receipts, writes.receipts),
        ("events", t.events, writes.events),
        ("remember", t.idempotency_keys, writes.remember),
        # migration 0007 (og_apply_outcomes; og_apply skips these keys; og_write calls
        # it when one of facts, outcome_orders, outcome_lines, fact_days is here)
        ("outcome_orders", t.orders, writes.outcome_orders),
        ("outcome_lines", t.order_lines, writes.outcome_lines),
        ("facts", t.backorder_facts, writes.facts),
        ("fact_days", t.backorder_days, writes.fact_days),
        ("order_closings", t.backorder_facts, writes.order_closings),
        ("line_closings", t.backorder_facts, writes.line_closings),
        ("fact_ages", t.backorder_ages, writes.fact_ages),
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
    if writes.alarm_moved:  # migration 0009 (og_apply_alarm, called by og_write)
        doc["alarm"] = {"due_at": writes.alarm.isoformat() if writes.alarm else None}
    return doc


def ascii_json(doc: dict[str, Any]) -> str:
    """The document as compact ASCII JSON: orjson's (several times faster than the
    standard library's) when it is ASCII, which it is but for text a client gave with
    characters outside ASCII; the standard library's, which escapes them, otherwise."""
    try:
        written: bytes | None = orjson.dumps(doc)
    except orjson.JSONEncodeError:  # (the standard library says what is wrong)
        written = None
    if written is not None and written.isascii():
        return written.decode("ascii")
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=True)


def _quoted(text: str) -> str:
    """`text` as a dollar-quoted literal, with a tag it does not contain."""
    tag, n = "og", 0
    while f"${tag}$" in text:
        n += 1
        tag = f"og{n}"
    return f"${tag}${text}${tag}$"


async def commit(raw: asyncpg.Connection, store_id: int, writes: Writes) -> None:
    """Every write of the unit, then COMMIT: one round trip (a simple query may hold two
    statements, and takes no parameters: the document travels as a literal; it is
    ASCII JSON, and the dollar quote's tag is one it does not contain). `og_write`
    (migration 0014) hands the document to `og_apply`, then to `og_apply_receipts`,
    `og_apply_outcomes` and `og_apply_alarm` when it has rows for them."""
    doc = _document(store_id, writes)
    if len(doc) == 1:
        await raw.execute("COMMIT")
        return
    await raw.execute(f"SELECT og_write({_quoted(ascii_json(doc))}::jsonb); COMMIT")

"""A store's unit of work on SQLite (a file) in two hand-overs to the writer thread.

SQLite works in the process, so a statement costs no round trip; what costs is handing
each driver call to the driver's thread and back (aiosqlite: three or four per
statement). Here the unit takes the shape of the PostgreSQL one (storage/pg_unit.py),
with the writer thread of `Database.writer_thread` (storage/db.py `SqliteWriter`) where
PostgreSQL has the server:

1. `open`: `BEGIN IMMEDIATE` (SQLite's write lock, the store's lock; a wait for another
   process's writer happens on that thread), the store row and what the unit will read
   first (`Reads`: products, orders and their lines, the idempotency record);
2. the domain decides on the event loop, in memory; a read it needs beyond the first
   ones is one hand-over (`ThreadStatements`);
3. `commit`: every write the domain decided (`write_changes`, statement by statement,
   updates as executemany) and `COMMIT`.

The process's writer lock is held from before the first hand-over to after the last, so
units of one process never wait for each other inside SQLite. Anything that goes wrong,
a cancellation included, rolls back on the writer thread; its calls run in the order they
were made, so the rollback runs after whatever call was cut short and before the next
unit's first.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from functools import cache, partial
from typing import TYPE_CHECKING, Any, TypeVar, cast

from sqlalchemy import (
    Connection,
    Executable,
    Result,
    Table,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
)
from sqlalchemy import update as sql_update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from ordergraph.storage import history
from ordergraph.storage import tables as t
from ordergraph.storage.db import Database, SqliteWriter
from ordergraph.storage.pg_unit import Opened

if TYPE_CHECKING:  # the unit of work uses this module
    from ordergraph.domain.commands import Reads
    from ordergraph.storage.uow import Statements, Writes

T = TypeVar("T")
log = logging.getLogger("ordergraph.storage")


class ThreadStatements:
    """The session's connection on SQLite: the writer thread's, in the unit's transaction.

    From the event loop a statement is one hand-over, its rows fetched there; on the
    writer thread itself (the writes, `commit`) it runs at once.
    """

    def __init__(self, writer: SqliteWriter, conn: Connection) -> None:
        self._writer = writer
        self._conn = conn

    async def execute(self, statement: Executable, parameters: Any = None) -> Result[Any]:
        if self._writer.in_thread():
            return self._conn.execute(statement, parameters)
        return await self._writer.call(partial(_fetched, self._conn, statement, parameters))

    async def together(self, work: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """`work()`, whose awaits are statements through this connection only, in one
        hand-over (run to its end on the writer thread)."""
        if self._writer.in_thread():
            return await work()
        return await self._writer.call(lambda: run_inline(work()))


def _fetched(conn: Connection, statement: Executable, parameters: Any) -> Result[Any]:
    result = conn.execute(statement, parameters)
    return result.freeze()() if result.returns_rows else result


def run_inline(step: Coroutine[Any, Any, T]) -> T:
    """Run to its end, here, a coroutine whose awaits all complete at once (statements on
    this thread's connection through `ThreadStatements`)."""
    try:
        step.send(None)
    except StopIteration as done:
        value: T = done.value
        return value
    step.close()
    raise RuntimeError("the writes waited for something other than the writer's connection")


def _dicts(result: Result[Any]) -> list[dict[str, Any]]:
    return [dict(row) for row in result.mappings()]


# The statements, made once: building a statement and its cache key costs more than
# SQLite's work on a small one.
_STORE = select(t.stores).where(t.stores.c.id == bindparam("store"))
_ORDERS = select(t.orders).where(
    t.orders.c.store_id == bindparam("store"),
    t.orders.c.id.in_(bindparam("orders", expanding=True)),
)
_LINES = select(t.order_lines).where(
    t.order_lines.c.store_id == bindparam("store"),
    t.order_lines.c.order_id.in_(bindparam("orders", expanding=True)),
)
_IDEMPOTENCY = select(t.idempotency_keys).where(
    t.idempotency_keys.c.store_id == bindparam("store"),
    t.idempotency_keys.c.operation == bindparam("operation"),
    t.idempotency_keys.c.key == bindparam("key"),
)
_FORGET = delete(t.idempotency_keys).where(
    t.idempotency_keys.c.store_id == bindparam("store"),
    t.idempotency_keys.c.created_at < bindparam("before"),
)
_days = sqlite_insert(t.backorder_days)
_ADD_DAYS = _days.on_conflict_do_update(
    index_elements=[c.name for c in t.backorder_days.primary_key.columns],
    set_={
        "units": t.backorder_days.c.units + _days.excluded.units,
        "value": t.backorder_days.c.value + _days.excluded.value,
        "episodes": t.backorder_days.c.episodes + _days.excluded.episodes,
        "short": t.backorder_days.c.short + _days.excluded.short,
        "due": t.backorder_days.c.due + _days.excluded.due,
        "early": t.backorder_days.c.early + _days.excluded.early,
        # max() of SQLite is NULL when either is: the larger of those there are
        "max_wait": func.max(
            func.coalesce(t.backorder_days.c.max_wait, _days.excluded.max_wait),
            func.coalesce(_days.excluded.max_wait, t.backorder_days.c.max_wait),
        ),
    },
)
_ages = sqlite_insert(t.backorder_ages)
_ADD_AGES = _ages.on_conflict_do_update(
    index_elements=[c.name for c in t.backorder_ages.primary_key.columns],
    set_={
        name: t.backorder_ages.c[name] + _ages.excluded[name]
        for name in ("units", "value", "episodes")
    },
)
_bf = t.backorder_facts
# (The parameters are named apart from the columns: SQLAlchemy keeps a column's own name
# for its SET value.)
_CLOSE_ORDER_EPISODE = (
    sql_update(_bf)
    .where(
        _bf.c.store_id == bindparam("b_store"),
        _bf.c.order_id == bindparam("b_order"),
        _bf.c.kind == "START",
        _bf.c.order_episode == bindparam("b_episode", type_=t.UtcDateTime),
    )
    .values(closed_at=bindparam("b_closed", type_=t.UtcDateTime))
)
_CLOSE_LINE_EPISODE = (
    sql_update(_bf)
    .where(
        _bf.c.store_id == bindparam("b_store"),
        _bf.c.order_id == bindparam("b_order"),
        _bf.c.line_id == bindparam("b_line"),
        _bf.c.kind == "START",
        _bf.c.line_episode == bindparam("b_episode", type_=t.UtcDateTime),
    )
    .values(line_closed_at=bindparam("b_closed", type_=t.UtcDateTime))
)


def _closing_params(rows: list[dict[str, Any]], episode: str, closed: str) -> list[dict[str, Any]]:
    return [
        {
            "b_store": row["store_id"],
            "b_order": row["order_id"],
            "b_line": row.get("line_id"),
            "b_episode": row[episode],
            "b_closed": row[closed],
        }
        for row in rows
    ]


_INSERT = {
    table.name: insert(table)
    for table in (
        t.products,
        t.orders,
        t.order_lines,
        t.incoming_receipts,
        t.events,
        t.idempotency_keys,
        t.backorder_facts,
    )
}


@cache
def _products(skus: bool, ids: bool, orders: bool) -> Executable:
    """As og_open: the products named, by sku or id, and those of the orders' lines."""
    p, ol = t.products, t.order_lines
    wanted = []
    if skus:
        wanted.append(p.c.sku.in_(bindparam("skus", expanding=True)))
    if ids:
        wanted.append(p.c.id.in_(bindparam("ids", expanding=True)))
    if orders:
        of_lines = select(ol.c.product_id).where(
            ol.c.store_id == bindparam("store"),
            ol.c.order_id.in_(bindparam("orders", expanding=True)),
        )
        wanted.append(p.c.id.in_(of_lines))
    return select(p).where(p.c.store_id == bindparam("store"), or_(*wanted))


def _read(conn: Connection, store_id: int, reads: Reads) -> Opened:
    """The store row and what `reads` names, in the transaction just begun."""
    store = conn.execute(_STORE, {"store": store_id}).mappings().first()
    if store is None:
        return Opened(store=None)
    opened = Opened(store=dict(store))
    if reads.skus or reads.product_ids or reads.order_ids:
        query = _products(bool(reads.skus), bool(reads.product_ids), bool(reads.order_ids))
        params = {
            "store": store_id,
            "skus": list(reads.skus),
            "ids": list(reads.product_ids),
            "orders": list(reads.order_ids),
        }
        opened.products = _dicts(conn.execute(query, params))
    if reads.order_ids:
        params = {"store": store_id, "orders": list(reads.order_ids)}
        opened.orders = _dicts(conn.execute(_ORDERS, params))
        opened.lines = _dicts(conn.execute(_LINES, params))
    if reads.idempotency is not None:
        opened.idempotency = _record(conn, store_id, reads.idempotency)
    for keyed in reads.more_keys:
        opened.more_keys[keyed] = _record(conn, store_id, keyed)
    return opened


def _record(conn: Connection, store_id: int, keyed: tuple[str, str]) -> dict[str, Any] | None:
    """The idempotency record of (operation, key), if any."""
    operation, key = keyed
    params = {"store": store_id, "operation": operation, "key": key}
    found = conn.execute(_IDEMPOTENCY, params).mappings().first()
    return dict(found) if found is not None else None


class SqliteUnit:
    """One unit of work's transaction on the writer thread's connection."""

    def __init__(self, writer: SqliteWriter) -> None:
        self.writer = writer
        self._conn: Connection | None = None  # set and cleared on the writer thread
        self._ended = False  # the last call (commit) came back: nothing left to roll back

    @property
    def statements(self) -> ThreadStatements:
        assert self._conn is not None, "open the unit first"
        return ThreadStatements(self.writer, self._conn)

    async def open(self, store_id: int, reads: Reads) -> Opened:
        """BEGIN IMMEDIATE, then the store row and the first reads: one hand-over."""
        return await self.writer.call(partial(self._open, store_id, reads))

    async def commit(self, store_id: int, writes: Writes) -> None:
        """Every write, then COMMIT: one hand-over."""
        await self.writer.call(partial(self._commit, store_id, writes))
        self._ended = True

    def end(self) -> None:
        """Roll back whatever is still open (nothing after a commit that came back), on the
        writer thread once the calls made so far are done. Nobody waits: a cancelled unit
        ends at once, even while its opening still waits for another process's writer,
        and the next unit's calls come after the rollback."""
        if not self._ended:
            self._ended = True
            self.writer.submit(self._rollback)

    # -- on the writer thread ---------------------------------------------------
    def _open(self, store_id: int, reads: Reads) -> Opened:
        self._conn = self.writer.connect()
        self._conn.begin()  # BEGIN IMMEDIATE (storage/db.py): waits here for the write lock
        return _read(self._conn, store_id, reads)

    def _commit(self, store_id: int, writes: Writes) -> None:
        conn = self._conn
        assert conn is not None
        run_inline(write_changes(ThreadStatements(self.writer, conn), store_id, writes))
        conn.commit()
        self._conn = None
        conn.close()

    def _rollback(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.rollback()
        except Exception:  # the connection is closed below: the pool drops a broken one
            log.exception("rolling back a unit of work on SQLite failed")
        finally:
            conn.close()


@asynccontextmanager
async def transaction(db: Database) -> AsyncIterator[SqliteUnit]:
    """The process's writer lock and a unit on the writer thread; rolled back unless the
    block commits it."""
    async with db.writer_thread() as writer:
        unit = SqliteUnit(writer)
        try:
            yield unit
        finally:
            unit.end()


@cache
def _update(table: Table, columns: tuple[str, ...]) -> Executable:
    """An UPDATE of `columns` by (store_id, id), for executemany."""
    key = [table.c.id == bindparam("k_id")]
    if "store_id" in table.c:
        key.append(table.c.store_id == bindparam("k_store"))
    return sql_update(table).where(*key).values({name: bindparam(name) for name in columns})


def _update_many(
    table: Table, rows: list[dict[str, Any]]
) -> tuple[Executable, list[dict[str, Any]]]:
    """An executemany UPDATE by (store_id, id) of the other columns the rows carry (the
    same in every row: `Writes` keeps the key and the mutable columns), with its rows."""
    columns = tuple(name for name in rows[0] if name not in ("store_id", "id"))
    keyed = [
        {**{name: row[name] for name in columns}, "k_store": row["store_id"], "k_id": row["id"]}
        for row in rows
    ]
    return _update(table, columns), keyed


async def write_changes(conn: Statements, store_id: int, writes: Writes) -> None:
    """Write a unit's decided changes through `conn`, statement by statement (what
    `og_apply` does on PostgreSQL, in the same order)."""
    await _write_rows(conn, writes)
    if writes.tally is not None:
        # history.write only executes statements: the thread's connection serves as well.
        as_async = cast(AsyncConnection, conn)
        await history.write(as_async, store_id, writes.seq, writes.at, writes.tally)
    if writes.forget_before is not None:
        await conn.execute(_FORGET, {"store": store_id, "before": writes.forget_before})
    if writes.remember:
        await conn.execute(_INSERT["idempotency_keys"], writes.remember)
    if writes.counters is not None:
        counters = tuple(writes.counters)
        await conn.execute(_update(t.stores, counters), {**writes.counters, "k_id": store_id})
    if writes.alarm_moved:
        await _write_alarm(conn, store_id, writes.alarm)


_SET_ALARM = _update(t.stores, ("overdue_alarm_at",))
_alarms = sqlite_insert(t.overdue_alarms)
_ARM = _alarms.on_conflict_do_update(
    index_elements=["store_id"], set_={"due_at": _alarms.excluded.due_at}
)
_DISARM = delete(t.overdue_alarms).where(t.overdue_alarms.c.store_id == bindparam("store_id"))


async def _write_alarm(conn: Statements, store_id: int, due_at: dt.datetime | None) -> None:
    """What og_apply_alarm does on PostgreSQL (migration 0009): the store's alarm column
    and its row in `overdue_alarms`, together."""
    await conn.execute(_SET_ALARM, {"overdue_alarm_at": due_at, "k_id": store_id})
    if due_at is None:
        await conn.execute(_DISARM, {"store_id": store_id})
    else:
        await conn.execute(_ARM, {"store_id": store_id, "due_at": due_at})


async def _write_rows(conn: Statements, writes: Writes) -> None:
    """Products, orders, lines and events: inserted, then updated where they changed."""
    if writes.new_products:
        await conn.execute(_INSERT["products"], writes.new_products)
    if writes.products:
        await conn.execute(*_update_many(t.products, writes.products))
    if writes.new_orders:
        await conn.execute(_INSERT["orders"], writes.new_orders)
        await conn.execute(_INSERT["order_lines"], writes.new_lines)
    if writes.orders:
        await conn.execute(*_update_many(t.orders, writes.orders))
    if writes.lines:
        await conn.execute(*_update_many(t.order_lines, writes.lines))
    if writes.new_receipts:
        await conn.execute(_INSERT["incoming_receipts"], writes.new_receipts)
    if writes.receipts:
        await conn.execute(*_update_many(t.incoming_receipts, writes.receipts))
    if writes.events:
        await conn.execute(_INSERT["events"], writes.events)
    await _write_outcomes(conn, writes)


async def _write_outcomes(conn: Statements, writes: Writes) -> None:
    """What og_apply_outcomes does on PostgreSQL (migration 0007)."""
    if writes.outcome_orders:
        await conn.execute(*_update_many(t.orders, writes.outcome_orders))
    if writes.outcome_lines:
        await conn.execute(*_update_many(t.order_lines, writes.outcome_lines))
    if writes.facts:
        await conn.execute(_INSERT["backorder_facts"], writes.facts)
    if writes.fact_days:
        await conn.execute(_ADD_DAYS, writes.fact_days)
    if writes.fact_ages:
        await conn.execute(_ADD_AGES, writes.fact_ages)
    if writes.order_closings:
        params = _closing_params(writes.order_closings, "order_episode", "closed_at")
        await conn.execute(_CLOSE_ORDER_EPISODE, params)
    if writes.line_closings:
        params = _closing_params(writes.line_closings, "line_episode", "line_closed_at")
        await conn.execute(_CLOSE_LINE_EPISODE, params)

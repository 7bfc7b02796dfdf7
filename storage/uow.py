"""The unit of work: one store, locked, in one transaction, with its events.

Every change to a store runs under that store's lock (a row lock on PostgreSQL,
the process-wide writer lock on SQLite). Under it the session takes the
store's counters: row ids, order numbers and event positions. Because the lock
is held until commit, a store's events commit in the order of their positions,
so a reader that tails `seq > last` per store can never skip one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import Table, bindparam, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ordergraph.domain.errors import DomainError, ErrorCode
from ordergraph.domain.events import Event, OrderEvent
from ordergraph.domain.model import Order, OrderLine, Product, Store
from ordergraph.domain.tallies import NOTHING, Contribution, contribution
from ordergraph.storage import history
from ordergraph.storage import tables as t
from ordergraph.storage.db import Database
from ordergraph.storage.mapping import (
    line_from,
    line_values,
    order_from,
    order_values,
    product_from,
    product_values,
    store_from,
)
from ordergraph.storage.notify import NOTIFY_CHANNEL

Clock = Callable[[], dt.datetime]


def _update_many(table: Table, columns: list[str]) -> Any:
    return (
        update(table)
        .where(table.c.store_id == bindparam("k_store"), table.c.id == bindparam("k_id"))
        .values({name: bindparam(name) for name in columns})
    )


def _keyed(values: dict[str, Any], columns: list[str]) -> dict[str, Any]:
    row = {name: values[name] for name in columns}
    row["k_store"] = values["store_id"]
    row["k_id"] = values["id"]
    return row


_PRODUCT_MUTABLE = [
    "title",
    "price",
    "backorder_policy",
    "backorder_limit",
    "restock_date",
    "on_hand",
    "allocated",
    "backordered",
]
_ORDER_MUTABLE = ["status", "stock_status", "in_backlog", "is_backordered", "overdue_notified"]
_LINE_MUTABLE = ["allocated", "backordered", "shipped", "cancelled"]


class SqlStoreSession:
    """The StoreSession port over one SQLAlchemy connection."""

    def __init__(
        self, conn: AsyncConnection, store: Store, counters: dict[str, int], now: dt.datetime
    ) -> None:
        self.conn = conn
        self.store = store
        self.now = now
        self._next_id = counters["next_id"]
        self._next_number = counters["next_order_number"]
        self._last_seq = counters["last_event_seq"]
        self._counters_before = dict(counters)
        self._products: dict[int, Product] = {}
        self._products_before: dict[int, dict[str, Any]] = {}
        self._orders: dict[int, Order] = {}
        self._orders_before: dict[int, dict[str, Any]] = {}
        self._lines_before: dict[int, dict[str, Any]] = {}
        self._contribution_before: dict[int, Contribution] = {}
        self._new_products: list[Product] = []
        self._new_orders: list[Order] = []
        self.events: list[tuple[int, Event]] = []

    # -- counters -------------------------------------------------------------
    def next_id(self) -> int:
        value = self._next_id
        self._next_id += 1
        return value

    def next_order_number(self) -> int:
        value = self._next_number
        self._next_number += 1
        return value

    def emit(self, event: Event) -> None:
        self._last_seq += 1
        self.events.append((self._last_seq, event))

    # -- loading --------------------------------------------------------------
    def _track_products(self, rows: Iterable[Any]) -> None:
        for row in rows:
            if row["id"] not in self._products:
                product = product_from(row)
                self._products[product.id] = product
                self._products_before[product.id] = product_values(product)

    async def products_by_sku(self, skus: Iterable[str]) -> dict[str, Product]:
        wanted = set(skus)
        known = {p.sku: p for p in self._products.values() if p.sku in wanted}
        missing = wanted - known.keys()
        if missing:
            rows = await self.conn.execute(
                select(t.products).where(
                    t.products.c.store_id == self.store.id, t.products.c.sku.in_(missing)
                )
            )
            self._track_products(rows.mappings())
            known = {p.sku: p for p in self._products.values() if p.sku in wanted}
        return known

    async def products_by_id(self, ids: Iterable[int]) -> dict[int, Product]:
        wanted = set(ids)
        missing = wanted - self._products.keys()
        if missing:
            rows = await self.conn.execute(
                select(t.products).where(
                    t.products.c.store_id == self.store.id, t.products.c.id.in_(missing)
                )
            )
            self._track_products(rows.mappings())
        return {i: self._products[i] for i in wanted if i in self._products}

    async def _load_orders(self, ids: Iterable[int]) -> None:
        missing = set(ids) - self._orders.keys()
        if not missing:
            return
        order_rows = (
            await self.conn.execute(
                select(t.orders).where(
                    t.orders.c.store_id == self.store.id, t.orders.c.id.in_(missing)
                )
            )
        ).mappings()
        line_rows = (
            await self.conn.execute(
                select(t.order_lines).where(
                    t.order_lines.c.store_id == self.store.id,
                    t.order_lines.c.order_id.in_(missing),
                )
            )
        ).mappings()
        lines: dict[int, list[OrderLine]] = {}
        for row in line_rows:
            line = line_from(row)
            lines.setdefault(line.order_id, []).append(line)
            self._lines_before[line.id] = line_values(line)
        for row in order_rows:
            order = order_from(row, lines.get(row["id"], []))
            self._orders[order.id] = order
            self._orders_before[order.id] = order_values(order)
            self._contribution_before[order.id] = contribution(order)

    async def order(self, order_id: int) -> Order | None:
        await self._load_orders([order_id])
        return self._orders.get(order_id)

    async def _lines_of(self, query: Any) -> list[OrderLine]:
        refs = [(row.order_id, row.id) for row in await self.conn.execute(query)]
        await self._load_orders(order_id for order_id, _ in refs)
        found = []
        for order_id, line_id in refs:
            line = self._orders[order_id].line(line_id)
            assert line is not None
            found.append(line)
        return found

    def _loaded_lines(self, product: Product) -> list[OrderLine]:
        return [
            line
            for order in self._orders.values()
            for line in order.lines
            if line.product_id == product.id
        ]

    async def _current_lines(
        self,
        product: Product,
        query: Any,
        limit: int,
        keep: Callable[[OrderLine], bool],
        newest_first: bool,
    ) -> list[OrderLine]:
        """The first `limit` lines of `query` as they stand in this session.

        The database does not hold this session's unsaved changes yet: a line
        loaded here may have stopped (or started) qualifying, e.g. the lines of
        an order being cancelled. So fetch as many extra rows as there are
        loaded lines of the product, and judge every line by its state in memory.
        """
        stale = len(self._loaded_lines(product))
        await self._lines_of(query.limit(limit + stale))
        current = [line for line in self._loaded_lines(product) if keep(line)]
        current.sort(key=lambda line: line.queue_key, reverse=newest_first)
        return current[:limit]

    async def backorder_queue(self, product: Product, limit: int) -> list[OrderLine]:
        ol = t.order_lines
        return await self._current_lines(
            product,
            select(ol.c.order_id, ol.c.id)
            .where(ol.c.store_id == self.store.id, ol.c.product_id == product.id)
            .where(ol.c.backordered > 0)
            .order_by(ol.c.placed_at, ol.c.order_number, ol.c.id),
            limit,
            lambda line: line.backordered > 0,
            newest_first=False,
        )

    async def newest_allocated_lines(self, product: Product, limit: int) -> list[OrderLine]:
        ol = t.order_lines
        return await self._current_lines(
            product,
            select(ol.c.order_id, ol.c.id)
            .where(ol.c.store_id == self.store.id, ol.c.product_id == product.id)
            .where(ol.c.allocated > 0)
            .order_by(ol.c.placed_at.desc(), ol.c.order_number.desc(), ol.c.id.desc()),
            limit,
            lambda line: line.allocated > 0,
            newest_first=True,
        )

    async def due_orders(self) -> list[Order]:
        o = t.orders
        ids = (
            await self.conn.execute(
                select(o.c.id)
                .where(o.c.store_id == self.store.id, o.c.overdue_at <= self.now)
                .where(o.c.in_backlog.is_(True), o.c.overdue_notified.is_(False))
                .order_by(o.c.overdue_at, o.c.number)
            )
        ).scalars()
        wanted = list(ids)
        await self._load_orders(wanted)
        return [self._orders[i] for i in wanted]

    def order_of(self, line: OrderLine) -> Order:
        return self._orders[line.order_id]

    def add_product(self, product: Product) -> None:
        self._products[product.id] = product
        self._new_products.append(product)

    def add_order(self, order: Order) -> None:
        self._orders[order.id] = order
        self._new_orders.append(order)

    # -- saving ---------------------------------------------------------------
    async def flush(self) -> None:
        await self._flush_products()
        await self._flush_orders()
        if self.events:
            await self._flush_events()
        await self._flush_counters()

    async def _flush_products(self) -> None:
        """Insert the new products, then update those whose values changed."""
        conn = self.conn
        new_products = {p.id for p in self._new_products}
        if self._new_products:
            await conn.execute(
                insert(t.products),
                [{**product_values(p), "created_at": self.now} for p in self._new_products],
            )
        changed = [
            _keyed(values, _PRODUCT_MUTABLE)
            for pid, product in self._products.items()
            if pid not in new_products
            and (values := product_values(product)) != self._products_before[pid]
        ]
        if changed:
            await conn.execute(_update_many(t.products, _PRODUCT_MUTABLE), changed)

    async def _flush_orders(self) -> None:
        """Insert the new orders and their lines, then update the orders and lines that changed."""
        conn = self.conn
        if self._new_orders:
            await conn.execute(insert(t.orders), [order_values(o) for o in self._new_orders])
            await conn.execute(
                insert(t.order_lines),
                [line_values(line) for o in self._new_orders for line in o.lines],
            )
        changed_orders, changed_lines = self._changed_orders_and_lines()
        if changed_orders:
            await conn.execute(_update_many(t.orders, _ORDER_MUTABLE), changed_orders)
        if changed_lines:
            await conn.execute(_update_many(t.order_lines, _LINE_MUTABLE), changed_lines)

    def _changed_orders_and_lines(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The update rows of the loaded (not new) orders and lines whose values changed."""
        new_orders = {o.id for o in self._new_orders}
        changed_orders = []
        changed_lines = []
        for oid, order in self._orders.items():
            if oid in new_orders:
                continue
            values = order_values(order)
            if values != self._orders_before[oid]:
                changed_orders.append(_keyed(values, _ORDER_MUTABLE))
            for line in order.lines:
                lv = line_values(line)
                if lv != self._lines_before[line.id]:
                    changed_lines.append(_keyed(lv, _LINE_MUTABLE))
        return changed_orders, changed_lines

    async def _flush_events(self) -> None:
        """Insert the emitted events and record the orders' history contributions."""
        conn = self.conn
        await conn.execute(insert(t.events), [self._event_row(s, e) for s, e in self.events])
        await history.record(
            conn,
            self.store.id,
            self._last_seq,
            self.now,
            [
                (order, self._contribution_before.get(oid, NOTHING))
                for oid, order in self._orders.items()
            ],
        )

    async def _flush_counters(self) -> None:
        """Wake other processes' tails if events were emitted; save the store's counters."""
        conn = self.conn
        counters: dict[str, Any] = {
            "next_id": self._next_id,
            "next_order_number": self._next_number,
            "last_event_seq": self._last_seq,
        }
        if self.events:
            counters["last_event_at"] = self.now
            if conn.dialect.name == "postgresql":
                # A wake-up for tails in other processes, delivered only if this commits.
                await conn.execute(
                    text("SELECT pg_notify(:channel, :payload)"),
                    {"channel": NOTIFY_CHANNEL, "payload": f"{self.store.id}:{self._last_seq}"},
                )
        if any(self._counters_before.get(k) != v for k, v in counters.items()):
            await conn.execute(
                update(t.stores).where(t.stores.c.id == self.store.id).values(counters)
            )

    def _event_row(self, seq: int, event: Event) -> dict[str, Any]:
        is_order = isinstance(event, OrderEvent)
        return {
            "store_id": self.store.id,
            "seq": seq,
            "stream": "order" if is_order else "inventory",
            "type": event.type.value,
            "occurred_at": self.now,
            "order_id": event.order_id if isinstance(event, OrderEvent) else None,
            "product_id": None if isinstance(event, OrderEvent) else event.product_id,
            "data": event.data,
        }


async def lock_store(conn: AsyncConnection, store_id: int, *, postgres: bool) -> Any:
    query = select(t.stores).where(t.stores.c.id == store_id)
    if postgres:
        query = query.with_for_update()
    return (await conn.execute(query)).mappings().first()


@asynccontextmanager
async def store_session(
    db: Database, store_id: int, clock: Clock
) -> AsyncIterator[SqlStoreSession]:
    """Open a locked session on a store; saves and commits when the block ends cleanly."""
    async with db.write() as conn:
        row = await lock_store(conn, store_id, postgres=not db.is_sqlite)
        if row is None:
            raise DomainError.one(ErrorCode.NOT_FOUND, "store not found", ["storeId"])
        counters = {
            "next_id": row["next_id"],
            "next_order_number": row["next_order_number"],
            "last_event_seq": row["last_event_seq"],
        }
        now = clock()
        if row["last_event_at"] is not None and now < row["last_event_at"]:
            now = row["last_event_at"]  # never before the store's previous event
        session = SqlStoreSession(conn, store_from(row), counters, now)
        yield session
        await session.flush()
    if session.events:
        db.committed(store_id)

"""The unit of work: one store, locked, in one transaction, with its events.

Every change to a store runs under that store's lock (a row lock on PostgreSQL,
the process-wide writer lock on SQLite). Under it the session takes the
store's counters: row ids, order numbers and event positions. Because the lock
is held until commit, a store's events commit in the order of their positions,
so a reader that tails `seq > last` per store can never skip one.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol, TypeVar

from sqlalchemy import Executable, Result, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ordergraph.domain.commands import NO_READS, Reads
from ordergraph.domain.errors import DomainError, ErrorCode
from ordergraph.domain.events import Event, OrderEvent, OrderEventType
from ordergraph.domain.expected import FillInputs
from ordergraph.domain.model import CancelReason, Order, OrderLine, Product, Receipt, Store
from ordergraph.domain.outcomes import (
    Fact,
    FactKind,
    LineBefore,
    local_day,
    order_facts,
    wait_bucket,
)
from ordergraph.domain.ports import Loaded
from ordergraph.domain.tallies import NOTHING, Contribution, contribution
from ordergraph.storage import history, pg_unit, sqlite_unit
from ordergraph.storage import tables as t
from ordergraph.storage.db import Database
from ordergraph.storage.mapping import (
    line_from,
    line_values,
    order_from,
    order_values,
    product_from,
    product_values,
    receipt_from,
    receipt_values,
    store_from,
)
from ordergraph.storage.pg_unit import Opened
from ordergraph.storage.queries import orders as order_reads
from ordergraph.storage.queries import products as product_reads
from ordergraph.storage.queries.scoping import Scoped

Clock = Callable[[], dt.datetime]
T = TypeVar("T")


class Statements(Protocol):
    """The session's connection, for its reads: SQLAlchemy's AsyncConnection (PostgreSQL,
    SQLite in memory), or the SQLite writer thread's (storage/sqlite_unit.py)."""

    async def execute(self, statement: Executable, parameters: Any = None) -> Result[Any]: ...


def _only(values: dict[str, Any], columns: list[str]) -> dict[str, Any]:
    """The key and the mutable columns of a row."""
    row = {name: values[name] for name in columns}
    row["store_id"] = values["store_id"]
    row["id"] = values["id"]
    return row


@dataclass
class Writes:
    """A store change, decided: the rows to insert and update, in the order they are written."""

    new_products: list[dict[str, Any]]
    products: list[dict[str, Any]]
    new_orders: list[dict[str, Any]]
    new_lines: list[dict[str, Any]]
    orders: list[dict[str, Any]]
    lines: list[dict[str, Any]]
    new_receipts: list[dict[str, Any]]
    receipts: list[dict[str, Any]]
    events: list[dict[str, Any]]
    tally: history.TallyChange | None
    remember: list[dict[str, Any]]
    forget_before: dt.datetime | None
    counters: dict[str, Any] | None
    notify: str | None
    seq: int  # the store's last event position after the change
    at: dt.datetime  # the change's instant
    # What waiting costs (domain/outcomes.py): the change's facts, and the orders and
    # lines whose `backordered_since` / `waiting_since` moved.
    facts: list[dict[str, Any]] = field(default_factory=list)
    outcome_orders: list[dict[str, Any]] = field(default_factory=list)
    outcome_lines: list[dict[str, Any]] = field(default_factory=list)
    fact_days: list[dict[str, Any]] = field(default_factory=list)  # increments of the sums
    # Episodes the change closed: their opening STARTs get closed_at / line_closed_at.
    order_closings: list[dict[str, Any]] = field(default_factory=list)
    line_closings: list[dict[str, Any]] = field(default_factory=list)
    fact_ages: list[dict[str, Any]] = field(default_factory=list)  # increments of the sums
    # The store's overdue alarm (tables.overdue_alarms), when `alarm_moved`: its new
    # instant, or None when nothing is due any more.
    alarm_moved: bool = False
    alarm: dt.datetime | None = None


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
_RECEIPT_MUTABLE = ["quantity", "received", "expected_at", "reference", "status"]

# The unit's reads, built once (SQLAlchemy builds a statement written as an expression
# anew at every call): the store and the values are parameters, id lists expanded at
# execution. Each is one store's.
_STORE: Any = bindparam("store_id")
_PRODUCTS_BY_SKU = select(t.products).where(
    t.products.c.store_id == _STORE, t.products.c.sku.in_(bindparam("skus", expanding=True))
)


def _product_lines(held: Any) -> Any:
    """(order id, line id) of a product's lines holding units (`held` above 0)."""
    ol = t.order_lines
    return (
        select(ol.c.order_id, ol.c.id)
        .where(ol.c.store_id == _STORE, ol.c.product_id == bindparam("product_id"))
        .where(held > 0)
    )


_BACKORDER_QUEUE = (
    _product_lines(t.order_lines.c.backordered)
    .order_by(t.order_lines.c.placed_at, t.order_lines.c.order_number, t.order_lines.c.id)
    .limit(bindparam("limit"))
)
_NEWEST_ALLOCATED = (
    _product_lines(t.order_lines.c.allocated)
    .order_by(
        t.order_lines.c.placed_at.desc(),
        t.order_lines.c.order_number.desc(),
        t.order_lines.c.id.desc(),
    )
    .limit(bindparam("limit"))
)
_DUE = (
    select(t.orders.c.id)
    .where(t.orders.c.store_id == _STORE, t.orders.c.overdue_at <= bindparam("now"))
    .where(t.orders.c.in_backlog.is_(True), t.orders.c.overdue_notified.is_(False))
    .order_by(t.orders.c.overdue_at, t.orders.c.number)
)
_NEXT_DUE = (
    select(func.min(t.orders.c.overdue_at))
    .where(t.orders.c.store_id == _STORE, t.orders.c.overdue_at > bindparam("now"))
    .where(t.orders.c.in_backlog.is_(True), t.orders.c.overdue_notified.is_(False))
)
_STORE_ROW = select(t.stores).where(t.stores.c.id == bindparam("id"))
_STORE_ROW_LOCKED = _STORE_ROW.with_for_update(key_share=True)  # FOR NO KEY UPDATE
_RECEIPT = select(t.incoming_receipts).where(
    t.incoming_receipts.c.store_id == _STORE, t.incoming_receipts.c.id == bindparam("id")
)
_FILL_LINES = (
    select(
        t.order_lines.c.product_id,
        t.order_lines.c.id,
        t.order_lines.c.order_id,
        t.order_lines.c.backordered,
        t.order_lines.c.placed_at,
        t.order_lines.c.order_number,
    )
    .where(
        t.order_lines.c.store_id == _STORE,
        t.order_lines.c.product_id.in_(bindparam("ids", expanding=True)),
    )
    .where(t.order_lines.c.backordered > 0)
    .order_by(
        t.order_lines.c.product_id,
        t.order_lines.c.placed_at,
        t.order_lines.c.order_number,
        t.order_lines.c.id,
    )
)
_FILL_RECEIPTS = select(t.incoming_receipts).where(
    t.incoming_receipts.c.store_id == _STORE,
    t.incoming_receipts.c.product_id.in_(bindparam("ids", expanding=True)),
    t.incoming_receipts.c.status == "OPEN",
)


class SqlStoreSession:
    """The StoreSession port over one connection: SQLAlchemy's, or the SQLite writer's."""

    def __init__(
        self,
        conn: Statements,
        store: Store,
        counters: dict[str, int],
        now: dt.datetime,
        alarm: dt.datetime | None = None,
    ) -> None:
        self.conn = conn
        self.store = store
        self.now = now
        # The store's overdue alarm as read, and as this unit leaves it.
        self._alarm_before = alarm
        self._alarm = alarm
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
        self._receipts: dict[int, Receipt] = {}
        self._receipts_before: dict[int, dict[str, Any]] = {}
        self._new_receipts: list[Receipt] = []
        # Per product, as the database had them when first asked (this unit writes only
        # at commit): its waiting lines (line id, order id, backordered, placed at,
        # order number) in fill order, and its open receipts.
        self._fill_rows: dict[int, tuple[list[tuple[Any, ...]], list[Receipt]]] = {}
        self.events: list[tuple[int, Event]] = []
        # What waiting costs (settle_outcomes): the facts taken, with the event position
        # of the operation that made each, and the state they were last taken against.
        self._facts: list[tuple[int, Fact]] = []
        self._settled_events = 0
        self._settled_orders: dict[int, bool] = {}
        self._settled_lines: dict[int, LineBefore] = {}
        self._remembered: list[dict[str, Any]] = []
        self._forget_before: dt.datetime | None = None
        # An idempotency record read with the store (PostgreSQL): (operation, key) -> row.
        self.prefetched_keys: dict[tuple[str, str], dict[str, Any] | None] = {}

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
    def preload(
        self,
        products: Iterable[Mapping[Any, Any]],
        orders: Iterable[Mapping[Any, Any]],
        lines: Iterable[Mapping[Any, Any]],
    ) -> None:
        """Track rows read with the store's lock, as the loaders below would have."""
        self._track_products(products)
        self._track_orders(orders, lines)

    def _track_products(self, rows: Iterable[Mapping[Any, Any]]) -> None:
        for row in rows:
            if row["id"] not in self._products:
                product = product_from(row)
                self._products[product.id] = product
                self._products_before[product.id] = product_values(product)

    def _scoped(self, read: Scoped, ids: Iterable[int]) -> tuple[Executable, dict[str, Any]]:
        """The statement of one of the read side's (store, id) reads (built once) and its
        parameters, for these ids of this store."""
        found = read.statement((self.store.id, i) for i in ids)
        assert found is not None  # (ids are never empty here)
        return found

    async def products_by_sku(self, skus: Iterable[str]) -> dict[str, Product]:
        wanted = set(skus)
        known = {p.sku: p for p in self._products.values() if p.sku in wanted}
        missing = wanted - known.keys()
        if missing:
            rows = await self.conn.execute(
                _PRODUCTS_BY_SKU, {"store_id": self.store.id, "skus": sorted(missing)}
            )
            self._track_products(rows.mappings())
            known = {p.sku: p for p in self._products.values() if p.sku in wanted}
        return known

    async def products_by_id(self, ids: Iterable[int]) -> dict[int, Product]:
        wanted = set(ids)
        missing = wanted - self._products.keys()
        if missing:
            rows = await self.conn.execute(*self._scoped(product_reads.BY_ID, missing))
            self._track_products(rows.mappings())
        return {i: self._products[i] for i in wanted if i in self._products}

    async def reading(self, work: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """`work()`, whose awaits are reads through this session's connection only, as one
        batch: on SQLite's writer thread, one hand-over for all of them."""
        if isinstance(self.conn, sqlite_unit.ThreadStatements):
            return await self.conn.together(work)
        return await work()

    async def _load_orders(self, ids: Iterable[int]) -> None:
        missing = set(ids) - self._orders.keys()
        if missing:
            await self.reading(lambda: self._fetch_orders(missing))

    async def _fetch_orders(self, missing: set[int]) -> None:
        order_rows = await self.conn.execute(*self._scoped(order_reads.ORDERS_BY_ID, missing))
        line_rows = await self.conn.execute(*self._scoped(order_reads.LINES_BY_ORDER, missing))
        self._track_orders(order_rows.mappings(), line_rows.mappings())

    def _track_orders(
        self, order_rows: Iterable[Mapping[Any, Any]], line_rows: Iterable[Mapping[Any, Any]]
    ) -> None:
        lines: dict[int, list[OrderLine]] = {}
        for row in line_rows:
            line = line_from(row)
            lines.setdefault(line.order_id, []).append(line)
            self._lines_before[line.id] = line_values(line)
        for row in order_rows:
            if row["id"] in self._orders:
                continue
            order = order_from(row, lines.get(row["id"], []))
            self._orders[order.id] = order
            self._orders_before[order.id] = order_values(order)
            self._contribution_before[order.id] = contribution(order)

    async def order(self, order_id: int) -> Order | None:
        await self._load_orders([order_id])
        return self._orders.get(order_id)

    def held_orders(self) -> list[Order]:
        """The orders this session holds (read or placed in it), as they stand now."""
        return list(self._orders.values())

    async def _lines_of(self, query: Any, params: dict[str, Any]) -> list[OrderLine]:
        refs = await self.reading(lambda: self._refs_loaded(query, params))
        found = []
        for order_id, line_id in refs:
            line = self._orders[order_id].line(line_id)
            assert line is not None
            found.append(line)
        return found

    async def _refs_loaded(self, query: Any, params: dict[str, Any]) -> list[tuple[int, int]]:
        """The (order id, line id) rows of `query`, their orders loaded."""
        refs = [(row.order_id, row.id) for row in await self.conn.execute(query, params)]
        await self._load_orders(order_id for order_id, _ in refs)
        return refs

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
        """The first `limit` lines of `query` (of the product's lines, its `limit` a
        parameter) as they stand in this session.

        The database does not hold this session's unsaved changes yet: a line
        loaded here may have stopped (or started) qualifying, e.g. the lines of
        an order being cancelled. So fetch as many extra rows as there are
        loaded lines of the product, and judge every line by its state in memory.
        """
        stale = len(self._loaded_lines(product))
        params = {"store_id": self.store.id, "product_id": product.id, "limit": limit + stale}
        await self._lines_of(query, params)
        current = [line for line in self._loaded_lines(product) if keep(line)]
        current.sort(key=lambda line: line.queue_key, reverse=newest_first)
        return current[:limit]

    async def backorder_queue(self, product: Product, limit: int) -> list[OrderLine]:
        return await self._current_lines(
            product,
            _BACKORDER_QUEUE,
            limit,
            lambda line: line.backordered > 0,
            newest_first=False,
        )

    async def newest_allocated_lines(self, product: Product, limit: int) -> list[OrderLine]:
        return await self._current_lines(
            product,
            _NEWEST_ALLOCATED,
            limit,
            lambda line: line.allocated > 0,
            newest_first=True,
        )

    async def due_orders(self) -> list[Order]:
        wanted = await self.reading(self._due_loaded)
        return [self._orders[i] for i in wanted]

    async def _due_loaded(self) -> list[int]:
        found = await self.conn.execute(_DUE, {"store_id": self.store.id, "now": self.now})
        ids = found.scalars()
        wanted = list(ids)
        await self._load_orders(wanted)
        return wanted

    def order_of(self, line: OrderLine) -> Order:
        return self._orders[line.order_id]

    async def receipt(self, receipt_id: int) -> Receipt | None:
        if receipt_id not in self._receipts:
            found = await self.conn.execute(_RECEIPT, {"store_id": self.store.id, "id": receipt_id})
            row = found.mappings().first()
            if row is None:
                return None
            receipt = receipt_from(row)
            self._receipts[receipt.id] = receipt
            self._receipts_before[receipt.id] = receipt_values(receipt)
        return self._receipts[receipt_id]

    async def orders_by_id(self, ids: Iterable[int]) -> dict[int, Order]:
        wanted = set(ids)
        await self._load_orders(wanted)
        return {i: self._orders[i] for i in wanted if i in self._orders}

    async def fill_inputs(self, product_ids: Iterable[int]) -> dict[int, FillInputs]:
        products = await self.products_by_id(product_ids)
        missing = products.keys() - self._fill_rows.keys()
        if missing:
            await self.reading(lambda: self._fetch_fill_rows(missing))
        return {pid: self._fill_inputs(product) for pid, product in products.items()}

    async def _fetch_fill_rows(self, product_ids: set[int]) -> None:
        params = {"store_id": self.store.id, "ids": sorted(product_ids)}
        lines = await self.conn.execute(_FILL_LINES, params)
        receipts = await self.conn.execute(_FILL_RECEIPTS, params)
        for pid in product_ids:
            self._fill_rows[pid] = ([], [])
        for row in lines:
            self._fill_rows[row[0]][0].append(tuple(row[1:]))
        for receipt in map(receipt_from, receipts.mappings()):
            self._fill_rows[receipt.product_id][1].append(receipt)

    def _fill_inputs(self, product: Product) -> FillInputs:
        """The product's rows as read, with this session's changes laid over them."""
        rows, stored = self._fill_rows[product.id]
        loaded = {line.id: line for line in self._loaded_lines(product)}
        waiting: dict[int, tuple[Any, ...]] = {}
        for line_id, order_id, backordered, placed_at, number in rows:
            line = loaded.get(line_id)
            units = line.backordered if line is not None else backordered
            if units > 0:
                waiting[line_id] = (placed_at, number, line_id, order_id, units)
        for line in loaded.values():
            if line.id not in waiting and line.backordered > 0:
                waiting[line.id] = (*line.queue_key, line.order_id, line.backordered)
        queue = [
            (line_id, order_id, units)
            for _, _, line_id, order_id, units in sorted(
                waiting.values(), key=lambda entry: entry[:3]
            )
        ]
        receipts = {receipt.id: receipt for receipt in stored}
        for receipt in self._receipts.values():
            if receipt.product_id == product.id:
                receipts[receipt.id] = receipt
        incoming = [receipt for receipt in receipts.values() if receipt.is_open]
        return FillInputs(product.restock_date, queue, incoming)

    def add_receipt(self, receipt: Receipt) -> None:
        self._receipts[receipt.id] = receipt
        self._new_receipts.append(receipt)

    def add_product(self, product: Product) -> None:
        self._products[product.id] = product
        self._new_products.append(product)

    def add_order(self, order: Order) -> None:
        self._orders[order.id] = order
        self._new_orders.append(order)

    # -- saving ---------------------------------------------------------------
    def remember(self, row: dict[str, Any], forget_before: dt.datetime) -> None:
        """Keep an idempotency record with this change, forgetting the store's expired ones."""
        self._remembered.append(row)
        self._forget_before = forget_before

    def loaded(self) -> Loaded:
        """The store and every order and product this session holds, as saved."""
        return Loaded(self.store, dict(self._orders), dict(self._products), dict(self._receipts))

    def settle_outcomes(self) -> None:
        """Take the backorder facts (domain/outcomes.py) of what changed since the last
        call, at the session's instant, and set on the orders and lines when their
        waiting began. `writes` calls it; a session that runs several operations, each at
        its own instant (the demo's shared units), calls it after each."""
        new_events = self.events[self._settled_events :]
        self._settled_events = len(self.events)
        reasons = {
            event.order_id: CancelReason(str(event.data["reason"]))
            for _, event in new_events
            if isinstance(event, OrderEvent) and event.type is OrderEventType.CANCELLED
        }
        for oid, order in self._orders.items():
            was = self._settled_orders.get(oid)
            if was is None and oid in self._orders_before:
                was = bool(self._orders_before[oid]["is_backordered"])
            befores: dict[int, LineBefore] = {}
            moved = was is None  # placed since: every line is new
            for line in order.lines:
                prior = self._settled_lines.get(line.id)
                if prior is None and line.id in self._lines_before:
                    row = self._lines_before[line.id]
                    prior = LineBefore(row["backordered"], row["cancelled"], row["waiting_since"])
                if prior is not None:
                    befores[line.id] = prior
                    moved = moved or prior.backordered != line.backordered
            if not moved:
                continue
            reason = reasons.get(oid)
            found, waiting, since = order_facts(order, befores, bool(was), self.now, reason)
            for line_id, text in waiting.items():
                changed = order.line(line_id)
                assert changed is not None
                changed.waiting_since = text
            order.backordered_since = since
            self._settled_orders[oid] = order.is_backordered
            for line in order.lines:
                self._settled_lines[line.id] = LineBefore(
                    line.backordered, line.cancelled, line.waiting_since
                )
            self._facts.extend((self._last_seq, fact) for fact in found)

    def _outcome_rows(self) -> dict[str, list[dict[str, Any]]]:
        """The change's writes of what waiting costs, by `Writes` field: the facts taken,
        their day sums, age sums and closed episodes, and the orders and lines whose
        waiting began elsewhere than the database has it."""
        self.settle_outcomes()
        store_id = self.store.id
        facts = [
            {
                "store_id": store_id,
                "seq": seq,
                "n": n,
                "kind": fact.kind.value,
                "product_id": fact.product_id,
                "order_id": fact.order_id,
                "line_id": fact.line_id,
                "at": fact.at,
                "since": fact.since,
                "units": fact.units,
                "value": fact.value,
                "reason": fact.reason.value if fact.reason else None,
                "line_episode": fact.line_episode,
                "order_episode": fact.order_episode,
                "at_placement": fact.at_placement,
                "overdue_at": fact.overdue_at,
                "wait_bucket": wait_bucket(fact.wait_seconds)
                if fact.kind is FactKind.FILL
                else None,
            }
            for n, (seq, fact) in enumerate(self._facts)
        ]
        taken = [fact for _, fact in self._facts]
        tz = self.store.tz
        order_closings, line_closings = _closings(store_id, taken)
        orders, lines = [], []
        for oid, order in self._orders.items():
            before = self._orders_before.get(oid)
            if order.backordered_since != (before["backordered_since"] if before else None):
                orders.append(
                    {"store_id": store_id, "id": oid, "backordered_since": order.backordered_since}
                )
            for line in order.lines:
                row = self._lines_before.get(line.id)
                if line.waiting_since != (row["waiting_since"] if row else None):
                    lines.append(
                        {"store_id": store_id, "id": line.id, "waiting_since": line.waiting_since}
                    )
        return {
            "facts": facts,
            "outcome_orders": orders,
            "outcome_lines": lines,
            "fact_days": _fact_days(store_id, tz, taken, self._new_orders),
            "fact_ages": _fact_ages(store_id, tz, taken),
            "order_closings": order_closings,
            "line_closings": line_closings,
        }

    def writes(self) -> Writes:
        """Every row this session changes, decided: what the unit's commit writes."""
        outcomes = self._outcome_rows() if self.events else {}
        new_products = {p.id for p in self._new_products}
        new_orders = {o.id for o in self._new_orders}
        products = []
        for pid, product in self._products.items():
            values = product_values(product)
            if pid not in new_products and values != self._products_before[pid]:
                products.append(_only(values, _PRODUCT_MUTABLE))
        orders, lines = [], []
        for oid, order in self._orders.items():
            if oid in new_orders:
                continue
            values = order_values(order)
            if values != self._orders_before[oid]:
                orders.append(_only(values, _ORDER_MUTABLE))
            for line in order.lines:
                lv = line_values(line)
                if lv != self._lines_before[line.id]:
                    lines.append(_only(lv, _LINE_MUTABLE))
        new_receipts = {r.id for r in self._new_receipts}
        receipts = [
            _only(values, _RECEIPT_MUTABLE)
            for rid, receipt in self._receipts.items()
            if rid not in new_receipts
            and (values := receipt_values(receipt)) != self._receipts_before[rid]
        ]
        counters: dict[str, Any] = {
            "next_id": self._next_id,
            "next_order_number": self._next_number,
            "last_event_seq": self._last_seq,
        }
        if self.events:
            counters["last_event_at"] = self.now
        changed_counters = any(self._counters_before.get(k) != v for k, v in counters.items())
        alarm = self._alarm_after()
        return Writes(
            new_products=[
                {**product_values(p), "created_at": self.now} for p in self._new_products
            ],
            products=products,
            new_orders=[order_values(o) for o in self._new_orders],
            new_lines=[line_values(line) for o in self._new_orders for line in o.lines],
            orders=orders,
            lines=lines,
            new_receipts=[receipt_values(r) for r in self._new_receipts],
            receipts=receipts,
            events=[self._event_row(s, e) for s, e in self.events],
            tally=history.change_of(
                [
                    (order, self._contribution_before.get(oid, NOTHING))
                    for oid, order in self._orders.items()
                ]
            )
            if self.events
            else None,
            remember=self._remembered,
            forget_before=self._forget_before,
            counters=counters if changed_counters else None,
            notify=f"{self.store.id}:{self._last_seq}" if self.events else None,
            seq=self._last_seq,
            at=self.now,
            alarm_moved=alarm != self._alarm_before,
            alarm=alarm,
            **outcomes,
        )

    def _alarm_after(self) -> dt.datetime | None:
        """The alarm, moved earlier for the orders this unit placed that will fall due."""
        due = [
            o.overdue_at
            for o in self._new_orders
            if o.overdue_at is not None and o.in_backlog and not o.overdue_notified
        ]
        if not due:
            return self._alarm
        earliest = min(due)
        return earliest if self._alarm is None else min(self._alarm, earliest)

    async def rearm_overdue_alarm(self) -> None:
        """Set the alarm to the earliest instant an order of the store not yet flagged
        falls due after now (the sweep calls it under the lock, once it has flagged the
        orders due by now); no alarm when there is none."""
        params = {"store_id": self.store.id, "now": self.now}

        async def earliest() -> dt.datetime | None:
            found: dt.datetime | None = (await self.conn.execute(_NEXT_DUE, params)).scalar()
            return found

        self._alarm = await self.reading(earliest)

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


def _closings(
    store_id: int, facts: list[Fact]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The order and line episodes these facts closed: (order id, when it opened, when it
    closed) and (order id, line id, when it opened, when it closed)."""
    orders, lines = [], []
    for fact in facts:
        if fact.kind is FactKind.START:
            continue
        if fact.order_episode is not None:
            orders.append(
                {
                    "store_id": store_id,
                    "order_id": fact.order_id,
                    "order_episode": fact.order_episode,
                    "closed_at": fact.at,
                }
            )
        if fact.line_episode is not None:
            lines.append(
                {
                    "store_id": store_id,
                    "order_id": fact.order_id,
                    "line_id": fact.line_id,
                    "line_episode": fact.line_episode,
                    "line_closed_at": fact.at,
                }
            )
    return orders, lines


def _fact_ages(store_id: int, tz: dt.tzinfo, facts: list[Fact]) -> list[dict[str, Any]]:
    """What the change adds to the age sums (`backorder_ages`), by the store's calendar:
    units by the day they began to wait (U), episodes by the day they opened (E), each
    under the day they moved; for the store (product 0) and each product."""
    sums: dict[tuple[int, str, dt.date, dt.date], dict[str, Any]] = {}

    def add(product_id: int, kind: str, start: dt.datetime, at: dt.datetime) -> dict[str, Any]:
        key = (product_id, kind, local_day(start, tz), local_day(at, tz))
        row = sums.get(key)
        if row is None:
            row = sums[key] = {
                "store_id": store_id,
                "product_id": product_id,
                "kind": kind,
                "start_day": key[2],
                "at_day": key[3],
                "units": 0,
                "value": 0,
                "episodes": 0,
            }
        return row

    for fact in facts:
        sign = 1 if fact.kind is FactKind.START else -1
        for product_id, episode in ((0, fact.order_episode), (fact.product_id, fact.line_episode)):
            row = add(product_id, "U", fact.since, fact.at)
            row["units"] += sign * fact.units
            row["value"] += sign * fact.value
            if episode is not None:
                add(product_id, "E", episode, fact.at)["episodes"] += sign
    return list(sums.values())


def _fact_days(
    store_id: int, tz: dt.tzinfo, facts: list[Fact], placed: list[Order]
) -> list[dict[str, Any]]:
    """What the change adds to the day sums (`backorder_days`): per day of the store's
    calendar, kind, reason and wait bucket, for the store (product 0, its order episodes)
    and for each product (its line episodes); the orders placed (PLACED)."""
    sums: dict[tuple[int, dt.date, str, str, int], dict[str, Any]] = {}

    def add(
        product_id: int,
        at: dt.datetime,
        kind: str,
        reason: str = "",
        bucket: int = -1,
        units: int = 0,
        value: Any = 0,
        episodes: int = 0,
        short: int = 0,
        wait: float | None = None,
        due: int = 0,
        early: int = 0,
    ) -> None:
        key = (product_id, local_day(at, tz), kind, reason, bucket)
        row = sums.get(key)
        if row is None:
            row = sums[key] = {
                "store_id": store_id,
                "product_id": product_id,
                "day": key[1],
                "kind": kind,
                "reason": reason,
                "wait_bucket": bucket,
                "units": 0,
                "value": 0,
                "episodes": 0,
                "short": 0,
                "max_wait": None,
                "due": 0,
                "early": 0,
            }
        row["due"] += due
        row["early"] += early
        row["units"] += units
        row["value"] += value
        row["episodes"] += episodes
        row["short"] += short
        if wait is not None and (row["max_wait"] is None or wait > row["max_wait"]):
            row["max_wait"] = wait

    for fact in facts:
        is_fill = fact.kind is FactKind.FILL
        reason = fact.reason.value if fact.reason else ""
        bucket = wait_bucket(fact.wait_seconds) if is_fill else -1
        wait = fact.wait_seconds if is_fill else None
        is_start = fact.kind is FactKind.START
        dated = fact.overdue_at is not None
        for product_id, episode in ((0, fact.order_episode), (fact.product_id, fact.line_episode)):
            opened = episode is not None
            add(
                product_id,
                fact.at,
                fact.kind.value,
                reason,
                bucket,
                fact.units,
                fact.value,
                int(opened),
                int(opened and fact.at_placement),
                wait,
                due=int(opened and is_start and dated),
            )
            if episode is not None and not is_start and dated:
                assert fact.overdue_at is not None
                if fact.at <= fact.overdue_at:  # closed in time: counted on its opening day
                    add(product_id, episode, "START", early=1)
    for order in placed:
        add(0, order.placed_at, "PLACED", episodes=1)
        for line in order.lines:
            add(line.product_id, order.placed_at, "PLACED", episodes=1)
    return list(sums.values())


async def store_row(conn: AsyncConnection, store_id: int) -> Any:
    """The store's row, locked: on PostgreSQL `FOR NO KEY UPDATE` (as og_open takes it);
    on SQLite the writer lock, taken at BEGIN, is the store's lock."""
    query = _STORE_ROW_LOCKED if conn.dialect.name == "postgresql" else _STORE_ROW
    return (await conn.execute(query, {"id": store_id})).mappings().first()


def session_for(conn: Statements, row: Mapping[Any, Any], clock: Clock) -> SqlStoreSession:
    """A session on the store of `row` (locked), its counters read, its clock never
    before the store's last event."""
    counters = {
        "next_id": row["next_id"],
        "next_order_number": row["next_order_number"],
        "last_event_seq": row["last_event_seq"],
    }
    now = clock()
    if row["last_event_at"] is not None and now < row["last_event_at"]:
        now = row["last_event_at"]  # never before the store's previous event
    return SqlStoreSession(conn, store_from(row), counters, now, row.get("overdue_alarm_at"))


def _no_store() -> DomainError:
    return DomainError.one(ErrorCode.NOT_FOUND, "store not found", ["storeId"])


class OpenUnit:
    """A store's unit of work, open: its session (the store locked, the first reads
    loaded) and `commit`, which writes a decided change and commits."""

    def __init__(
        self,
        db: Database,
        session: SqlStoreSession,
        commit: Callable[[Writes], Awaitable[None]],
    ) -> None:
        self.session = session
        self._db = db
        self._commit = commit
        self._locked_at = time.perf_counter()

    async def commit(self, writes: Writes) -> None:
        await self._commit(writes)
        self._db.lock_held(time.perf_counter() - self._locked_at)


def _opened(conn: Statements, opened: Opened, clock: Clock, reads: Reads) -> SqlStoreSession:
    if opened.store is None:
        raise _no_store()
    session = session_for(conn, opened.store, clock)
    session.preload(opened.products, opened.orders, opened.lines)
    if reads.idempotency is not None:
        session.prefetched_keys[reads.idempotency] = opened.idempotency
    session.prefetched_keys.update(opened.more_keys)
    return session


@asynccontextmanager
async def open_unit(
    db: Database, store_id: int, clock: Clock, reads: Reads = NO_READS
) -> AsyncIterator[OpenUnit]:
    """Lock a store and open its session; rolled back unless `commit` is called.

    - PostgreSQL (storage/pg_unit.py): BEGIN; `og_open` takes the lock and returns the
      store with the first reads; `commit` is `og_apply` of the writes and COMMIT.
    - SQLite on a file (storage/sqlite_unit.py): the same shape on the writer thread,
      one hand-over to open (BEGIN IMMEDIATE and the reads), one to commit.
    - SQLite in memory: the async engine, statement by statement.
    """
    if not db.is_sqlite:
        async with pg_unit.transaction(db) as (conn, raw):
            opened = await pg_unit.open_reads(raw, store_id, reads)  # takes the lock

            async def og_apply(writes: Writes) -> None:
                await pg_unit.commit(raw, store_id, writes)

            yield OpenUnit(db, _opened(conn, opened, clock, reads), og_apply)
    elif db.sqlite_writer is not None:
        async with sqlite_unit.transaction(db) as unit:
            opened = await unit.open(store_id, reads)  # takes the lock
            yield OpenUnit(
                db, _opened(unit.statements, opened, clock, reads), partial(unit.commit, store_id)
            )
    else:
        async with db.write() as aconn:  # BEGIN IMMEDIATE: the lock
            row = await store_row(aconn, store_id)
            opened = Opened(store=None if row is None else dict(row))
            yield OpenUnit(
                db,
                _opened(aconn, opened, clock, NO_READS),
                partial(sqlite_unit.write_changes, aconn, store_id),
            )


@asynccontextmanager
async def store_session(
    db: Database, store_id: int, clock: Clock, reads: Reads = NO_READS
) -> AsyncIterator[SqlStoreSession]:
    """Open a locked session on a store; saves and commits when the block ends cleanly."""
    async with open_unit(db, store_id, clock, reads) as unit:
        yield unit.session
        await unit.commit(unit.session.writes())
    if unit.session.events:
        db.committed(store_id)

"""An in-memory StoreSession: the domain services run against it without a database."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Iterable
from decimal import Decimal

from ordergraph.domain.events import Event, OrderEvent
from ordergraph.domain.model import BackorderPolicy, Order, OrderLine, Product, Store

START = dt.datetime(2027, 1, 24, 9, 30, tzinfo=dt.UTC)


class MemorySession:
    """One store's data held in dicts; every call sees and changes the same objects.

    The clock only moves when a test moves it (`advance`), and emitted events pile
    up in `events` until a test takes them (`take_events`).
    """

    def __init__(
        self,
        *,
        timezone: str = "UTC",
        default_policy: BackorderPolicy = BackorderPolicy.DENY,
        now: dt.datetime = START,
    ) -> None:
        self.store = Store(
            id=1,
            handle="memory",
            name="Memory store",
            currency_code="USD",
            timezone=timezone,
            default_backorder_policy=default_policy,
            created_at=now,
        )
        self.now = now
        self.products: dict[int, Product] = {}
        self.orders: dict[int, Order] = {}
        self.events: list[Event] = []
        self._next_id = 1
        self._next_number = 1001

    # -- the StoreSession port ------------------------------------------------
    async def products_by_sku(self, skus: Iterable[str]) -> dict[str, Product]:
        wanted = set(skus)
        return {p.sku: p for p in self.products.values() if p.sku in wanted}

    async def products_by_id(self, ids: Iterable[int]) -> dict[int, Product]:
        return {i: self.products[i] for i in set(ids) if i in self.products}

    async def order(self, order_id: int) -> Order | None:
        return self.orders.get(order_id)

    def _lines_of(self, product: Product) -> list[OrderLine]:
        return [
            line
            for order in self.orders.values()
            for line in order.lines
            if line.product_id == product.id
        ]

    async def backorder_queue(self, product: Product, limit: int) -> list[OrderLine]:
        waiting = [line for line in self._lines_of(product) if line.backordered > 0]
        return sorted(waiting, key=lambda line: line.queue_key)[:limit]

    async def newest_allocated_lines(self, product: Product, limit: int) -> list[OrderLine]:
        holding = [line for line in self._lines_of(product) if line.allocated > 0]
        return sorted(holding, key=lambda line: line.queue_key, reverse=True)[:limit]

    async def due_orders(self) -> list[Order]:
        return [
            order
            for order in self.orders.values()
            if order.in_backlog
            and order.overdue_at is not None
            and order.overdue_at <= self.now
            and not order.overdue_notified
        ]

    def order_of(self, line: OrderLine) -> Order:
        return self.orders[line.order_id]

    def next_id(self) -> int:
        value = self._next_id
        self._next_id += 1
        return value

    def next_order_number(self) -> int:
        value = self._next_number
        self._next_number += 1
        return value

    def add_product(self, product: Product) -> None:
        assert product.id not in self.products
        self.products[product.id] = product

    def add_order(self, order: Order) -> None:
        assert order.id not in self.orders
        self.orders[order.id] = order

    def emit(self, event: Event) -> None:
        self.events.append(event)

    # -- test helpers ---------------------------------------------------------
    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)

    def take_events(self) -> list[Event]:
        taken, self.events = self.events, []
        return taken

    def event_types(self) -> list[str]:
        """Types of the events emitted since the last call, as 'order:X' / 'stock:X'."""
        return [
            f"order:{e.type.value}" if isinstance(e, OrderEvent) else f"stock:{e.type.value}"
            for e in self.take_events()
        ]

    def state(self) -> tuple[object, ...]:
        """A deep copy of everything a service could change, to compare before/after."""
        return copy.deepcopy(
            (self.products, self.orders, self._next_id, self._next_number, self.events)
        )

    def sku(self, sku: str) -> Product:
        for product in self.products.values():
            if product.sku == sku:
                return product
        raise KeyError(sku)

    def add_stocked_product(
        self,
        sku: str,
        on_hand: int = 0,
        *,
        policy: BackorderPolicy = BackorderPolicy.DENY,
        limit: int | None = None,
        price: str = "10.00",
    ) -> Product:
        product = Product(
            store_id=self.store.id,
            id=self.next_id(),
            sku=sku,
            title=f"Product {sku}",
            price=Decimal(price),
            backorder_policy=policy,
            backorder_limit=limit,
            on_hand=on_hand,
        )
        self.add_product(product)
        return product

    def check_consistency(self) -> None:
        """Every rule of stock that must hold between changes."""
        for product in self.products.values():
            product.check_invariants()
            lines = self._lines_of(product)
            assert product.allocated == sum(line.allocated for line in lines), product
            open_lines = [line for line in lines if line.open_units]
            assert product.backordered == sum(line.backordered for line in open_lines), product
        for order in self.orders.values():
            for line in order.lines:
                assert min(line.allocated, line.backordered, line.shipped, line.cancelled) >= 0
                assert line.quantity == (
                    line.allocated + line.backordered + line.shipped + line.cancelled
                ), line

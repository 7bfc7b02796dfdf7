"""What the services need from storage: one store's data, locked for a change."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Protocol

from ordergraph.domain.events import Event
from ordergraph.domain.model import Order, OrderLine, Product, Store


class StoreSession(Protocol):
    """A unit of work on one store, holding the store's write lock.

    Objects it returns are tracked: changes made to them are saved on commit.
    The same order or product is always the same object within one session.
    """

    store: Store
    now: dt.datetime

    async def products_by_sku(self, skus: Iterable[str]) -> dict[str, Product]: ...

    async def products_by_id(self, ids: Iterable[int]) -> dict[int, Product]: ...

    async def order(self, order_id: int) -> Order | None: ...

    async def backorder_queue(self, product: Product, limit: int) -> list[OrderLine]:
        """Lines of the product awaiting stock, oldest first (fill order)."""
        ...

    async def newest_allocated_lines(self, product: Product, limit: int) -> list[OrderLine]:
        """Lines of the product holding allocation, most recently placed first."""
        ...

    async def due_orders(self) -> list[Order]:
        """Backlog orders whose overdue instant has passed and that were not yet flagged."""
        ...

    def order_of(self, line: OrderLine) -> Order:
        """The (already loaded) order a line belongs to."""
        ...

    def next_id(self) -> int: ...

    def next_order_number(self) -> int: ...

    def add_product(self, product: Product) -> None: ...

    def add_order(self, order: Order) -> None: ...

    def emit(self, event: Event) -> None: ...

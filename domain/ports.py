"""What the domain and the mutations need from storage: one store's data, locked for
a change (with its idempotency records), the admin's stores and keys, and the factory
that hands out both."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from ordergraph.domain.commands import (
    NO_READS,
    CreateApiKey,
    CreateStore,
    KeyCreated,
    Reads,
    StoreCreated,
)
from ordergraph.domain.events import Event
from ordergraph.domain.expected import FillInputs
from ordergraph.domain.model import Order, OrderLine, Product, Receipt, Store


@dataclass(frozen=True)
class Loaded:
    """What a unit of work held when it ended: the payload shows these, as committed,
    instead of reading them again."""

    store: Store
    orders: dict[int, Order]
    products: dict[int, Product]
    receipts: dict[int, Receipt] = field(default_factory=dict)


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

    async def orders_by_id(self, ids: Iterable[int]) -> dict[int, Order]:
        """The orders with these ids (those that exist), loaded together."""
        ...

    async def fill_inputs(self, product_ids: Iterable[int]) -> dict[int, FillInputs]:
        """What the fill-date walk of each product reads, as things stand in this session
        (its unsaved changes included); a product that does not exist is absent."""
        ...

    async def receipt(self, receipt_id: int) -> Receipt | None:
        """The store's receipt with this id (any status); None if there is none."""
        ...

    def add_receipt(self, receipt: Receipt) -> None: ...

    def order_of(self, line: OrderLine) -> Order:
        """The (already loaded) order a line belongs to."""
        ...

    def next_id(self) -> int: ...

    def next_order_number(self) -> int: ...

    def add_product(self, product: Product) -> None: ...

    def add_order(self, order: Order) -> None: ...

    def emit(self, event: Event) -> None: ...

    def loaded(self) -> Loaded:
        """The store and every order and product the session holds."""
        ...


class StoreUnit(Protocol):
    """One change to a store: its locked session and its idempotency records.

    Leaving the unit's block cleanly commits everything together; an exception
    rolls everything back.
    """

    @property
    def session(self) -> StoreSession: ...

    async def recall(
        self, operation: str, key: str, request: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """The result recorded for this key, None if unseen (or expired); raises
        DomainError(IDEMPOTENCY_KEY_REUSED) when the key came with another request."""
        ...

    async def remember(
        self, operation: str, key: str, request: Mapping[str, Any], result: Mapping[str, Any]
    ) -> None: ...


KeyT_co = TypeVar("KeyT_co", covariant=True)


class AdminUnit(Protocol[KeyT_co]):
    """Stores and API keys, changed by the admin token outside any store's lock.

    Each call is its own transaction; a refused one raises DomainError.
    """

    async def create_store(self, cmd: CreateStore) -> StoreCreated: ...

    async def create_api_key(self, cmd: CreateApiKey) -> KeyCreated: ...

    async def revoke_api_key(self, key_id: int) -> int:
        """Revoke the key (again is fine); its id, or NOT_FOUND."""
        ...

    async def api_key(self, key_id: int) -> KeyT_co | None:
        """The key as the API shows it."""
        ...


class Units(Protocol[KeyT_co]):
    """Where the mutations get their units of work (one factory per request)."""

    def store(
        self, store_id: int, reads: Reads = NO_READS
    ) -> AbstractAsyncContextManager[StoreUnit]:
        """A unit on the store, holding its lock; NOT_FOUND if there is no such store.
        `reads` names what the unit reads first (a hint: storage may fetch it at once)."""
        ...

    @property
    def admin(self) -> AdminUnit[KeyT_co]: ...

    def is_contention(self, error: Exception) -> bool:
        """True when `error` is a conflict with a concurrent change that is worth
        running the whole unit again for (serialization failure, deadlock)."""
        ...

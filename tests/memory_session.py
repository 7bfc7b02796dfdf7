"""In memory: a StoreSession for the domain services, and the whole unit-of-work factory
(domain.ports.Units) for the mutation resolvers, with no database behind either.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

from ordergraph.domain.commands import (
    NO_READS,
    CreateApiKey,
    CreateStore,
    KeyCreated,
    Reads,
    StoreCreated,
)
from ordergraph.domain.errors import DomainError, ErrorCode
from ordergraph.domain.events import Event, OrderEvent
from ordergraph.domain.expected import FillInputs
from ordergraph.domain.keys import hash_token, new_token
from ordergraph.domain.model import BackorderPolicy, Order, OrderLine, Product, Receipt, Store
from ordergraph.domain.ports import Loaded
from ordergraph.domain.reads import KeyRecord
from ordergraph.resolvers.context import Loaders
from ordergraph.resolvers.keyguard import KeyGuard
from ordergraph.storage.queries import Waiting

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
        store: Store | None = None,
    ) -> None:
        self.store = store or Store(
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
        self.receipts: dict[int, Receipt] = {}
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

    async def receipt(self, receipt_id: int) -> Receipt | None:
        return self.receipts.get(receipt_id)

    async def orders_by_id(self, ids: Iterable[int]) -> dict[int, Order]:
        return {i: self.orders[i] for i in set(ids) if i in self.orders}

    async def fill_inputs(self, product_ids: Iterable[int]) -> dict[int, FillInputs]:
        found = {}
        for pid in set(product_ids):
            product = self.products.get(pid)
            if product is None:
                continue
            queue = await self.backorder_queue(product, limit=10**9)
            receipts = [r for r in self.receipts.values() if r.product_id == pid and r.is_open]
            found[pid] = FillInputs(
                product.restock_date,
                [(line.id, line.order_id, line.backordered) for line in queue],
                receipts,
            )
        return found

    def add_receipt(self, receipt: Receipt) -> None:
        assert receipt.id not in self.receipts
        self.receipts[receipt.id] = receipt

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

    def loaded(self) -> Loaded:
        return Loaded(self.store, dict(self.orders), dict(self.products), dict(self.receipts))

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
            (
                self.products,
                self.orders,
                self.receipts,
                self._next_id,
                self._next_number,
                self.events,
            )
        )

    def restore(self, state: tuple[Any, ...]) -> None:
        """Go back to a `state()` taken earlier (a rolled-back unit of work)."""
        (
            self.products,
            self.orders,
            self.receipts,
            self._next_id,
            self._next_number,
            self.events,
        ) = copy.deepcopy(state)

    def line(self, line_id: int) -> OrderLine | None:
        for order in self.orders.values():
            if (found := order.line(line_id)) is not None:
                return found
        return None

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


# -- the unit-of-work factory ----------------------------------------------------


class Contention(Exception):
    """A conflict with a concurrent change, as MemoryUnits reports one (see `contend`)."""


class MemoryStoreUnit:
    """The StoreUnit port: one store's session and the idempotency records of all stores."""

    def __init__(self, units: MemoryUnits, session: MemorySession) -> None:
        self.units = units
        self.session = session

    async def recall(
        self, operation: str, key: str, request: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        found = self.units.records.get((self.session.store.id, operation, key))
        if found is None:
            return None
        earlier_request, result = found
        if earlier_request != dict(request):
            raise DomainError.one(
                ErrorCode.IDEMPOTENCY_KEY_REUSED,
                "this idempotencyKey was used earlier with a different input",
                ["idempotencyKey"],
            )
        return dict(result)

    async def remember(
        self, operation: str, key: str, request: Mapping[str, Any], result: Mapping[str, Any]
    ) -> None:
        record = (dict(request), dict(result))
        self.units.records[(self.session.store.id, operation, key)] = record


class MemoryAdmin:
    """The AdminUnit port: stores and keys in dicts, checked by the same commands."""

    def __init__(self, units: MemoryUnits) -> None:
        self.units = units

    async def create_store(self, cmd: CreateStore) -> StoreCreated:
        checked = cmd.checked()
        if any(s.store.handle == checked.handle for s in self.units.sessions.values()):
            raise DomainError.one(
                ErrorCode.DUPLICATE, f"handle {cmd.handle!r} is taken", ["handle"]
            )
        store = Store(
            id=len(self.units.sessions) + 1,
            handle=checked.handle,
            name=checked.name,
            currency_code=checked.currency_code,
            timezone=checked.timezone,
            default_backorder_policy=checked.default_policy,
            created_at=self.units.now,
        )
        self.units.sessions[store.id] = MemorySession(store=store, now=self.units.now)
        key = await self.create_api_key(checked.first_key(store.id))
        return StoreCreated(store_id=store.id, api_key_id=key.api_key_id, token=key.token)

    async def create_api_key(self, cmd: CreateApiKey) -> KeyCreated:
        checked = cmd.checked()
        if not set(checked.store_ids) <= self.units.sessions.keys():
            raise DomainError.one(ErrorCode.NOT_FOUND, "store not found", ["storeIds"])
        key = KeyRecord(
            id=len(self.units.keys) + 1,
            name=checked.name,
            scopes=frozenset(checked.scopes),
            store_ids=frozenset(checked.store_ids),
            created_at=self.units.now,
            revoked_at=None,
        )
        token = new_token()
        self.units.keys[key.id] = key
        self.units.tokens[hash_token(token)] = key.id
        return KeyCreated(api_key_id=key.id, token=token)

    async def revoke_api_key(self, key_id: int) -> int:
        key = self.units.keys.get(key_id)
        if key is None:
            raise DomainError.one(ErrorCode.NOT_FOUND, "api key not found", ["id"])
        if key.revoked_at is None:
            self.units.keys[key_id] = dataclasses.replace(key, revoked_at=self.units.now)
        return key_id

    async def api_key(self, key_id: int) -> KeyRecord | None:
        return self.units.keys.get(key_id)


class MemoryUnits:
    """The Units port (domain.ports) in memory: every store, key and idempotency record.

    A unit that ends with an exception puts its store back as it was. `contend(n)`
    makes the next n units fail with a Contention, which the factory calls worth a retry.
    """

    def __init__(self, now: dt.datetime = START) -> None:
        self.now = now
        self.sessions: dict[int, MemorySession] = {}
        self.records: dict[tuple[int, str, str], tuple[dict[str, Any], dict[str, Any]]] = {}
        self.keys: dict[int, KeyRecord] = {}
        self.tokens: dict[str, int] = {}
        self.admin = MemoryAdmin(self)
        self.units_opened = 0
        self._contentions = 0

    def contend(self, times: int) -> None:
        self._contentions = times

    @asynccontextmanager
    async def store(self, store_id: int, reads: Reads = NO_READS) -> AsyncIterator[MemoryStoreUnit]:
        self.units_opened += 1
        session = self.sessions.get(store_id)
        if session is None:
            raise DomainError.one(ErrorCode.NOT_FOUND, "store not found", ["storeId"])
        session.now = max(session.now, self.now)
        before, records = session.state(), dict(self.records)
        try:
            yield MemoryStoreUnit(self, session)
            if self._contentions:
                self._contentions -= 1
                raise Contention("could not serialize access")
        except BaseException:
            session.restore(before)
            self.records = records
            raise

    def is_contention(self, error: Exception) -> bool:
        return isinstance(error, Contention)

    def key_for(self, token_hash: str) -> KeyRecord | None:
        key = self.keys.get(self.tokens.get(token_hash, 0))
        return key if key is not None and key.revoked_at is None else None


class MemoryGuard(KeyGuard):
    """Token lookups in the memory factory's keys (what the context asks of a KeyGuard)."""

    def __init__(self, units: MemoryUnits) -> None:
        super().__init__(db=None, cache_seconds=0)  # type: ignore[arg-type]
        self.units = units

    async def key_for(self, token_hash: str) -> KeyRecord | None:
        return self.units.key_for(token_hash)


class MemoryLoaders(Loaders):
    """The request's DataLoaders, reading the memory factory's stores."""

    def __init__(self, units: MemoryUnits) -> None:
        self.units = units

    def _session(self, store_id: int) -> MemorySession | None:
        return self.units.sessions.get(store_id)

    async def _stores(self, ids: list[int]) -> Sequence[Store | None]:
        return [s.store if (s := self._session(i)) else None for i in ids]

    async def _products(self, keys: list[tuple[int, int]]) -> Sequence[Product | None]:
        return [s.products.get(p) if (s := self._session(k)) else None for k, p in keys]

    async def _orders(self, keys: list[tuple[int, int]]) -> Sequence[Order | None]:
        return [s.orders.get(o) if (s := self._session(k)) else None for k, o in keys]

    async def _lines(self, keys: list[tuple[int, int]]) -> Sequence[list[OrderLine]]:
        found = await self._orders(keys)
        return [list(order.lines) if order else [] for order in found]

    async def _line(self, keys: list[tuple[int, int]]) -> Sequence[OrderLine | None]:
        return [s.line(i) if (s := self._session(k)) else None for k, i in keys]

    async def _receipts(self, keys: list[tuple[int, int]]) -> Sequence[Receipt | None]:
        return [s.receipts.get(i) if (s := self._session(k)) else None for k, i in keys]

    async def _incoming(self, keys: list[tuple[int, int]]) -> Sequence[list[Receipt]]:
        found = []
        for store_id, product_id in keys:
            session = self._session(store_id)
            receipts = session.receipts.values() if session else ()
            mine = [r for r in receipts if r.product_id == product_id and r.is_open]
            found.append(sorted(mine, key=lambda r: (r.expected_at, r.id)))
        return found

    async def _waiting(self, keys: list[tuple[int, int]]) -> dict[tuple[int, int], Waiting]:
        found: dict[tuple[int, int], Waiting] = {}
        for store_id, product_id in keys:
            session = self._session(store_id)
            product = session.products.get(product_id) if session else None
            if session is None or product is None:
                continue
            queue = await session.backorder_queue(product, limit=10**9)
            lines = [(line.id, line.backordered) for line in queue]
            found[(store_id, product_id)] = Waiting(product.restock_date, lines)
        return found

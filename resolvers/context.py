"""Per-request context: who is asking, what they may see, and the request's DataLoaders."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hmac
import uuid
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any, Protocol, TypeVar

from graphql import GraphQLError
from strawberry.dataloader import DataLoader

from ordergraph.domain.expected import FillPlan, plan_fills
from ordergraph.domain.keys import hash_token
from ordergraph.domain.model import Order, OrderLine, Product, Receipt, Store
from ordergraph.domain.ports import Loaded, Units
from ordergraph.domain.reads import KeyRecord, LiveEvent
from ordergraph.domain.tallies import Figures
from ordergraph.domain.webhooks import WebhookPort
from ordergraph.resolvers.batches import StoreBatches
from ordergraph.resolvers.keyguard import KeyGuard, SubscriptionLimitReached
from ordergraph.storage import queries
from ordergraph.storage.db import Database, RequestDatabase
from ordergraph.storage.queries import Waiting


class ApiError(GraphQLError):
    """A request-level failure shown to the client with extensions.code."""

    def __init__(self, message: str, code: str, **extensions: Any) -> None:
        super().__init__(message, extensions={"code": code, **extensions})


def unauthenticated() -> ApiError:
    return ApiError("a valid token is required: Authorization: Bearer <token>", "UNAUTHENTICATED")


def bad_input(message: str) -> ApiError:
    return ApiError(message, "INVALID")


@dataclass(frozen=True)
class Principal:
    is_admin: bool = False
    key: KeyRecord | None = None

    def can_see(self, store_id: int) -> bool:
        return self.key is not None and store_id in self.key.store_ids


@dataclass(frozen=True)
class Limits:
    idempotency_ttl: dt.timedelta
    max_connections_per_request: int = 2


_K = TypeVar("_K")
_V = TypeVar("_V")


class Loaders:
    """One set per request: batch and cache lookups by (store id, row id).

    Each loader is made on first use: a live subscription takes a fresh set for every
    event it delivers, and most events need none of them.
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    @cached_property
    def store(self) -> DataLoader[int, Store | None]:
        return DataLoader(self._stores)

    @cached_property
    def product(self) -> DataLoader[tuple[int, int], Product | None]:
        return DataLoader(self._products)

    @cached_property
    def order(self) -> DataLoader[tuple[int, int], Order | None]:
        return DataLoader(self._orders)

    @cached_property
    def lines(self) -> DataLoader[tuple[int, int], list[OrderLine]]:
        return DataLoader(self._lines)

    @cached_property
    def line(self) -> DataLoader[tuple[int, int], OrderLine | None]:
        return DataLoader(self._line)

    @cached_property
    def receipt(self) -> DataLoader[tuple[int, int], Receipt | None]:
        return DataLoader(self._receipts)

    @cached_property
    def incoming(self) -> DataLoader[tuple[int, int], list[Receipt]]:
        """A product's open receipts, earliest first, by (store id, product id)."""
        return DataLoader(self._incoming)

    @cached_property
    def fill_plan(self) -> DataLoader[tuple[int, int], FillPlan]:
        """A product's expected fill dates (domain/expected.py), by (store id, product
        id): its waiting lines and restock date in one statement, its open receipts in
        another (the `incoming` loader's), for a whole batch of products."""
        return DataLoader(self._fill_plans)

    def known_store(self, store_id: int) -> Store | None:
        """The store if this request has it already (loaded or primed), without waiting."""
        if "store" not in self.__dict__:
            return None
        return self.known(self.store, store_id)

    @staticmethod
    def known(loader: DataLoader[_K, _V], key: _K) -> _V | None:
        """What `loader` already holds for `key` (loaded or primed), without waiting."""
        future = loader.cache_map.get(key)
        if future is None or not future.done() or future.cancelled() or future.exception():
            return None
        found: _V | None = future.result()
        return found

    # Each loader runs one statement (orders two), each one round trip on PostgreSQL.
    async def _stores(self, ids: list[int]) -> Sequence[Store | None]:
        async with self.db.connection() as conn:
            found = await queries.stores_by_id(conn, ids)
        return [found.get(i) for i in ids]

    async def _products(self, keys: list[tuple[int, int]]) -> Sequence[Product | None]:
        async with self.db.connection() as conn:
            found = await queries.products_by_id(conn, keys)
        return [found.get(k) for k in keys]

    async def _orders(self, keys: list[tuple[int, int]]) -> Sequence[Order | None]:
        async with self.db.read() as conn:
            found = await queries.orders_by_id(conn, keys)
        return [found.get(k) for k in keys]

    async def _lines(self, keys: list[tuple[int, int]]) -> Sequence[list[OrderLine]]:
        async with self.db.connection() as conn:
            found = await queries.lines_by_order(conn, keys)
        return [found.get(k, []) for k in keys]

    async def _line(self, keys: list[tuple[int, int]]) -> Sequence[OrderLine | None]:
        async with self.db.connection() as conn:
            found = await queries.lines_by_id(conn, keys)
        return [found.get(k) for k in keys]

    async def _receipts(self, keys: list[tuple[int, int]]) -> Sequence[Receipt | None]:
        async with self.db.connection() as conn:
            found = await queries.receipts_by_id(conn, keys)
        return [found.get(k) for k in keys]

    async def _incoming(self, keys: list[tuple[int, int]]) -> Sequence[list[Receipt]]:
        async with self.db.connection() as conn:
            found = await queries.open_receipts(conn, keys)
        return [found.get(k, []) for k in keys]

    async def _waiting(self, keys: list[tuple[int, int]]) -> dict[tuple[int, int], Waiting]:
        async with self.db.connection() as conn:
            return await queries.waiting_lines(conn, keys)

    async def _fill_plans(self, keys: list[tuple[int, int]]) -> Sequence[FillPlan]:
        waiting = await self._waiting(keys)
        receipts = await self.incoming.load_many(keys)
        plans = []
        for key, incoming in zip(keys, receipts, strict=True):
            found = waiting.get(key) or Waiting()
            plans.append(plan_fills(found.lines, incoming, found.restock_date))
        return plans


_Payload = TypeVar("_Payload")


class Live(Protocol):
    """What the subscription fields ask of live delivery (live/follow.py implements it)."""

    def follow(
        self,
        ctx: Context,
        store: Store,
        after: str | None,
        stream: str,
        wanted: Callable[[LiveEvent], bool],
        make_payload: Callable[[LiveEvent], _Payload],
        payload_type: type,
    ) -> AsyncIterator[_Payload]: ...

    def figures(self, store: Store) -> AsyncIterator[Figures]: ...


@dataclass
class Context:
    db: Database
    clock: Callable[[], dt.datetime]
    admin_token: str | None
    authorization: str | None
    limits: Limits
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    request: Any = None
    response: Any = None
    # Live delivery for the subscription fields (live.follow.LiveDelivery); None: off.
    live: Live | None = None
    connection_params: dict[str, Any] | None = None
    closing: bool = False
    # Over SSE: the cursor a reconnecting client sent (Last-Event-ID), which the event
    # subscriptions resume after; and the cursor of the event just yielded, for the `id:`.
    resume_after: str | None = None
    stream_cursor: str | None = None
    loaders: Loaders = field(init=False)
    # Token lookups through this process's short cache (resolvers.keyguard); None: direct.
    guard: KeyGuard | None = None
    # Where mutations get their units of work (storage.units.SqlUnits; a memory one in tests).
    units: Units[KeyRecord] = field(kw_only=True)
    # This process's queues of changes per store (resolvers.batches), shared by every
    # request; None: each mutation runs in a unit of its own.
    batches: StoreBatches | None = field(default=None, kw_only=True)
    # Webhook subscriptions' storage and DNS (ordergraph.webhooks); None: not offered.
    webhooks: WebhookPort | None = field(default=None, kw_only=True)
    _principal: Principal | None = field(default=None, init=False)
    _pending: asyncio.Future[Principal] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.db, RequestDatabase):
            self.db = RequestDatabase(self.db, self.limits.max_connections_per_request)
        self.loaders = Loaders(self.db)

    def reauthenticate(self, authorization: str | None) -> None:
        """Use another Authorization value (a websocket's connection_init payload)."""
        self.authorization = authorization
        self._principal = None
        self._pending = None

    @property
    def known_principal(self) -> Principal | None:
        """Who is asking, if already looked up (never looks it up)."""
        return self._principal

    async def principal(self) -> Principal:
        """Who is asking: looked up once per request, however many resolvers ask at once."""
        if self._principal is not None:
            return self._principal
        pending = self._pending
        if pending is None:
            known = self._known()
            if known is not None:  # no lookup: no task, no turn of the loop
                self._principal = known
                return known
            pending = self._pending = asyncio.ensure_future(self._authenticate())
        try:
            who = await asyncio.shield(pending)
        except Exception:
            if self._pending is pending:
                self._pending = None  # a failed lookup is tried again by the next caller
            raise
        if self._pending is pending:
            self._principal = who
        return who

    async def recheck(self) -> Principal:
        """Look the token up again, through the short cache: each websocket operation."""
        who = await self._authenticate()
        self._principal = who
        self._pending = None
        return who

    def _known(self) -> Principal | None:
        """Who is asking, when no lookup is needed: no token, the admin token, or a token
        the key guard's short cache holds; else None."""
        token = _bearer(self.authorization)
        if token is None:
            return Principal()
        token_hash = hash_token(token)
        if self.admin_token and hmac.compare_digest(token_hash, _admin_hash(self.admin_token)):
            return Principal(is_admin=True)
        if self.guard is not None:
            hit, key = self.guard.cached(token_hash)
            if hit:
                return Principal(key=key)
        return None

    async def _authenticate(self) -> Principal:
        known = self._known()
        if known is not None:
            return known
        token = _bearer(self.authorization)
        assert token is not None  # (without one, the principal is known)
        token_hash = hash_token(token)
        if self.guard is not None:
            return Principal(key=await self.guard.key_for(token_hash))
        async with self.db.read() as conn:
            key = await queries.api_key_by_token_hash(conn, token_hash)
        return Principal(key=key)

    def key_revoked(self, key_id: int) -> None:
        """This request revoked a key: no cached lookup of it is used again, and its open
        websockets in this process are closed now (other processes within seconds)."""
        if self.guard is not None:
            self.guard.revoked(key_id)

    async def require_admin(self) -> None:
        who = await self.principal()
        if who.is_admin:
            return
        if who.key is None:
            raise unauthenticated()
        raise ApiError("this needs the admin token", "FORBIDDEN")

    async def require(self, scope: str) -> Principal:
        """The caller's principal, if it is an API key holding `scope`."""
        return _check(await self.principal(), scope)

    def require_now(self, scope: str) -> Principal:
        """Like `require`, for fields of objects the request already reached (so the
        principal is known); refuses when it is not."""
        who = self._principal
        if who is None:
            raise ApiError(f"this needs the {scope} scope", "FORBIDDEN")
        return _check(who, scope)

    async def usable_store_id(self, store_id: int | None, scope: str) -> int | None:
        """The store id if the caller may use it with `scope` (whether the store exists
        is for the unit of work to say); else None."""
        who = await self.require(scope)
        if store_id is None or not who.can_see(store_id):
            return None
        return store_id

    def show(self, loaded: Loaded, orders: Collection[int] | None = None) -> None:
        """Let the request's loaders answer from what a unit of work held at commit:
        its store, products and receipts, and its orders (only those named in `orders`,
        if given: a unit that ran other requests' changes too holds their orders)."""
        loaders, store_id = self.loaders, loaded.store.id
        loaders.store.prime(store_id, loaded.store)
        shown = (
            loaded.orders.values()
            if orders is None
            else [loaded.orders[i] for i in orders if i in loaded.orders]
        )
        for order in shown:
            loaders.order.prime((store_id, order.id), order)
            loaders.lines.prime((store_id, order.id), list(order.lines))
            for line in order.lines:
                loaders.line.prime((store_id, line.id), line)
        for product in loaded.products.values():
            loaders.product.prime((store_id, product.id), product)
        for receipt in loaded.receipts.values():
            loaders.receipt.prime((store_id, receipt.id), receipt)

    async def visible_store(self, store_id: int | None, scope: str) -> Store | None:
        """The store if it exists and the caller may use it with `scope`; else None."""
        who = await self.require(scope)
        if store_id is None or not who.can_see(store_id):
            return None
        return await self.loaders.store.load(store_id)

    @contextlib.contextmanager
    def subscription_slot(self) -> Iterator[None]:
        """Held while a live subscription runs: at most max_subscriptions_per_key per key
        in this process (THROTTLED beyond)."""
        who = self._principal
        if self.guard is None or who is None or who.key is None:
            yield
            return
        try:
            self.guard.hold_subscription(who.key.id)
        except SubscriptionLimitReached as full:
            raise ApiError(str(full), "THROTTLED", limit=full.limit) from None
        try:
            yield
        finally:
            self.guard.release_subscription(who.key.id)


def _check(who: Principal, scope: str) -> Principal:
    if who.is_admin:
        raise ApiError("the admin token only creates stores and keys", "FORBIDDEN")
    if who.key is None:
        raise unauthenticated()
    if scope not in who.key.scopes:
        raise ApiError(f"this needs the {scope} scope", "FORBIDDEN")
    return who


@lru_cache(maxsize=4)
def _admin_hash(admin_token: str) -> str:
    return hash_token(admin_token)


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()

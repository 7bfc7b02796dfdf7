"""Per-request context: who is asking, what they may see, and the request's DataLoaders."""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from graphql import GraphQLError
from sqlalchemy.ext.asyncio import AsyncConnection
from strawberry.dataloader import DataLoader

from domain.model import Order, OrderLine, Product, Store
from storage import queries
from storage.admin import hash_token
from storage.db import Database
from storage.hub import EventHub
from storage.queries import KeyRecord


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


_holding: ContextVar[object | None] = ContextVar("ordergraph_holding_connection", default=None)


class RequestDatabase(Database):
    """The shared Database, seen by one request: at most `limit` of its connections at once.

    Resolvers and loaders running in parallel (aliases, many loaders) queue for a slot
    instead of draining the pool that other requests need. A task already holding one of
    this request's slots (and what it starts meanwhile) goes through without another,
    so nested use cannot deadlock. It compares and hashes equal to the shared Database
    (identical subscriptions are grouped by it).
    """

    def __init__(self, shared: Database, limit: int) -> None:
        self.__dict__.update(shared.__dict__)
        self.shared = shared
        self._slots = asyncio.Semaphore(max(1, limit))

    def __eq__(self, other: object) -> bool:
        return self.shared is getattr(other, "shared", other)

    def __hash__(self) -> int:
        return hash(self.shared)

    @asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        if _holding.get() is self._slots:
            yield
            return
        async with self._slots:
            token = _holding.set(self._slots)
            try:
                yield
            finally:
                _holding.reset(token)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self._slot(), self.shared.read() as conn:
            yield conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        async with self._slot(), self.shared.write() as conn:
            yield conn


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

    async def _stores(self, ids: list[int]) -> Sequence[Store | None]:
        async with self.db.read() as conn:
            found = await queries.stores_by_id(conn, ids)
        return [found.get(i) for i in ids]

    async def _products(self, keys: list[tuple[int, int]]) -> Sequence[Product | None]:
        async with self.db.read() as conn:
            found = await queries.products_by_id(conn, keys)
        return [found.get(k) for k in keys]

    async def _orders(self, keys: list[tuple[int, int]]) -> Sequence[Order | None]:
        async with self.db.read() as conn:
            found = await queries.orders_by_id(conn, keys)
        return [found.get(k) for k in keys]

    async def _lines(self, keys: list[tuple[int, int]]) -> Sequence[list[OrderLine]]:
        async with self.db.read() as conn:
            found = await queries.lines_by_order(conn, keys)
        return [found.get(k, []) for k in keys]

    async def _line(self, keys: list[tuple[int, int]]) -> Sequence[OrderLine | None]:
        async with self.db.read() as conn:
            found = await queries.lines_by_id(conn, keys)
        return [found.get(k) for k in keys]


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
    hub: EventHub | None = None
    connection_params: dict[str, Any] | None = None
    closing: bool = False
    loaders: Loaders = field(init=False)
    _principal: Principal | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.db, RequestDatabase):
            self.db = RequestDatabase(self.db, self.limits.max_connections_per_request)
        self.loaders = Loaders(self.db)

    def reauthenticate(self, authorization: str | None) -> None:
        """Use another Authorization value (a websocket's connection_init payload)."""
        self.authorization = authorization
        self._principal = None

    async def principal(self) -> Principal:
        if self._principal is None:
            self._principal = await self._authenticate()
        return self._principal

    async def _authenticate(self) -> Principal:
        token = _bearer(self.authorization)
        if token is None:
            return Principal()
        if self.admin_token and hmac.compare_digest(
            hash_token(token), hash_token(self.admin_token)
        ):
            return Principal(is_admin=True)
        async with self.db.read() as conn:
            key = await queries.api_key_by_token_hash(conn, hash_token(token))
        return Principal(key=key)

    async def require_admin(self) -> None:
        who = await self.principal()
        if who.is_admin:
            return
        if who.key is None:
            raise unauthenticated()
        raise ApiError("this needs the admin token", "FORBIDDEN")

    async def require(self, scope: str) -> Principal:
        """The caller's principal, if it is an API key holding `scope`."""
        who = await self.principal()
        if who.is_admin:
            raise ApiError("the admin token only creates stores and keys", "FORBIDDEN")
        if who.key is None:
            raise unauthenticated()
        if scope not in who.key.scopes:
            raise ApiError(f"this needs the {scope} scope", "FORBIDDEN")
        return who

    async def visible_store(self, store_id: int | None, scope: str) -> Store | None:
        """The store if it exists and the caller may use it with `scope`; else None."""
        who = await self.require(scope)
        if store_id is None or not who.can_see(store_id):
            return None
        return await self.loaders.store.load(store_id)


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()

"""Engines for the two backends: SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine


def normalize_url(url: str) -> str:
    """Accept plain postgresql:// and sqlite:// URLs and pick the async drivers."""
    parsed = make_url(url)
    driver = parsed.drivername
    if driver in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif driver == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    return parsed.render_as_string(hide_password=False)


class Database:
    """One engine plus what a backend needs to serialize writers safely."""

    def __init__(self, url: str, *, pool_size: int = 10, echo: bool = False) -> None:
        self.url = normalize_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        # Statement parameters stay out of error messages and logs: they carry customer
        # references, token hashes and other request values.
        kwargs: dict[str, Any] = {"echo": echo, "hide_parameters": True}
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": 30}
        else:
            # No ping per checkout (three round trips with asyncpg): see _skip_closed.
            kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=False)
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        if not self.is_sqlite:
            event.listen(self.engine.sync_engine, "checkin", _idle_from)
            event.listen(self.engine.sync_engine, "checkout", _skip_closed)
        # SQLite allows one writer at a time: writers in this process queue here
        # instead of failing with "database is locked".
        self._write_lock = asyncio.Lock()
        # Called with a store id after a change to that store has committed.
        self.on_commit: list[Callable[[int], None]] = []
        # Called with the seconds a unit of work held a store's lock (the metrics).
        self.on_lock_held: list[Callable[[float], None]] = []
        # Writers take SQLite's write lock when they begin (BEGIN IMMEDIATE), so a
        # writer in another process waits for it (busy_timeout) instead of failing
        # with "database is locked" when it upgrades a read transaction.
        self._writer: AsyncEngine = self.engine
        if self.is_sqlite:
            _configure_sqlite(self.engine)
            self._writer = self.engine.execution_options(sqlite_begin="BEGIN IMMEDIATE")

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a transaction meant to change data; commits on success."""
        if self.is_sqlite:
            async with self._write_lock, self._writer.begin() as conn:
                yield conn
        else:
            async with self.engine.begin() as conn:
                yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads. On SQLite a read transaction (one snapshot). On
        PostgreSQL the same as `connection`: at READ COMMITTED, which a transaction
        would have, every statement sees its own snapshot anyway, and BEGIN and
        ROLLBACK would cost two round trips."""
        if self.is_sqlite:
            async with self.engine.connect() as conn:
                yield conn
        else:
            async with self.connection() as conn:
                yield conn

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection]:
        """A connection in autocommit mode: a read of one statement costs one round trip,
        and the PostgreSQL unit of work begins its transaction itself (storage/pg_unit.py).
        (On SQLite, where a statement is no round trip, a plain connection.)"""
        async with self.engine.connect() as conn:
            if self.is_sqlite:
                yield conn
                return
            # The driver adapter's own switch, set for this checkout only: SQLAlchemy's
            # isolation_level option would redo the connection's characteristics at every
            # checkout and return, a cost per request.
            adapted: Any = (await conn.get_raw_connection()).dbapi_connection
            adapted.autocommit = True
            try:
                yield conn
            finally:
                adapted.autocommit = False

    def committed(self, store_id: int) -> None:
        for callback in list(self.on_commit):
            callback(store_id)

    def lock_held(self, seconds: float) -> None:
        for callback in list(self.on_lock_held):
            callback(seconds)

    async def dispose(self) -> None:
        await self.engine.dispose()


# A pooled connection idle for longer than this is pinged before use (a restart of the
# server is then the likeliest time it died); busy connections never are.
PING_AFTER_IDLE_SECONDS = 5.0


def _idle_from(_dbapi_connection: Any, record: Any) -> None:
    if record is not None:
        record.info["idle_since"] = time.monotonic()


def _skip_closed(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """At checkout, without a round trip for a busy connection: one the server closed (a
    restart, a terminated backend) is known closed to the driver once the event loop read
    the close, and the pool then drops it and every connection made before it. One idle
    for a while is pinged first."""
    driver = getattr(dbapi_connection, "_connection", None)
    if driver is not None and driver.is_closed():
        raise InvalidatePoolError("the server closed this connection")
    idle_since = record.info.get("idle_since")
    if idle_since is not None and time.monotonic() - idle_since > PING_AFTER_IDLE_SECONDS:
        try:
            dbapi_connection.ping()
        except Exception as err:
            raise InvalidatePoolError("the connection failed its ping") from err


def _configure_sqlite(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(conn.get_execution_options().get("sqlite_begin", "BEGIN"))


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

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection]:
        async with self._slot(), self.shared.connection() as conn:
            yield conn

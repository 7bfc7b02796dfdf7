"""Engines for the two backends: SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

T = TypeVar("T")


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
            # No ping per checkout (three round trips with asyncpg): see _skip_closed. The
            # most recently returned connection is handed out first (LIFO): its prepared
            # statements are warm (a statement's first use on a connection is parsed and
            # planned again), and when traffic is light the others stay idle.
            kwargs.update(
                pool_size=pool_size,
                max_overflow=pool_size,
                pool_pre_ping=False,
                pool_use_lifo=True,
            )
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        if not self.is_sqlite:
            event.listen(self.engine.sync_engine, "checkin", _idle_from)
            event.listen(self.engine.sync_engine, "checkout", _skip_closed)
        # SQLite allows one writer at a time: writers in this process queue here
        # instead of failing with "database is locked".
        self._write_lock = asyncio.Lock()
        # Called with a store id after a change to that store has committed.
        self.on_commit: list[Callable[[int], None]] = []
        # Called with a store id after a webhook subscription of that store was created or
        # changed (resumed, redelivered...): the delivery worker looks at once.
        self.on_webhooks_changed: list[Callable[[int], None]] = []
        # Called with the seconds a unit of work held a store's lock (the metrics).
        self.on_lock_held: list[Callable[[float], None]] = []
        # Writers take SQLite's write lock when they begin (BEGIN IMMEDIATE), so a
        # writer in another process waits for it (busy_timeout) instead of failing
        # with "database is locked" when it upgrades a read transaction.
        self._writer: AsyncEngine = self.engine
        # SQLite on a file: a store's unit of work runs its statements on a thread of its
        # own with a synchronous connection (storage/sqlite_unit.py); None in memory.
        self.sqlite_writer: SqliteWriter | None = None
        if self.is_sqlite:
            _configure_sqlite(self.engine.sync_engine)
            self._writer = self.engine.execution_options(sqlite_begin="BEGIN IMMEDIATE")
            if make_url(self.url).database not in (None, "", ":memory:"):
                self.sqlite_writer = SqliteWriter(self.url)

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
    async def writer_thread(self) -> AsyncIterator[SqliteWriter]:
        """SQLite on a file: this process's writer lock (the one `write` takes), held for
        the block, and the thread and connection that write under it."""
        if self.sqlite_writer is None:
            raise RuntimeError("no writer thread: PostgreSQL, or SQLite in memory")
        async with self._write_lock:
            yield self.sqlite_writer

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
            adapted: Any = (await pooled(conn)).dbapi_connection
            adapted.autocommit = True
            try:
                yield conn
            finally:
                adapted.autocommit = False

    def committed(self, store_id: int) -> None:
        for callback in list(self.on_commit):
            callback(store_id)

    def webhooks_changed(self, store_id: int) -> None:
        for callback in list(self.on_webhooks_changed):
            callback(store_id)

    def lock_held(self, seconds: float) -> None:
        for callback in list(self.on_lock_held):
            callback(seconds)

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.sqlite_writer is not None:
            await self.sqlite_writer.dispose()


async def pooled(conn: AsyncConnection) -> Any:
    """The pooled connection under `conn` (`dbapi_connection`: the driver adapter;
    `driver_connection`: asyncpg's). A connection just checked out holds it already, so
    it is read as is, with no hand-over to a greenlet (SQLAlchemy's `get_raw_connection`
    makes one each call, in case the connection must be made again); one invalidated
    meanwhile goes SQLAlchemy's way."""
    sync = conn.sync_connection
    if sync is None or sync.invalidated or sync.closed:
        return await conn.get_raw_connection()
    return sync.connection


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


def _configure_sqlite(sync_engine: Engine) -> None:
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


class SqliteWriter:
    """SQLite's writing side of one process: one thread with a synchronous connection.

    The driver of the async engine (aiosqlite) runs every call on a thread of the
    connection's own and wakes the event loop with its result: three or four hand-overs
    per statement, some forty per unit of work, which cost more than SQLite's work. Here
    a unit of work hands its statements over in a few batches (`call`): its opening
    (BEGIN IMMEDIATE and the first reads), then all its writes and COMMIT. SQLite's wait
    for the write lock (`busy_timeout`, another process writing) happens on this thread,
    never on the event loop's.

    One thread, so its calls run in the order they were made: a rollback submitted after
    a call whose caller was cancelled runs once that call has finished, and before any
    call of a later unit. Units of a process take turns anyway (`Database.writer_thread`,
    the writer lock). `handovers` counts the calls (a test's budget).
    """

    def __init__(self, url: str) -> None:
        sync_url = make_url(url).set(drivername="sqlite+pysqlite")
        self.engine: Engine = create_engine(
            sync_url,
            hide_parameters=True,
            # The connection is made on this thread and used only there; close() at
            # dispose may come from another.
            connect_args={"timeout": 30, "check_same_thread": False},
            pool_size=1,
            max_overflow=0,
        )
        _configure_sqlite(self.engine)
        self._writer = self.engine.execution_options(sqlite_begin="BEGIN IMMEDIATE")
        self._thread: ThreadPoolExecutor | None = None
        self._thread_id: int | None = None
        self._here = False  # `on_caller_thread`
        self.handovers = 0

    def connect(self) -> Connection:
        """A connection whose transactions begin with BEGIN IMMEDIATE (in the thread)."""
        return self._writer.connect()

    def in_thread(self) -> bool:
        """Whether the caller is where the writer's calls run."""
        return self._here or self._thread_id == threading.get_ident()

    @contextmanager
    def on_caller_thread(self) -> Iterator[None]:
        """Within the block, calls run on the caller's thread (the event loop's), with no
        hand-over: for a process that does nothing else meanwhile, such as seeding the
        demo, where hand-overs would be most of the time. A wait for another process's
        writer then blocks that thread. Enter it with no unit of work open."""
        self._here = True
        try:
            yield
        finally:
            self._here = False

    def _started(self) -> None:
        self._thread_id = threading.get_ident()

    def _executor(self) -> ThreadPoolExecutor:
        if self._thread is None:
            self._thread = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="ordergraph-sqlite", initializer=self._started
            )
        return self._thread

    async def call(self, fn: Callable[[], T]) -> T:
        """`fn()` on the writer thread: one hand-over there and back. A caller cancelled
        before the call has begun drops it; once begun, it runs to its end."""
        if self._here:
            return fn()
        self.handovers += 1
        return await asyncio.get_running_loop().run_in_executor(self._executor(), fn)

    def submit(self, fn: Callable[[], None]) -> None:
        """`fn()` on the writer thread after the calls already made; nobody waits for it."""
        if self._here:
            fn()
            return
        self.handovers += 1
        self._executor().submit(fn)

    async def dispose(self) -> None:
        """Close the connection and end the thread (a later call starts another)."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        await asyncio.get_running_loop().run_in_executor(thread, self.engine.dispose)
        thread.shutdown(wait=False)


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
    async def writer_thread(self) -> AsyncIterator[SqliteWriter]:
        async with self._slot(), self.shared.writer_thread() as writer:
            yield writer

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection]:
        async with self._slot(), self.shared.connection() as conn:
            yield conn

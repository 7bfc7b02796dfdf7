"""API keys for one server process: a short lookup cache, the open websockets and live
subscriptions of each key, and a watcher that ends the sockets of revoked keys.

- Token lookups: each request resolves its token once; the key record found for a token
  hash (or that none was found) is kept `cache_seconds` (at most MAX_CACHE_SECONDS), and
  concurrent lookups of one token share one query.
- Open websockets and live subscriptions per key are counted in this process; over the
  limits a socket is refused (close 4429) and a subscription gets a THROTTLED error.
- While sockets are open, one query every `check_seconds` asks the database which of their
  keys were revoked (by any process: the API, `ordergraph revoke-key`); those sockets are
  closed with 4403. A revocation through this process's API closes them at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

from ordergraph.domain.reads import KeyRecord
from ordergraph.storage import queries
from ordergraph.storage.db import Database

log = logging.getLogger("ordergraph.keys")
MAX_CACHE_SECONDS = 5.0
REVOKED_CLOSE_CODE = 4403
MAX_CACHED_TOKENS = 10_000

Closer = Callable[[int, str], Awaitable[None]]


class SubscriptionLimitReached(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"this key already has {limit} live subscriptions (the limit)")
        self.limit = limit


@dataclass(eq=False)
class OpenSocket:
    """One accepted websocket of a key; `close` ends it with a code and a reason."""

    key_id: int
    close: Closer
    closed: bool = field(default=False)


class KeyGuard:
    def __init__(
        self,
        db: Database,
        *,
        cache_seconds: float = 2.0,
        check_seconds: float = 2.0,
        max_websockets: int = 50,
        max_subscriptions: int = 500,
    ) -> None:
        self.db = db
        self.cache_seconds = max(0.0, min(float(cache_seconds), MAX_CACHE_SECONDS))
        self.check_seconds = max(0.05, float(check_seconds))
        self.max_websockets = max_websockets
        self.max_subscriptions = max_subscriptions
        self._cache: dict[str, tuple[float, KeyRecord | None]] = {}
        self._inflight: dict[str, asyncio.Future[KeyRecord | None]] = {}
        self._sockets: dict[int, set[OpenSocket]] = {}
        self._subscriptions: dict[int, int] = {}
        self._watcher: asyncio.Task[None] | None = None
        self.lookups = 0  # database lookups made (for tests and metrics)
        self.checks = 0  # revocation checks made

    # -- tokens ---------------------------------------------------------------

    def cached(self, token_hash: str) -> tuple[bool, KeyRecord | None]:
        """(True, the key or None) when the short cache holds this token hash still;
        (False, None) when only a lookup can tell."""
        cached = self._cache.get(token_hash)
        if cached is not None and cached[0] > time.monotonic():
            return True, cached[1]
        return False, None

    async def key_for(self, token_hash: str) -> KeyRecord | None:
        """The live key with this token hash, or None; through the short cache."""
        hit, key = self.cached(token_hash)
        if hit:
            return key
        pending = self._inflight.get(token_hash)
        if pending is None:
            pending = asyncio.ensure_future(self._lookup(token_hash))
            self._inflight[token_hash] = pending
            pending.add_done_callback(lambda _: self._inflight.pop(token_hash, None))
        return await asyncio.shield(pending)

    async def _lookup(self, token_hash: str) -> KeyRecord | None:
        self.lookups += 1
        async with self.db.read() as conn:
            key = await queries.api_key_by_token_hash(conn, token_hash)
        if self.cache_seconds > 0:
            if len(self._cache) >= MAX_CACHED_TOKENS:
                self._prune()
            self._cache[token_hash] = (time.monotonic() + self.cache_seconds, key)
        return key

    def _prune(self) -> None:
        now = time.monotonic()
        for token_hash in [h for h, (until, _) in self._cache.items() if until <= now]:
            del self._cache[token_hash]
        while len(self._cache) >= MAX_CACHED_TOKENS:  # the oldest first
            del self._cache[next(iter(self._cache))]

    def forget(self, key_id: int) -> None:
        """Drop what is cached for this key (it was revoked)."""
        for token_hash in [
            h for h, (_, key) in self._cache.items() if key is not None and key.id == key_id
        ]:
            del self._cache[token_hash]

    def revoked(self, key_id: int) -> None:
        """This process revoked the key: forget it and close its sockets now."""
        self.forget(key_id)
        self._close_all(key_id)

    # -- sockets and subscriptions -------------------------------------------

    def open_socket(self, key_id: int, close: Closer) -> OpenSocket | None:
        """Count an accepted websocket of the key; None when the key has too many."""
        sockets = self._sockets.setdefault(key_id, set())
        if len(sockets) >= self.max_websockets:
            if not sockets:
                del self._sockets[key_id]
            return None
        socket = OpenSocket(key_id, close)
        sockets.add(socket)
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.get_running_loop().create_task(self._watch())
        return socket

    def close_socket(self, socket: OpenSocket) -> None:
        sockets = self._sockets.get(socket.key_id)
        if sockets is None:
            return
        sockets.discard(socket)
        if not sockets:
            del self._sockets[socket.key_id]

    def open_sockets(self, key_id: int | None = None) -> int:
        if key_id is not None:
            return len(self._sockets.get(key_id, ()))
        return sum(len(s) for s in self._sockets.values())

    def hold_subscription(self, key_id: int) -> None:
        held = self._subscriptions.get(key_id, 0)
        if held >= self.max_subscriptions:
            raise SubscriptionLimitReached(self.max_subscriptions)
        self._subscriptions[key_id] = held + 1

    def release_subscription(self, key_id: int) -> None:
        held = self._subscriptions.get(key_id, 0) - 1
        if held > 0:
            self._subscriptions[key_id] = held
        else:
            self._subscriptions.pop(key_id, None)

    def live_subscriptions(self, key_id: int) -> int:
        return self._subscriptions.get(key_id, 0)

    @contextlib.contextmanager
    def subscription(self, key_id: int) -> Iterator[None]:
        self.hold_subscription(key_id)
        try:
            yield
        finally:
            self.release_subscription(key_id)

    # -- the watcher ------------------------------------------------------------

    async def _watch(self) -> None:
        """While sockets are open: which of their keys were revoked, in one query."""
        while self._sockets:
            await asyncio.sleep(self.check_seconds)
            keys = list(self._sockets)
            if not keys:
                break
            try:
                async with self.db.read() as conn:
                    gone = await queries.revoked_key_ids(conn, keys)
            except Exception:  # the database is away for a moment: try again next time
                log.warning("could not check the keys of open websockets", exc_info=True)
                continue
            self.checks += 1
            for key_id in gone:
                log.info("api key %s was revoked: closing its websockets", key_id)
                self.forget(key_id)
                self._close_all(key_id)

    def _close_all(self, key_id: int) -> None:
        for socket in list(self._sockets.pop(key_id, ())):
            if socket.closed:
                continue
            socket.closed = True
            task = asyncio.get_running_loop().create_task(
                _quietly(socket.close(REVOKED_CLOSE_CODE, "API key revoked"))
            )
            _closing.add(task)
            task.add_done_callback(_closing.discard)

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(BaseException):
                await self._watcher
            self._watcher = None


_closing: set[asyncio.Task[None]] = set()


async def _quietly(closing: Awaitable[None]) -> None:
    with contextlib.suppress(Exception):
        await closing

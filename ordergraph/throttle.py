"""Rate limits: a leaky bucket of cost points per API key, and one of requests per
client address for requests without a valid token.

A key's bucket holds at most `capacity` points and drains at `restore` points a second;
an operation is let in when its requested cost (schema.cost) still fits, and is charged
that cost before it runs. Over it: THROTTLED, with the seconds until it would fit.

Every process keeps its buckets in memory and charges them there: no database round
trip per request. On PostgreSQL a process also reconciles the buckets it used with the
shared `rate_buckets` table about once a second (storage.buckets), in one statement:
its new charges go in, the level every process has charged comes back. So N processes
admit about one bucket's worth, not N (an approximation: between two reconciliations
each process can spend what it sees as available). On SQLite (one process) the
buckets are local only.

Requests without a token, and with a token that does not check out, are counted per
client address (`anonymous_requests_per_minute`, in this process). When an address has
used them up, its requests carrying an unknown token are refused before the token is
looked up, so guessing tokens is slowed to that pace; tokens that checked out in this
process recently are still let through.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from ordergraph.domain.reads import KeyRecord
from ordergraph.resolvers.context import ApiError, Context
from ordergraph.settings import Settings
from ordergraph.storage import buckets
from ordergraph.storage.db import Database

log = logging.getLogger("ordergraph.throttle")
RECONCILE_SECONDS = 1.0
IDLE_SECONDS = 60.0
SYNC_IDLE_SECONDS = 5.0
#: What a request refused for its cost is charged (its parsing, checking and answer),
#: and how long its answer waits: a client looping on refused requests is slowed to a
#: couple a second per connection instead of costing the server a request's work each.
REFUSAL_POINTS = 10.0
REFUSAL_PAUSE_SECONDS = 0.5
#: A THROTTLED answer waits this share of the time until the points would fit, at most
#: TARPIT_SECONDS.
TARPIT_SHARE = 0.5
TARPIT_SECONDS = 1.0
KNOWN_TOKENS = 10_000
MAX_LOCAL_ADDRESSES = 100_000


@dataclass
class Bucket:
    """A leaky bucket: `level` points in it at monotonic time `at`, draining at `rate`/s."""

    capacity: float
    rate: float
    level: float = 0.0
    at: float = 0.0
    unsynced: float = 0.0
    used_at: float = 0.0
    synced: bool = False

    def drain(self, now: float) -> None:
        if now > self.at:
            self.level = max(0.0, self.level - (now - self.at) * self.rate)
            self.at = now

    def available(self, now: float) -> float:
        self.drain(now)
        return max(0.0, self.capacity - self.level)

    def charge(self, points: float, now: float) -> float | None:
        """Charge `points` if they fit and return None; else the seconds until they would."""
        self.drain(now)
        self.used_at = now
        if self.level + points > self.capacity:
            return (self.level + points - self.capacity) / self.rate
        self.level += points
        self.unsynced += points
        return None

    def wait_for(self, points: float, now: float) -> float:
        """Seconds until `points` fit (0 when they do now)."""
        self.drain(now)
        return max(0.0, (self.level + points - self.capacity) / self.rate)

    def status(self, now: float) -> dict[str, Any]:
        return {
            "maximumAvailable": int(self.capacity),
            "currentlyAvailable": math.floor(self.available(now)),
            "restoreRate": self.rate,
        }


@dataclass
class ThrottleSettings:
    max_cost: int = 1000
    capacity: int = 5000
    restore_per_second: int = 250
    anonymous_per_minute: int = 60
    heavy_cost: int = 100
    heavy_per_key: int = 1


def throttle_settings(settings: Settings) -> ThrottleSettings:
    return ThrottleSettings(
        max_cost=settings.max_cost,
        capacity=settings.rate_limit_capacity,
        restore_per_second=settings.rate_limit_restore_per_second,
        anonymous_per_minute=settings.anonymous_requests_per_minute,
        heavy_cost=settings.heavy_operation_cost,
        heavy_per_key=settings.max_heavy_operations_per_key,
    )


@dataclass
class Throttle:
    settings: ThrottleSettings
    db: Database | None = None
    clock: Callable[[], float] = time.monotonic
    keys: dict[tuple[int, int], Bucket] = field(default_factory=dict)
    addresses: OrderedDict[str, Bucket] = field(default_factory=OrderedDict)
    known_tokens: OrderedDict[str, None] = field(default_factory=OrderedDict)
    heavy: dict[int, tuple[asyncio.Semaphore, list[int]]] = field(default_factory=dict)
    _syncer: asyncio.Task[None] | None = None
    _timer: asyncio.TimerHandle | None = None
    _last_prune: float = 0.0

    @property
    def shared(self) -> bool:
        return self.db is not None and not self.db.is_sqlite

    def key_bucket(self, key: tuple[int, int]) -> Bucket:
        bucket = self.keys.get(key)
        if bucket is None:
            s = self.settings
            bucket = Bucket(float(s.capacity), float(s.restore_per_second), at=self.clock())
            self.keys[key] = bucket
        return bucket

    def address_bucket(self, address: str) -> Bucket:
        bucket = self.addresses.get(address)
        if bucket is None:
            per_minute = float(self.settings.anonymous_per_minute)
            bucket = Bucket(per_minute, per_minute / 60.0, at=self.clock())
            self.addresses[address] = bucket
            while len(self.addresses) > MAX_LOCAL_ADDRESSES:
                self.addresses.popitem(last=False)
        else:
            self.addresses.move_to_end(address)
        return bucket

    async def admit(self, context: Any, requested: int) -> dict[str, Any] | None:
        """Let the operation in (returning the throttle status for extensions.cost) or
        raise ApiError MAX_COST_EXCEEDED / THROTTLED. `context` is the request's Context."""
        now = self.clock()
        if not isinstance(context, Context):
            return None
        token = _token(context.authorization)
        address = _address(context)
        guard = self.address_bucket(address)
        admin = context.admin_token is not None and token == _digest(context.admin_token)
        unknown = token is not None and not admin and token not in self.known_tokens
        if unknown and guard.available(now) < 1:
            raise await self._refuse(guard, 1.0)
        who = await context.principal()
        now = self.clock()
        if who.is_admin:
            self._check_cost(requested, None)
            return None
        if who.key is None or not who.key.store_ids:
            # No token, or one that did not check out: one request off the address.
            if guard.charge(1, now) is not None:
                raise await self._refuse(guard, 1.0)
            self._check_cost(requested, guard.status(now))
            return guard.status(now)
        if token is not None:
            self._remember(token)
        bucket = self.key_bucket((min(who.key.store_ids), who.key.id))
        self._sync_soon()
        if requested > self.settings.max_cost:
            # Refused, but not free: the request itself is charged, so a flood of
            # refusals runs the bucket dry like any other.
            if bucket.charge(min(REFUSAL_POINTS, bucket.capacity), now) is not None:
                raise await self._refuse(bucket, REFUSAL_POINTS)
            await asyncio.sleep(REFUSAL_PAUSE_SECONDS)
            self._check_cost(requested, bucket.status(self.clock()))
        if bucket.charge(float(requested), now) is not None:
            raise await self._refuse(bucket, float(requested))
        return bucket.status(now)

    # -- bulk export (ordergraph/app/export.py) ---------------------------------------

    def charge_key(self, key: KeyRecord, points: float) -> float | None:
        """Charge `points` (at most the bucket's capacity) to the key's bucket if they
        fit and return None; else the seconds until they would."""
        bucket = self.key_bucket((min(key.store_ids), key.id))
        self._sync_soon()
        return bucket.charge(min(points, bucket.capacity), self.clock())

    async def spend(self, key: KeyRecord, points: float) -> float:
        """Charge `points` to the key's bucket, waiting until they fit; the seconds waited."""
        waited = 0.0
        while (wait := self.charge_key(key, points)) is not None:
            pause = max(wait, 0.01)
            await asyncio.sleep(pause)
            waited += pause
        return waited

    def key_status(self, key: KeyRecord) -> dict[str, Any]:
        return self.key_bucket((min(key.store_ids), key.id)).status(self.clock())

    async def _refuse(self, bucket: Bucket, points: float) -> ApiError:
        """THROTTLED, answered after a pause (at most TARPIT_SECONDS, never past the
        time the points would fit): a client that ignores Retry-After and asks again at
        once is slowed to a few requests a second per connection instead of costing the
        server a request's work each time."""
        wait = bucket.wait_for(points, self.clock())
        await asyncio.sleep(min(wait * TARPIT_SHARE, TARPIT_SECONDS))
        now = self.clock()
        return _throttled(bucket.wait_for(points, now), bucket.status(now))

    @asynccontextmanager
    async def running(self, context: Any, requested: int) -> AsyncIterator[None]:
        """Hold one of the key's slots for heavy operations while this one runs.

        A key's operations costing `heavy_cost` or more run at most `heavy_per_key` at a
        time in a process; the others wait their turn (already charged). The event loop
        then interleaves one heavy operation of a key with everyone else's work, not a
        burst of them: other keys keep their latency.
        """
        principal = getattr(context, "known_principal", None)
        key = getattr(principal, "key", None)
        if key is None or requested < self.settings.heavy_cost:
            yield
            return
        slot = self.heavy.get(key.id)
        if slot is None:
            slot = self.heavy[key.id] = (asyncio.Semaphore(self.settings.heavy_per_key), [0])
        semaphore, users = slot
        users[0] += 1
        try:
            async with semaphore:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                self.heavy.pop(key.id, None)

    def _check_cost(self, requested: int, status: dict[str, Any] | None) -> None:
        limit = self.settings.max_cost
        if requested > limit:
            error = ApiError(
                f"this operation would cost {requested} points; the limit is {limit}",
                "MAX_COST_EXCEEDED",
                cost=requested,
                maxCost=limit,
            )
            error.throttle_status = status  # type: ignore[attr-defined]
            raise error

    def _remember(self, token: str) -> None:
        self.known_tokens[token] = None
        self.known_tokens.move_to_end(token)
        while len(self.known_tokens) > KNOWN_TOKENS:
            self.known_tokens.popitem(last=False)

    # -- sharing through PostgreSQL ------------------------------------------------

    def _sync_soon(self) -> None:
        """Arm the next reconciliation, about a second from now, unless one is armed or
        running (a timer, not a sleeping task: nothing is left pending when the loop
        closes without the app's shutdown)."""
        if not self.shared or self._timer is not None:
            return
        if self._syncer is not None and not self._syncer.done():
            return
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(RECONCILE_SECONDS, self._fire, loop)

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        if not loop.is_closed():
            self._syncer = loop.create_task(self._sync_once())

    async def _sync_once(self) -> None:
        try:
            await self.reconcile()
        except Exception as err:  # the database is away: keep limiting locally
            log.warning("rate limits: reconciling with the database failed: %s", err)
        now = self.clock()
        self._syncer = None
        if any(now - b.used_at < SYNC_IDLE_SECONDS or b.unsynced for b in self.keys.values()):
            self._sync_soon()

    async def reconcile(self) -> None:
        """One round trip: send the charges since the last one, take the shared levels."""
        assert self.db is not None
        now = self.clock()
        recent = {
            key: b for key, b in self.keys.items() if b.unsynced or now - b.used_at < IDLE_SECONDS
        }
        # A bucket's first time out: its level (its charges less what leaked here since),
        # as the shared level only leaks from when it is written.
        for b in recent.values():
            b.drain(now)
        sent = {key: (b.unsynced if b.synced else b.level) for key, b in recent.items()}
        charged = {key: b.unsynced for key, b in recent.items()}
        rate = float(self.settings.restore_per_second)
        # Each statement commits on its own (autocommit): one round trip each.
        async with self.db.connection() as conn:
            levels = await buckets.reconcile(conn, sent, rate)
            if now - self._last_prune > IDLE_SECONDS:
                self._last_prune = now
                await buckets.forget_empty(conn, rate)
        after = self.clock()
        for key, bucket in recent.items():
            shared = levels.get(key)
            if shared is None:
                continue
            bucket.unsynced -= charged[key]
            bucket.synced = True
            # The shared level includes what was sent; what was charged meanwhile is added.
            bucket.level = shared + bucket.unsynced
            bucket.at = after
        for key in [k for k, b in self.keys.items() if now - b.used_at >= IDLE_SECONDS]:
            if not self.keys[key].unsynced:
                del self.keys[key]

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._syncer is not None:
            self._syncer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._syncer


def _throttled(wait: float, status: dict[str, Any]) -> ApiError:
    seconds = round(max(wait, 0.001), 3)
    error = ApiError(
        f"rate limited: try again in {seconds} s", "THROTTLED", retryAfterSeconds=seconds
    )
    error.throttle_status = status  # type: ignore[attr-defined]
    return error


def _token(authorization: str | None) -> str | None:
    """A digest of the bearer token (never kept in the clear), or None without one."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return _digest(token.strip())


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _address(context: Context) -> str:
    client = getattr(context.request, "client", None)
    host = getattr(client, "host", None)
    return str(host) if host else "unknown"

"""A store's live figures, computed once per change for every subscriber in the process.

`backlogChanged` subscribers of one store share one *watch*: a task that follows the
store's log through the hub (one hub subscriber per store, not per client), lets a burst
of changes settle for COALESCE_SECONDS, then computes the figures once and hands the
same value to every subscriber. It also wakes at the next instant an open order becomes
overdue (the figures change then without any event: the overdue totals count orders
whose requested ship date has ended), so the push comes at that instant, not at the
next overdue sweep.

A subscriber that joins gets the current figures at once: the watch's last value if no
event was logged since it was computed, otherwise a new computation that every
subscriber joining meanwhile shares. Each subscriber holds only the latest value, so a
subscriber that reads slowly skips to the newest figures and is never cut off.

The computation is injected (`Compute`): in the server, `store_figures` below, three
index probes on one connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ordergraph.domain.tallies import Figures
from ordergraph.live.tail import last_seq
from ordergraph.storage import history
from ordergraph.storage.db import Database

log = logging.getLogger("ordergraph.live.figures")

COALESCE_SECONDS = 0.25
# The longest the watch sleeps without looking at the clock: the instant of the next
# overdue order is checked at least this often, so a clock that jumps (or a test's) is
# followed within this time.
RECHECK_SECONDS = 1.0


@dataclass(frozen=True)
class Computed:
    """The figures, the last log position they include, and when they next change by
    themselves (the next overdue instant; None: not before another event)."""

    seq: int
    figures: Figures
    next_change: dt.datetime | None


Compute = Callable[[int], Awaitable[Computed]]
LastSeq = Callable[[int], Awaitable[int]]


class Changes(Protocol):
    """What the feed needs of the hub: a queue per store that gets an item per change
    (None: it overflowed and gets no more)."""

    async def subscribe(self, store_id: int) -> _Queued: ...

    def unsubscribe(self, subscriber: Any) -> None: ...


class _Queued(Protocol):
    @property
    def queue(self) -> asyncio.Queue[Any]: ...


def store_figures(db: Database, clock: Callable[[], dt.datetime]) -> tuple[Compute, LastSeq]:
    """The server's computation of a store's figures now, and its log position."""

    async def compute(store_id: int) -> Computed:
        async with db.read() as conn:
            seq = await last_seq(conn, store_id)  # first: the figures include at least it
            now = clock()
            figures = await history.figures_now(conn, store_id, now)
            upcoming = await history.next_overdue_instant(conn, store_id, now)
        return Computed(seq, figures, upcoming)

    async def position(store_id: int) -> int:
        async with db.read() as conn:
            return await last_seq(conn, store_id)

    return compute, position


class _Listener:
    __slots__ = ("latest", "ready")

    def __init__(self) -> None:
        self.latest: Figures | None = None
        self.ready = asyncio.Event()

    def hand(self, figures: Figures) -> None:
        self.latest = figures
        self.ready.set()

    async def next(self) -> Figures:
        await self.ready.wait()
        self.ready.clear()
        assert self.latest is not None
        return self.latest


class _Watch:
    """One store's figures for every subscriber of it in this process."""

    def __init__(self, feed: FiguresFeed, store_id: int) -> None:
        self.feed = feed
        self.store_id = store_id
        self.listeners: set[_Listener] = set()
        self.current: Computed | None = None
        self._computing: asyncio.Task[Computed] | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"figures-watch-{self.store_id}")

    async def stop(self) -> None:
        for task in (self._task, self._computing):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def refresh(self) -> Computed:
        """Compute the figures once for everyone waiting now, and hand them out."""
        task = self._computing
        if task is None:
            task = self._computing = asyncio.create_task(self._compute())
            task.add_done_callback(self._computed)
        return await asyncio.shield(task)

    def _computed(self, task: asyncio.Task[Computed]) -> None:
        if self._computing is task:
            self._computing = None

    async def _compute(self) -> Computed:
        computed = await self.feed.compute(self.store_id)
        self.feed.computations += 1
        if self.current is None or computed.seq >= self.current.seq:
            self.current = computed
        for listener in list(self.listeners):
            listener.hand(computed.figures)
        return computed

    async def _stale(self) -> bool:
        current = self.current
        return current is None or current.seq < await self.feed.position(self.store_id)

    async def current_for_joiner(self) -> Figures:
        """The figures as of now for a new subscriber: the last value if no event was
        logged since it was computed, else a computation shared with the others (and
        another if the one shared had begun before the latest event)."""
        position = await self.feed.position(self.store_id)
        current = self.current
        if current is not None and current.seq >= position:
            return current.figures
        computed = await self.refresh()
        if computed.seq < position:
            computed = await self.refresh()
        return computed.figures

    def _timeout(self) -> float:
        upcoming = self.current.next_change if self.current is not None else None
        if upcoming is None:
            return RECHECK_SECONDS
        remaining = (upcoming - self.feed.clock()).total_seconds()
        return max(0.0, min(remaining, RECHECK_SECONDS))

    def _due(self) -> bool:
        upcoming = self.current.next_change if self.current is not None else None
        return upcoming is not None and self.feed.clock() >= upcoming

    async def _run(self) -> None:
        while True:
            try:
                await self._follow()
            except Exception:  # the database is away: try again shortly
                log.exception("following the figures of store %s failed", self.store_id)
                await asyncio.sleep(RECHECK_SECONDS)

    async def _follow(self) -> None:
        hub = self.feed.hub
        subscriber = await hub.subscribe(self.store_id)
        try:
            if await self._stale():  # an event may have come before the subscription
                await self.refresh()
            while True:
                try:
                    async with asyncio.timeout(self._timeout()):  # (no task per item)
                        item = await subscriber.queue.get()
                except TimeoutError:
                    if self._due():
                        await self.refresh()
                    continue
                await asyncio.sleep(self.feed.coalesce_seconds)  # let a burst settle
                overflowed = item is None
                while not subscriber.queue.empty():
                    overflowed = subscriber.queue.get_nowait() is None or overflowed
                if overflowed:  # more changes than the hub buffers: all the same here
                    hub.unsubscribe(subscriber)
                    subscriber = await hub.subscribe(self.store_id)
                await self.refresh()
        finally:
            hub.unsubscribe(subscriber)


class FiguresFeed:
    """Every store's live figures in this process (see the module's docstring)."""

    def __init__(
        self,
        hub: Changes,
        compute: Compute,
        position: LastSeq,
        clock: Callable[[], dt.datetime],
        coalesce_seconds: float = COALESCE_SECONDS,
    ) -> None:
        self.hub = hub
        self.compute = compute
        self.position = position
        self.clock = clock
        self.coalesce_seconds = coalesce_seconds
        self.computations = 0  # how many times figures were computed (for tests, metrics)
        self._watches: dict[int, _Watch] = {}

    @property
    def watched_stores(self) -> int:
        return len(self._watches)

    async def watch(self, store_id: int) -> AsyncGenerator[Figures]:
        """The store's figures now, then each time they change, until the caller stops."""
        watch = self._watches.get(store_id)
        if watch is None:
            watch = self._watches[store_id] = _Watch(self, store_id)
            watch.start()
        listener = _Listener()
        watch.listeners.add(listener)
        try:
            first = await watch.current_for_joiner()
            if listener.latest is first:  # handed out by the computation it waited for
                listener.ready.clear()
            yield first
            while True:
                yield await listener.next()
        finally:
            watch.listeners.discard(listener)
            if not watch.listeners and self._watches.get(store_id) is watch:
                del self._watches[store_id]
                await watch.stop()

    async def close(self) -> None:
        watches, self._watches = list(self._watches.values()), {}
        for watch in watches:
            await watch.stop()

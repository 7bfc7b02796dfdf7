"""The live tail of the event log, fanned out to this process's subscribers.

One pump per process reads each watched store's new events (`seq > last`) and
hands them to every subscriber of that store. It is woken at once by commits
in this process, by PostgreSQL NOTIFY for commits in other processes, and
polls as a fallback, so a lost notification or a killed listener connection
only delays delivery, never loses it: the log is the carrier, NOTIFY only a
wake-up. Subscribers replay from the log first and skip what they have seen,
so the seam between replay and live has no gap and no duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from ordergraph.domain.reads import EventRecord, LiveEvent
from ordergraph.live.tail import events_after, events_after_many, last_seq
from ordergraph.storage import queries
from ordergraph.storage.db import Database
from ordergraph.storage.notify import NOTIFY_CHANNEL

log = logging.getLogger("ordergraph.hub")
LISTENER_NAME = "ordergraph-listener"
# The pump offers an event to a store's subscribers this long at a time, looking at the
# clock every OFFER_CHECK_EVERY subscribers, then lets other work run.
OFFER_SLICE_SECONDS = 0.001
OFFER_CHECK_EVERY = 128


class SubscriberOverflow(Exception):
    """The subscriber fell too far behind; its connection is closed."""


class Subscriber:
    """One consumer's queue of a store's live events.

    With `streams`, events of other streams are passed over without being queued, so a
    subscriber of order events is not woken for inventory events. Each queued event comes
    with the position from which the pump offered events to this subscriber without a
    break up to it: the consumer knows the positions in between were passed over, not
    lost. None in the queue means the subscriber overflowed.

    A consumer may hand its events to a `sink` instead (see live.fanout): while it is
    set and nothing is queued, each event that follows the last one the consumer saw
    (`passed_upto`) goes to the sink, which delivers it (or passes over it) without
    waking the consumer; an event of another stream that follows on is passed over
    without asking the sink. The first event the sink cannot take, or that does not
    follow on, ends that for good: it and every later event are queued as usual, and the
    consumer, woken, carries on from `passed_upto`.
    """

    def __init__(
        self,
        store_id: int,
        buffer: int,
        streams: frozenset[str] | None = None,
        on_overflow: Callable[[], None] | None = None,
    ) -> None:
        self.store_id = store_id
        self.buffer = buffer
        self.streams = streams
        self.on_overflow = on_overflow
        self.queue: asyncio.Queue[tuple[LiveEvent, int] | None] = asyncio.Queue()
        self.overflowed = False
        self.sink: Callable[[LiveEvent], bool] | None = None
        self.passed_upto = -1
        self._last_offered = -1
        self._run_start = -1

    def offer(self, event: LiveEvent) -> None:
        if self.overflowed:
            return
        seq = event.record.seq
        if self.sink is not None:
            if seq == self.passed_upto + 1 and self.queue.empty() and self.passes_over(event):
                self.passed_upto = self._last_offered = seq
                self._run_start = seq + 1
                return
            if seq == self.passed_upto + 1 and self.queue.empty() and self.sink(event):
                self.passed_upto = self._last_offered = seq
                self._run_start = seq + 1
                return
            self.sink = None
        if seq != self._last_offered + 1:
            self._run_start = seq  # a break: positions before this one were not offered
        self._last_offered = seq
        if self.passes_over(event):
            return
        if self.queue.qsize() >= self.buffer:
            # Cut off at once: the consumer may be stuck sending to a client that stopped
            # reading, and would never come back to find the marker.
            self.cut_off()
            return
        self.queue.put_nowait((event, self._run_start))
        self._run_start = seq + 1

    def passes_over(self, event: LiveEvent) -> bool:
        """An event of another stream: not even a sink's business (a member's filter
        takes only its own stream's events)."""
        return self.streams is not None and event.record.stream not in self.streams

    def hand_to(self, sink: Callable[[LiveEvent], bool], delivered_upto: int) -> bool:
        """Send later events to `sink`; the consumer has seen up to `delivered_upto`.

        Only when nothing is queued: everything offered so far was then delivered or
        passed over (another stream). False when that does not hold.
        """
        if self.overflowed or not self.queue.empty():
            return False
        self.passed_upto = max(delivered_upto, self._last_offered)
        self.sink = sink
        return True

    def cut_off(self) -> None:
        """The consumer fell too far behind: drop what it will never be sent, end it."""
        if self.overflowed:
            return
        self.overflowed = True
        self.sink = None
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)
        if self.on_overflow is not None:
            self.on_overflow()


class EventHub:
    def __init__(
        self, db: Database, *, poll_seconds: float = 0.5, buffer: int = 1000, batch: int = 500
    ) -> None:
        self.db = db
        self.poll_seconds = poll_seconds
        self.buffer = buffer
        self.batch = batch
        self._subscribers: dict[int, set[Subscriber]] = {}
        self._positions: dict[int, int] = {}
        self._dirty: set[int] = set()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self.listener_connected = False
        self.last_pump_at = time.monotonic()
        # Called with the store id of each commit another process announced (NOTIFY),
        # or None when commits may have been missed (e.g. the listener reconnected).
        self.on_notify: list[Callable[[int | None], None]] = []

    # -- lifecycle ------------------------------------------------------------
    async def start(self) -> None:
        self.db.on_commit.append(self.wake)
        self._tasks.append(asyncio.create_task(self._pump_forever()))
        if not self.db.is_sqlite:
            self._tasks.append(asyncio.create_task(self._listen_forever()))

    async def stop(self) -> None:
        self._stopping = True
        if self.wake in self.db.on_commit:
            self.db.on_commit.remove(self.wake)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    @property
    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._subscribers.values())

    @property
    def sink_count(self) -> int:
        """Subscribers whose events go to a sink (a fan-out group) rather than a queue."""
        return sum(1 for subs in self._subscribers.values() for s in subs if s.sink is not None)

    def wake(self, store_id: int | None = None) -> None:
        """Something may have committed (for one store, or for any store when None). A
        commit in a store no one here watches wakes nothing: most commits, at most stores.
        (A subscriber that joins meanwhile is pumped once it has joined: `subscribe`.)"""
        if store_id is None:
            self._dirty.update(self._subscribers)
        elif store_id in self._subscribers:
            self._dirty.add(store_id)
        else:
            return
        self._wake.set()

    # -- subscribing ----------------------------------------------------------
    async def subscribe(
        self,
        store_id: int,
        *,
        streams: frozenset[str] | None = None,
        on_overflow: Callable[[], None] | None = None,
    ) -> Subscriber:
        subscriber = Subscriber(store_id, self.buffer, streams, on_overflow)
        if store_id not in self._positions:
            async with self.db.read() as conn:
                position = await last_seq(conn, store_id)
            self._positions.setdefault(store_id, position)
        self._subscribers.setdefault(store_id, set()).add(subscriber)
        # Commits made while the position was read woke nothing for this store (no one
        # watched it yet): the pump looks once now, from the position.
        self.wake(store_id)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        subs = self._subscribers.get(subscriber.store_id)
        if subs is None:
            return
        subs.discard(subscriber)
        if not subs:
            del self._subscribers[subscriber.store_id]
            self._positions.pop(subscriber.store_id, None)

    async def stream(
        self,
        store_id: int,
        after: int | None,
        *,
        streams: frozenset[str] | None = None,
        on_overflow: Callable[[], None] | None = None,
        on_subscribe: Callable[[Subscriber], None] | None = None,
    ) -> AsyncIterator[LiveEvent]:
        """Every event of the store after position `after` (None: from now on), in order,
        each once, then live until the consumer stops. With `streams`, live events of
        other streams are left out (replayed ones are not: the consumer filters too)."""
        subscriber = await self.subscribe(store_id, streams=streams, on_overflow=on_overflow)
        if on_subscribe is not None:
            on_subscribe(subscriber)
        try:
            if after is None:
                async with self.db.read() as conn:
                    after = await last_seq(conn, store_id)
            last = after
            async for event in self._read(store_id, last, None):
                last = event.record.seq
                yield event
            while True:
                item = await subscriber.queue.get()
                if item is None:
                    raise SubscriberOverflow(store_id)
                last = max(last, subscriber.passed_upto)  # what a sink delivered meanwhile
                event, run_start = item
                seq = event.record.seq
                if seq <= last:
                    continue  # already delivered by the replay
                # Positions are gapless per store; those from run_start on were passed over
                # as other streams. Anything between `last` and them is fetched.
                if run_start > last + 1:
                    async for missing in self._read(store_id, last, run_start - 1):
                        last = missing.record.seq
                        yield missing
                yield event
                last = seq
        finally:
            self.unsubscribe(subscriber)

    async def _read(self, store_id: int, after: int, upto: int | None) -> AsyncIterator[LiveEvent]:
        while True:
            async with self.db.read() as conn:
                records = await events_after(conn, store_id, after, self.batch)
                if upto is not None:
                    records = [r for r in records if r.seq <= upto]
                events = await _enrich(conn, records)
            for event in events:
                after = event.record.seq
                yield event
            if len(records) < self.batch or (upto is not None and after >= upto):
                return

    # -- the pump ---------------------------------------------------------------
    async def _pump_forever(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                # (a timeout scope, not wait_for: no task made for every wake-up)
                async with asyncio.timeout(self.poll_seconds):
                    await self._wake.wait()
            self._wake.clear()
            woken = self._dirty or set(self._subscribers)
            self._dirty = set()
            try:
                await self._pump(woken)
            except Exception:
                log.exception("reading the event log failed; retrying")
                self._dirty.update(woken)
                await asyncio.sleep(self.poll_seconds)

    async def _pump(self, stores: set[int]) -> None:
        self.last_pump_at = time.monotonic()
        positions = {s: self._positions[s] for s in stores if s in self._positions}
        while positions:
            async with self.db.read() as conn:
                records = await events_after_many(conn, positions, self.batch)
                events = await _enrich(conn, records, live=True)
            await self._offer(events)
            if len(records) < self.batch:
                return
            positions = {s: self._positions[s] for s in positions if s in self._positions}

    async def _offer(self, events: list[LiveEvent]) -> None:
        """Offer each event to every subscriber of its store, in slices of
        OFFER_SLICE_SECONDS that let other work run: at thousands of subscribers one event
        takes 10-20 ms, and a request waiting for the loop would wait that long
        (docs/fanout-benchmark.md).

        Each subscriber still gets every event in log order: the next event is offered
        only when every subscriber has been offered this one. One that subscribes
        meanwhile finds the event in the log (its stream reads the log first), and one
        that leaves meanwhile is offered it in vain.
        """
        loop = asyncio.get_running_loop()
        until = loop.time() + OFFER_SLICE_SECONDS
        done = 0
        for event in events:
            store_id = event.record.store_id
            if store_id not in self._positions:
                continue  # no one watches the store any more
            self._positions[store_id] = max(self._positions[store_id], event.record.seq)
            for subscriber in list(self._subscribers.get(store_id, ())):
                subscriber.offer(event)
                done += 1
                if not done % OFFER_CHECK_EVERY and loop.time() > until:
                    await asyncio.sleep(0)
                    until = loop.time() + OFFER_SLICE_SECONDS

    # -- PostgreSQL wake-ups ----------------------------------------------------
    async def _listen_forever(self) -> None:
        url = make_url(self.db.url).set(drivername="postgresql")
        dsn = url.render_as_string(hide_password=False)
        while not self._stopping:
            lost = asyncio.Event()
            try:
                conn = await asyncpg.connect(
                    dsn, server_settings={"application_name": LISTENER_NAME}
                )
            except (OSError, asyncpg.PostgresError) as err:
                log.warning("cannot listen for commits (%s); polling meanwhile", err)
                await asyncio.sleep(1)
                continue
            try:
                conn.add_termination_listener(_setter(lost))
                await conn.add_listener(NOTIFY_CHANNEL, self._on_notify)
                self.listener_connected = True
                self.wake(None)  # catch up on anything committed while not listening
                while not lost.is_set() and not conn.is_closed():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), timeout=5)
                    if not lost.is_set():
                        try:
                            await asyncio.wait_for(conn.execute("SELECT 1"), timeout=5)
                        except (OSError, asyncpg.PostgresError, TimeoutError):
                            break
            except (OSError, asyncpg.PostgresError) as err:
                log.warning("commit listener failed (%s); reconnecting", err)
            finally:
                self.listener_connected = False
                with contextlib.suppress(Exception):
                    await conn.close(timeout=2)
            if not self._stopping:
                log.warning("commit listener connection lost; reconnecting")
                self.wake(None)
                await asyncio.sleep(0.2)

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        store, _, _ = payload.partition(":")
        try:
            store_id: int | None = int(store)
        except ValueError:
            store_id = None
        self.wake(store_id)
        for listener in self.on_notify:
            listener(store_id)

    # -- observability (read-only) ----------------------------------------------
    async def tail_lag(self, now: Any) -> float:
        """Seconds between `now` and the oldest committed event of a watched store that
        the pump has not yet read (and so not yet handed to subscribers); 0 when it is
        caught up or no store is watched. Events carry the writer's clock, so `now`
        should come from the same clock."""
        from sqlalchemy import and_, func, or_, select

        from ordergraph.storage import tables as t

        positions = dict(self._positions)
        if not positions:
            return 0.0
        e = t.events
        behind = or_(*(and_(e.c.store_id == s, e.c.seq > p) for s, p in positions.items()))
        async with self.db.read() as conn:
            oldest = (await conn.execute(select(func.min(e.c.occurred_at)).where(behind))).scalar()
        if oldest is None:
            return 0.0
        return max(0.0, float((now - oldest).total_seconds()))


async def _enrich(conn: Any, records: list[EventRecord], *, live: bool = False) -> list[LiveEvent]:
    """Load the orders and products the events name, once per batch."""
    order_keys = {(r.store_id, r.order_id) for r in records if r.order_id is not None}
    product_keys = {(r.store_id, r.product_id) for r in records if r.product_id is not None}
    orders = await queries.orders_by_id(conn, order_keys) if order_keys else {}
    products = await queries.products_by_id(conn, product_keys) if product_keys else {}
    return [
        LiveEvent(
            record=r,
            order=orders.get((r.store_id, r.order_id)) if r.order_id is not None else None,
            product=(
                products.get((r.store_id, r.product_id)) if r.product_id is not None else None
            ),
            live=live,
        )
        for r in records
    ]


def _setter(event: asyncio.Event) -> Any:
    return lambda _conn: event.set()

"""The live figures feed (live/figures.py) with a fake log and a fake computation.

Each test drives the feed as the backlogChanged subscriptions do (one `watch` per
subscriber) and counts how often the figures are computed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable
from typing import Any

from ordergraph.domain.tallies import Contribution, Figures, Tally, figures
from ordergraph.live.figures import Computed, FiguresFeed

START = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)


class FakeLog:
    """A store's log: `append` logs a change and offers it to the subscribers' queues."""

    def __init__(self, buffer: int = 1000) -> None:
        self.seq = 0
        self.buffer = buffer
        self.queues: list[asyncio.Queue[Any]] = []
        self.subscriptions = 0

    class _Sub:
        def __init__(self, queue: asyncio.Queue[Any]) -> None:
            self.queue = queue

    async def subscribe(self, store_id: int) -> FakeLog._Sub:
        self.subscriptions += 1
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self.queues.append(queue)
        return FakeLog._Sub(queue)

    def unsubscribe(self, subscriber: Any) -> None:
        if subscriber.queue in self.queues:
            self.queues.remove(subscriber.queue)

    def append(self) -> None:
        self.seq += 1
        for queue in self.queues:
            if queue.qsize() >= self.buffer:
                queue.put_nowait(None)  # overflowed
            else:
                queue.put_nowait(self.seq)

    @property
    def listening(self) -> int:
        return len(self.queues)


def _figures(orders: int, at: dt.datetime) -> Figures:
    totals = Contribution(backlog=Tally(orders=orders, units=orders))
    return figures(at, totals, Contribution(), None)


class Fixture:
    def __init__(self, clock: Callable[[], dt.datetime], next_change: dt.datetime | None) -> None:
        self.log = FakeLog()
        self.clock = clock
        self.next_change = next_change
        self.feed = FiguresFeed(self.log, self.compute, self.position, clock, coalesce_seconds=0.05)

    async def compute(self, store_id: int) -> Computed:
        await asyncio.sleep(0)  # a database call
        upcoming = self.next_change
        if upcoming is not None and self.clock() >= upcoming:
            upcoming = None
        return Computed(self.log.seq, _figures(self.log.seq, self.clock()), upcoming)

    async def position(self, store_id: int) -> int:
        return self.log.seq


def _frozen() -> Callable[[], dt.datetime]:
    return lambda: START


async def _collect(watch: AsyncIterator[Figures], seen: list[Figures]) -> None:
    async for value in watch:
        seen.append(value)


async def _wait_until(done: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not done():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_two_thousand_subscribers_share_each_computation() -> None:
    fx = Fixture(_frozen(), None)
    seen: list[list[Figures]] = [[] for _ in range(2000)]
    tasks = [asyncio.create_task(_collect(fx.feed.watch(1), s)) for s in seen]
    await _wait_until(lambda: all(s for s in seen))
    assert fx.feed.computations == 1, "the first value is computed once for all who joined"
    assert fx.log.listening == 1, "one subscription to the log for the store, not one each"

    for _ in range(100):  # 100 orders, in bursts
        fx.log.append()
        await asyncio.sleep(0.001)
    await _wait_until(lambda: all(s[-1].backlog.orders == 100 for s in seen))
    assert fx.feed.computations <= 100
    assert fx.feed.computations < 20, "bursts are coalesced"
    for s in seen:
        assert s[-1].backlog.orders == 100
        orders = [v.backlog.orders for v in s]
        assert orders == sorted(orders), "never an older value after a newer one"

    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await _wait_until(lambda: fx.feed.watched_stores == 0 and fx.log.listening == 0)


async def test_a_joiner_gets_the_last_value_or_a_fresh_one() -> None:
    fx = Fixture(_frozen(), None)
    first = fx.feed.watch(1)
    assert (await anext(first)).backlog.orders == 0
    second = fx.feed.watch(1)
    assert (await anext(second)).backlog.orders == 0
    assert fx.feed.computations == 1, "nothing was logged since: the last value is current"

    fx.log.seq += 1  # committed, not yet seen by the watch
    third = fx.feed.watch(1)
    assert (await anext(third)).backlog.orders == 1, "a joiner never gets stale figures"
    assert fx.feed.computations == 2
    # the others were handed the newer value too
    assert (await asyncio.wait_for(anext(first), 1)).backlog.orders == 1
    for watch in (first, second, third):
        await watch.aclose()
    assert fx.feed.watched_stores == 0


async def test_pushes_at_the_instant_an_order_becomes_overdue() -> None:
    loop = asyncio.get_running_loop()
    t0 = loop.time()

    def clock() -> dt.datetime:
        return START + dt.timedelta(seconds=loop.time() - t0)

    instant = START + dt.timedelta(seconds=0.3)
    fx = Fixture(clock, instant)
    watch = fx.feed.watch(1)
    await anext(watch)
    pushed = await asyncio.wait_for(anext(watch), 2)
    late = (pushed.as_of - instant).total_seconds()
    assert 0 <= late < 0.15, f"pushed {late:.3f} s after the instant"
    assert fx.log.seq == 0, "with no event in the store"
    assert fx.feed.computations == 2
    await watch.aclose()


async def test_an_overflowing_log_subscription_still_ends_in_the_latest_figures() -> None:
    fx = Fixture(_frozen(), None)
    fx.log.buffer = 3
    watch = fx.feed.watch(1)
    await anext(watch)
    for _ in range(50):
        fx.log.append()  # no turn of the loop: the watch's queue overflows
    latest = await asyncio.wait_for(anext(watch), 2)
    assert latest.backlog.orders == 50
    assert fx.log.subscriptions == 2, "it subscribed again"
    fx.log.append()
    assert (await asyncio.wait_for(anext(watch), 2)).backlog.orders == 51
    await watch.aclose()


async def test_a_failed_computation_is_retried_at_the_next_change() -> None:
    fx = Fixture(_frozen(), None)
    calls = {"n": 0}
    real = fx.compute

    async def flaky(store_id: int) -> Computed:
        calls["n"] += 1
        if calls["n"] == 2:
            raise ConnectionError("database away")
        return await real(store_id)

    fx.feed.compute = flaky
    watch = fx.feed.watch(1)
    await anext(watch)
    fx.log.append()  # its computation fails
    await _wait_until(lambda: calls["n"] >= 2)
    fx.log.append()
    assert (await asyncio.wait_for(anext(watch), 3)).backlog.orders == 2
    await watch.aclose()

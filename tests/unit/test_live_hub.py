"""The hub's pump offering events to a store's subscribers (live/hub.py), without a
database: subscribers filed by hand, events offered as the pump offers them."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from typing import Any

import pytest

from ordergraph.domain.reads import EventRecord, LiveEvent
from ordergraph.live import hub as hub_module
from ordergraph.live.hub import EventHub, Subscriber


def _event(seq: int, stream: str = "order") -> LiveEvent:
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    return LiveEvent(EventRecord(1, seq, stream, "PLACED", at, None, None, {}), live=True)


class Ticks:
    """Other work on the loop (a request): counts the turns it gets."""

    def __init__(self) -> None:
        self.count = 0
        self._stop = False
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Ticks:
        async def run() -> None:
            while not self._stop:
                self.count += 1
                await asyncio.sleep(0)

        self._task = asyncio.get_running_loop().create_task(run())
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *_: Any) -> None:
        self._stop = True
        assert self._task is not None
        await self._task


async def test_the_pump_offers_each_event_to_thousands_in_slices_once_each_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(hub_module, "OFFER_SLICE_SECONDS", 0.0)  # yield at every check
    hub = EventHub(None)  # type: ignore[arg-type]  # no database: nothing is read here
    count = 3000
    subscribers = [Subscriber(1, 10, frozenset({"order"})) for _ in range(count)]
    hub._subscribers[1] = set(subscribers)
    got: dict[int, list[int]] = {n: [] for n in range(count)}
    turns: list[int] = []
    async with Ticks() as ticks:
        for n, subscriber in enumerate(subscribers):

            def sink(event: LiveEvent, n: int = n) -> bool:
                got[n].append(event.record.seq)
                turns.append(ticks.count)
                return True

            assert subscriber.hand_to(sink, 0)
        hub._positions[1] = 0
        await hub._offer([_event(1), _event(2), _event(3)])  # one batch read from the log
    assert all(seqs == [1, 2, 3] for seqs in got.values()), "every event once, in order"
    per_turn = Counter(turns)
    assert len(per_turn) >= 3 * count // hub_module.OFFER_CHECK_EVERY
    assert max(per_turn.values()) <= hub_module.OFFER_CHECK_EVERY, (
        "other work runs at least every OFFER_CHECK_EVERY offers, across events too"
    )
    assert hub._positions[1] == 3


async def test_an_event_of_another_stream_is_passed_over_without_asking_the_sink() -> None:
    subscriber = Subscriber(1, 10, frozenset({"order"}))
    asked: list[int] = []

    def sink(event: LiveEvent) -> bool:
        asked.append(event.record.seq)
        return True

    assert subscriber.hand_to(sink, 0)
    subscriber.offer(_event(1))
    subscriber.offer(_event(2, "inventory"))
    subscriber.offer(_event(3))
    assert asked == [1, 3]
    assert subscriber.passed_upto == 3
    assert subscriber.sink is sink, "still handed on: nothing was missed"
    assert subscriber.queue.empty()


async def test_a_gap_still_ends_the_hand_over_even_on_another_stream() -> None:
    subscriber = Subscriber(1, 10, frozenset({"order"}))
    assert subscriber.hand_to(lambda _: True, 0)
    subscriber.offer(_event(1))
    subscriber.offer(_event(3, "inventory"))  # position 2 was never offered
    assert subscriber.sink is None
    subscriber.offer(_event(4))
    event, run_start = subscriber.queue.get_nowait()  # type: ignore[misc]
    assert event.record.seq == 4
    assert run_start == 3, "the consumer fetches position 2 from the log"


async def test_a_commit_wakes_the_pump_only_for_a_store_watched_here() -> None:
    """Most commits are in stores no one here watches: they wake nothing. One in a
    watched store, a wake-up for every store (a listener back), and a subscriber joining
    (commits made while it read its position woke nothing for its store) do."""
    hub = EventHub(None)  # type: ignore[arg-type]  # no database: nothing is read here
    hub.wake(7)
    assert not hub._wake.is_set()
    assert hub._dirty == set()

    hub._positions[7] = 0  # its position known: subscribing reads nothing
    subscriber = await hub.subscribe(7)
    assert hub._wake.is_set(), "a subscriber joining has the pump look once"
    assert hub._dirty == {7}

    hub._wake.clear()
    hub._dirty.clear()
    hub.wake(8)
    assert not hub._wake.is_set()
    hub.wake(7)
    assert hub._wake.is_set()
    assert hub._dirty == {7}

    hub._wake.clear()
    hub._dirty.clear()
    hub.wake(None)
    assert hub._wake.is_set()
    assert hub._dirty == {7}
    hub.unsubscribe(subscriber)

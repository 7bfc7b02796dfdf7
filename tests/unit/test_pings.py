"""live/pings.py: one task pings every acknowledged graphql-transport-ws connection."""

from __future__ import annotations

import asyncio
from typing import Any

from ordergraph.live.pings import PING, Pings


class Connection:
    def __init__(self, stuck: bool = False) -> None:
        self.sent: list[Any] = []
        self.stuck = stuck

    async def send_message(self, message: Any) -> None:
        if self.stuck:
            await asyncio.Event().wait()  # a socket that never drains
        self.sent.append(message)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


async def test_each_connection_is_pinged_every_interval_until_discarded() -> None:
    clock = Clock()
    pings = Pings(1.0, clock)
    a, b, c = Connection(), Connection(), Connection()
    for connection in (a, b, c):
        pings.add(connection)
    try:
        clock.now = 0.5
        assert pings.run_due() == 0
        clock.now = 1.0
        assert pings.run_due() == 3
        await settle()
        assert a.sent == b.sent == c.sent == [PING]
        clock.now = 1.5
        assert pings.run_due() == 0
        pings.discard(b)
        assert len(pings) == 2
        clock.now = 2.0
        assert pings.run_due() == 2
        await settle()
        assert (len(a.sent), len(b.sent), len(c.sent)) == (2, 1, 2)
    finally:
        await pings.close()


async def test_a_connection_added_later_waits_its_own_interval() -> None:
    clock = Clock()
    pings = Pings(15.0, clock)
    early, late = Connection(), Connection()
    pings.add(early)
    clock.now = 10.0
    pings.add(late)
    try:
        clock.now = 15.0
        assert pings.run_due() == 1
        clock.now = 25.0
        assert pings.run_due() == 1
        await settle()
        assert (len(early.sent), len(late.sent)) == (1, 1)
    finally:
        await pings.close()


async def test_one_task_pings_in_real_time_and_a_stuck_socket_holds_up_no_other() -> None:
    pings = Pings(0.2)
    stuck, fine = Connection(stuck=True), Connection()
    pings.add(stuck)
    pings.add(fine)
    try:
        await asyncio.sleep(0.75)
        assert len(fine.sent) >= 2
        assert stuck.sent == []
        assert len(pings._sends) == 1  # the stuck socket's one ping, not one per interval
        running = pings._task
        assert running is not None
        assert not running.done()
        pings.discard(stuck)
        pings.discard(fine)
        await asyncio.sleep(0.3)  # with nothing to ping the task ends
        # (its own task: the loop may run others' tasks, a test's app winding down)
        assert running.done()
    finally:
        await pings.close()

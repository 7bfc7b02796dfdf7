"""Protocol pings for every graphql-transport-ws connection of the process, from one task.

A connection is pinged every `interval` seconds once acknowledged. One task per
connection sleeping for the interval would keep, per connection and at all times, a
task, its coroutine, a timer handle and a future alive: thousands of objects that the
garbage collector's young generations keep re-examining (docs/fanout-benchmark.md).
Here a connection is only a member of the set of the tick it is due at; one task wakes
every tick, sends each due connection its ping (a short-lived task each, so a slow
socket holds up no other; none while its previous ping is still being written) and
files it under its next tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol


class Pingable(Protocol):
    def send_message(self, message: Any) -> Awaitable[None]: ...


PING = {"type": "ping"}


class Pings:
    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.tick = min(1.0, interval / 4)
        self.clock = clock
        self._due: dict[int, set[Pingable]] = {}  # tick number -> connections due then
        self._where: dict[Pingable, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._sends: set[asyncio.Task[None]] = set()
        self._waiting: set[Pingable] = set()  # connections whose ping is being written

    def __len__(self) -> int:
        return len(self._where)

    def _tick_of(self, when: float) -> int:
        return math.ceil(when / self.tick)

    def add(self, connection: Pingable) -> None:
        """Ping `connection` every interval from now, until `discard`."""
        self._file(connection, self._tick_of(self.clock() + self.interval))
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    def discard(self, connection: Pingable) -> None:
        tick = self._where.pop(connection, None)
        if tick is not None:
            due = self._due.get(tick)
            if due is not None:
                due.discard(connection)
                if not due:
                    del self._due[tick]

    def _file(self, connection: Pingable, tick: int) -> None:
        self.discard(connection)
        self._where[connection] = tick
        self._due.setdefault(tick, set()).add(connection)

    def run_due(self) -> int:
        """Ping every connection due by now and file it under its next tick; how many."""
        now = self._tick_of(self.clock())
        every = max(1, round(self.interval / self.tick))
        sent = 0
        for tick in sorted(t for t in self._due if t <= now):
            for connection in self._due.pop(tick):
                self._where.pop(connection, None)
                self._file(connection, now + every)
                self._send(connection)
                sent += 1
        return sent

    def _send(self, connection: Pingable) -> None:
        if connection in self._waiting:
            return  # its last ping is not written yet: one at a time, as its socket drains
        self._waiting.add(connection)
        task = asyncio.get_running_loop().create_task(_ping(connection))
        self._sends.add(task)

        def done(_: asyncio.Task[None]) -> None:
            self._sends.discard(task)
            self._waiting.discard(connection)

        task.add_done_callback(done)

    async def _run(self) -> None:
        while self._where:
            await asyncio.sleep(self.tick)
            self.run_due()

    async def close(self) -> None:
        for task in [self._task, *self._sends]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task


async def _ping(connection: Pingable) -> None:
    with contextlib.suppress(Exception):
        await connection.send_message(PING)

"""A fan-out member writing frames to a fake socket (live/fanout.py `Member`).

The socket takes frames at once while it has room, then makes its sender wait (a
client that reads slowly) until the test lets it drain, or fails (a closed connection).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from typing import Any

import pytest
from graphql import ExecutionResult

from ordergraph.domain.reads import EventRecord, LiveEvent
from ordergraph.live import fanout
from ordergraph.live.hub import Subscriber


class FakeSocket:
    def __init__(self, room: int = 1_000_000) -> None:
        self.room = room
        self.frames: list[str] = []
        self.drained = asyncio.Event()
        self.broken = False
        self.waits = 0

    async def send_text(self, frame: str) -> None:
        if self.broken:
            raise ConnectionResetError("the client went away")
        if self.room <= 0:
            self.waits += 1
            await self.drained.wait()  # the transport paused writing
        self.room -= 1
        self.frames.append(frame)

    def drain(self, room: int) -> None:
        self.room = room
        self.drained.set()
        self.drained = asyncio.Event()


class FakeGroup:
    def __init__(self) -> None:
        self.left: list[Any] = []

    def discard(self, member: Any) -> None:
        self.left.append(member)


def _member(socket: FakeSocket, buffer: int = 5) -> tuple[fanout.Member, Subscriber, FakeGroup]:
    subscriber = Subscriber(1, buffer)
    group = FakeGroup()
    member = fanout.Member(group, subscriber, socket.send_text, "7", lambda _: True)  # type: ignore[arg-type]
    return member, subscriber, group


async def test_frames_go_out_in_order_each_once() -> None:
    socket = FakeSocket()
    member, _, _ = _member(socket, buffer=1000)
    for n in range(100):
        member.write(f"f{n}")
    await member.drained()
    assert socket.frames == [f"f{n}" for n in range(100)]
    assert not member.sending


async def test_a_socket_with_room_takes_the_frame_within_the_call_on_eager_pythons() -> None:
    socket = FakeSocket()
    member, _, _ = _member(socket)
    member.write("now")
    if fanout._EAGER:
        assert socket.frames == ["now"], "no task to wake: the frame is out already"
    await member.drained()
    assert socket.frames == ["now"]


async def test_a_slow_socket_keeps_a_backlog_and_the_rest_follows_in_order() -> None:
    socket = FakeSocket(room=2)
    member, subscriber, _ = _member(socket, buffer=10)
    for n in range(6):
        member.write(f"f{n}")
    await asyncio.sleep(0.01)
    assert socket.frames == ["f0", "f1"]
    assert len(member.backlog) == 3  # f2 waits in its send, f3..f5 in the backlog
    socket.drain(room=100)
    await member.drained()
    assert socket.frames == [f"f{n}" for n in range(6)]
    assert not subscriber.overflowed


async def test_a_member_past_its_buffer_is_cut_off_and_its_stuck_send_cancelled() -> None:
    socket = FakeSocket(room=0)
    member, subscriber, group = _member(socket, buffer=3)
    for n in range(10):
        member.write(f"f{n}")
    assert member.closed
    assert subscriber.overflowed, "the hub closes its connection with 4503"
    assert group.left == [member]
    await asyncio.sleep(0.01)
    assert member.task is None or member.task.done(), "the waiting send was cancelled"
    assert socket.frames == []


async def test_a_send_that_waits_too_long_cuts_the_member_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fanout, "SEND_TIMEOUT_SECONDS", 0.05)
    socket = FakeSocket(room=0)
    member, subscriber, _ = _member(socket, buffer=100)
    member.write("stuck")
    await asyncio.sleep(0.2)
    assert member.closed
    assert subscriber.overflowed
    assert member.task is None or member.task.cancelled()


async def test_a_closed_connection_drops_the_member_quietly() -> None:
    socket = FakeSocket()
    socket.broken = True
    member, _, group = _member(socket)
    member.write("f0")
    await asyncio.sleep(0.01)
    assert member.closed
    assert group.left == [member]
    member.write("f1")  # nothing more is tried
    assert socket.frames == []


class FakeFrames:
    """Stands for live.frames.FrameSocket: takes ready frames while `room`, else refuses."""

    def __init__(self, room: bool = True) -> None:
        self.room = room
        self.frames: list[str] = []

    def write(self, prefix: bytes, payload: bytes, suffix: bytes) -> bool:
        if not self.room:
            return False
        self.frames.append((prefix + payload + suffix).decode())
        return True


def _event(seq: int, payload: str, key: tuple[Any, ...]) -> LiveEvent:
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    record = EventRecord(1, seq, "orders", "PLACED", at, None, None, {})
    event = LiveEvent(record, live=True)
    event.memo[(fanout.payload_json, key)] = payload  # as if executed for the group already
    return event


async def _unexpected(_: LiveEvent) -> ExecutionResult:
    raise AssertionError("the payload was made already")


class OtherWork:
    """A request on the same process, as a task counting its turns of the loop while the
    block runs."""

    def __init__(self) -> None:
        self.ticks = 0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while not self._stop.is_set():
            self.ticks += 1
            await asyncio.sleep(0)

    async def __aenter__(self) -> OtherWork:
        self._task = asyncio.create_task(self._run())
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *_: object) -> None:
        self._stop.set()
        assert self._task is not None
        await self._task


def _grouped(
    count: int, frames: list[FakeFrames], sockets: list[FakeSocket]
) -> tuple[fanout.Group, list[fanout.Member], tuple[Any, ...]]:
    key: tuple[Any, ...] = ("db", "payload", "doc")
    group = fanout.Group(key, _unexpected, None)  # type: ignore[arg-type]
    members = []
    for n in range(count):
        member = fanout.Member(
            group,
            Subscriber(1, 100),
            sockets[n].send_text,
            f"<{n}:",
            lambda _: True,
            frames[n],  # type: ignore[arg-type]
        )
        group.members.add(member)
        members.append(member)
    return group, members, key[1:]


async def test_ready_frames_when_the_socket_has_room_else_the_ordinary_send_in_order() -> None:
    frames, socket = FakeFrames(), FakeSocket(room=0)
    _, (member,), key = _grouped(1, [frames], [socket])
    member.offer(_event(1, "a", key))
    await member.drained()
    assert frames.frames == ["<0:a}"], "a ready frame: no send, no task"
    frames.room = False  # the transport paused writing
    member.offer(_event(2, "b", key))
    await asyncio.sleep(0.01)
    assert member.sending, "the ordinary send waits for the socket"
    assert socket.frames == []
    frames.room = True  # room again, but the member's earlier frame still waits:
    member.offer(_event(3, "c", key))
    await asyncio.sleep(0.01)
    assert frames.frames == ["<0:a}"]
    assert list(member.backlog) == ["<0:c}"]
    socket.drain(room=10)
    await member.drained()
    assert socket.frames == ["<0:b}", "<0:c}"], "in log order, behind what waited"
    member.offer(_event(4, "d", key))
    await member.drained()
    assert frames.frames == ["<0:a}", "<0:d}"]
    assert not member.sending


async def test_a_large_group_writes_in_slices_and_a_member_drains_only_once_written() -> None:
    count = 3000
    frames = [FakeFrames() for _ in range(count)]
    _, members, key = _grouped(count, frames, [FakeSocket() for _ in range(count)])
    event = _event(1, "x", key)
    original, fanout.SLICE_SECONDS = fanout.SLICE_SECONDS, 0.0  # yield at every chance
    try:
        async with OtherWork() as other:
            for member in members:
                member.offer(event)
            assert all(member.pending == 1 for member in members)
            await members[-1].drained()  # waits while the group's slices reach it
        assert frames[-1].frames == ["<2999:x}"]
        assert other.ticks >= count // fanout.SLICE_CHECK_EVERY - 1, "other work ran between"
        assert all(f.frames == [f"<{n}:x}}"] for n, f in enumerate(frames))
        assert all(member.pending == 0 for member in members)
    finally:
        fanout.SLICE_SECONDS = original


async def test_a_large_group_lets_other_work_run_at_least_every_slice_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Counted, not timed: with no time to spare per slice the group yields at every
    check, so no more than SLICE_CHECK_EVERY members are written in one turn of the loop."""
    monkeypatch.setattr(fanout, "SLICE_SECONDS", 0.0)
    count = 2000
    turns: list[int] = []
    other = OtherWork()

    class Counted(FakeFrames):
        def write(self, prefix: bytes, payload: bytes, suffix: bytes) -> bool:
            turns.append(other.ticks)
            return super().write(prefix, payload, suffix)

    frames: list[FakeFrames] = [Counted() for _ in range(count)]
    _, members, key = _grouped(count, frames, [FakeSocket() for _ in range(count)])
    async with other:
        for seq in (1, 2):
            event = _event(seq, f"e{seq}", key)
            for member in members:
                member.offer(event)
        await members[-1].drained()
    assert all(f.frames == [f"<{n}:e1}}", f"<{n}:e2}}"] for n, f in enumerate(frames))
    per_turn = Counter(turns)
    assert max(per_turn.values()) <= fanout.SLICE_CHECK_EVERY
    assert len(per_turn) >= 2 * count // fanout.SLICE_CHECK_EVERY

"""A fan-out member writing frames to a fake socket (live/fanout.py `Member`).

The socket takes frames at once while it has room, then makes its sender wait (a
client that reads slowly) until the test lets it drain, or fails (a closed connection).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

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

"""Ready frames (live.frames): well-formed websocket text frames written straight to the
transport, and only when the ordinary send would have written the same bytes at once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from ordergraph.live import frames
from ordergraph.live.frames import FrameSocket, ReadyFrames, frame_socket


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return self.closing


class FakeConn:
    def __init__(self) -> None:
        self.state = State.OPEN
        self.extensions: list[Any] = []
        self.expect_continuation_frame = False


class FakeConnection:
    """What live.frames reads of a server connection (uvicorn's websockets-sansio one)."""

    def __init__(self) -> None:
        self.transport = FakeTransport()
        self.handshake_complete = True
        self.close_sent = False
        self.disconnected = False
        self.initial_response = None
        self.writable = asyncio.Event()
        self.writable.set()
        self.conn = FakeConn()


def received(data: bytes) -> list[str]:
    """What a websocket client makes of the bytes: the text messages, in order."""
    client = ClientProtocol(parse_uri("ws://localhost/graphql"), state=State.OPEN)
    client.receive_data(data)
    frames = [event for event in client.events_received() if isinstance(event, Frame)]
    assert all(frame.opcode is Opcode.TEXT and frame.fin for frame in frames), frames
    assert client.parser_exc is None
    return [bytes(frame.data).decode() for frame in frames]


@pytest.mark.parametrize("size", [0, 1, 100, 125, 126, 127, 65535, 65536, 300_000])
def test_every_length_makes_a_frame_a_client_reads_back(size: int) -> None:
    connection = FakeConnection()
    socket = FrameSocket(connection)
    payload = ("x" * size).encode()
    assert socket.write(b'{"id":"1","type":"next","payload":"', payload, b'"}')
    assert socket.write(b"{", b"", b"}")
    messages = received(b"".join(connection.transport.written))
    assert messages == ['{"id":"1","type":"next","payload":"' + "x" * size + '"}', "{}"]


@pytest.mark.parametrize(
    "change",
    [
        "handshake_complete",
        "close_sent",
        "disconnected",
        "initial_response",
        "paused",
        "closing",
        "not_open",
        "compressed",
        "fragment_under_way",
    ],
)
def test_nothing_is_written_when_the_ordinary_send_would_not_write_at_once(change: str) -> None:
    connection = FakeConnection()
    if change == "handshake_complete":
        connection.handshake_complete = False
    elif change == "close_sent":
        connection.close_sent = True
    elif change == "disconnected":
        connection.disconnected = True
    elif change == "initial_response":
        connection.initial_response = (403, [], b"")  # type: ignore[assignment]
    elif change == "paused":
        connection.writable.clear()  # the transport's buffer is over its high-water mark
    elif change == "closing":
        connection.transport.closing = True
    elif change == "not_open":
        connection.conn.state = State.CLOSING
    elif change == "compressed":
        connection.conn.extensions = ["permessage-deflate"]
    else:
        connection.conn.expect_continuation_frame = True
    before = frames.written
    assert not FrameSocket(connection).write(b"{", b"1", b"}")
    assert connection.transport.written == []
    assert frames.written == before


async def test_the_middleware_recognizes_only_the_servers_own_connection() -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(frame_socket(scope))

    async def receive() -> Any:
        return {}

    async def plain_send(message: Any) -> None:
        return None

    wrapped = ReadyFrames(app)
    await wrapped({"type": "websocket"}, receive, plain_send)  # not a server connection
    stranger = FakeConnection()

    async def strangers_send(message: Any) -> None:
        return None

    strangers_send.__self__ = stranger  # type: ignore[attr-defined]  # not a server's connection
    await wrapped({"type": "websocket"}, receive, strangers_send)
    await wrapped({"type": "http"}, receive, plain_send)
    assert seen == [None, None, None]

"""Ready websocket frames written straight to a connection's transport.

A fan-out group (live.fanout) makes one JSON payload per event for all its members; each
member's result message is its own prefix (operation id, message type), that payload and
a closing brace. Sent the ordinary way, every member's message goes through Starlette's
send, uvicorn's send coroutine and the websockets library's framing: about 30 µs of
Python per subscriber per event, and on Python 3.11 a task per member. Written here, a
member's message is one unmasked text frame (the websocket header is a few bytes the
server computes from the length) handed to the socket's transport within the group's
loop: no coroutine, no task, no copy of the payload per layer.

This is the one place that reads the server's websocket internals. It recognizes the
connection object of uvicorn's `websockets-sansio` implementation (its default since
0.35) from the ASGI `send` callable, which is that object's bound `send`; for any other
server, protocol implementation or version whose object lacks what is read below, it
stays out of the way and frames go the ordinary way (correct, slower; logged once).
`tests/api/test_frames.py` fails when an upgrade makes the fast path unavailable.

A frame is written here only when writing it the ordinary way would have put the same
bytes on the wire at once: the handshake done, no close sent or received, the connection
not closing, no extension negotiated (permessage-deflate would compress), no fragmented
message under way, and the transport not paused for flow control. Otherwise `write`
answers False and the caller sends the ordinary way, in a task that waits for the
socket (live.fanout keeps the order and cuts off a member that stays stuck).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

log = logging.getLogger("ordergraph.frames")

SCOPE_KEY = "ordergraph.frames"
_TEXT_FIN = 0x81  # FIN + text opcode; a server's frames are not masked
_SHORT = struct.Struct("!BB")
_MEDIUM = struct.Struct("!BBH")
_LONG = struct.Struct("!BBQ")


def _open_state() -> Any:
    try:
        from websockets.protocol import State
    except ImportError:  # websockets not installed: no sans-I/O connections to recognize
        return None
    return State.OPEN


_OPEN = _open_state()
# What is read of uvicorn's connection object (and of its `conn`, the websockets library's
# sans-I/O ServerProtocol); checked once per class.
_PROTOCOL_ATTRIBUTES = (
    "transport",
    "handshake_complete",
    "close_sent",
    "disconnected",
    "initial_response",
    "writable",
    "conn",
)
_CONN_ATTRIBUTES = ("state", "extensions", "expect_continuation_frame")
_known: dict[type, bool] = {}
written = 0  # frames written here since start (the tests read it; /metrics does not)


class FrameSocket:
    """Writes whole text messages to one websocket connection's transport."""

    __slots__ = ("_conn", "_protocol", "_settled")

    def __init__(self, protocol: Any) -> None:
        self._protocol = protocol
        self._conn = protocol.conn
        self._settled = False  # the handshake is done, with no extension negotiated

    def _settle(self) -> bool:
        """What is fixed once the handshake is done: checked until it is, then not again."""
        protocol = self._protocol
        self._settled = (
            protocol.handshake_complete
            and protocol.initial_response is None
            and not self._conn.extensions  # permessage-deflate would compress each message
        )
        return self._settled

    def write(self, prefix: bytes, payload: bytes, suffix: bytes) -> bool:
        """Write `prefix + payload + suffix` as one text frame; False when it must be sent
        the ordinary way (see the module's docstring), in which case nothing was written."""
        protocol = self._protocol
        transport = protocol.transport
        if (
            (not self._settled and not self._settle())
            or protocol.close_sent
            or protocol.disconnected
            or not protocol.writable.is_set()  # paused: over the transport's high-water mark
            or transport.is_closing()
            or self._conn.state is not _OPEN
            or self._conn.expect_continuation_frame
        ):
            return False
        length = len(prefix) + len(payload) + len(suffix)
        if length < 126:
            head = _SHORT.pack(_TEXT_FIN, length)
        elif length < 1 << 16:
            head = _MEDIUM.pack(_TEXT_FIN, 126, length)
        else:
            head = _LONG.pack(_TEXT_FIN, 127, length)
        transport.write(b"".join((head, prefix, payload, suffix)))
        global written
        written += 1
        return True


def _recognized(protocol: Any) -> bool:
    cls = type(protocol)
    known = _known.get(cls)
    if known is None:
        conn = getattr(protocol, "conn", None)
        known = (
            _OPEN is not None
            and cls.__module__ == "uvicorn.protocols.websockets.websockets_sansio_impl"
            and all(hasattr(protocol, name) for name in _PROTOCOL_ATTRIBUTES)
            and all(hasattr(conn, name) for name in _CONN_ATTRIBUTES)
        )
        _known[cls] = known
        if not known:
            log.info(
                "websocket connections of %s.%s are written the ordinary way (no ready frames)",
                cls.__module__,
                cls.__qualname__,
            )
    return known


def frame_socket(scope: MutableMapping[str, Any]) -> FrameSocket | None:
    """The connection's frame writer, if the server's connection was recognized."""
    found = scope.get(SCOPE_KEY)
    return found if isinstance(found, FrameSocket) else None


ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


class ReadyFrames:
    """ASGI middleware, outermost: gives each websocket scope its connection's FrameSocket
    when the server's `send` is a recognized connection's own (nothing wraps it yet)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if scope["type"] == "websocket":
            protocol = getattr(send, "__self__", None)
            if protocol is not None and _recognized(protocol):
                scope[SCOPE_KEY] = FrameSocket(protocol)
        await self.app(scope, receive, send)

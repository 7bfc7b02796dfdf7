"""A PostgreSQL wire proxy that counts round trips, for deterministic performance guards.

The app connects to the proxy instead of the server. The proxy forwards bytes both ways
unchanged and reads the client's side of the protocol: every simple Query ('Q') and every
Sync ('S', the end of an extended-protocol exchange) makes the client wait for the
server's ReadyForQuery, so together they count the round trips the app made. Parse ('P')
and Query messages also give the statement text, to show what the round trips were.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

_SSL_REQUEST = 80877103
_GSS_REQUEST = 80877104
_CANCEL_REQUEST = 80877102


@dataclass
class Wire:
    """What went over the proxied connections since the last `reset`."""

    port: int = 0
    round_trips: int = 0
    # One entry per round trip: the statements parsed or sent in it ("" for a bare Sync).
    trips: list[str] = field(default_factory=list)
    _pending: list[str] = field(default_factory=list)

    def reset(self) -> None:
        self.round_trips = 0
        self.trips = []
        self._pending = []

    def _message(self, kind: bytes, body: bytes) -> None:
        if kind == b"P":  # Parse: name \0 query \0 ...
            _name, _, rest = body.partition(b"\0")
            self._pending.append(rest.partition(b"\0")[0].decode(errors="replace"))
        elif kind == b"Q":
            self.round_trips += 1
            self.trips.append(body.rstrip(b"\0").decode(errors="replace"))
            self._pending = []
        elif kind == b"S":
            self.round_trips += 1
            self.trips.append(" | ".join(self._pending) or "(execute)")
            self._pending = []

    async def _client_to_server(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        client: asyncio.StreamWriter,
    ) -> None:
        # Untyped messages first: SSL/GSS requests, which the proxy refuses itself ('N':
        # the client goes on in plain text, so the stream stays readable whatever the
        # server would accept), then the startup message (or a cancel request).
        while True:
            head = await reader.readexactly(8)
            length, code = struct.unpack("!ii", head)
            rest = await reader.readexactly(length - 8)
            if code in (_SSL_REQUEST, _GSS_REQUEST):
                client.write(b"N")
                await client.drain()
                continue
            writer.write(head + rest)
            await writer.drain()
            if code == _CANCEL_REQUEST:
                return
            break
        while True:
            head = await reader.readexactly(5)
            kind, length = head[:1], struct.unpack("!i", head[1:])[0]
            body = await reader.readexactly(length - 4)
            self._message(kind, body)
            writer.write(head + body)
            await writer.drain()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


@asynccontextmanager
async def proxy(host: str, port: int) -> AsyncIterator[Wire]:
    """A counting proxy in front of host:port, on a free local port (`wire.port`).

    asyncpg asks for SSL first; the proxy answers 'N' (no SSL) itself, so the stream
    stays readable even in front of a server with SSL on (a Citus coordinator made with
    Debian's pg_createcluster has it on).
    """
    wire = Wire()
    tasks: set[asyncio.Task[None]] = set()

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(host, port)

        async def upstream() -> None:
            with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
                await wire._client_to_server(client_r, server_w, client_w)
            server_w.close()

        both = asyncio.gather(upstream(), _pipe(server_r, client_w))
        task = asyncio.ensure_future(both)
        tasks.add(task)  # type: ignore[arg-type]
        task.add_done_callback(tasks.discard)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    wire.port = server.sockets[0].getsockname()[1]
    try:
        yield wire
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

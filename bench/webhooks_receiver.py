"""The receiver of bench/webhooks.py: a light HTTP/1.1 server in a process of its own.

It listens on 127.0.0.1 on a uvloop event loop (asyncio's when uvloop is missing), reads
each POST as an `asyncio.Protocol` (no task per request), answers `200` with an empty
body (keep-alive unless the client asked to close), and records, per request path, the
arrival time (wall clock, `time.time()`, the clock the server's `occurredAt` uses), the
body and the signature header. Nothing else is done per request, so the receiver costs
the deliveries it measures as little as it can.

The bench drives it through a pipe: `("reset",)` forgets what arrived, `("count",)`
answers how many requests arrived, `("report", secrets)` answers, per path, one
`Arrival` per request in arrival order, each signature checked against that path's
secret (`secrets`: path -> secret); `("bodies", path)` answers the bodies that arrived
on a path, in arrival order; `("stop",)` ends the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from ordergraph.domain.paging import decode_cursor
from ordergraph.domain.webhooks import verify

ANSWER_KEEP = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
ANSWER_CLOSE = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


@dataclass(frozen=True)
class Arrival:
    """One request as the receiver saw it."""

    at: float  # wall clock, seconds
    event_id: str
    seq: int  # the event's position in the store's log (from its cursor)
    occurred_at: float  # the body's occurredAt, wall clock seconds
    number: int | None  # the order's number (order topics)
    size: int  # body bytes
    signed: bool  # the signature verified with the path's secret
    header_id: bool  # Ordergraph-Event-Id equals the body's id


class _Hook(asyncio.Protocol):
    def __init__(self, into: list[tuple[float, bytes, bytes, bytes, bytes]]) -> None:
        self.into = into
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end]
            lines = head.split(b"\r\n")
            headers: dict[bytes, bytes] = {}
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get(b"content-length", b"0"))
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            path = lines[0].split(b" ")[1] if b" " in lines[0] else b"/"
            self.into.append(
                (
                    time.time(),
                    path,
                    body,
                    headers.get(b"ordergraph-signature", b""),
                    headers.get(b"ordergraph-event-id", b""),
                )
            )
            closing = headers.get(b"connection", b"").lower() == b"close"
            assert self.transport is not None
            self.transport.write(ANSWER_CLOSE if closing else ANSWER_KEEP)
            if closing:
                self.transport.close()
                return


def _wall(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def arrivals(
    raw: list[tuple[float, bytes, bytes, bytes, bytes]], secrets: dict[str, str]
) -> dict[str, list[Arrival]]:
    """Per path, what arrived, in arrival order, signatures checked."""
    found: dict[str, list[Arrival]] = {}
    for at, path_bytes, body, signature, header_id in raw:
        path = path_bytes.decode()
        document = json.loads(body)
        cursor = decode_cursor(document["cursor"], 1, types=[int])
        order = document.get("payload", {}).get("orderEvent", {}).get("order") or {}
        secret = secrets.get(path)
        found.setdefault(path, []).append(
            Arrival(
                at=at,
                event_id=document["id"],
                seq=int(cursor[0]) if cursor else -1,
                occurred_at=_wall(document["occurredAt"]),
                number=order.get("number"),
                size=len(body),
                signed=secret is not None
                and verify(signature.decode(), secret, body, int(time.time())),
                header_id=header_id.decode() == document["id"],
            )
        )
    return found


def receiver_process(pipe: Connection, port_pipe: Connection) -> None:
    """The process's entry point: serve on a free port, tell it, obey the pipe."""
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is installed with uvicorn[standard]
        runner = asyncio.run
    runner(_serve(pipe, port_pipe))


async def _serve(pipe: Connection, port_pipe: Connection) -> None:
    loop = asyncio.get_running_loop()
    raw: list[tuple[float, bytes, bytes, bytes, bytes]] = []
    server = await loop.create_server(lambda: _Hook(raw), "127.0.0.1", 0, backlog=1024)
    port_pipe.send(server.sockets[0].getsockname()[1])
    done = loop.create_future()

    def command() -> None:
        try:
            message = pipe.recv()
        except EOFError:
            message = ("stop",)
        kind = message[0]
        if kind == "reset":
            raw.clear()
            pipe.send(True)
        elif kind == "count":
            pipe.send(len(raw))
        elif kind == "report":
            pipe.send(arrivals(list(raw), message[1]))
        elif kind == "bodies":
            pipe.send([body for _, path, body, _, _ in raw if path.decode() == message[1]])
        elif kind == "stop" and not done.done():
            done.set_result(None)

    loop.add_reader(pipe.fileno(), command)
    try:
        await done
    finally:
        loop.remove_reader(pipe.fileno())
        server.close()
        with contextlib.suppress(Exception):
            await server.wait_closed()


def read_bodies(bodies: list[bytes]) -> list[Arrival]:
    """Bodies read as the receiver reads them (ids, seqs, sizes), signatures unchecked."""
    return arrivals([(0.0, b"/", body, b"", b"") for body in bodies], {})["/"]

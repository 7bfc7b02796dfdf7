"""A real HTTP receiver for webhook tests: an asyncio server on 127.0.0.1 that records
every request and answers as told: a status (200, 500, 410, 302...), "timeout" (never
answers), "close" (drops the connection without an answer), "endless" (200 with a body
that never ends), "drip" (a 200 whose headers come a byte every 0.2 s, never ending);
`stop()` takes it down. With `tls`, it serves https, as https://localhost:<port>/."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Answer = int | str  # a status code, "timeout", "close", "endless" or "drip"


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    answer: Answer

    @property
    def json(self) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(self.body)
        return found


@dataclass
class Receiver:
    answer: Callable[[Received], Answer] = field(default=lambda _: 200)
    received: list[Received] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    tls: ssl.SSLContext | None = None
    server_names: list[str | None] = field(default_factory=list)  # TLS SNI seen

    @property
    def url(self) -> str:
        if self.tls is not None:
            return f"https://localhost:{self.port}/hook"
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self, port: int = 0) -> Receiver:
        if self.tls is not None:
            self.tls.sni_callback = lambda _sock, name, _ctx: self.server_names.append(name)
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", port or self.port, ssl=self.tls
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    def answered(self, answer: Answer) -> list[Received]:
        return [r for r in self.received if r.answer == answer]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            request = Received(method, path, headers, body, 0)
            request.answer = self.answer(request)
            self.received.append(request)
            if request.answer == "timeout":
                await asyncio.sleep(3600)
            if request.answer == "close":
                return
            if request.answer == "endless":  # 200, then a body that never ends
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n" + b"x" * 10_000
                )
                await writer.drain()
                await asyncio.sleep(3600)
            if request.answer == "drip":  # each read is quick; the answer never ends
                writer.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                while True:
                    await writer.drain()
                    await asyncio.sleep(0.2)
                    writer.write(b"a")
            status = int(request.answer)
            extra = "Location: https://example.invalid/\r\n" if 300 <= status < 400 else ""
            reply = b"x" * 100_000 if status == 200 else b"no"
            writer.write(
                f"HTTP/1.1 {status} Status\r\nContent-Length: {len(reply)}\r\n{extra}"
                "Connection: close\r\n\r\n".encode()
                + reply
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

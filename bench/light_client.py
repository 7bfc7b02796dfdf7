"""A minimal keep-alive HTTP/1.1 client on asyncio streams, light enough not to be the
bottleneck of a bench.

One `Connection` is one TCP connection used for one request at a time: it sends a
request with a precomputed head and body and reads the status line, the headers, and a
body framed by Content-Length or chunked transfer encoding. No TLS, no redirects, no
compression, no cookies: what a bench against a local server needs and nothing else.
`client_cpu_seconds` is this process's own CPU time, so a bench can print what its
client spends per request next to what the servers spend.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from urllib.parse import urlsplit


class HttpError(Exception):
    """The server closed the connection or answered something this client cannot read."""


def client_cpu_seconds() -> float:
    """User + system CPU time of this process so far (all its threads)."""
    return time.process_time()


def encode_head(method: str, path: str, host: str, headers: dict[str, str]) -> bytes:
    """The request line and the fixed headers; Content-Length is added per request."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: keep-alive"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n").encode("latin-1")


class Connection:
    """One keep-alive connection to `http://host:port`, reopened if the server closes it."""

    def __init__(self, url: str, timeout: float = 60) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    @property
    def authority(self) -> str:
        return f"{self.host}:{self.port}"

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        return self._reader, self._writer

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def request(self, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
        """Send one request (`head` from encode_head) and return (status, body)."""
        try:
            return await asyncio.wait_for(self._exchange(head, body), self.timeout)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as err:
            await self.close()
            raise HttpError(repr(err)) from err

    async def _exchange(self, head: bytes, body: bytes) -> tuple[int, bytes]:
        reader, writer = await self._open()
        length = b"Content-Length: %d\r\n\r\n" % len(body)
        writer.write(head + length + body)
        status, headers = await _read_head(reader)
        if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            content = await _read_chunked(reader)
        else:
            content = await reader.readexactly(int(headers.get(b"content-length", b"0")))
        if headers.get(b"connection", b"").lower() == b"close":
            await self.close()
        return status, content

    async def post(self, head: bytes, body: bytes) -> tuple[int, bytes]:
        return await self.request(head, body)


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[bytes, bytes]]:
    raw = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = raw[:-4].split(b"\r\n")
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise HttpError(f"not an HTTP/1.x status line: {status_line[:80]!r}")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, then the end
                pass
            return b"".join(chunks)
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)

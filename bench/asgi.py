"""A request straight through an ASGI app, with no HTTP client and no sockets: the CPU a
bench measures in its own process is then the server's alone (an httpx client spends
several milliseconds of CPU per request, more than many operations cost)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


async def call(app: App, body: dict[str, Any], token: str) -> dict[str, Any]:
    """POST /graphql straight through the ASGI app; the JSON answer."""
    answer: dict[str, Any] = json.loads(await call_raw(app, body, token))
    return answer


async def call_raw(app: App, body: dict[str, Any], token: str) -> bytes:
    """POST /graphql straight through the ASGI app; the answer's bytes."""
    raw = json.dumps(body).encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"bench"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(raw)).encode()),
            (b"authorization", f"Bearer {token}".encode()),
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("bench", 80),
    }
    sent = False
    chunks: list[bytes] = []
    gone = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    gone.set()
    return b"".join(chunks)

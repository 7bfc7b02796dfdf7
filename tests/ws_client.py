"""A small GraphQL-over-websocket client for the tests (both protocols)."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

TRANSPORT = "graphql-transport-ws"
LEGACY = "graphql-ws"


class WsClient:
    def __init__(self, conn: ClientConnection, protocol: str) -> None:
        self.conn = conn
        self.protocol = protocol
        self._ids = itertools.count(1)

    async def send(self, message: dict[str, Any]) -> None:
        await self.conn.send(json.dumps(message))

    async def receive(self, wait: float = 10) -> dict[str, Any]:
        """The next message other than a ping, pong or keep-alive, within `wait` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            raw = await asyncio.wait_for(self.conn.recv(), max(deadline - loop.time(), 0.001))
            message: dict[str, Any] = json.loads(raw)
            if message.get("type") in ("ping", "pong", "ka"):
                if message["type"] == "ping":
                    await self.send({"type": "pong"})
                continue
            return message

    async def init(self, token: str | None) -> dict[str, Any]:
        payload = {"authorization": f"Bearer {token}"} if token else {}
        await self.send({"type": "connection_init", "payload": payload})
        return await self.receive()

    async def subscribe(self, query: str, variables: dict[str, Any] | None = None) -> str:
        op_id = str(next(self._ids))
        kind = "subscribe" if self.protocol == TRANSPORT else "start"
        await self.send(
            {"id": op_id, "type": kind, "payload": {"query": query, "variables": variables or {}}}
        )
        return op_id

    async def next_data(self, wait: float = 10) -> dict[str, Any]:
        """The next result's data; fails on an error message."""
        message = await self.receive(wait)
        if message["type"] not in ("next", "data"):
            raise AssertionError(f"expected data, got {message}")
        payload: dict[str, Any] = message["payload"]
        if payload.get("errors"):
            raise AssertionError(payload["errors"])
        data: dict[str, Any] = payload["data"]
        return data

    async def closed_code(self, wait: float = 15) -> int | None:
        """Read until the server closes the connection; its close code (None: no close frame)."""
        deadline = asyncio.get_running_loop().time() + wait
        try:
            while True:
                left = deadline - asyncio.get_running_loop().time()
                await asyncio.wait_for(self.conn.recv(), max(left, 0.001))
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None


@asynccontextmanager
async def ws_connect(
    base_url: str, protocol: str = TRANSPORT, *, ping_interval: float | None = 20
) -> AsyncIterator[WsClient]:
    url = base_url.replace("http://", "ws://") + "/graphql"
    async with connect(
        url,
        subprotocols=[protocol],  # type: ignore[list-item]
        open_timeout=10,
        ping_interval=ping_interval,
    ) as conn:
        yield WsClient(conn, protocol)

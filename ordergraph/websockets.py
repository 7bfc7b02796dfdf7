"""Websocket protocol handlers: token checks on connection_init, timeouts and pings.

Both protocols close with 4403 when the connection_init payload carries no valid
token with the READ scope, 4401 when a client subscribes before init, and 4408
when no init arrives in time. graphql-transport-ws gets protocol pings; the
legacy graphql-ws protocol gets its keep-alive ("ka") messages.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from starlette.websockets import WebSocketDisconnect, WebSocketDisconnected
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler

from resolvers.context import Context
from schema.subscriptions import LIVE_OPERATION


async def accept_connection(context: Context) -> None:
    """Authenticate from the connection_init payload; raise to refuse the connection."""
    params = context.connection_params or {}
    authorization = params.get("authorization") or params.get("Authorization")
    context.reauthenticate(authorization if isinstance(authorization, str) else None)
    who = await context.principal()
    if who.key is None or "READ" not in who.key.scopes:
        raise ConnectionRejectionError({"message": "a valid token with the READ scope is needed"})


class TransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    _pinger: asyncio.Task[None] | None = None

    async def handle_connection_init(self, message: Any) -> None:
        await super().handle_connection_init(message)
        if self.connection_acknowledged and self._pinger is None:
            self._pinger = asyncio.create_task(self._ping_forever())

    async def _ping_forever(self) -> None:
        with contextlib.suppress(Exception):
            interval = float(getattr(self.view, "ws_ping_seconds", 15.0))
            while True:
                await asyncio.sleep(interval)
                await self.send_message({"type": "ping"})

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        # Lets the operation's subscription write ready-made `next` frames of results it
        # shares with identical subscriptions (schema.subscriptions._send_shared).
        LIVE_OPERATION.set(operation)
        await super().run_operation(operation)

    async def handle_task_exception(self, error: Exception) -> None:
        if isinstance(error, (WebSocketDisconnect, WebSocketDisconnected)):
            return  # a send after the connection closed (e.g. a slow subscriber cut off)
        await super().handle_task_exception(error)

    async def shutdown(self) -> None:
        if self._pinger is not None:
            self._pinger.cancel()
            with contextlib.suppress(BaseException):
                await self._pinger
        await super().shutdown()


class LegacyWSHandler(BaseGraphQLWSHandler[Context, None]):
    _timer: asyncio.Task[None] | None = None

    async def handle(self) -> None:
        self._timer = asyncio.create_task(self._close_unless_initialised())
        try:
            await super().handle()
        finally:
            self._timer.cancel()

    async def _close_unless_initialised(self) -> None:
        await asyncio.sleep(float(getattr(self.view, "ws_init_timeout_seconds", 10.0)))
        if not self.connection_acknowledged:
            with contextlib.suppress(Exception):
                await self.websocket.close(code=4408, reason="Connection initialisation timeout")

    async def handle_connection_init(self, message: Any) -> None:
        payload = message.get("payload")
        self.context.connection_params = payload if isinstance(payload, dict) else None
        try:
            await accept_connection(self.context)
        except ConnectionRejectionError as rejected:
            with contextlib.suppress(Exception):
                await self.send_message({"type": "connection_error", "payload": rejected.payload})
            await self.websocket.close(code=4403, reason="Forbidden")
            return
        await self.send_message({"type": "connection_ack"})
        self.connection_acknowledged = True
        if self.keep_alive:
            self.keep_alive_task = asyncio.create_task(self.handle_keep_alive())

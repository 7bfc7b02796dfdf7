"""The graphql-transport-ws protocol: pings, one connection_init, operations authorized and
timed like HTTP requests (close codes and limits: live/websockets.py)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, cast

from starlette.websockets import WebSocketDisconnect, WebSocketDisconnected
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.types.unset import UnsetType

from ordergraph.live.follow import LIVE_OPERATION, LiveOperation
from ordergraph.live.pings import Pings
from ordergraph.live.websockets import (
    FORBIDDEN,
    TOO_MANY,
    KeyedSocket,
    as_message,
    operation_deadline,
    revoked_error,
    timeout_error,
    unchecked_error,
)
from ordergraph.resolvers.context import Context


class TransportWSHandler(KeyedSocket, BaseGraphQLTransportWSHandler[Context, None]):
    _pinged = False

    async def handle_connection_init(self, message: Any) -> None:
        if self.connection_timed_out:
            return
        if self.connection_init_timeout_task:
            self.connection_init_timeout_task.cancel()
        payload = message.get("payload", {})
        if not isinstance(payload, dict):
            await self.websocket.close(code=4400, reason="Invalid connection init payload")
            return
        if self.connection_init_received:
            # Refused before anything else: a second init never switches keys.
            await self.websocket.close(code=TOO_MANY, reason="Too many initialisation requests")
            return
        self.connection_init_received = True
        self.context.connection_params = payload
        try:
            ack_payload = await self.view.on_ws_connect(self.context)
        except ConnectionRejectionError:
            await self.websocket.close(code=FORBIDDEN, reason="Forbidden")
            return
        if not self._register():
            await self.websocket.close(code=TOO_MANY, reason="Too many websockets for this key")
            return
        if isinstance(ack_payload, UnsetType):
            await self.send_message({"type": "connection_ack"})
        else:
            await self.send_message({"type": "connection_ack", "payload": ack_payload})
        self.connection_acknowledged = True
        if not self._pinged:
            self._pinged = True
            self._pings().add(self)  # one task pings every connection (live/pings.py)

    def _pings(self) -> Pings:
        pings: Pings = cast(Any, self.view).pings  # the app's view (app/view.py) has one
        return pings

    async def handle_subscribe(self, message: Any) -> None:
        allowed = await self._authorized() if self.connection_acknowledged else True
        if not allowed:
            error = revoked_error() if allowed is False else unchecked_error()
            with contextlib.suppress(Exception):
                await self.send_message(
                    as_message({"id": message["id"], "type": "error", "payload": [error]})
                )
            if allowed is False:
                await self._end(FORBIDDEN, "API key revoked")
            return
        await super().handle_subscribe(message)

    async def _end(self, code: int, reason: str) -> None:
        for operation_id in list(self.operations):
            await self.cleanup_operation(operation_id)
        with contextlib.suppress(Exception):
            await self.websocket.close(code=code, reason=reason)

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        # Lets the operation's subscription write ready-made `next` frames of results it
        # shares with identical subscriptions (live.follow._send_shared).
        LIVE_OPERATION.set(LiveOperation(operation.id, "next", lambda: operation.completed))
        seconds = operation_deadline(
            self.view, self.schema, operation.query, operation.operation_name
        )
        if seconds is None:
            await super().run_operation(operation)
            return
        try:
            async with asyncio.timeout(seconds):
                await super().run_operation(operation)
        except TimeoutError:
            with contextlib.suppress(Exception):
                await operation.send_operation_message(
                    as_message(
                        {
                            "id": operation.id,
                            "type": "next",
                            "payload": {"data": None, "errors": [timeout_error(seconds)]},
                        }
                    )
                )
                await operation.send_operation_message(
                    as_message({"id": operation.id, "type": "complete"})
                )

    async def handle_task_exception(self, error: Exception) -> None:
        if isinstance(error, (WebSocketDisconnect, WebSocketDisconnected)):
            return  # a send after the connection closed (e.g. a slow subscriber cut off)
        await super().handle_task_exception(error)

    async def shutdown(self) -> None:
        self._unregister()
        if self._pinged:
            self._pings().discard(self)
        await super().shutdown()

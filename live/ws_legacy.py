"""The legacy graphql-ws protocol: keep-alive messages, one connection_init, operations
authorized and timed like HTTP requests (close codes and limits: live/websockets.py)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from starlette.websockets import WebSocketDisconnect, WebSocketDisconnected
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.types.execution import ExecutionResult, PreExecutionError

from ordergraph.live.follow import LIVE_OPERATION, LiveOperation
from ordergraph.live.websockets import (
    FORBIDDEN,
    TOO_MANY,
    KeyedSocket,
    accept_connection,
    as_message,
    operation_deadline,
    revoked_error,
    timeout_error,
    unchecked_error,
)
from ordergraph.resolvers.context import Context


class LegacyWSHandler(KeyedSocket, BaseGraphQLWSHandler[Context, None]):
    _timer: asyncio.Task[None] | None = None
    _init_received = False

    async def handle(self) -> None:
        self._timer = asyncio.create_task(self._close_unless_initialised())
        try:
            await super().handle()
        finally:
            self._unregister()
            self._timer.cancel()

    async def _close_unless_initialised(self) -> None:
        await asyncio.sleep(float(getattr(self.view, "ws_init_timeout_seconds", 10.0)))
        if not self.connection_acknowledged:
            with contextlib.suppress(Exception):
                await self.websocket.close(code=4408, reason="Connection initialisation timeout")

    async def handle_connection_init(self, message: Any) -> None:
        if self._init_received:
            # The protocol has no answer for it: close, keeping the key and the one
            # keep-alive task of the first init.
            await self.websocket.close(code=TOO_MANY, reason="Too many initialisation requests")
            return
        self._init_received = True
        payload = message.get("payload")
        self.context.connection_params = payload if isinstance(payload, dict) else None
        try:
            await accept_connection(self.context)
        except ConnectionRejectionError as rejected:
            with contextlib.suppress(Exception):
                await self.send_message({"type": "connection_error", "payload": rejected.payload})
            await self.websocket.close(code=FORBIDDEN, reason="Forbidden")
            return
        if not self._register():
            refusal = {"message": "too many websockets for this key", "code": "THROTTLED"}
            with contextlib.suppress(Exception):
                await self.send_message(
                    as_message({"type": "connection_error", "payload": refusal})
                )
            await self.websocket.close(code=TOO_MANY, reason="Too many websockets for this key")
            return
        await self.send_message({"type": "connection_ack"})
        self.connection_acknowledged = True
        if self.keep_alive and self.keep_alive_task is None:
            self.keep_alive_task = asyncio.create_task(self.handle_keep_alive())

    async def handle_start(self, message: Any) -> None:
        allowed = await self._authorized() if self.connection_acknowledged else True
        if not allowed:
            error = revoked_error() if allowed is False else unchecked_error()
            with contextlib.suppress(Exception):
                await self.send_message(
                    as_message({"type": "error", "id": message.get("id"), "payload": error})
                )
            if allowed is False:
                await self._end(FORBIDDEN, "API key revoked")
            return
        await super().handle_start(message)

    async def _end(self, code: int, reason: str) -> None:
        for operation_id in list(self.tasks):
            task = self.tasks.pop(operation_id, None)
            source = self.subscriptions.pop(operation_id, None)
            if task is not None:
                task.cancel()
            if source is not None:
                with contextlib.suppress(Exception):
                    await source.aclose()
        with contextlib.suppress(Exception):
            await self.websocket.close(code=code, reason=reason)

    async def handle_async_results(
        self,
        operation_id: str,
        query: str,
        operation_name: str | None,
        variables: dict[str, object] | None,
    ) -> None:
        seconds = operation_deadline(self.view, self.schema, query, operation_name)
        # The subscription may write its own `data` frames (shared results, fan-out groups)
        # until the client stops the operation (its task then leaves `tasks`).
        LIVE_OPERATION.set(
            LiveOperation(operation_id, "data", lambda: operation_id not in self.tasks)
        )
        try:
            try:
                async with asyncio.timeout(seconds):
                    complete = await self._results(operation_id, query, operation_name, variables)
            except TimeoutError:
                assert seconds is not None
                await self.send_message(
                    as_message(
                        {
                            "type": "data",
                            "id": operation_id,
                            "payload": {"data": None, "errors": [timeout_error(seconds)]},
                        }
                    )
                )
                complete = True
            if complete:
                await self.send_message({"type": "complete", "id": operation_id})
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await self.send_message({"type": "complete", "id": operation_id})
        except (WebSocketDisconnect, WebSocketDisconnected):
            pass
        finally:
            # Over, however it ended: it no longer counts towards the per-connection limit.
            self.subscriptions.pop(operation_id, None)
            self.tasks.pop(operation_id, None)

    async def _results(
        self,
        operation_id: str,
        query: str,
        operation_name: str | None,
        variables: dict[str, object] | None,
    ) -> bool:
        """Send the operation's results; False when it failed before running (an error
        message was sent, and no complete follows)."""
        # `stream`, not `subscribe`: the protocol runs queries and mutations too (one
        # `data` message, then `complete`).
        source = await self.schema.stream(
            query=query,
            variable_values=variables,
            operation_name=operation_name,
            context_value=self.context,
            root_value=self.root_value,
        )
        self.subscriptions[operation_id] = source
        first = True
        async for result in source:
            if first and isinstance(result, PreExecutionError):
                assert result.errors
                await self.send_message(
                    as_message(
                        {"type": "error", "id": operation_id, "payload": result.errors[0].formatted}
                    )
                )
                return False
            if not isinstance(result, ExecutionResult):  # incremental delivery: not here
                refusal = {"message": "incremental delivery is not supported over graphql-ws"}
                await self.send_message(
                    as_message({"type": "error", "id": operation_id, "payload": refusal})
                )
                return False
            await self.send_data_message(result, operation_id)
            first = False
        return True

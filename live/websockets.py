"""Websocket protocol handlers: who may connect, who may run each operation, and limits.

Close codes, on both protocols (graphql-transport-ws and the legacy graphql-ws):

- 4403: the connection_init payload carries no valid token with the READ scope, or the
  key was revoked while the socket was open (closed within a few seconds, in every
  process: resolvers.keyguard), or an operation was started with a revoked key.
- 4401: an operation before connection_init; 4408: no connection_init in time.
- 4429: a second connection_init ("Too many initialisation requests"), or the key
  already has max_websockets_per_key open websockets in this process.
- 1009: a message over max_ws_message_bytes.

Each operation started on a socket is authorized like an HTTP request (through the short
key cache); queries and mutations sent over a socket get the operation_timeout_ms deadline
(a TIMEOUT error). graphql-transport-ws gets protocol pings; the legacy protocol gets its
keep-alive ("ka") messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator
from json import JSONDecodeError
from typing import Any

from graphql import GraphQLError, OperationType, get_operation_ast, parse
from starlette.websockets import WebSocketDisconnect, WebSocketDisconnected, WebSocketState
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http.exceptions import NonJsonMessageReceived, NonTextMessageReceived
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.types.execution import ExecutionResult, PreExecutionError
from strawberry.types.unset import UnsetType

from ordergraph.live.follow import LIVE_OPERATION
from ordergraph.resolvers.context import ApiError, Context
from ordergraph.resolvers.keyguard import OpenSocket

log = logging.getLogger("ordergraph.websockets")
MESSAGE_TOO_BIG = 1009
TOO_MANY = 4429
FORBIDDEN = 4403


async def accept_connection(context: Context) -> None:
    """Authenticate from the connection_init payload; raise to refuse the connection."""
    params = context.connection_params or {}
    authorization = params.get("authorization") or params.get("Authorization")
    context.reauthenticate(authorization if isinstance(authorization, str) else None)
    who = await context.principal()
    if who.key is None or "READ" not in who.key.scopes:
        raise ConnectionRejectionError({"message": "a valid token with the READ scope is needed"})


class SizedWebSocketAdapter(ASGIWebSocketAdapter):
    """Closes with 1009 on a text message over max_ws_message_bytes (the server in front,
    e.g. uvicorn's ws_max_size, should refuse it before it is read whole)."""

    async def iter_json(self, *, ignore_parsing_errors: bool = False) -> AsyncGenerator[object]:
        settings = getattr(self.view, "settings", None)
        limit = int(getattr(settings, "max_ws_message_bytes", 0) or 0)
        try:
            while self.ws.application_state != WebSocketState.DISCONNECTED:
                try:
                    text = await self.ws.receive_text()
                    if limit and _too_big(text, limit):
                        with contextlib.suppress(Exception):
                            await self.ws.close(code=MESSAGE_TOO_BIG, reason="Message too big")
                        return
                    yield self.view.decode_json(text)
                except JSONDecodeError as error:
                    if not ignore_parsing_errors:
                        raise NonJsonMessageReceived from error
        except KeyError as error:
            raise NonTextMessageReceived from error
        except WebSocketDisconnect:
            pass


def _too_big(text: str, limit: int) -> bool:
    if len(text) > limit:
        return True
    return len(text) * 4 > limit and len(text.encode()) > limit


def _deadline(view: Any, schema: Any, query: Any, operation_name: Any) -> float | None:
    """Seconds a query or mutation may run (operation_timeout_ms); None for a subscription
    (it lives until the client stops it) or a document that does not parse (refused)."""
    settings = getattr(view, "settings", None)
    millis = getattr(settings, "operation_timeout_ms", 0)
    if not millis or not isinstance(query, str):
        return None
    if "subscription" not in query:
        return millis / 1000  # no subscription in it: a query or a mutation
    options = {"max_tokens": getattr(settings, "max_tokens", 5000)}
    documents = getattr(schema, "documents", None)
    try:
        document = (
            documents.document(query, options)
            if documents is not None
            else parse(query, max_tokens=options["max_tokens"])
        )
    except GraphQLError:
        return None
    if document is None:
        return None
    name = operation_name if isinstance(operation_name, str) else None
    operation = get_operation_ast(document, name)
    if operation is None or operation.operation == OperationType.SUBSCRIPTION:
        return None
    return millis / 1000


def _msg(message: dict[str, Any]) -> Any:
    """A protocol message (typed loosely: the protocols' TypedDicts are too narrow here)."""
    return message


def _timeout_error(seconds: float) -> dict[str, Any]:
    error = ApiError(
        f"the operation took longer than {round(seconds * 1000)} ms and was stopped", "TIMEOUT"
    )
    return error.formatted  # type: ignore[return-value]


def _revoked_error() -> dict[str, Any]:
    error = ApiError("this API key was revoked", "UNAUTHENTICATED")
    return error.formatted  # type: ignore[return-value]


def _unchecked_error() -> dict[str, Any]:
    error = ApiError("the key could not be checked just now; try again", "INTERNAL_SERVER_ERROR")
    return error.formatted  # type: ignore[return-value]


class _KeyedSocket:
    """What both protocol handlers share: the socket counted against its key, and each
    operation authorized again before it starts."""

    context: Context
    _socket: OpenSocket | None = None

    def _register(self) -> bool:
        """Count this accepted socket against its key; False when the key has too many."""
        guard = self.context.guard
        who = self.context.known_principal
        if guard is None or who is None or who.key is None:
            return True
        self._socket = guard.open_socket(who.key.id, self._end)
        return self._socket is not None

    def _unregister(self) -> None:
        guard = self.context.guard
        if guard is not None and self._socket is not None:
            guard.close_socket(self._socket)
            self._socket = None

    async def _end(self, code: int, reason: str) -> None:
        raise NotImplementedError

    async def _authorized(self) -> bool | None:
        """Whether the socket's key may still be used, looked up like an HTTP request's
        token; None when it could not be checked (the database is away)."""
        try:
            who = await self.context.recheck()
        except Exception:
            log.warning("could not check the key of a websocket operation", exc_info=True)
            return None
        socket = self._socket
        if who.key is not None and (socket is None or socket.key_id == who.key.id):
            return True
        if socket is not None:
            socket.closed = True
        self._unregister()
        return False


class TransportWSHandler(_KeyedSocket, BaseGraphQLTransportWSHandler[Context, None]):
    _pinger: asyncio.Task[None] | None = None

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
        if self._pinger is None:
            self._pinger = asyncio.create_task(self._ping_forever())

    async def handle_subscribe(self, message: Any) -> None:
        allowed = await self._authorized() if self.connection_acknowledged else True
        if not allowed:
            error = _revoked_error() if allowed is False else _unchecked_error()
            with contextlib.suppress(Exception):
                await self.send_message(
                    _msg({"id": message["id"], "type": "error", "payload": [error]})
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

    async def _ping_forever(self) -> None:
        with contextlib.suppress(Exception):
            interval = float(getattr(self.view, "ws_ping_seconds", 15.0))
            while True:
                await asyncio.sleep(interval)
                await self.send_message({"type": "ping"})

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        # Lets the operation's subscription write ready-made `next` frames of results it
        # shares with identical subscriptions (live.follow._send_shared).
        LIVE_OPERATION.set(operation)
        seconds = _deadline(self.view, self.schema, operation.query, operation.operation_name)
        if seconds is None:
            await super().run_operation(operation)
            return
        try:
            async with asyncio.timeout(seconds):
                await super().run_operation(operation)
        except TimeoutError:
            with contextlib.suppress(Exception):
                await operation.send_operation_message(
                    _msg(
                        {
                            "id": operation.id,
                            "type": "next",
                            "payload": {"data": None, "errors": [_timeout_error(seconds)]},
                        }
                    )
                )
                await operation.send_operation_message(
                    _msg({"id": operation.id, "type": "complete"})
                )

    async def handle_task_exception(self, error: Exception) -> None:
        if isinstance(error, (WebSocketDisconnect, WebSocketDisconnected)):
            return  # a send after the connection closed (e.g. a slow subscriber cut off)
        await super().handle_task_exception(error)

    async def shutdown(self) -> None:
        self._unregister()
        if self._pinger is not None:
            self._pinger.cancel()
            with contextlib.suppress(BaseException):
                await self._pinger
        await super().shutdown()


class LegacyWSHandler(_KeyedSocket, BaseGraphQLWSHandler[Context, None]):
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
                await self.send_message(_msg({"type": "connection_error", "payload": refusal}))
            await self.websocket.close(code=TOO_MANY, reason="Too many websockets for this key")
            return
        await self.send_message({"type": "connection_ack"})
        self.connection_acknowledged = True
        if self.keep_alive and self.keep_alive_task is None:
            self.keep_alive_task = asyncio.create_task(self.handle_keep_alive())

    async def handle_start(self, message: Any) -> None:
        allowed = await self._authorized() if self.connection_acknowledged else True
        if not allowed:
            error = _revoked_error() if allowed is False else _unchecked_error()
            with contextlib.suppress(Exception):
                await self.send_message(
                    _msg({"type": "error", "id": message.get("id"), "payload": error})
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
        seconds = _deadline(self.view, self.schema, query, operation_name)
        try:
            try:
                async with asyncio.timeout(seconds):
                    complete = await self._results(operation_id, query, operation_name, variables)
            except TimeoutError:
                assert seconds is not None
                await self.send_message(
                    _msg(
                        {
                            "type": "data",
                            "id": operation_id,
                            "payload": {"data": None, "errors": [_timeout_error(seconds)]},
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
                    _msg(
                        {"type": "error", "id": operation_id, "payload": result.errors[0].formatted}
                    )
                )
                return False
            if not isinstance(result, ExecutionResult):  # incremental delivery: not here
                refusal = {"message": "incremental delivery is not supported over graphql-ws"}
                await self.send_message(
                    _msg({"type": "error", "id": operation_id, "payload": refusal})
                )
                return False
            await self.send_data_message(result, operation_id)
            first = False
        return True

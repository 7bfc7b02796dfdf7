"""Websockets: who may connect, who may run each operation, and limits, for both protocols
(their handlers: live/ws_transport.py and live/ws_legacy.py).

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

import contextlib
import logging
from collections.abc import AsyncGenerator
from json import JSONDecodeError
from typing import Any

from graphql import GraphQLError, OperationType, get_operation_ast, parse
from starlette.websockets import WebSocketDisconnect, WebSocketState
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http.exceptions import NonJsonMessageReceived, NonTextMessageReceived

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
                    if limit and too_big(text, limit):
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


def too_big(text: str, limit: int) -> bool:
    if len(text) > limit:
        return True
    return len(text) * 4 > limit and len(text.encode()) > limit


def operation_type(view: Any, schema: Any, query: Any, operation_name: Any) -> OperationType | None:
    """The type of the operation the request names, or None if the document does not parse
    or name one (execution then says why)."""
    if not isinstance(query, str):
        return None
    settings = getattr(view, "settings", None)
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
    return None if operation is None else operation.operation


def operation_deadline(view: Any, schema: Any, query: Any, operation_name: Any) -> float | None:
    """Seconds a query or mutation may run (operation_timeout_ms); None for a subscription
    (it lives until the client stops it) or a document that does not parse (refused)."""
    settings = getattr(view, "settings", None)
    millis = getattr(settings, "operation_timeout_ms", 0)
    if not millis or not isinstance(query, str):
        return None
    if "subscription" not in query:
        return millis / 1000  # no subscription in it: a query or a mutation
    kind = operation_type(view, schema, query, operation_name)
    if kind is None or kind == OperationType.SUBSCRIPTION:
        return None
    return millis / 1000


def as_message(message: dict[str, Any]) -> Any:
    """A protocol message (typed loosely: the protocols' TypedDicts are too narrow here)."""
    return message


def timeout_error(seconds: float) -> dict[str, Any]:
    error = ApiError(
        f"the operation took longer than {round(seconds * 1000)} ms and was stopped", "TIMEOUT"
    )
    return error.formatted  # type: ignore[return-value]


def revoked_error() -> dict[str, Any]:
    error = ApiError("this API key was revoked", "UNAUTHENTICATED")
    return error.formatted  # type: ignore[return-value]


def unchecked_error() -> dict[str, Any]:
    error = ApiError("the key could not be checked just now; try again", "INTERNAL_SERVER_ERROR")
    return error.formatted  # type: ignore[return-value]


class KeyedSocket:
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

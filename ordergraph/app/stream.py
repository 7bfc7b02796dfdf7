"""GET and POST /graphql/stream: GraphQL over Server-Sent Events (live/sse.py).

The request is taken exactly as /graphql takes it (ordergraph/http.py: body size, strict
JSON, the shape and size limits of query, variables and extensions, the Authorization
header); only the answer differs: an event stream instead of one JSON body. The client
must accept `text/event-stream` (406 otherwise). Over GET, mutations are refused, as on
/graphql. A query or mutation keeps the operation deadline; a subscription runs until
the client closes the request. `Last-Event-ID` resumes an event subscription after that
cursor.
"""

from __future__ import annotations

from typing import Any

from graphql import OperationType
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope
from strawberry.types.graphql import OperationType as Allowed

from ordergraph.http import GraphQLOverHTTP
from ordergraph.http_request import JSON, Operation, Refused
from ordergraph.live.sse import HEADERS, MEDIA_TYPE, EventStream, StreamedOperation
from ordergraph.live.websockets import operation_deadline, operation_type
from ordergraph.logs import RequestInfo

_GET = (Allowed.QUERY, Allowed.SUBSCRIPTION)  # strawberry's enum, as execution takes it


class GraphQLOverSSE(GraphQLOverHTTP):
    """The ASGI app for /graphql/stream (the graphql-sse protocol, distinct connections)."""

    def __init__(self, *args: Any, ping_seconds: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ping_seconds = ping_seconds

    async def _handle(self, scope: Scope, receive: Receive, info: RequestInfo) -> Response | None:
        accept = Headers(scope=scope).get("accept") or ""
        if MEDIA_TYPE not in accept.lower():
            refused = Refused(
                406,
                "NOT_ACCEPTABLE",
                f"/graphql/stream answers {MEDIA_TYPE} only: send `Accept: {MEDIA_TYPE}` "
                "(plain JSON answers are on /graphql)",
            )
            return self._refusal(refused, JSON)
        return await super()._handle(scope, receive, info)

    async def _execute(
        self,
        scope: Scope,
        receive: Receive,
        operation: Operation,
        media: str,
        info: RequestInfo,
    ) -> Response | None:
        if scope["method"] == "GET" and (
            operation_type(self, self.schema, operation.query, operation.operation_name)
            == OperationType.MUTATION
        ):
            refused = Refused(
                405, "METHOD_NOT_ALLOWED", "mutations are not allowed over GET: use POST",
                {"allow": "POST"},
            )  # fmt: skip
            return self._refusal(refused, JSON)
        request = Request(scope)
        context = await self.make_context(request, Response())
        context.resume_after = request.headers.get("last-event-id") or None
        streamed = StreamedOperation(
            query=operation.query,
            variables=operation.variables,
            operation_name=operation.operation_name,
            extensions=operation.extensions,
            allowed=_GET if scope["method"] == "GET" else None,
        )
        stream = EventStream(
            self.schema,
            context,
            streamed,
            ping_seconds=self.ping_seconds,
            deadline_seconds=operation_deadline(
                self, self.schema, operation.query, operation.operation_name
            ),
        )
        return StreamingResponse(stream.events(), media_type=MEDIA_TYPE, headers=HEADERS)

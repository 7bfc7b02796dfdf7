"""The Strawberry view: the GraphQL context of every request, and the websockets on /graphql
(GET and POST /graphql go to ordergraph.http)."""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from functools import cached_property
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry import Schema
from strawberry.asgi import GraphQL

from ordergraph.app.stream import GraphQLOverSSE
from ordergraph.graphiql import page_headers, render_page
from ordergraph.http import GraphQLOverHTTP
from ordergraph.live.follow import LiveDelivery
from ordergraph.live.hub import EventHub
from ordergraph.live.pings import Pings
from ordergraph.live.websockets import SizedWebSocketAdapter, accept_connection
from ordergraph.live.ws_legacy import LegacyWSHandler
from ordergraph.live.ws_transport import TransportWSHandler
from ordergraph.logs import RequestInfo, current_request
from ordergraph.metrics import Metrics, Telemetry
from ordergraph.middleware import cors_origins
from ordergraph.resolvers.batches import StoreBatches
from ordergraph.resolvers.context import Context, Limits
from ordergraph.resolvers.keyguard import KeyGuard
from ordergraph.schema.build import SchemaLimits, build_schema
from ordergraph.schema.cost import CostExtension
from ordergraph.settings import Settings
from ordergraph.storage.db import Database, RequestDatabase
from ordergraph.storage.units import SqlUnits
from ordergraph.throttle import Throttle, throttle_settings
from ordergraph.webhooks import AppWebhooks

request_log = logging.getLogger("ordergraph.request")


def _new_id() -> str:
    return uuid.uuid4().hex


def _schema(settings: Settings, telemetry: Metrics, throttle: Throttle) -> Schema:
    return build_schema(
        SchemaLimits(
            max_depth=settings.max_depth,
            max_aliases=settings.max_aliases,
            max_tokens=settings.max_tokens,
            document_cache_bytes=settings.document_cache_bytes,
            max_document_bytes=settings.max_document_bytes,
            max_validation_complexity=settings.max_validation_complexity,
        ),
        introspection=settings.introspection,
        extensions=[lambda: CountedAndCosted(telemetry, throttle)],
    )


class CountedAndCosted(Telemetry, CostExtension):
    """Telemetry (ordergraph.metrics) and the cost and its charge (schema/cost.py) as one
    extension: strawberry wraps each hook of each extension anew for every operation, so
    two hooks (Telemetry's on_operation, and on_execute: name the operation, then cost and
    admit it) cost less than three in two extensions. Same order as before: the operation
    is named, then charged, then the schema's own checks run."""

    def __init__(self, metrics: Metrics, admission: Throttle) -> None:
        Telemetry.__init__(self, metrics)
        CostExtension.__init__(self, admission)

    async def on_execute(self) -> AsyncIterator[None]:  # type: ignore[override]
        self.name_operation()
        if not await self.admit_operation():
            yield
            return
        async with self.admission.running(self.execution_context.context, self.requested):
            yield


def _key_guard(db: Database, settings: Settings) -> KeyGuard:
    return KeyGuard(
        db,
        cache_seconds=settings.auth_cache_seconds,
        check_seconds=settings.revocation_check_ms / 1000,
        max_websockets=settings.max_websockets_per_key,
        max_subscriptions=settings.max_subscriptions_per_key,
    )


class OrdergraphView(GraphQL[Context, None]):
    graphql_transport_ws_handler_class = TransportWSHandler
    graphql_ws_handler_class = LegacyWSHandler
    websocket_adapter_class = SizedWebSocketAdapter

    def __init__(
        self,
        db: Database,
        settings: Settings,
        clock: Callable[[], dt.datetime],
        hub: EventHub,
        metrics: Metrics | None = None,
        **kwargs: Any,
    ) -> None:
        self.metrics = metrics or Metrics(max_operations=settings.metrics_max_operations)
        self.throttle = Throttle(throttle_settings(settings), db)
        kwargs.setdefault("graphql_ide", "graphiql" if settings.graphiql else None)
        kwargs.setdefault("allowed_origins", cors_origins(settings))  # websocket Origin check
        super().__init__(
            _schema(settings, self.metrics, self.throttle),
            keep_alive=True,
            keep_alive_interval=settings.ws_ping_seconds,
            connection_init_wait_timeout=dt.timedelta(seconds=settings.ws_init_timeout_seconds),
            max_subscriptions_per_connection=settings.max_subscriptions_per_connection,
            **kwargs,
        )
        self.ws_ping_seconds = settings.ws_ping_seconds
        self.pings = Pings(float(settings.ws_ping_seconds))
        self.ws_init_timeout_seconds = settings.ws_init_timeout_seconds
        self.hub = hub
        self.live = LiveDelivery(hub, clock)
        self.db = db
        self.settings = settings
        self.clock = clock
        self.limits = Limits(
            idempotency_ttl=settings.idempotency_ttl,
            max_connections_per_request=settings.max_connections_per_request,
        )
        self.guard = _key_guard(db, settings)
        # One process-wide queue of changes per store (resolvers/batches.py).
        self.batches = StoreBatches(
            SqlUnits(db, clock, idempotency_ttl=settings.idempotency_ttl),
            settings.store_batch_max,
        )
        self.batches.on_unit.append(self.metrics.unit_changes.observe)
        self.metrics.queued_changes.set_function(self.batches.queued)
        self._ide_page = render_page()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        elif scope["type"] == "http":
            await self.http(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    @cached_property
    def http(self) -> GraphQLOverHTTP:
        """GET and POST /graphql (this view serves only the websockets itself)."""
        return GraphQLOverHTTP(
            self.schema,
            self.settings,
            self.metrics,
            context=self.get_context,
            page=self.render_graphql_ide if self.settings.graphiql else None,
        )

    @cached_property
    def stream(self) -> GraphQLOverSSE:
        """GET and POST /graphql/stream: the same operations answered as Server-Sent Events."""
        return GraphQLOverSSE(
            self.schema,
            self.settings,
            self.metrics,
            context=self.get_context,
            page=None,
            ping_seconds=self.settings.ws_ping_seconds,
        )

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        info = RequestInfo(transport="ws")
        reset = current_request.set(info)
        started = time.perf_counter()
        self.metrics.websockets += 1
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.metrics.websockets -= 1
            request_log.info(
                "websocket closed",
                extra={
                    "request_id": info.request_id,
                    "path": scope.get("path"),
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                },
            )
            current_request.reset(reset)

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        return HTMLResponse(self._ide_page, headers=page_headers(request.headers.get("host")))

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        # The context and its units of work share the request's connection slots.
        db = RequestDatabase(self.db, self.limits.max_connections_per_request)
        info = current_request.get()
        context = Context(
            db=db,
            units=SqlUnits(db, self.clock, idempotency_ttl=self.limits.idempotency_ttl),
            batches=self.batches if self.settings.store_batch_max > 1 else None,
            clock=self.clock,
            admin_token=self.settings.admin_token,
            authorization=request.headers.get("authorization"),
            limits=self.limits,
            request=request,
            response=response,
            live=self.live,
            guard=self.guard,
            webhooks=AppWebhooks(
                db,
                self.clock,
                self.settings.webhook_allow_private,
                self.settings.webhook_max_skus,
            ),
            # ordergraph.http numbers the request before it reads the body: that id.
            request_id=info.request_id if info and info.request_id else _new_id(),
        )
        if info is not None and info.request_id is None:
            info.request_id = context.request_id
        if isinstance(response, Response):
            response.headers["x-request-id"] = context.request_id
        return context

    async def on_ws_connect(self, context: Context) -> None:
        await accept_connection(context)

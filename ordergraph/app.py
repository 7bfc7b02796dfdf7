"""The ASGI application: Starlette routes around the Strawberry GraphQL view."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from ordergraph import dashboard
from ordergraph.clock import Clock
from ordergraph.overdue import run_sweeper
from ordergraph.settings import Settings
from ordergraph.websockets import LegacyWSHandler, TransportWSHandler, accept_connection
from resolvers.context import Context, Limits
from schema.build import SchemaLimits, build_schema
from storage.db import Database
from storage.hub import EventHub


class OrdergraphView(GraphQL[Context, None]):
    graphql_transport_ws_handler_class = TransportWSHandler
    graphql_ws_handler_class = LegacyWSHandler

    def __init__(
        self,
        db: Database,
        settings: Settings,
        clock: Callable[[], dt.datetime],
        hub: EventHub,
        **kwargs: Any,
    ) -> None:
        schema = build_schema(
            SchemaLimits(
                max_depth=settings.max_depth,
                max_aliases=settings.max_aliases,
                max_tokens=settings.max_tokens,
            )
        )
        super().__init__(
            schema,
            keep_alive=True,
            keep_alive_interval=settings.ws_ping_seconds,
            connection_init_wait_timeout=dt.timedelta(seconds=settings.ws_init_timeout_seconds),
            max_subscriptions_per_connection=settings.max_subscriptions_per_connection,
            **kwargs,
        )
        self.ws_ping_seconds = settings.ws_ping_seconds
        self.ws_init_timeout_seconds = settings.ws_init_timeout_seconds
        self.hub = hub
        self.db = db
        self.settings = settings
        self.clock = clock
        self.limits = Limits(idempotency_ttl=settings.idempotency_ttl)

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        context = Context(
            db=self.db,
            clock=self.clock,
            admin_token=self.settings.admin_token,
            authorization=request.headers.get("authorization"),
            limits=self.limits,
            request=request,
            response=response,
            hub=self.hub,
        )
        if isinstance(response, Response):
            response.headers["x-request-id"] = context.request_id
        return context

    async def on_ws_connect(self, context: Context) -> None:
        await accept_connection(context)


def create_app(
    settings: Settings | None = None,
    *,
    clock: Callable[[], dt.datetime] | None = None,
    db: Database | None = None,
) -> Starlette:
    """Build the app. The database must already be migrated (`ordergraph migrate`)."""
    settings = settings or Settings.from_env()
    database = db or Database(settings.database_url, pool_size=settings.db_pool_size)
    hub = EventHub(
        database,
        poll_seconds=settings.tail_poll_ms / 1000,
        buffer=settings.subscriber_buffer,
    )
    view = OrdergraphView(database, settings, clock or Clock(), hub)

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await hub.start()
        stop = asyncio.Event()
        sweeper = None
        if settings.overdue_sweep_seconds > 0:
            sweeper = asyncio.create_task(
                run_sweeper(database, view.clock, settings.overdue_sweep_seconds, stop)
            )
        try:
            yield
        finally:
            stop.set()
            if sweeper is not None:
                await sweeper
            await hub.stop()
            if db is None:
                await database.dispose()

    app = Starlette(
        routes=[
            Route("/graphql", view, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", view),
            Route("/healthz", healthz),
            *dashboard.routes(),
        ],
        lifespan=lifespan,
    )
    app.state.db = database
    app.state.hub = hub
    app.state.settings = settings
    return app

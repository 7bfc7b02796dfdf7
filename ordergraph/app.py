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

from ordergraph.clock import Clock
from ordergraph.overdue import run_sweeper
from ordergraph.settings import Settings
from resolvers.context import Context, Limits
from schema.build import SchemaLimits, build_schema
from storage.db import Database


class OrdergraphView(GraphQL[Context, None]):
    def __init__(
        self, db: Database, settings: Settings, clock: Callable[[], dt.datetime], **kwargs: Any
    ) -> None:
        schema = build_schema(
            SchemaLimits(
                max_depth=settings.max_depth,
                max_aliases=settings.max_aliases,
                max_tokens=settings.max_tokens,
            )
        )
        super().__init__(schema, **kwargs)
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
        )
        if isinstance(response, Response):
            response.headers["x-request-id"] = context.request_id
        return context


def create_app(
    settings: Settings | None = None,
    *,
    clock: Callable[[], dt.datetime] | None = None,
    db: Database | None = None,
) -> Starlette:
    """Build the app. The database must already be migrated (`ordergraph migrate`)."""
    settings = settings or Settings.from_env()
    database = db or Database(settings.database_url, pool_size=settings.db_pool_size)
    view = OrdergraphView(database, settings, clock or Clock())

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
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
            if db is None:
                await database.dispose()

    app = Starlette(
        routes=[
            Route("/graphql", view, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", view),
            Route("/healthz", healthz),
        ],
        lifespan=lifespan,
    )
    app.state.db = database
    app.state.settings = settings
    return app

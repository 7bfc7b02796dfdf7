"""create_app: the Starlette app around the view, the endpoints and the background work."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from starlette.applications import Starlette
from starlette.routing import BaseRoute, Route, WebSocketRoute

from ordergraph import dashboard
from ordergraph.app.endpoints import healthz, metrics_handler, readyz
from ordergraph.app.export import BulkExport
from ordergraph.app.readiness import Readiness
from ordergraph.app.view import OrdergraphView
from ordergraph.clock import Clock
from ordergraph.gc_governor import GcGovernor
from ordergraph.live.frames import ReadyFrames
from ordergraph.live.hub import EventHub
from ordergraph.metrics import Metrics
from ordergraph.middleware import wrap_for_browsers
from ordergraph.overdue import run_sweeper
from ordergraph.settings import Settings
from ordergraph.storage.db import Database
from ordergraph.storage.statistics import run_first_statistics
from ordergraph.webhooks import DeliverySettings, WebhookWorker

# Every method reaches the export endpoint, which answers all but GET with a coded 405.
EXPORT_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
Lifespan = Callable[[Starlette], AbstractAsyncContextManager[None]]


def create_app(
    settings: Settings | None = None,
    *,
    clock: Callable[[], dt.datetime] | None = None,
    db: Database | None = None,
    govern_gc: bool = False,
) -> Starlette:
    """Build the app. The database must already be migrated (`ordergraph migrate`)."""
    settings = settings or Settings.from_env()
    database = db or Database(settings.database_url, pool_size=settings.db_pool_size)
    hub = EventHub(
        database,
        poll_seconds=settings.tail_poll_ms / 1000,
        buffer=settings.subscriber_buffer,
    )
    metrics = Metrics(max_operations=settings.metrics_max_operations)
    view = OrdergraphView(database, settings, clock or Clock(), hub, metrics)
    metrics.watch(database, hub, view.clock)
    # Webhook delivery, in every server process unless switched off.
    worker = (
        WebhookWorker(database, view.clock, DeliverySettings.of(settings))
        if settings.webhook_delivery
        else None
    )
    metrics.watch_webhooks(database, worker, view.clock)
    if worker is not None:
        # Other processes' commits wake delivery at once (PostgreSQL NOTIFY), as they
        # wake the live hub; the worker's poll stays as the fallback.
        hub.on_notify.append(worker.wake)
    app = Starlette(
        routes=_routes(view, settings, Readiness(database)),
        lifespan=_lifespan(view, settings, worker, owns_db=db is None, govern_gc=govern_gc),
    )
    app.state.db = database
    app.state.hub = hub
    app.state.live = view.live
    app.state.metrics = metrics
    app.state.guard = view.guard
    app.state.schema = view.schema
    app.state.settings = settings
    app.state.webhooks = worker
    wrap_for_browsers(app, settings)
    # Outermost: sees the server's own websocket `send` (live.frames).
    app.add_middleware(ReadyFrames)
    return app


def _routes(view: OrdergraphView, settings: Settings, readiness: Readiness) -> list[BaseRoute]:
    export = BulkExport(view.db, settings, view.throttle, view.get_context, view.clock)
    # With ORDERGRAPH_METRICS_PORT, /metrics is served on that port only (`ordergraph
    # serve` runs metrics_app there), not on the API's.
    metrics_endpoint = metrics_handler(view.metrics, settings.metrics_token)
    on_main = [] if settings.metrics_port else [Route("/metrics", metrics_endpoint)]
    return [
        Route("/graphql", view.http),
        Route("/graphql/stream", view.stream),
        WebSocketRoute("/graphql", view),
        Route("/healthz", healthz),
        Route("/readyz", readyz(readiness)),
        Route("/export/{name}", export.endpoint, methods=EXPORT_METHODS),
        *on_main,
        *dashboard.routes(),
    ]


def _lifespan(
    view: OrdergraphView,
    settings: Settings,
    worker: WebhookWorker | None,
    *,
    owns_db: bool,
    govern_gc: bool = False,
) -> Lifespan:
    """Start the event hub, the overdue sweeper, webhook delivery and (for the server
    process, `govern_gc`) the garbage-collection governor; stop them, and what else runs,
    at the end."""

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await view.hub.start()
        stop = asyncio.Event()
        looking = []  # the loops that end when `stop` is set
        if settings.overdue_sweep_seconds > 0:
            looking.append(
                asyncio.create_task(
                    run_sweeper(view.db, view.clock, settings.overdue_sweep_seconds, stop)
                )
            )
        if settings.first_stats_ms > 0:
            looking.append(
                asyncio.create_task(run_first_statistics(view.db, settings.first_stats_ms, stop))
            )
        if worker is not None:
            worker.start()
        governor = None
        if govern_gc and settings.gc_freeze_seconds > 0:
            governor = asyncio.create_task(
                GcGovernor(settings.gc_freeze_seconds, settings.gc_full_seconds).run()
            )
        try:
            yield
        finally:
            stop.set()
            if governor is not None:
                governor.cancel()
            if worker is not None:
                await worker.stop()
            for task in looking:
                await task
            await view.hub.stop()
            await view.pings.close()
            await view.guard.stop()
            await view.throttle.close()
            if owns_db:
                await view.db.dispose()

    return lifespan

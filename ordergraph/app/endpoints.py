"""The operational endpoints: /healthz, /readyz and /metrics (on the API's port or its own)."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ordergraph.app.readiness import Readiness
from ordergraph.metrics import CONTENT_TYPE, Metrics
from ordergraph.settings import Settings
from ordergraph.version import version

Endpoint = Callable[[Request], Awaitable[Response]]


async def healthz(_: Request) -> Response:
    """GET /healthz: 200 while the process runs, with the installed version."""
    return JSONResponse({"status": "ok", "version": version()})


def readyz(readiness: Readiness) -> Endpoint:
    """GET /readyz: 200 when `readiness` says so, 503 with its reason otherwise."""

    async def endpoint(_: Request) -> Response:
        ready, body = await readiness.check()
        return JSONResponse(body, status_code=200 if ready else 503)

    return endpoint


def metrics_handler(metrics: Metrics, token: str | None) -> Endpoint:
    """GET /metrics; with a token (ORDERGRAPH_METRICS_TOKEN), only for `Bearer <token>`."""

    async def endpoint(request: Request) -> Response:
        if token is not None:
            scheme, _, given = (request.headers.get("authorization") or "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode(), token.encode()
            ):
                return Response(
                    "a valid metrics token is needed: Authorization: Bearer <token>\n",
                    status_code=401,
                    headers={"www-authenticate": "Bearer"},
                    media_type="text/plain",
                )
        return Response(await metrics.render(), headers={"content-type": CONTENT_TYPE})

    return endpoint


def metrics_app(app: Starlette) -> Starlette:
    """/metrics of `app` alone, to serve on ORDERGRAPH_METRICS_PORT."""
    settings: Settings = app.state.settings
    return Starlette(
        routes=[Route("/metrics", metrics_handler(app.state.metrics, settings.metrics_token))]
    )

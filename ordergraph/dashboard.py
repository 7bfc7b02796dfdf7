"""The live dashboard at /dashboard: one static page, no build step, no third-party script."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Route

STATIC = Path(__file__).parent / "static"


async def _page(_: Request) -> Response:
    return FileResponse(STATIC / "dashboard.html", media_type="text/html")


def routes() -> list[BaseRoute]:
    return [Route("/dashboard", _page)]

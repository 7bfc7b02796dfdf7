"""The live dashboard at /dashboard: one static page, no build step, no third-party script.

The page, its script and its stylesheet are plain files in ordergraph/static/. Every
response carries a strict Content-Security-Policy: scripts and styles only from this
origin (no inline code), network access only to this origin (GraphQL over HTTP and
websocket), no frames, no forms posting elsewhere.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Route

STATIC = Path(__file__).parent / "static"

# Served names -> (file, media type). A fixed list: nothing else under static/ is reachable.
FILES = {
    "/dashboard": ("dashboard.html", "text/html; charset=utf-8"),
    "/dashboard/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
    "/dashboard/dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
}

_HOST = re.compile(r"^[A-Za-z0-9.\-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")


def content_security_policy(host: str | None) -> str:
    """The page's policy. Websockets to this origin are named explicitly as well, for
    browsers where 'self' does not cover ws:/wss: yet."""
    connect = ["'self'"]
    if host and _HOST.match(host):
        connect += [f"ws://{host}", f"wss://{host}"]
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            f"connect-src {' '.join(connect)}",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


def _headers(request: Request) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(request.headers.get("host")),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Cache-Control": "no-cache",
    }


def _serve(name: str, media_type: str) -> Callable[[Request], Awaitable[Response]]:
    async def serve(request: Request) -> Response:
        return FileResponse(STATIC / name, media_type=media_type, headers=_headers(request))

    return serve


def routes() -> list[BaseRoute]:
    return [
        Route(path, _serve(name, media_type), methods=["GET", "HEAD"])
        for path, (name, media_type) in FILES.items()
    ]

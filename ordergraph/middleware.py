"""The browser layer around the app: CORS, the websocket Origin check, gzip, GraphiQL's files.

- CORS (/graphql only) for the origins in ORDERGRAPH_CORS_ORIGINS: preflights answered,
  GET and POST, the Authorization and Content-Type headers, x-request-id and Retry-After
  readable by the page. Never Access-Control-Allow-Credentials: the API authenticates with
  a bearer token the page sends itself, not with cookies, so a browser has no ambient
  credential to lend a foreign page. "*" in the list allows any origin (still without
  credentials). Empty (the default): no cross-origin access; a preflight gets 400.
- Websockets are not covered by CORS: a browser opens one to any host and sends the page's
  Origin. A handshake carrying an Origin is accepted only from the server's own origin or
  one in the same list; others are refused before the upgrade (HTTP 403). Clients that
  send no Origin (servers, scripts, the examples) are not affected.
- gzip for responses of at least ORDERGRAPH_GZIP_MIN_BYTES (0: off) when the client
  accepts it, any media type but already-encoded and binary ones; websockets untouched
  (their compression is ORDERGRAPH_WS_COMPRESSION, in uvicorn).
- GraphiQL's vendored files at /graphiql/<name> while GraphiQL is on.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from ordergraph import graphiql
from ordergraph.settings import Settings, SettingsError

log = logging.getLogger("ordergraph.browsers")

CORS_PATHS = frozenset({"/graphql"})
ALLOW_METHODS = ("GET", "POST")
ALLOW_HEADERS = ("Authorization", "Content-Type")
EXPOSE_HEADERS = ("x-request-id", "Retry-After")
PREFLIGHT_MAX_AGE_SECONDS = 600
# 6 is zlib's default: a 250-order page (about 103 KB) compresses to under 10% of its
# size, in about a millisecond; 9 costs more CPU for a fraction of a percent less.
GZIP_LEVEL = 6

_ORIGIN = re.compile(
    r"^https?://[a-z0-9.\-]+(:[0-9]{1,5})?$|^https?://\[[0-9a-f:.]+\](:[0-9]{1,5})?$"
)


def cors_origins(settings: Settings) -> tuple[str, ...]:
    """The configured origins, checked: scheme://host[:port] each (what a browser sends
    as Origin: no path, no trailing slash), or "*"."""
    origins = []
    for raw in settings.cors_origins:
        origin = raw.strip().lower()
        if origin != "*" and not _ORIGIN.match(origin):
            raise SettingsError(
                "ORDERGRAPH_CORS_ORIGINS: each entry is an origin such as "
                f"https://app.example.com (scheme, host, optional port, no path), got {raw!r}"
            )
        origins.append(origin)
    return tuple(origins)


def _same_origin(origin: str, host: str | None) -> bool:
    """Whether `origin` is this server as the request addressed it (the Host header). A
    Host without a port (a proxy passing on only the host name) matches on the name."""
    if not host:
        return False
    try:
        page = urlsplit(origin)
        server = urlsplit("//" + host)
        if page.hostname is None or page.hostname != (server.hostname or "").lower():
            return False
        if server.port is None:
            return True
        default = 443 if page.scheme == "https" else 80
        return (page.port or default) == server.port
    except ValueError:
        return False


class BrowserPolicy:
    """CORS on /graphql, and the Origin check on websocket handshakes."""

    def __init__(self, app: ASGIApp, origins: tuple[str, ...]) -> None:
        self.app = app
        self.origins = frozenset(origins)
        self.any_origin = "*" in self.origins
        self.cors = CORSMiddleware(
            app,
            allow_origins=origins,
            allow_methods=ALLOW_METHODS,
            allow_headers=ALLOW_HEADERS,
            allow_credentials=False,
            expose_headers=EXPOSE_HEADERS,
            max_age=PREFLIGHT_MAX_AGE_SECONDS,
        )

    def websocket_allowed(self, headers: Headers) -> bool:
        origin = headers.get("origin")
        if origin is None or self.any_origin:
            return True
        return origin.lower() in self.origins or _same_origin(origin, headers.get("host"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in CORS_PATHS:
            await self.cors(scope, receive, send)
            return
        if scope["type"] == "websocket":
            headers = Headers(scope=scope)
            if not self.websocket_allowed(headers):
                log.info(
                    "websocket refused: origin not allowed",
                    extra={"origin": (headers.get("origin") or "")[:100]},
                )
                # Closing before accepting refuses the upgrade: the client gets HTTP 403.
                await send({"type": "websocket.close", "code": 1008})
                return
        await self.app(scope, receive, send)


def wrap_for_browsers(app: Starlette, settings: Settings) -> None:
    """Add the browser layer to `app` (before it first serves): CORS and the websocket
    Origin check from settings.cors_origins, gzip from settings.gzip_min_bytes, and the
    GraphiQL files when GraphiQL is on."""
    app.add_middleware(BrowserPolicy, origins=cors_origins(settings))
    if settings.gzip_min_bytes > 0:
        # Outermost, so whatever the layers inside answer is compressed alike.
        app.add_middleware(
            GZipMiddleware, minimum_size=settings.gzip_min_bytes, compresslevel=GZIP_LEVEL
        )
    if settings.graphiql:
        app.router.routes.extend(graphiql.asset_routes())

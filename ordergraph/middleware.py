"""The browser layer around the app: CORS, the websocket Origin check, gzip, GraphiQL's files.

- CORS (/graphql only) for the origins in ORDERGRAPH_CORS_ORIGINS: preflights answered,
  GET and POST, the Authorization and Content-Type headers, x-request-id and Retry-After
  readable by the page. Never Access-Control-Allow-Credentials: the API authenticates with
  a bearer token the page sends itself, not with cookies, so a browser has no ambient
  credential to lend a foreign page. "*" in the list allows any origin (still without
  credentials). Empty (the default): no cross-origin access; a preflight gets 400.
- Websockets are not covered by CORS: a browser opens one to any host and sends the page's
  Origin. The GraphQL view checks it (Strawberry's check, given the same list as its
  allowed_origins): a handshake from the server's own origin or one in the list is
  accepted, others are refused before the upgrade (HTTP 403). Clients that send no Origin
  (servers, scripts, the examples) are not affected.
- gzip for responses of at least ORDERGRAPH_GZIP_MIN_BYTES (0: off) when the client
  accepts it, any media type but already-encoded and binary ones; websockets untouched
  (their compression is ORDERGRAPH_WS_COMPRESSION, in uvicorn).
- GraphiQL's vendored files at /graphiql/<name> while GraphiQL is on.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send
from strawberry.http.websocket_origin import normalize_origin

from ordergraph import graphiql
from ordergraph.settings import Settings, SettingsError

CORS_PATHS = frozenset({"/graphql"})
ALLOW_METHODS = ("GET", "POST")
ALLOW_HEADERS = ("Authorization", "Content-Type")
EXPOSE_HEADERS = ("x-request-id", "Retry-After")
PREFLIGHT_MAX_AGE_SECONDS = 600
# 6 is zlib's default: a 250-order page (about 103 KB) compresses to under 10% of its
# size, in about a millisecond; 9 costs more CPU for a fraction of a percent less.
GZIP_LEVEL = 6


def cors_origins(settings: Settings) -> tuple[str, ...]:
    """The configured origins, checked and written as browsers send them in Origin
    (scheme and host in lower case, no default port), or "*"."""
    origins = []
    for raw in settings.cors_origins:
        if raw == "*":
            origins.append(raw)
            continue
        parts = urlsplit(raw.strip())
        origin = normalize_origin(raw)
        if (
            origin is None
            or parts.scheme.lower() not in ("http", "https")
            or parts.path not in ("", "/")
            or parts.query
            or parts.fragment
            or parts.username is not None
        ):
            raise SettingsError(
                "ORDERGRAPH_CORS_ORIGINS: each entry is an origin such as "
                f"https://app.example.com (scheme, host, optional port, no path), got {raw!r}"
            )
        origins.append(origin)
    return tuple(origins)


class GraphQLCors:
    """CORS on /graphql only: the other paths (health, metrics, dashboard) are not for
    pages on other origins."""

    def __init__(self, app: ASGIApp, origins: tuple[str, ...]) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app,
            allow_origins=origins,
            allow_methods=ALLOW_METHODS,
            allow_headers=ALLOW_HEADERS,
            allow_credentials=False,
            expose_headers=EXPOSE_HEADERS,
            max_age=PREFLIGHT_MAX_AGE_SECONDS,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in CORS_PATHS:
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def wrap_for_browsers(app: Starlette, settings: Settings) -> None:
    """Add the browser layer to `app` (before it first serves): CORS from
    settings.cors_origins, gzip from settings.gzip_min_bytes, and the GraphiQL files when
    GraphiQL is on. (The websocket Origin check is the GraphQL view's, given the same
    list as its allowed_origins.)"""
    app.add_middleware(GraphQLCors, origins=cors_origins(settings))
    if settings.gzip_min_bytes > 0:
        # Outermost, so whatever the layers inside answer is compressed alike.
        app.add_middleware(
            GZipMiddleware, minimum_size=settings.gzip_min_bytes, compresslevel=GZIP_LEVEL
        )
    if settings.graphiql:
        app.router.routes.extend(graphiql.asset_routes())

"""GraphiQL as served at GET /graphql: a page opening on example operations.

`EXAMPLES` is the starting document; tests/api/test_graphiql.py validates every operation
in it against the served schema, so it cannot drift from the API unnoticed.

The page works offline: its scripts and stylesheet are files vendored in
ordergraph/static/graphiql/ and served by ordergraph at /graphiql/<name> (`asset_routes`),
each named with its SRI hash. Serve `render_page()` with `page_headers(host)`: a
Content-Security-Policy allowing nothing from other origins and no inline code but the
page's own (by hash), and frame protection.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import gzip
import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

EXAMPLES = """\
# Welcome to ordergraph.
#
# 1. Put an API token in the Headers tab below:
#      {"Authorization": "Bearer og_..."}
#    (`ordergraph create-key` prints one; `ordergraph serve --demo` prints one
#    per demo store.) The same header authenticates the subscription below.
# 2. Run Stores to see your stores' handles and ids, then put them in the
#    Variables tab.
# 3. Pick an operation with the run button (or Ctrl-Enter inside it).

query Stores {
  stores(first: 10) {
    nodes { id handle name currencyCode timezone }
  }
}

# The four tallies, now. Pass asOf: "2026-01-31T12:00:00Z" to see them as they
# stood at any past instant.
query Tallies($handle: String!) {
  store(handle: $handle) {
    name
    backlog {
      asOf
      backlog { ...Tally }
      backorders { ...Tally }
      overdue { ...Tally }
      overdueBackorders { ...Tally }
      oldestBackorderPlacedAt
    }
  }
}

fragment Tally on OrderTally {
  orders
  units
  value { amount currencyCode }
}

# A page of backorders, oldest first; pass pageInfo.endCursor as $after for
# the next page.
query Backorders($handle: String!, $after: String) {
  store(handle: $handle) {
    orders(first: 20, after: $after, filter: { isBackordered: true }) {
      totalCount
      pageInfo { hasNextPage endCursor }
      nodes {
        id
        number
        placedAt
        status
        stockStatus
        expectedShipDate
        backorderedValue { amount currencyCode }
        lines { sku quantity allocated backordered }
      }
    }
  }
}

# What waiting costs over a period (from, to): the revenue lost to customers
# who declined to wait, how long backordered units waited for stock (hours),
# the share of orders placed short, what still waits by age, and the products
# that lost the most. The Variables tab opens on the last 30 days.
query WhatWaitingCosts($handle: String!, $from: DateTime!, $to: DateTime!) {
  store(handle: $handle) {
    backorderOutcomes(from: $from, to: $to) {
      lostRevenue { amount currencyCode }
      wait { p50 p90 max }
      ordersPlaced
      backorderRate
      cancelledWhileWaiting { reason tally { ...Tally } }
      stillWaiting { label tally { ...Tally } }
    }
    backorderLeaders(by: LOST_REVENUE, from: $from, to: $to, first: 5) {
      product {
        sku
        title
        # when the waiting lines get stock: the queue in runs of one date
        expectedFills { expectedFillDate receipt { reference } lines units }
      }
      unitsToReorder
      outcomes {
        lostRevenue { amount currencyCode }
        wait { p90 }
      }
    }
  }
}

# Place an order (the token needs the WRITE scope). Give it an
# idempotencyKey and a retry returns the same order instead of a second one.
mutation PlaceOrder($storeId: ID!, $sku: String!, $quantity: Int! = 1, $key: String) {
  placeOrder(
    input: {
      storeId: $storeId
      lines: [{ sku: $sku, quantity: $quantity }]
      idempotencyKey: $key
    }
  ) {
    order {
      id
      number
      status
      stockStatus
      lines { sku quantity allocated backordered }
    }
    userErrors { field message code }
  }
}

# Every order event of the store from now on, live (over a websocket). Start
# it, then run PlaceOrder in another tab.
subscription OrderEvents($storeId: ID!) {
  orderEvents(storeId: $storeId) {
    cursor
    type
    occurredAt
    status
    stockStatus
    order { number status stockStatus }
  }
}
"""

EXAMPLE_VARIABLES = {
    "handle": "<a store handle, from Stores>",
    "storeId": "<a store id, from Stores>",
    "sku": "<a product sku>",
    "quantity": 1,
}
EXAMPLE_PERIOD_DAYS = 30  # WhatWaitingCosts' period: whole UTC days, up to the end of today


def example_variables(now: dt.datetime | None = None) -> dict[str, object]:
    """The Variables tab's start: EXAMPLE_VARIABLES, and the period of WhatWaitingCosts."""
    today = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).date()
    end = dt.datetime.combine(today + dt.timedelta(days=1), dt.time(), dt.UTC)
    start = end - dt.timedelta(days=EXAMPLE_PERIOD_DAYS)
    return {
        **EXAMPLE_VARIABLES,
        "from": start.isoformat().replace("+00:00", "Z"),
        "to": end.isoformat().replace("+00:00", "Z"),
    }


EXAMPLE_HEADERS = {"Authorization": "Bearer <paste a token here>"}

# The page's own script. GraphiQL sends the Headers tab with HTTP requests only; the
# websocket of a subscription authenticates with its connection_init payload, so the
# fetcher passes the tab's Authorization on as that payload.
_SCRIPT = """\
(function () {
  var start = JSON.parse(document.getElementById("ordergraph-start").textContent);
  var url = window.location.origin + window.location.pathname;
  var authorization = null;
  var inner = GraphiQL.createFetcher({
    url: url,
    subscriptionUrl: url.replace(/^http/, "ws"),
    wsConnectionParams: function () {
      return authorization ? { Authorization: authorization } : {};
    }
  });
  function fetcher(params, options) {
    var headers = (options && options.headers) || {};
    authorization = headers.Authorization || headers.authorization || null;
    return inner(params, options);
  }
  var tab = { query: start.query, variables: start.variables, headers: start.headers };
  ReactDOM.createRoot(document.getElementById("graphiql")).render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultQuery: start.query,
      defaultHeaders: start.headers,
      defaultTabs: [tab],
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: true,
      defaultEditorToolsVisibility: "headers"
    })
  );
})();
"""


def _script_json(value: object) -> str:
    """JSON safe inside a <script> element (no "</script>" can end it early)."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def start_state(now: dt.datetime | None = None) -> dict[str, str]:
    """What a first visit opens with: the document, its variables, the headers tab."""
    return {
        "query": EXAMPLES,
        "variables": json.dumps(example_variables(now), indent=2),
        "headers": json.dumps(EXAMPLE_HEADERS, indent=2),
    }


# -- the page and its files ------------------------------------------------------------
#
# GraphiQL, React and ReactDOM are pinned npm files vendored in ordergraph/static/graphiql/
# (README.md there says where each came from; scripts/refresh_graphiql.py refreshes them).
# manifest.json holds each file's package, version and SRI hash; the page names the files
# relative to itself (so a path prefix added by a proxy keeps working), with the hash as
# `integrity=`, and the browser refuses a file that does not match it.

ASSET_DIR = Path(__file__).parent / "static" / "graphiql"
ASSET_PATH = "/graphiql/"  # where the files are served: GET /graphiql/<name>


@dataclass(frozen=True)
class Asset:
    name: str
    package: str
    version: str
    integrity: str

    @property
    def media_type(self) -> str:
        if self.name.endswith(".css"):
            return "text/css; charset=utf-8"
        return "text/javascript; charset=utf-8"

    @property
    def url(self) -> str:
        """Relative to the page at /graphql; the version makes a refreshed file a new URL."""
        return f"{ASSET_PATH.lstrip('/')}{self.name}?v={self.version}"

    def read(self) -> bytes:
        return _read(self.name)


def _load_manifest() -> tuple[Asset, ...]:
    manifest = json.loads((ASSET_DIR / "manifest.json").read_text())
    return tuple(
        Asset(name, entry["package"], entry["version"], entry["integrity"])
        for name, entry in manifest["files"].items()
    )


ASSETS = _load_manifest()

_STYLE = "html, body, #graphiql { height: 100%; margin: 0; }"
# GraphiQL's menus and dialogs (through react-remove-scroll) add one <style> element while
# they are open, to stop the page behind them scrolling. On this page, which never has a
# scroll bar, its text is always the same, and this is its hash. Should a refreshed
# GraphiQL change it, the browser test reports the blocked style and the hash it needs.
_GRAPHIQL_SCROLL_LOCK_STYLE = "'sha256-Y/huXlwoYkVyQlxwSVcCi1RCDGDCSVBzDt0hYP9qlTc='"


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def _tags() -> str:
    tags = []
    for asset in ASSETS:
        if asset.name.endswith(".css"):
            tags.append(f'<link rel="stylesheet" href="{asset.url}" integrity="{asset.integrity}">')
        else:
            tags.append(f'<script src="{asset.url}" integrity="{asset.integrity}"></script>')
    return "\n".join(tags) + "\n"


def render_page() -> str:
    return (
        "<!doctype html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        "<title>ordergraph · GraphiQL</title>\n"
        f"<style>{_STYLE}</style>\n"
        f"{_tags()}</head>\n<body>\n"
        '<div id="graphiql">Loading GraphiQL…</div>\n'
        '<script id="ordergraph-start" type="application/json">'
        f"{_script_json(start_state())}</script>\n"
        f"<script>{_SCRIPT}</script>\n</body>\n</html>\n"
    )


_HOST = re.compile(r"^[A-Za-z0-9.\-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")


def content_security_policy(host: str | None) -> str:
    """The page's policy: code and styles from this server only (the page's inline script
    and style, and GraphiQL's scroll lock style, allowed by their hashes; nothing else
    inline, no eval), fonts
    and images from this server or the stylesheet's data: URLs, network to this origin
    only (its websocket named explicitly too, for browsers where 'self' does not cover
    ws:/wss:), and no framing."""
    connect = ["'self'"]
    if host and _HOST.match(host):
        connect += [f"ws://{host}", f"wss://{host}"]
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src 'self' {_csp_hash(_SCRIPT)}",
            f"style-src 'self' {_csp_hash(_STYLE)} {_GRAPHIQL_SCROLL_LOCK_STYLE}",
            "img-src 'self' data:",
            "font-src 'self' data:",
            f"connect-src {' '.join(connect)}",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


def page_headers(host: str | None) -> dict[str, str]:
    """The headers to serve render_page() with; `host` is the request's Host header."""
    return {
        "Content-Security-Policy": content_security_policy(host),
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }


@functools.cache
def _read(name: str) -> bytes:
    return (ASSET_DIR / name).read_bytes()


@functools.cache
def _gzipped(name: str) -> bytes:
    return gzip.compress(_read(name), compresslevel=9, mtime=0)


def _asset_endpoint(asset: Asset) -> Callable[[Request], Awaitable[Response]]:
    etag = '"' + hashlib.sha256(asset.integrity.encode()).hexdigest()[:32] + '"'
    headers = {
        "ETag": etag,
        # The URL carries the version: a refreshed file is a new URL.
        "Cache-Control": "public, max-age=31536000, immutable",
        "X-Content-Type-Options": "nosniff",
        "Vary": "Accept-Encoding",
    }

    async def serve(request: Request) -> Response:
        if etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        if "gzip" in request.headers.get("accept-encoding", "").lower():
            # Compressed once per process (graphiql.min.js: 3.5 MB -> about 0.9 MB), not per
            # request; the gzip middleware leaves responses with a Content-Encoding alone.
            body = await anyio.to_thread.run_sync(_gzipped, asset.name)
            return Response(
                body,
                media_type=asset.media_type,
                headers={**headers, "Content-Encoding": "gzip"},
            )
        return Response(
            await anyio.to_thread.run_sync(asset.read),
            media_type=asset.media_type,
            headers=headers,
        )

    return serve


def asset_routes() -> list[BaseRoute]:
    """GET /graphiql/<name> for the vendored files, and nothing else."""
    return [
        Route(ASSET_PATH + asset.name, _asset_endpoint(asset), methods=["GET", "HEAD"])
        for asset in ASSETS
    ]

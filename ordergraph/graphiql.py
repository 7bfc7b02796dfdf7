"""GraphiQL as served at GET /graphql: a page opening on example operations.

`EXAMPLES` is the starting document; tests/test_graphiql.py validates every operation
in it against the served schema, so it cannot drift from the API unnoticed.
"""

from __future__ import annotations

import json

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

EXAMPLE_HEADERS = {"Authorization": "Bearer <paste a token here>"}

# GraphiQL and React from a CDN, pinned by version and hash (as Strawberry pins them).
_ASSETS = """\
<link rel="stylesheet" crossorigin
  href="https://unpkg.com/graphiql@3.8.3/graphiql.min.css"
  integrity="sha384-Mq3vbRBY71jfjQAt/DcjxUIYY33ksal4cgdRt9U/hNPvHBCaT2JfJ/PTRiPKf0aM">
<script crossorigin
  src="https://unpkg.com/react@18.2.0/umd/react.production.min.js"
  integrity="sha384-tMH8h3BGESGckSAVGZ82T9n90ztNXxvdwvdM6UoR56cYcf+0iGXBliJ29D+wZ/x8"></script>
<script crossorigin
  src="https://unpkg.com/react-dom@18.2.0/umd/react-dom.production.min.js"
  integrity="sha384-bm7MnzvK++ykSwVJ2tynSE5TRdN+xL418osEVF2DE/L/gfWHj91J2Sphe582B1Bh"></script>
<script crossorigin
  src="https://unpkg.com/graphiql@3.8.3/graphiql.min.js"
  integrity="sha384-HbRVEFG0JGJZeAHCJ9Xm2+tpknBQ7QZmNlO/DgZtkZ0aJSypT96YYGRNod99l9Ie"></script>
"""

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


def start_state() -> dict[str, str]:
    """What a first visit opens with: the document, its variables, the headers tab."""
    return {
        "query": EXAMPLES,
        "variables": json.dumps(EXAMPLE_VARIABLES, indent=2),
        "headers": json.dumps(EXAMPLE_HEADERS, indent=2),
    }


def render_page() -> str:
    return (
        "<!doctype html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        "<title>ordergraph · GraphiQL</title>\n"
        "<style>html, body, #graphiql { height: 100%; margin: 0; }</style>\n"
        f"{_ASSETS}</head>\n<body>\n"
        '<div id="graphiql">Loading GraphiQL…</div>\n'
        '<script id="ordergraph-start" type="application/json">'
        f"{_script_json(start_state())}</script>\n"
        f"<script>\n{_SCRIPT}</script>\n</body>\n</html>\n"
    )

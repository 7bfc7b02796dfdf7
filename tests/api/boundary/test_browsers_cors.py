"""CORS for the origins in ORDERGRAPH_CORS_ORIGINS, and the same list for websocket Origins.

In process: the preflight and response headers, the defaults, the setting's checks. In
headless Chromium (Debian's /usr/bin/chromium): a page served by a second server on
another origin queries with a Bearer token over fetch and subscribes over
graphql-transport-ws; a page from an origin not in the list is refused both.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from ordergraph.app import create_app
from ordergraph.middleware import cors_origins
from ordergraph.settings import Settings, SettingsError
from ordergraph.storage.db import Database
from tests.api.boundary.test_browsers_graphiql import watch_problems
from tests.client import Api
from tests.conftest import (
    ADMIN_TOKEN,
    LiveServer,
    app_client,
    chromium_or_skip,
    free_port,
    start_server,
)
from tests.ws_client import LEGACY, TRANSPORT

APP = "https://app.example.com"
STORES = "query { stores(first: 5) { nodes { id handle } } }"


def preflight(
    origin: str, method: str = "POST", headers: str = "authorization,content-type"
) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers,
    }


@pytest.fixture
async def cors_client(database: Database) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(database, cors_origins=(APP, "http://localhost:5173")) as http:
        yield http


async def test_a_listed_origin_passes_the_preflight_for_a_bearer_token_post(
    cors_client: httpx.AsyncClient,
) -> None:
    response = await cors_client.options("/graphql", headers=preflight(APP))
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == APP
    assert response.headers["access-control-allow-methods"] == "GET, POST"
    allowed = {
        h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")
    }
    assert {"authorization", "content-type"} <= allowed
    assert response.headers["access-control-max-age"] == "600"
    assert "access-control-allow-credentials" not in response.headers
    assert "origin" in response.headers["vary"].lower()
    # GET too (persisted or cached queries).
    get = await cors_client.options("/graphql", headers=preflight(APP, "GET"))
    assert get.status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        preflight("https://evil.example"),
        preflight("https://app.example.com.evil.example"),
        preflight("http://app.example.com"),  # another scheme is another origin
        preflight(APP, "DELETE"),
        preflight(APP, "POST", "authorization,x-custom"),
    ],
)
async def test_a_preflight_for_anything_else_is_refused(
    cors_client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await cors_client.options("/graphql", headers=headers)
    assert response.status_code == 400
    assert response.headers.get("access-control-allow-origin") in (None, APP)
    if headers["Origin"] != APP:
        assert "access-control-allow-origin" not in response.headers


async def test_the_answer_to_a_listed_origin_exposes_the_request_id_and_retry_after(
    cors_client: httpx.AsyncClient, api: Api
) -> None:
    store = await api.create_store()
    response = await cors_client.post(
        "/graphql",
        json={"query": STORES},
        headers={"Origin": APP, "Authorization": f"Bearer {store.token}"},
    )
    assert response.status_code == 200
    assert response.json()["data"]["stores"]["nodes"] == [{"id": store.id, "handle": store.handle}]
    assert response.headers["access-control-allow-origin"] == APP
    exposed = {
        h.strip().lower() for h in response.headers["access-control-expose-headers"].split(",")
    }
    assert exposed == {"x-request-id", "retry-after"}
    assert "access-control-allow-credentials" not in response.headers
    assert "origin" in response.headers["vary"].lower()
    # Another origin gets no CORS header: its browser keeps the answer from the page.
    other = await cors_client.post(
        "/graphql",
        json={"query": STORES},
        headers={"Origin": "https://evil.example", "Authorization": f"Bearer {store.token}"},
    )
    assert "access-control-allow-origin" not in other.headers
    # Only /graphql speaks CORS.
    for path in ("/healthz", "/metrics", "/dashboard"):
        got = await cors_client.get(path, headers={"Origin": APP})
        assert "access-control-allow-origin" not in got.headers, path


async def test_by_default_no_origin_is_allowed_and_the_preflight_is_answered(api: Api) -> None:
    assert Settings.from_env({}).cors_origins == ()
    response = await api.http.options("/graphql", headers=preflight(APP))
    assert response.status_code == 400  # was 405: now a CORS answer, and a refusal
    assert "access-control-allow-origin" not in response.headers
    post = await api.http.post(
        "/graphql", json={"query": "{ __typename }"}, headers={"Origin": APP}
    )
    assert "access-control-allow-origin" not in post.headers


async def test_a_wildcard_allows_any_origin_and_never_credentials(database: Database) -> None:
    async with app_client(database, cors_origins=("*",)) as http:
        response = await http.options("/graphql", headers=preflight("https://anyone.example"))
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in response.headers
        post = await http.post(
            "/graphql", json={"query": "{ __typename }"}, headers={"Origin": "https://x.example"}
        )
        assert post.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in post.headers


def test_the_setting_is_read_from_the_environment_and_checked(database: Database) -> None:
    read = Settings.from_env({"ORDERGRAPH_CORS_ORIGINS": f" {APP}, http://localhost:5173 ,"})
    assert read.cors_origins == (APP, "http://localhost:5173")
    # Written as a browser writes Origin: lower case, no default port, no trailing slash.
    settings = Settings(database_url=database.url, cors_origins=("HTTPS://App.Example.com:443/",))
    assert cors_origins(settings) == (APP,)
    for wrong in (
        "app.example.com",
        f"{APP}/graphql",
        f"{APP}?x=1",
        "ftp://app.example.com",
        "https://user@app.example.com",
        "null",
    ):
        settings = Settings(database_url=database.url, cors_origins=(wrong,))
        with pytest.raises(SettingsError, match="ORDERGRAPH_CORS_ORIGINS"):
            create_app(settings, db=database)


# -- websockets: the Origin header against the same list ---------------------------------


@pytest.fixture(scope="module")
def page_servers() -> Iterator[tuple[str, str]]:
    """Two small servers on other ports (so other origins) serving PAGE: the first is
    listed in ORDERGRAPH_CORS_ORIGINS, the second is not."""
    servers = []
    for _ in range(2):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), PageHandler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    try:
        yield (
            f"http://127.0.0.1:{servers[0].server_address[1]}",
            f"http://127.0.0.1:{servers[1].server_address[1]}",
        )
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


@pytest.fixture(scope="module")
def cors_server(
    pg_url: str, page_servers: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    allowed, _ = page_servers
    server = start_server(
        pg_url,
        tmp_path_factory.mktemp("cors") / "server.log",
        {"ORDERGRAPH_CORS_ORIGINS": allowed},
    )
    try:
        yield server
    finally:
        server.stop()


async def handshake(server: LiveServer, origin: str | None, protocol: str = TRANSPORT) -> int | str:
    """'open' when the websocket opens, else the HTTP status of the refusal."""
    url = server.url.replace("http://", "ws://") + "/graphql"
    try:
        async with connect(url, subprotocols=[protocol], origin=origin, open_timeout=10):  # type: ignore[list-item,arg-type]
            return "open"
    except InvalidStatus as refused:
        return refused.response.status_code


@pytest.mark.e2e  # starts a process
async def test_a_websocket_from_an_origin_not_listed_is_refused(
    cors_server: LiveServer, page_servers: tuple[str, str]
) -> None:
    allowed, other = page_servers
    assert await handshake(cors_server, allowed) == "open"
    assert await handshake(cors_server, cors_server.url) == "open"  # its own pages
    assert await handshake(cors_server, None) == "open"  # not a browser: no Origin
    assert await handshake(cors_server, other) == 403
    assert await handshake(cors_server, "https://evil.example") == 403
    assert await handshake(cors_server, "null") == 403
    # The legacy protocol alike.
    assert await handshake(cors_server, allowed, LEGACY) == "open"
    assert await handshake(cors_server, other, LEGACY) == 403


# -- in a real browser ---------------------------------------------------------------------

PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>another origin</title></head><body>
<p>A page on another origin, talking to ordergraph.</p>
<script>
window.ogQuery = async function (url, token, query) {
  try {
    const response = await fetch(url, {
      method: "POST",
      headers: { "Authorization": "Bearer " + token, "Content-Type": "application/json" },
      body: JSON.stringify({ query: query })
    });
    return {
      status: response.status,
      body: await response.json(),
      requestId: response.headers.get("x-request-id")
    };
  } catch (error) {
    return { error: String(error) };
  }
};

// A minimal graphql-transport-ws client: init with the token, one subscription, every
// `next` payload kept in window.ogLive. Resolves on the first result or on close.
window.ogLive = [];
window.ogSubscribe = function (url, token, query, variables) {
  return new Promise(function (resolve) {
    const seen = [];
    const ws = new WebSocket(url, "graphql-transport-ws");
    ws.onopen = function () {
      const init = { type: "connection_init", payload: { Authorization: "Bearer " + token } };
      ws.send(JSON.stringify(init));
    };
    ws.onmessage = function (event) {
      const message = JSON.parse(event.data);
      seen.push(message.type);
      if (message.type === "connection_ack") {
        const payload = { query: query, variables: variables };
        ws.send(JSON.stringify({ id: "1", type: "subscribe", payload: payload }));
      } else if (message.type === "ping") {
        ws.send(JSON.stringify({ type: "pong" }));
      } else if (message.type === "next") {
        window.ogLive.push(message.payload);
        resolve({ seen: seen, first: message.payload });
      } else if (message.type === "error") {
        resolve({ seen: seen, errors: message.payload });
      }
    };
    ws.onclose = function (event) { resolve({ seen: seen, closed: event.code }); };
  });
};
</script>
</body></html>
"""


class PageHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: Any) -> None:
        pass


BACKLOG = """subscription($s: ID!) { backlogChanged(storeId: $s) { backlog { orders units } } }"""


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    chromium_or_skip("the CORS browser test")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True
        )
        try:
            yield browser
        finally:
            await browser.close()


@pytest.mark.e2e  # starts a process
async def test_chromium_on_a_listed_origin_queries_and_subscribes_and_another_is_refused(
    cors_server: LiveServer, page_servers: tuple[str, str], browser: Any
) -> None:
    allowed, other = page_servers
    graphql = cors_server.url + "/graphql"
    ws_url = graphql.replace("http://", "ws://")
    async with httpx.AsyncClient(base_url=cors_server.url, timeout=30) as http:
        api = Api(http, ADMIN_TOKEN, None)
        store = await api.create_store(policy="ALLOW")
        await api.upsert(store, "MUG")

        page = await browser.new_page()
        problems = watch_problems(page)
        await page.goto(allowed + "/")
        assert await page.evaluate("location.origin") == allowed != cors_server.url

        # fetch with a Bearer token and JSON: preflighted, then answered and readable.
        answer = await page.evaluate(
            "([u, t, q]) => ogQuery(u, t, q)", [graphql, store.token, STORES]
        )
        assert answer["status"] == 200, answer
        assert answer["body"]["data"]["stores"]["nodes"] == [
            {"id": store.id, "handle": store.handle}
        ]
        assert answer["requestId"]  # an exposed header the page can read

        # A subscription over graphql-transport-ws: the summary at once, then live.
        first = await page.evaluate(
            "([u, t, q, v]) => ogSubscribe(u, t, q, v)",
            [ws_url, store.token, BACKLOG, {"s": store.id}],
        )
        assert first["seen"][:2] == ["connection_ack", "next"], first
        assert first["first"]["data"]["backlogChanged"]["backlog"] == {"orders": 0, "units": 0}
        assert (await api.place(store, [("MUG", 3)]))["userErrors"] == []
        await page.wait_for_function(
            "ogLive.some(p => p.data.backlogChanged.backlog.orders === 1)", timeout=15_000
        )
        assert problems == [], problems

        # The same page from an origin not in the list: the browser refuses both.
        refused = await browser.new_page()
        await refused.goto(other + "/")
        answer = await refused.evaluate(
            "([u, t, q]) => ogQuery(u, t, q)", [graphql, store.token, STORES]
        )
        assert answer == {"error": "TypeError: Failed to fetch"}
        closed = await refused.evaluate(
            "([u, t, q, v]) => ogSubscribe(u, t, q, v)",
            [ws_url, store.token, BACKLOG, {"s": store.id}],
        )
        assert closed == {"seen": [], "closed": 1006}

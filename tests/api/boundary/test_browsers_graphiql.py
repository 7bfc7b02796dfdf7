"""GraphiQL works offline: its files are ordergraph's own (pinned npm files, checked by their
SRI hashes), and the page is served with a Content-Security-Policy and frame protection.

The browser test renders the page in headless Chromium (Debian's /usr/bin/chromium) with
every host but the server blocked, types a Bearer header, runs a query and a subscription,
and saves a screenshot to test-artifacts/graphiql.png.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from ordergraph.graphiql import ASSET_DIR, ASSETS, page_headers, render_page
from ordergraph.storage.db import Database
from tests.client import Api
from tests.conftest import ADMIN_TOKEN, CHROMIUM, LiveServer, app_client, chromium_or_skip

ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = ROOT / "test-artifacts"
BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def sri(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


def csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def directives(policy: str) -> dict[str, str]:
    found = {}
    for directive in policy.split(";"):
        name, _, value = directive.strip().partition(" ")
        found[name] = value
    return found


# -- the vendored files ----------------------------------------------------------------


def test_every_vendored_file_matches_its_recorded_hash_and_the_page_names_it() -> None:
    manifest = json.loads((ASSET_DIR / "manifest.json").read_text())["files"]
    page = render_page()
    assert (
        {a.name for a in ASSETS}
        == set(manifest)
        == {
            "graphiql.min.css",
            "graphiql.min.js",
            "react.production.min.js",
            "react-dom.production.min.js",
        }
    )
    for name, entry in manifest.items():
        data = (ASSET_DIR / name).read_bytes()
        # Recomputed from the bytes on disk, not taken from the manifest.
        assert sri(data) == entry["integrity"], name
        assert entry["package"] in ("graphiql", "react", "react-dom")
        assert re.fullmatch(r"\d+\.\d+\.\d+", entry["version"]), entry
        assert entry["tarball_integrity"].startswith("sha512-")
        assert f'integrity="{sri(data)}"' in page, name
    # The README says where each file came from, version included.
    readme = (ASSET_DIR / "README.md").read_text()
    for entry in manifest.values():
        assert f"{entry['package']}@{entry['version']}" in readme
    assert "scripts/refresh_graphiql.py" in readme


def test_the_page_loads_nothing_from_another_origin() -> None:
    page = render_page()
    assert "unpkg" not in page
    assert "cdn" not in page.lower()
    urls = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert len(urls) == len(ASSETS)
    for url in urls:
        # Relative to the page at /graphql: this server, under any path prefix.
        absolute = urljoin("https://og.example/graphql", url)
        assert urlsplit(absolute).netloc == "og.example", url
        assert urlsplit(absolute).path.startswith("/graphiql/"), url
    # Every <script> that runs is a file here or the page's one inline script.
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", page, re.S)
    inline = [body for attributes, body in scripts if "src=" not in attributes]
    data = [a for a, _ in scripts if 'type="application/json"' in a]
    assert len(data) == 1
    assert len(inline) == 2


def test_the_page_headers_allow_only_the_page_itself() -> None:
    page = render_page()
    headers = page_headers("og.example:8443")
    assert headers["X-Frame-Options"] == "DENY"
    policy = directives(headers["Content-Security-Policy"])
    assert policy["default-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["base-uri"] == "'none'"
    assert policy["form-action"] == "'none'"
    assert policy["connect-src"] == "'self' ws://og.example:8443 wss://og.example:8443"
    assert "'unsafe-inline'" not in headers["Content-Security-Policy"]
    assert "'unsafe-eval'" not in headers["Content-Security-Policy"]
    assert "http" not in headers["Content-Security-Policy"].replace("https", "")
    # The one inline script and the one inline style are allowed by their hash, which
    # is recomputed here from the page as served.
    [(_, script)] = [
        (a, b)
        for a, b in re.findall(r"<script\b([^>]*)>(.*?)</script>", page, re.S)
        if "src=" not in a and "application/json" not in a
    ]
    [style] = re.findall(r"<style>(.*?)</style>", page, re.S)
    assert policy["script-src"] == f"'self' {csp_hash(script)}"
    # Styles: the page's own, and the one GraphiQL adds while a menu or dialog is open.
    assert policy["style-src"].startswith(f"'self' {csp_hash(style)} 'sha256-")
    assert len(policy["style-src"].split()) == 3
    # A Host header that is not a host name never reaches the policy.
    assert "evil" not in page_headers("x; script-src evil")["Content-Security-Policy"]


# -- served over HTTP ------------------------------------------------------------------


async def test_the_page_is_served_with_its_policy_and_the_files_with_their_bytes(
    api: Api,
) -> None:
    response = await api.http.get("/graphql", headers=BROWSER)
    assert response.status_code == 200
    assert response.headers["x-frame-options"] == "DENY"
    assert (
        response.headers["content-security-policy"]
        == (page_headers("test")["Content-Security-Policy"])
    )
    assert response.headers["x-content-type-options"] == "nosniff"

    for asset in ASSETS:
        url = urljoin("http://test/graphql", asset.url)
        # Compressed for a client that accepts gzip (compressed once, kept in memory).
        async with api.http.stream("GET", url, headers={"Accept-Encoding": "gzip"}) as got:
            raw = b"".join([chunk async for chunk in got.aiter_raw()])
        assert got.status_code == 200, asset.name
        assert got.headers["content-encoding"] == "gzip"
        assert sri(gzip.decompress(raw)) == asset.integrity
        expected = "text/css" if asset.name.endswith(".css") else "text/javascript"
        assert got.headers["content-type"].startswith(expected)
        assert "immutable" in got.headers["cache-control"]
        # As they are for one that does not.
        plain = await api.http.get(url, headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers
        assert sri(plain.content) == asset.integrity
        # Revalidation by ETag.
        again = await api.http.get(url, headers={"If-None-Match": got.headers["etag"]})
        assert again.status_code == 304
    big = next(a for a in ASSETS if a.name == "graphiql.min.js")
    print(f"\ngraphiql.min.js: {len(big.read()):,} bytes, {len(raw):,} gzipped")

    # Nothing else under the folder is served.
    for name in ("manifest.json", "README.md", "LICENSE.react", "../graphiql.py"):
        assert (await api.http.get(f"/graphiql/{name}")).status_code == 404


async def test_with_graphiql_off_its_files_are_not_served(database: Database) -> None:
    async with app_client(database, graphiql=False) as http:
        for asset in ASSETS:
            assert (await http.get(f"/graphiql/{asset.name}")).status_code == 404


# -- in a real browser, offline ----------------------------------------------------------


@pytest.fixture
async def chromium() -> AsyncIterator[Any]:
    chromium_or_skip("the GraphiQL browser test")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield browser
        finally:
            await browser.close()


def watch_problems(page: Any) -> list[str]:
    """Page errors and console errors (Chromium reports CSP violations there too)."""
    problems: list[str] = []
    page.on("pageerror", lambda err: problems.append(f"page error: {err}"))
    page.on(
        "console",
        lambda msg: (
            problems.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None
        ),
    )
    return problems


async def editor_value(page: Any, selector: str) -> str:
    value: str = await page.eval_on_selector(selector, "e => e.CodeMirror.getValue()")
    return value


async def replace_editor_text(page: Any, selector: str, text: str, *, typed: bool) -> None:
    await page.click(selector)
    await page.keyboard.press("Control+A")
    await page.keyboard.press("Delete")
    if typed:
        await page.keyboard.type(text)
    else:
        await page.keyboard.insert_text(text)


async def run_operation(page: Any, name: str) -> None:
    """The run button; with several operations in the document it asks which one."""
    await page.click(".graphiql-execute-button")
    await page.get_by_role("menuitem", name=name).click()


async def test_graphiql_renders_with_no_network_and_runs_a_query_with_the_header(
    live_pg_server: LiveServer, chromium: Any
) -> None:
    from playwright.async_api import expect

    async with httpx.AsyncClient(base_url=live_pg_server.url, timeout=30) as http:
        api = Api(http, ADMIN_TOKEN, None)
        store = await api.create_store(policy="ALLOW")
        await api.upsert(store, "MUG")

        context = await chromium.new_context(viewport={"width": 1400, "height": 1000})
        page = await context.new_page()
        problems = watch_problems(page)
        server = urlsplit(live_pg_server.url).netloc
        elsewhere: list[str] = []
        requested: list[str] = []

        async def only_the_server(route: Any) -> None:
            url = route.request.url
            if urlsplit(url).netloc == server:
                requested.append(urlsplit(url).path)
                await route.continue_()
            else:
                elsewhere.append(url)
                await route.abort()

        await context.route("**/*", only_the_server)
        # Anything the page's policy blocks is noted (Chromium logs it as an error too).
        await page.add_init_script(
            "window.__violations = [];"
            "document.addEventListener('securitypolicyviolation', e => window.__violations"
            ".push([e.violatedDirective, e.sourceFile, e.lineNumber, e.sample]));"
        )
        await page.goto(live_pg_server.url + "/graphql")
        await expect(page.locator(".graphiql-container")).to_be_visible(timeout=20_000)
        assert sorted(p for p in requested if p.startswith("/graphiql/")) == sorted(
            f"/graphiql/{a.name}" for a in ASSETS
        )

        headers_editor = ".graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror"
        assert json.loads(await editor_value(page, headers_editor)) == {
            "Authorization": "Bearer <paste a token here>"
        }
        typed_header = '{"Authorization": "Bearer ' + store.token + '"}'
        await replace_editor_text(page, headers_editor, typed_header, typed=True)
        assert json.loads(await editor_value(page, headers_editor)) == {
            "Authorization": f"Bearer {store.token}"
        }

        # The settings dialog and the schema's documentation open (no blocked style).
        await page.get_by_role("button", name="Open settings dialog").click()
        await expect(page.get_by_role("dialog")).to_be_visible()
        await page.keyboard.press("Escape")
        await page.get_by_role("button", name="Show Documentation Explorer").click()
        await expect(page.locator(".graphiql-doc-explorer")).to_contain_text("Query")

        result = page.locator(".result-window")
        await run_operation(page, "Stores")
        await expect(result).to_contain_text(store.handle, timeout=15_000)
        await expect(result).to_contain_text('"currencyCode": "USD"')

        # A subscription over the websocket, authenticated with the same header.
        await page.get_by_role("button", name="Variables").click()
        variables_editor = ".graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror"
        await replace_editor_text(
            page, variables_editor, json.dumps({"storeId": store.id}), typed=False
        )
        await run_operation(page, "OrderEvents")
        await page.wait_for_timeout(1000)  # the subscription is live once the socket is up
        placed = await api.place(store, [("MUG", 2)])
        assert placed["userErrors"] == []
        # GraphiQL shows the latest event: the order's PLACED, then its BACKORDERED.
        await expect(result).to_contain_text(
            f'"number": {placed["order"]["number"]}', timeout=15_000
        )
        await expect(result).to_contain_text('"orderEvents"')

        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "graphiql.png"
        await page.screenshot(path=str(shot))
        print(f"\nGraphiQL screenshot: {shot}")

        assert await page.evaluate("window.__violations") == []
    assert elsewhere == []
    assert problems == [], "\n".join(problems)

"""The live dashboard at /dashboard, and Store.backorderedProducts which it lists.

The browser test drives the page in headless Chromium (Debian's /usr/bin/chromium)
against a real server process, and saves a screenshot to test-artifacts/dashboard.png.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.client import Api, StoreHandle
from tests.conftest import ADMIN_TOKEN, CHROMIUM, LiveServer, chromium_or_skip

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"

CREATE_KEY = """mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) {
  apiKey { id } token userErrors { field message code } } }"""
REVOKE_KEY = """mutation($id: ID!) { revokeApiKey(id: $id) {
  apiKey { id revokedAt } userErrors { field message code } } }"""
BACKORDERED = """query($h: String!, $first: Int!) { store(handle: $h) {
  backorderedProducts(first: $first) { sku backordered } } }"""
SCHEDULE = """mutation($input: ScheduleReceiptInput!) { scheduleReceipt(input: $input) {
  receipt { id } userErrors { field message code } } }"""
UPDATE_RECEIPT = """mutation($input: UpdateReceiptInput!) { updateReceipt(input: $input) {
  receipt { id } userErrors { field message code } } }"""
RECEIVE_AGAINST = """mutation($input: ReceiveStockInput!) { receiveStock(input: $input) {
  product { onHand } userErrors { field message code } } }"""
BACKORDERED_DEFAULT = """query($h: String!) { store(handle: $h) {
  backorderedProducts { sku backordered } } }"""


# -- Store.backorderedProducts --------------------------------------------------


async def _backordered_world(api: Api) -> tuple[StoreHandle, StoreHandle]:
    """Store one: C 7 units awaiting stock, A and B 5 each, D none (in stock), E no
    orders. Store two: the same SKUs with far more awaiting stock."""
    one = await api.create_store(policy="ALLOW")
    two = await api.create_store(policy="ALLOW")
    for store in (one, two):
        for sku in ("A", "B", "C", "D", "E"):
            await api.upsert(store, sku)
        await api.receive(store, "D", 50)
    for sku, units in (("B", 2), ("A", 5), ("C", 3), ("B", 3), ("C", 4), ("D", 9)):
        assert (await api.place(one, [(sku, units)]))["userErrors"] == []
    assert (await api.place(two, [("E", 90), ("A", 80), ("B", 70)]))["userErrors"] == []
    return one, two


async def _listed(api: Api, store: StoreHandle, first: int | None) -> list[tuple[str, int]]:
    if first is None:
        data = await api.gql(BACKORDERED_DEFAULT, {"h": store.handle}, token=store.token)
    else:
        data = await api.gql(BACKORDERED, {"h": store.handle, "first": first}, token=store.token)
    return [(p["sku"], p["backordered"]) for p in data["store"]["backorderedProducts"]]


async def test_backordered_products_come_most_units_first_ties_by_sku_own_store_only(
    api: Api,
) -> None:
    one, two = await _backordered_world(api)
    # D is in stock and E has no orders: neither is listed. A and B tie; A comes first.
    assert await _listed(api, one, None) == [("C", 7), ("A", 5), ("B", 5)]
    assert await _listed(api, one, 2) == [("C", 7), ("A", 5)]
    assert await _listed(api, one, 0) == []
    # The other store's products (same SKUs, larger queues) never show up in either list.
    assert await _listed(api, two, 100) == [("E", 90), ("A", 80), ("B", 70)]

    # Filling C's queue takes it off the list; A and B stay in SKU order.
    await api.receive(one, "C", 7)
    assert await _listed(api, one, 10) == [("A", 5), ("B", 5)]


async def test_backordered_products_refuses_first_over_100_or_negative(api: Api) -> None:
    store = await api.create_store(policy="ALLOW")
    await api.upsert(store, "A")
    await api.place(store, [("A", 1)])
    assert await _listed(api, store, 100) == [("A", 1)]
    for first in (101, 1000, -1):
        body = await api.raw(BACKORDERED, {"h": store.handle, "first": first}, token=store.token)
        assert body["data"] is None or body["data"]["store"] is None, body
        [error] = body["errors"]
        assert error["extensions"]["code"] == "INVALID", error
        assert "100" in error["message"], error


# -- serving the page -------------------------------------------------------------


async def test_the_page_and_its_files_are_served_with_a_strict_content_security_policy(
    api: Api,
) -> None:
    page = await api.http.get("/dashboard")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "'unsafe-inline'" not in policy
    assert "'unsafe-eval'" not in policy
    # No inline script and no script from elsewhere: every <script> names a file here.
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", page.text, re.S)
    assert scripts, page.text
    for attributes, body in scripts:
        assert body.strip() == ""
        assert re.search(r'src="/dashboard/[\w.]+\.js"', attributes), attributes
    assert "style=" not in page.text
    assert "<style" not in page.text

    script = await api.http.get("/dashboard/dashboard.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert "graphql-transport-ws" in script.text
    style = await api.http.get("/dashboard/dashboard.css")
    assert style.status_code == 200
    assert style.headers["content-type"].startswith("text/css")
    # Only the named files are served from the static folder.
    assert (await api.http.get("/dashboard/dashboard.html")).status_code == 404


# -- the page in a real browser -------------------------------------------------------


@pytest.fixture
async def browser_page(live_pg_server: LiveServer) -> AsyncIterator[Any]:
    chromium_or_skip("the dashboard browser test")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            yield await context.new_page()
        finally:
            await browser.close()


async def _feed_items(page: Any) -> list[tuple[str, str]]:
    """The feed as (event type, order number), newest first."""
    items = await page.eval_on_selector_all(
        "#feed li", "items => items.map(i => [i.dataset.type, i.dataset.order])"
    )
    return [(kind, number) for kind, number in items]


def _record_costs(page: Any) -> dict[str, int]:
    """The cost of each query the page makes (extensions.cost), by operation name."""
    costs: dict[str, int] = {}

    async def cost_of(response: Any) -> None:
        if response.url.endswith("/graphql") and response.request.method == "POST":
            sent = response.request.post_data_json or {}
            body = await response.json()
            name = re.search(r"query\s+(\w+)", sent.get("query", ""))
            if name and "extensions" in body:
                costs[name.group(1)] = body["extensions"]["cost"]["requestedQueryCost"]

    page.on("response", cost_of)
    return costs


def _feed_item(page: Any, number: str, kind: str) -> Any:
    return page.locator(f'#feed li[data-order="{number}"][data-type="{kind}"]')


async def _ship_dates_in_the_feed(
    page: Any, api: Api, store: StoreHandle, numbers: tuple[str, ...]
) -> str:
    """The orders (one product, six units waiting, nothing on its way) in the feed and the
    products table, as a receipt is scheduled and moved; the receipt's id."""
    from playwright.async_api import expect

    # Each waiting order shows its expected ship date: unknown while no receipt covers it.
    row = page.locator("#products tbody tr")
    await expect(row.locator(".to-reorder")).to_have_text("6")  # nothing on its way
    await expect(row.locator(".next-receipt")).to_have_text("—")
    for number in numbers:
        ships = _feed_item(page, number, "BACKORDERED").locator(".event-ships")
        await expect(ships).to_have_attribute("data-ship-date", "")
        await expect(ships).to_contain_text("ships unknown")
    # A receipt for all six waiting units: each order is told its ship date, in the feed
    # with the new date; the supplier moves it four days: each is told again.
    on = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=10)
    later = on + dt.timedelta(days=4)
    receipt = await api.gql(
        SCHEDULE,
        {"input": {"storeId": store.id, "sku": "KETTLE-01", "quantity": 6,
                   "expectedAt": on.isoformat()}},
        token=store.token,
    )  # fmt: skip
    assert receipt["scheduleReceipt"]["userErrors"] == []
    rid = receipt["scheduleReceipt"]["receipt"]["id"]
    for number in numbers:
        moved = _feed_item(page, number, "EXPECTED_SHIP_DATE_CHANGED").locator(".event-ships")
        await expect(moved).to_have_count(1)
        await expect(moved).to_have_attribute("data-ship-date", on.isoformat())
        await expect(moved).to_contain_text("new ship date")
        await expect(moved.locator("time")).to_have_attribute("datetime", on.isoformat())
    moved_later = await api.gql(
        UPDATE_RECEIPT, {"input": {"id": rid, "expectedAt": later.isoformat()}},
        token=store.token,
    )  # fmt: skip
    assert moved_later["updateReceipt"]["userErrors"] == []
    for number in numbers:
        moved = _feed_item(page, number, "EXPECTED_SHIP_DATE_CHANGED").locator(".event-ships")
        await expect(moved).to_have_count(2)
        await expect(moved.first).to_have_attribute("data-ship-date", later.isoformat())
        await expect(moved.last).to_have_attribute("data-ship-date", on.isoformat())
    # The product's row: the receipt covers its queue, and comes on the later date.
    await expect(row.locator(".to-reorder")).to_have_text("0")
    await expect(row.locator(".next-receipt")).to_have_attribute("data-date", later.isoformat())
    await expect(row.locator(".next-receipt")).to_contain_text("6 units")
    return str(rid)


async def test_the_dashboard_shows_an_order_placed_at_zero_stock_live(
    live_pg_server: LiveServer, browser_page: Any
) -> None:
    from playwright.async_api import WebSocketRoute, expect

    page = browser_page
    problems: list[str] = []
    page.on("pageerror", lambda err: problems.append(f"page error: {err}"))
    page.on(
        "console",
        lambda msg: (
            problems.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None
        ),
    )

    # The page's websockets go through the test, which can cut them to force a reconnect
    # and sees what the page sends on each connection.
    sockets: list[tuple[WebSocketRoute, WebSocketRoute]] = []
    sent: list[list[dict[str, Any]]] = []

    async def through(ws: WebSocketRoute) -> None:
        mine: list[dict[str, Any]] = []
        sent.append(mine)
        server = ws.connect_to_server()
        sockets.append((ws, server))

        def forward(message: str | bytes) -> None:
            mine.append(json.loads(message))
            server.send(message)

        ws.on_message(forward)

    await page.route_web_socket(re.compile(r"/graphql$"), through)
    costs = _record_costs(page)

    async with httpx.AsyncClient(base_url=live_pg_server.url, timeout=30) as http:
        api = Api(http, ADMIN_TOKEN, None)
        store = await api.create_store(policy="DENY", currency="EUR")
        also = await api.create_store()
        await api.create_store()  # a third store, which the key below does not cover
        # The page gets a read-only key for two of the three stores.
        key = await api.gql(
            CREATE_KEY,
            {"input": {"name": "wallboard", "storeIds": [store.id, also.id], "scopes": ["READ"]}},
            token=ADMIN_TOKEN,
        )
        reader = key["createApiKey"]["token"]
        assert reader
        upserted = await api.upsert(
            store, "KETTLE-01", title="Copper kettle", price="39.90", backorderPolicy="ALLOW"
        )
        assert upserted["product"]["onHand"] == 0

        await page.goto(live_pg_server.url + "/dashboard")

        # A wrong token gets a clear message, and the page stays on the token form.
        await page.fill("#token", "og_not_a_real_token")
        await page.click("#connect")
        await expect(page.locator("#login-error")).to_contain_text("not accepted")
        await expect(page.locator("#board")).to_be_hidden()
        # The admin token is refused with its own explanation.
        await page.fill("#token", ADMIN_TOKEN)
        await page.click("#connect")
        await expect(page.locator("#login-error")).to_contain_text("admin token")

        await page.fill("#token", reader)
        await page.click("#connect")
        await expect(page.locator("#store")).to_be_visible()
        # The store list holds what this token may see, nothing else.
        options = await page.eval_on_selector_all("#store option", "os => os.map(o => o.value)")
        assert sorted(options) == sorted(["", store.id, also.id])
        await expect(page.locator("#board")).to_be_hidden()
        await page.select_option("#store", store.id)
        await expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
        backorders = page.locator("#tally-backorders .orders")
        await expect(backorders).to_have_text("0")
        await expect(page.locator("#products-empty")).to_be_visible()
        # The token is in this tab's session storage, never in the address.
        assert reader not in page.url
        stored = await page.evaluate("sessionStorage.getItem('ordergraph.dashboard.token')")
        assert stored == reader

        placed = await api.place(store, [("KETTLE-01", 2)], customerRef="cust-42")
        assert placed["userErrors"] == []
        assert placed["order"]["stockStatus"] == "BACKORDERED"

        first = str(placed["order"]["number"])
        await expect(
            page.locator(f'#feed li[data-order="{first}"][data-type="BACKORDERED"]')
        ).to_be_visible()
        await expect(backorders).to_have_text("1")
        await expect(page.locator("#tally-backorders .units")).to_have_text("2")
        await expect(page.locator("#tally-backlog .orders")).to_have_text("1")
        await expect(page.locator("#products tbody tr")).to_have_count(1)
        await expect(page.locator("#products tbody tr .sku")).to_have_text("KETTLE-01")
        await expect(page.locator("#chart svg .line-backorders")).to_have_count(1)
        before_cut = await _feed_items(page)

        # Cut the live connection; orders placed while it is down still reach the feed,
        # once each, because the page resumes from the last cursor it saw.
        assert len(sockets) == 1
        for side in sockets[0]:
            await side.close(code=1011, reason="test cut the connection")
        await expect(page.locator("#live-status")).to_have_attribute("data-state", "reconnecting")
        second = str((await api.place(store, [("KETTLE-01", 1)]))["order"]["number"])
        third = str((await api.place(store, [("KETTLE-01", 3)]))["order"]["number"])
        await expect(page.locator("#live-status")).to_have_attribute(
            "data-state", "live", timeout=15_000
        )
        await expect(
            page.locator(f'#feed li[data-order="{third}"][data-type="BACKORDERED"]')
        ).to_be_visible()
        await expect(backorders).to_have_text("3")
        await expect(page.locator("#tally-backorders .units")).to_have_text("6")
        await asyncio.sleep(0.5)  # anything duplicated would have arrived by now
        after = await _feed_items(page)
        # Newest first: each order's PLACED then BACKORDERED, nothing twice, nothing lost.
        assert after == [(t, n) for n in (third, second, first) for t in ("BACKORDERED", "PLACED")]
        assert after[-len(before_cut) :] == before_cut

        # The second connection resumed: its subscribe carried the last cursor it had.
        assert len(sent) == 2
        init = sent[1][0]
        assert init == {
            "type": "connection_init",
            "payload": {"authorization": f"Bearer {reader}"},
        }
        resumed = [
            m
            for m in sent[1]
            if m["type"] == "subscribe" and "orderEvents" in m["payload"]["query"]
        ]
        assert resumed
        assert resumed[0]["payload"]["variables"]["after"] is not None

        # "Export CSV" downloads the store's orders, one row per line, with the token
        # in the header (never in the link).
        link = page.locator("#export-csv")
        assert reader not in (await link.get_attribute("href") or "")
        async with page.expect_download() as downloading:
            await link.click()
        download = await downloading.value
        assert download.suggested_filename.startswith(f"{store.handle}-orders-")
        assert download.suggested_filename.endswith(".csv")
        saved = await asyncio.to_thread(Path(await download.path()).read_text)
        rows = list(csv.DictReader(io.StringIO(saved)))
        assert sorted(int(r["order_number"]) for r in rows) == sorted(
            int(n) for n in (first, second, third)
        )
        assert {r["sku"] for r in rows} == {"KETTLE-01"}

        rid = await _ship_dates_in_the_feed(page, api, store, (first, second, third))

        # The page's queries stay well within the cost limits (docs/security.md): under
        # the heavy-operation mark (100) and the maximum (1,000).
        assert set(costs) >= {"DashboardStores", "DashboardStore", "DashboardProducts"}, costs
        assert all(cost < 100 for cost in costs.values()), costs
        print(f"\ndashboard query costs: {costs}")

        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "dashboard.png"
        await page.screenshot(path=str(shot), full_page=True)
        print(f"\ndashboard screenshot: {shot}")

        # The stock arrives against the receipt: the orders stop waiting, and their
        # BACKORDER_FILLED events show no ship date.
        received = await api.gql(
            RECEIVE_AGAINST,
            {"input": {"storeId": store.id, "sku": "KETTLE-01", "quantity": 6,
                       "receiptId": rid}},
            token=store.token,
        )  # fmt: skip
        assert received["receiveStock"]["userErrors"] == []
        for number in (first, second, third):
            filled = _feed_item(page, number, "BACKORDER_FILLED")
            await expect(filled).to_have_count(1)
            await expect(filled.locator(".event-ships")).to_have_count(0)
        await expect(backorders).to_have_text("0")

        # Revoking the key closes the open connection with 4403 (docs/security.md), and
        # the page says so and asks for a token again, forgetting the old one.
        revoked = await api.gql(
            REVOKE_KEY, {"id": key["createApiKey"]["apiKey"]["id"]}, token=ADMIN_TOKEN
        )
        assert revoked["revokeApiKey"]["userErrors"] == []
        await expect(page.locator("#login-error")).to_contain_text("refused this token")
        await expect(page.locator("#board")).to_be_hidden()
        assert await page.evaluate("sessionStorage.getItem('ordergraph.dashboard.token')") is None
        assert len(sent) == 2  # closed by the server, not reconnected

    assert problems == []


async def test_a_reloaded_dashboard_shows_what_happened_while_it_was_closed(
    live_pg_server: LiveServer, browser_page: Any
) -> None:
    """The page keeps the last cursor it saw (per store, in the tab's session storage) and
    on reload resumes after it: orders placed while it was closed appear, each once."""
    from playwright.async_api import expect

    page = browser_page
    async with httpx.AsyncClient(base_url=live_pg_server.url, timeout=30) as http:
        api = Api(http, ADMIN_TOKEN, None)
        store = await api.create_store(policy="ALLOW")
        await api.upsert(store, "MUG")
        await page.goto(live_pg_server.url + "/dashboard")
        await page.fill("#token", store.token)
        await page.click("#connect")
        await expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
        first = str((await api.place(store, [("MUG", 1)]))["order"]["number"])
        await expect(
            page.locator(f'#feed li[data-order="{first}"][data-type="BACKORDERED"]')
        ).to_be_visible()

        await page.goto("about:blank")  # the dashboard is closed
        second = str((await api.place(store, [("MUG", 1)]))["order"]["number"])
        third = str((await api.place(store, [("MUG", 2)]))["order"]["number"])

        await page.goto(live_pg_server.url + "/dashboard")  # same tab: same session
        await expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
        await expect(
            page.locator(f'#feed li[data-order="{third}"][data-type="BACKORDERED"]')
        ).to_be_visible()
        await asyncio.sleep(0.5)  # anything duplicated would have arrived by now
        missed = await _feed_items(page)
        assert missed == [(t, n) for n in (third, second) for t in ("BACKORDERED", "PLACED")]

        # Live again after the catch-up.
        fourth = str((await api.place(store, [("MUG", 1)]))["order"]["number"])
        await expect(
            page.locator(f'#feed li[data-order="{fourth}"][data-type="BACKORDERED"]')
        ).to_be_visible()
        assert len(await _feed_items(page)) == 6


async def test_what_waiting_costs_shows_the_lost_revenue_and_the_products_that_lost_it(
    live_pg_server: LiveServer, browser_page: Any
) -> None:
    """A customer declines to wait for two kettles: the panel shows the lost revenue, and
    the kettle leads the products that lost the most, with what still waits for it."""
    from playwright.async_api import expect

    page = browser_page
    problems: list[str] = []
    page.on("pageerror", lambda err: problems.append(f"page error: {err}"))
    page.on(
        "console",
        lambda msg: (
            problems.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None
        ),
    )
    costs = _record_costs(page)
    async with httpx.AsyncClient(base_url=live_pg_server.url, timeout=30) as http:
        api = Api(http, ADMIN_TOKEN, None)
        store = await api.create_store(policy="ALLOW", currency="EUR")
        await api.upsert(store, "KETTLE-01", title="Copper kettle", price="39.90")
        await api.upsert(store, "MUG-02", title="Stone mug", price="8.00")
        await api.receive(store, "MUG-02", 10)
        assert (await api.place(store, [("MUG-02", 1)]))["userErrors"] == []  # in stock

        await page.goto(live_pg_server.url + "/dashboard")
        await page.fill("#token", store.token)
        await page.click("#connect")
        await expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
        panel = page.locator("#outcomes")
        lost = panel.locator(".lost-revenue")
        await expect(panel).to_have_attribute("data-days", "30")  # the default period
        await expect(lost).to_have_attribute("data-amount", re.compile(r"^0(\.0+)?$"))
        await expect(panel.locator(".backorder-rate")).to_have_text("0%")
        await expect(page.locator("#leaders-empty")).to_be_visible()

        # Two orders wait for kettles; the customer of the first will not wait any longer.
        declines = await api.place(store, [("KETTLE-01", 2)])
        waits = await api.place(store, [("KETTLE-01", 1), ("MUG-02", 1)])
        assert declines["order"]["stockStatus"] == "BACKORDERED"
        assert waits["order"]["stockStatus"] == "PARTIALLY_BACKORDERED"
        cancelled = await api.cancel(store, declines["order"]["id"], "CUSTOMER_DECLINED_BACKORDER")
        assert cancelled["userErrors"] == []

        # The panel refreshes on the events: 2 x 39.90 lost, 2 of the 3 orders placed short.
        await expect(lost).to_have_attribute("data-amount", re.compile(r"^79\.80?$"))
        await expect(lost).to_contain_text("79.80")
        await expect(panel.locator(".declined")).to_contain_text("1 order declined (2 units)")
        await expect(panel.locator(".backorder-rate")).to_have_text(re.compile(r"^66\.7\s?%$"))
        await expect(panel.locator(".placed")).to_have_text("of 3 orders placed")
        # Nothing was filled in the period yet: no wait to show.
        await expect(panel.locator("#outcome-wait .wait-p50")).to_have_text("—")
        fresh = panel.locator('#still-waiting tr[data-min-days="0"]')
        await expect(fresh.locator(".orders")).to_have_text("1")
        await expect(fresh.locator(".units")).to_have_text("1")
        assert await panel.locator("#still-waiting tbody tr").count() == 4

        row = page.locator('#leaders tbody tr[data-sku="KETTLE-01"]')
        await expect(row).to_have_count(1)
        await expect(page.locator("#leaders tbody tr").first).to_have_attribute(
            "data-sku", "KETTLE-01"
        )
        await expect(row.locator(".lost")).to_contain_text("79.80")
        await expect(row.locator(".waiting")).to_have_text("1")  # the second order's kettle
        await expect(row.locator(".to-reorder")).to_have_text("1")  # no receipt covers it
        await expect(page.locator("#leaders-empty")).to_be_hidden()

        # The kettle arrives: the wait of the filled unit shows, nothing waits any more.
        await api.receive(store, "KETTLE-01", 5)
        short = re.compile(r"^\d+ (min|h)$")  # a wait of seconds, shown as minutes at least
        await expect(panel.locator("#outcome-wait .wait-p50")).to_have_text(short)
        await expect(panel.locator("#outcome-wait .wait-p90")).to_have_text(short)
        await expect(row.locator(".wait-p90")).to_have_text(short)
        await expect(fresh.locator(".orders")).to_have_text("0")
        await expect(row.locator(".waiting")).to_have_text("0")

        # Another period: the same figures over the last 7 days, and it is remembered.
        await panel.locator('.period-button[data-days="7"]').click()
        await expect(panel).to_have_attribute("data-days", "7")
        await expect(page.locator("#outcomes-period")).to_contain_text("Last 7 days")
        await expect(lost).to_have_attribute("data-amount", re.compile(r"^79\.80?$"))
        assert await page.evaluate("sessionStorage.getItem('ordergraph.dashboard.period')") == "7"

        ARTIFACTS.mkdir(exist_ok=True)
        await panel.screenshot(path=str(ARTIFACTS / "dashboard-outcomes.png"))

    assert "DashboardOutcomes" in costs, costs
    assert costs["DashboardOutcomes"] < 100, costs
    assert problems == []

"""`ordergraph seed-demo` and `ordergraph serve --demo`, run as real processes.

The demo worlds here are small (--orders 450) to keep the run short; the default size
is timed by hand (see the README section).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select

from bench import harness
from ordergraph.demo import demo_stores
from ordergraph.storage import tables as t
from ordergraph.storage.admin import create_api_key
from ordergraph.storage.db import Database
from tests.conftest import (
    LiveServer,
    _create_pg_database,
    _drop_pg_database,
    app_client,
    free_port,
    run_outside_loop,
)

ROOT = Path(__file__).resolve().parents[2]
ORDERS = "450"
# Two ends a week apart, with no daylight-saving change in any demo timezone in the
# ninety days before either (nor in the weeks after, where ship dates fall).
END_A = dt.datetime(2026, 7, 15, 12, 0, tzinfo=dt.UTC)
END_B = END_A + dt.timedelta(days=7)
DAY = dt.timedelta(days=1)
EXPECTED = {
    "demo-new-york": ("USD", "America/New_York"),
    "demo-berlin": ("EUR", "Europe/Berlin"),
    "demo-tokyo": ("JPY", "Asia/Tokyo"),
}


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERGRAPH_")}
    env["PYTHONPATH"] = str(ROOT)
    env["ORDERGRAPH_LOG_LEVEL"] = "WARNING"
    return env


def seed(url: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ordergraph", "seed-demo", "--database-url", url, *args],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=cwd,
        timeout=600,
    )


def seeded(url: str, seed_: int, end: dt.datetime, cwd: Path) -> str:
    out = seed(url, "--seed", str(seed_), "--orders", ORDERS, "--now", end.isoformat(), cwd=cwd)
    assert out.returncode == 0, out.stderr
    assert "Seeded 3 demo stores" in out.stdout
    assert "seeding the demo: 100%" in out.stderr  # the progress, a line a tenth off a tty
    return url


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("demo")


@pytest.fixture(scope="module")
def sqlite_demo(workdir: Path) -> str:
    return seeded(f"sqlite:///{workdir / 'a.db'}", 7, END_A, workdir)


@pytest.fixture(scope="module")
def pg_demo(workdir: Path) -> Iterator[str]:
    """Seed 7 on a fresh PostgreSQL database, a week later than the SQLite one."""
    name = f"ordergraph_demo_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    url: str = run_outside_loop(_create_pg_database(name))
    try:
        yield seeded(url, 7, END_B, workdir)
    finally:
        run_outside_loop(_drop_pg_database(name))


# -- reading a world back, times relative to its start ---------------------------------


def _utc(value: Any) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    assert isinstance(value, dt.datetime)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _decimal(value: Any) -> str:
    return str(Decimal(str(value)).normalize())


class Relative:
    """Turns a store's instants and dates into offsets from the demo's start."""

    def __init__(self, end: dt.datetime, timezone: str) -> None:
        self.start = end - dt.timedelta(days=90)
        self.start_date = self.start.astimezone(ZoneInfo(timezone)).date()

    def at(self, value: Any) -> float | None:
        return None if value is None else (_utc(value) - self.start).total_seconds()

    def day(self, value: Any) -> int | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = dt.date.fromisoformat(value)
        return int((value - self.start_date).days)

    def data(self, data: dict[str, Any]) -> dict[str, Any]:
        out = dict(data)
        for key in ("placedAt", "overdueAt"):
            if key in out:
                out[key] = self.at(out[key])
        for key in ("requestedShipDate", "restockDate", "expectedShipDate"):
            if key in out:
                out[key] = self.day(out[key])
        return out


async def _dump(url: str, end: dt.datetime) -> dict[str, Any]:
    db = Database(url)
    world: dict[str, Any] = {}
    try:
        async with db.read() as conn:
            stores = (await conn.execute(select(t.stores).order_by(t.stores.c.id))).mappings()
            for store in list(stores):
                rel = Relative(end, store["timezone"])
                sid = store["id"]

                async def rows(table: Any, *order: Any, sid: int = sid) -> list[Any]:
                    query = select(table).where(table.c.store_id == sid).order_by(*order)
                    return list((await conn.execute(query)).mappings())

                products = [
                    (p["id"], p["sku"], p["title"], _decimal(p["price"]), p["backorder_policy"],
                     p["backorder_limit"], rel.day(p["restock_date"]), p["on_hand"],
                     p["allocated"], p["backordered"])
                    for p in await rows(t.products, t.products.c.id)
                ]  # fmt: skip
                orders = [
                    (o["id"], o["number"], o["external_id"], o["customer_ref"],
                     rel.at(o["placed_at"]), rel.day(o["requested_ship_date"]),
                     rel.at(o["overdue_at"]), o["status"], o["stock_status"], o["in_backlog"],
                     o["is_backordered"], o["overdue_notified"])
                    for o in await rows(t.orders, t.orders.c.id)
                ]  # fmt: skip
                lines = [
                    (li["id"], li["order_id"], li["product_id"], li["quantity"],
                     _decimal(li["unit_price"]), li["allocated"], li["backordered"],
                     li["shipped"], li["cancelled"])
                    for li in await rows(t.order_lines, t.order_lines.c.id)
                ]  # fmt: skip
                events = [
                    (e["seq"], e["stream"], e["type"], rel.at(e["occurred_at"]), e["order_id"],
                     e["product_id"], rel.data(e["data"]))
                    for e in await rows(t.events, t.events.c.seq)
                ]  # fmt: skip
                receipts = [
                    (r["id"], r["product_id"], r["quantity"], r["received"],
                     rel.day(r["expected_at"]), r["reference"], r["status"],
                     rel.at(r["created_at"]))
                    for r in await rows(t.incoming_receipts, t.incoming_receipts.c.id)
                ]  # fmt: skip
                world[store["handle"]] = {
                    "store": (store["name"], store["currency_code"], store["timezone"],
                              store["default_backorder_policy"], rel.at(store["created_at"])),
                    "products": products,
                    "orders": orders,
                    "lines": lines,
                    "events": events,
                    "receipts": receipts,
                }  # fmt: skip
    finally:
        await db.dispose()
    return world


# -- the world --------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_seed_demo_makes_three_stores_with_ninety_days_of_trade(
    backend: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("sqlite_demo" if backend == "sqlite" else "pg_demo")
    end = END_A if backend == "sqlite" else END_B
    world = await _dump(url, end)
    assert {h: w["store"][1:3] for h, w in world.items()} == EXPECTED

    products = [p for w in world.values() for p in w["products"]]
    assert 250 <= len(products) <= 400
    policies = Counter(p[4] for p in products)
    assert all(policies[p] >= len(products) // 5 for p in ("DENY", "ALLOW", "LIMIT")), policies
    assert all((p[5] is not None) == (p[4] == "LIMIT") for p in products)
    # purchase orders are scheduled receipts: some still on their way, expected ahead,
    # some received in full, some in part, some moved by a late supplier
    receipts = [r for w in world.values() for r in w["receipts"]]
    assert any(r[6] == "OPEN" and r[4] > 90 for r in receipts)
    assert any(r[6] == "CLOSED" and r[2] == 0 for r in receipts)
    notes = Counter(
        e[6]["note"].rsplit(", ", 1)[-1]
        for w in world.values()
        for e in w["events"]
        if e[2] == "RECEIVED" and e[6].get("note", "").startswith("PO ")
    )
    assert notes["part"] > 0, notes  # partial deliveries
    assert notes["the rest"] > 0, notes
    assert {len(w["products"]) for w in world.values()} == {120, 100, 80}
    assert len({(p[1]) for p in products}) == len(products)

    orders = [o for w in world.values() for o in w["orders"]]
    assert 0.9 * int(ORDERS) <= len(orders) <= int(ORDERS)
    placed = sorted(o[4] for o in orders)
    assert placed[0] >= 0
    assert placed[-1] <= 90 * 86400
    assert placed[-1] - placed[0] > 85 * 86400  # spread over the ninety days

    events = [e for w in world.values() for e in w["events"]]
    kinds = Counter(e[2] for e in events)
    for kind in ("PLACED", "BACKORDERED", "BACKORDER_FILLED", "PARTIALLY_SHIPPED", "SHIPPED",
                 "CANCELLED", "OVERDUE", "RECEIVED", "ADJUSTED", "OUT_OF_STOCK"):  # fmt: skip
        assert kinds[kind] > 0, (kind, kinds)
    reasons = Counter(e[6].get("reason") for e in events if e[2] == "CANCELLED")
    assert reasons["CUSTOMER_DECLINED_BACKORDER"] > 0, reasons
    assert reasons["CUSTOMER_REQUEST"] > 0, reasons
    _customers_decline_after_long_waits(world)

    # what stands at the end: a backlog, backorders, and overdue orders among them
    status = Counter(o[7] for o in orders)
    assert status["SHIPPED"] > len(orders) / 2, status
    assert status["CANCELLED"] > 0
    assert status["PARTIALLY_SHIPPED"] + status["OPEN"] > 0
    backlog = [o for o in orders if o[9]]
    assert len(backlog) >= 8
    assert sum(1 for o in backlog if o[10]) >= 3  # backordered now
    assert sum(1 for o in backlog if o[11]) >= 1  # overdue, flagged with an OVERDUE event

    for w in world.values():  # event time never runs backwards within a store
        times = [e[3] for e in w["events"]]
        assert times == sorted(times)
        assert [e[0] for e in w["events"]] == list(range(1, len(times) + 1))
        assert times[-1] <= 90 * 86400


def _customers_decline_after_long_waits(world: dict[str, Any]) -> None:
    """Every CUSTOMER_DECLINED_BACKORDER cancels units that were waiting for stock, of an
    order waiting for days; in every store; and waiting orders cancel for other reasons too."""
    declined: Counter[str] = Counter()
    waits: list[float] = []  # days from first waiting to declining
    other: Counter[str] = Counter()  # reasons of other cancellations of waiting orders
    for handle, w in world.items():
        waiting: dict[int, int] = {}  # order -> units backordered, as of its last event
        since: dict[int, float] = {}  # order -> when it first had units waiting
        for _, stream, kind, at, order, _, data in w["events"]:
            if stream != "order":
                continue
            if kind == "CANCELLED" and waiting.get(order, 0) > 0:
                if data["reason"] == "CUSTOMER_DECLINED_BACKORDER":
                    declined[handle] += 1
                    waits.append((at - since[order]) / 86400)
                    assert at - data["placedAt"] >= 5 * 86400, (handle, order, data)
                else:
                    other[data["reason"]] += 1
            elif kind == "CANCELLED":
                assert data["reason"] != "CUSTOMER_DECLINED_BACKORDER", (handle, order, data)
            waiting[order] = sum(line["backordered"] for line in data["lines"])
            if waiting[order] and order not in since:
                since[order] = at
    assert set(declined) == set(EXPECTED), declined
    waits.sort()
    assert waits[0] >= 4, waits
    assert waits[len(waits) // 2] >= 7, waits  # the median decline waited a week or more
    assert sum(other.values()) > 0, other


WAITING = """query($h: String!) { store(handle: $h) {
  backorderedProducts(first: 100) { sku backordered unitsToReorder incoming { quantity } }
  orders(first: 100, filter: {isBackordered: true}) { nodes { number expectedShipDate
    lines { backordered expectedFillDate } } } } }"""


async def test_the_demo_ends_with_dated_waiting_lines_units_to_reorder_and_moved_dates(
    sqlite_demo: str,
) -> None:
    """What a merchant sees of the receipts at the end of the ninety days: waiting lines
    with an expected fill date (and orders with an expected ship date), others no
    receipt covers (units to reorder), and orders told their ship date moved."""
    world = await _dump(sqlite_demo, END_A)
    moved = [e for w in world.values() for e in w["events"] if e[2] == "EXPECTED_SHIP_DATE_CHANGED"]
    assert len(moved) > 0
    assert any(e[6]["expectedShipDate"] is not None for e in moved)

    db = Database(sqlite_demo)
    try:
        stores = await demo_stores(db)
        _, token = await create_api_key(
            db, name="demo check", store_ids=[s.id for s in stores.values()],
            scopes=["READ"], now=dt.datetime.now(dt.UTC),
        )  # fmt: skip
        dated = uncovered = ship_dates = 0
        to_reorder = incoming = 0
        async with app_client(db) as http:
            for handle in EXPECTED:
                body = (
                    await http.post(
                        "/graphql",
                        json={"query": WAITING, "variables": {"h": handle}},
                        headers={"Authorization": f"Bearer {token}"},
                    )
                ).json()
                assert "errors" not in body, body
                store = body["data"]["store"]
                for product in store["backorderedProducts"]:
                    to_reorder += product["unitsToReorder"]
                    incoming += sum(r["quantity"] for r in product["incoming"])
                for order in store["orders"]["nodes"]:
                    waiting = [li for li in order["lines"] if li["backordered"] > 0]
                    assert waiting, order
                    dates = [li["expectedFillDate"] for li in waiting]
                    dated += sum(1 for d in dates if d is not None)
                    uncovered += sum(1 for d in dates if d is None)
                    if None in dates:
                        assert order["expectedShipDate"] is None, order
                    else:
                        assert order["expectedShipDate"] == max(dates), order
                        ship_dates += 1
        assert dated > 0, dated
        assert ship_dates > 0, ship_dates
        assert uncovered > 0, uncovered
        assert to_reorder > 0, to_reorder
        assert incoming > 0
    finally:
        await db.dispose()


OUTCOMES = """query($h: String!, $from: DateTime!, $to: DateTime!) { store(handle: $h) {
  backorderOutcomes(from: $from, to: $to) { lostRevenue { amount } wait { p50 p90 }
    ordersPlaced backorderRate stillWaiting { label tally { orders units } } }
  backorderLeaders(by: LOST_REVENUE, from: $from, to: $to, first: 5) {
    product { sku } unitsToReorder outcomes { lostRevenue { amount } wait { p90 } } } } }"""


async def test_what_waiting_costs_has_figures_in_every_demo_store(sqlite_demo: str) -> None:
    """The dashboard's panel over the last 30 days of the demo: revenue lost to customers
    who would not wait, waits, a backorder rate, orders still waiting, and leaders."""
    db = Database(sqlite_demo)
    try:
        stores = await demo_stores(db)
        _, token = await create_api_key(
            db, name="demo outcomes", store_ids=[s.id for s in stores.values()],
            scopes=["READ"], now=dt.datetime.now(dt.UTC),
        )  # fmt: skip
        period = {"from": (END_A - 30 * DAY).isoformat(), "to": END_A.isoformat()}
        async with app_client(db) as http:
            for handle in EXPECTED:
                body = (
                    await http.post(
                        "/graphql",
                        json={"query": OUTCOMES, "variables": {"h": handle, **period}},
                        headers={"Authorization": f"Bearer {token}"},
                    )
                ).json()
                assert "errors" not in body, body
                store = body["data"]["store"]
                outcomes = store["backorderOutcomes"]
                assert Decimal(outcomes["lostRevenue"]["amount"]) > 0, (handle, outcomes)
                assert outcomes["wait"]["p50"] > 0, (handle, outcomes)
                assert outcomes["wait"]["p90"] >= outcomes["wait"]["p50"], (handle, outcomes)
                assert outcomes["ordersPlaced"] > 0, (handle, outcomes)
                assert 0 < outcomes["backorderRate"] < 1, (handle, outcomes)
                waiting = [b["tally"]["orders"] for b in outcomes["stillWaiting"]]
                assert sum(waiting) > 0, (handle, outcomes)
                leaders = store["backorderLeaders"]
                assert leaders, handle
                lost = [Decimal(p["outcomes"]["lostRevenue"]["amount"]) for p in leaders]
                assert lost[0] > 0, (handle, leaders)
                assert lost == sorted(lost, reverse=True), (handle, leaders)
    finally:
        await db.dispose()


async def test_the_same_seed_gives_the_same_world_relative_to_its_start(
    sqlite_demo: str, pg_demo: str
) -> None:
    """Seed 7 on SQLite ending on END_A and on PostgreSQL a week later: the same world."""
    a = await _dump(sqlite_demo, END_A)
    b = await _dump(pg_demo, END_B)
    for handle in EXPECTED:
        for part in ("store", "products", "orders", "lines", "events", "receipts"):
            assert a[handle][part] == b[handle][part], (handle, part)


async def test_another_seed_gives_another_world(workdir: Path, sqlite_demo: str) -> None:
    other = seeded(f"sqlite:///{workdir / 'other.db'}", 8, END_A, workdir)
    a = await _dump(sqlite_demo, END_A)
    b = await _dump(other, END_A)
    for handle in EXPECTED:
        assert a[handle]["products"] != b[handle]["products"]
        assert [o[4] for o in a[handle]["orders"]] != [o[4] for o in b[handle]["orders"]]


def test_seed_demo_refuses_a_database_with_the_demo_stores(sqlite_demo: str, workdir: Path) -> None:
    out = seed(sqlite_demo, "--orders", "30", cwd=workdir)
    assert out.returncode == 1
    assert out.stderr.strip() == (
        "ordergraph: the demo stores already exist in this database "
        "(demo-berlin, demo-new-york, demo-tokyo); seed an empty database"
    )


# -- serve --demo ------------------------------------------------------------------------

BACKLOG = """query($h: String!) { store(handle: $h) { handle currencyCode
  backlog { backlog { orders units } backorders { orders } overdue { orders } } } }"""


Served = LiveServer


def serve_demo(url: str, log: Path, *extra: str) -> Served:
    # No overdue sweeper: the seeded worlds stay as seeded for the other tests.
    return harness.start_serve(
        log,
        {"ORDERGRAPH_OVERDUE_SWEEP_SECONDS": "0"},
        "--demo", "--database-url", url, *extra,
        base_env=_env(),
        cwd=log.parent,
        timeout=300,
    )  # fmt: skip


def demo_keys(served: Served) -> dict[str, str]:
    text = served.log.read_text()
    assert f"GraphQL and GraphiQL: http://127.0.0.1:{served.port}/graphql" in text, text
    assert f"Dashboard: http://127.0.0.1:{served.port}/dashboard" in text, text
    keys = dict(re.findall(r"^\s+(demo-[a-z-]+)\s+[A-Z]{3}\s+\S+\s+(og_\S+)$", text, re.M))
    assert set(keys) == set(EXPECTED), text
    return keys


def check_keys(served: Served, keys: dict[str, str]) -> dict[str, Any]:
    figures = {}
    for handle, token in keys.items():
        headers = {"Authorization": f"Bearer {token}"}
        base = f"http://127.0.0.1:{served.port}/graphql"
        for other in EXPECTED:  # each key sees its own store, and only that one
            body = httpx.post(
                base, json={"query": BACKLOG, "variables": {"h": other}}, headers=headers
            ).json()
            assert "errors" not in body, body
            store = body["data"]["store"]
            if other == handle:
                assert store["currencyCode"] == EXPECTED[handle][0]
                figures[handle] = store["backlog"]
            else:
                assert store is None
    return figures


def test_serve_demo_seeds_an_empty_database_and_prints_a_key_per_store(workdir: Path) -> None:
    url = f"sqlite:///{workdir / 'serve.db'}"
    served = serve_demo(url, workdir / "serve-1.log", "--demo-orders", "240")
    try:
        first = demo_keys(served)
        assert "Seeded 3 demo stores" in served.log.read_text()
        figures = check_keys(served, first)
        assert sum(f["backlog"]["orders"] for f in figures.values()) > 0, figures
        assert sum(f["backorders"]["orders"] for f in figures.values()) > 0, figures
    finally:
        served.stop()

    served = serve_demo(url, workdir / "serve-2.log")  # a second start reuses the stores
    try:
        second = demo_keys(served)
        assert "Seeded" not in served.log.read_text()
        assert set(second.values()).isdisjoint(first.values())  # fresh keys each start
        again = check_keys(served, second)
        assert {h: f["backlog"] for h, f in again.items()} == {
            h: f["backlog"] for h, f in figures.items()
        }
        check_keys(served, first)  # the first start's keys still work
    finally:
        served.stop()


def test_serve_demo_reuses_the_demo_stores_on_postgres(pg_demo: str, workdir: Path) -> None:
    served = serve_demo(pg_demo, workdir / "serve-pg.log")
    try:
        figures = check_keys(served, demo_keys(served))
        for handle, f in figures.items():
            assert f["backlog"]["orders"] > 0, (handle, f)
            assert f["backlog"]["units"] > 0, (handle, f)
        assert sum(f["backorders"]["orders"] for f in figures.values()) > 0, figures
        assert sum(f["overdue"]["orders"] for f in figures.values()) > 0, figures
    finally:
        served.stop()


def test_serve_demo_refuses_a_database_with_other_stores(workdir: Path) -> None:
    url = f"sqlite:///{workdir / 'other-stores.db'}"
    env = _env()

    def og(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ordergraph", *args, "--database-url", url],
            capture_output=True, text=True, env=env, cwd=workdir, timeout=120,
        )  # fmt: skip

    assert og("migrate").returncode == 0
    made = og("create-store", "--handle", "mine", "--name", "Mine", "--currency", "USD",
              "--timezone", "UTC")  # fmt: skip
    assert made.returncode == 0, made.stderr
    out = og("serve", "--demo", "--port", str(free_port()))
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1] == (
        "ordergraph: --demo needs an empty database (or one made by seed-demo);"
        " this one has other stores"
    )

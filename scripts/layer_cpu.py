"""CPU of the HTTP + GraphQL layer per request, in process, on PostgreSQL (run by hand).

Creates a fresh PostgreSQL database, builds the app as the tests do (create_app on a
migrated database), makes a store with three products in stock and places --seed-orders
orders there (rows for the statistics), then another such store with --orders orders of
1-3 lines (a fixed seed, as bench/reads.py), runs ANALYZE, then sends N placeOrder mutations, N
trivial queries (`{ store(handle:) { handle } }`), N `{ __typename }` (the layer alone)
and N pages of 50 orders with their lines and products (the page of bench/reads.py), and
N `backlogTrend`s of 30 DAY and 1,000 HOUR points (the figures bench's trends) and N
`backlog` reads (the figures now, as bench/reads.py) straight through the ASGI app (no
HTTP client, no sockets), one at a time, interleaved
over rounds (--kinds picks some), and prints the process CPU per request (min/median/max
over rounds) and the part of it outside the database work: outside SQLAlchemy's async
calls (driver, SQLAlchemy, socket I/O) or, with --whole, also outside the units of work
and the DataLoaders' reads. With --profile N it also runs each kind under cProfile (CPU
clock) and prints the top N functions and packages (the profiler inflates code with many
small calls, SQLAlchemy most).

    python scripts/layer_cpu.py --requests 300 --rounds 3 --profile -1 --whole
    python scripts/layer_cpu.py --requests 200 --rounds 1 --profile 40
    python scripts/layer_cpu.py --requests 100 --rounds 3 --kinds page,typename --profile 40

To compare with another revision, run its copy of this script from its tree (the script
puts its own tree first on sys.path), alternating the two several times.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import datetime as dt
import gc
import pstats
import random
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import engine as async_engine
from sqlalchemy.ext.asyncio import result as async_result
from sqlalchemy.ext.asyncio import session as async_session
from sqlalchemy.util import concurrency

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import ordergraph
from bench.api import PLACE_ORDER, SKU, STOCK
from bench.asgi import App, call
from bench.figures_outcomes import LEADERS_QUERY, OUTCOMES_QUERY
from bench.proc import database_cpu_seconds
from ordergraph.app import create_app
from ordergraph.resolvers import inventory as inventory_resolvers
from ordergraph.resolvers import orders as orders_resolvers
from ordergraph.resolvers.context import Loaders
from ordergraph.settings import Settings
from ordergraph.storage.db import Database
from ordergraph.storage.migrate import upgrade

ROOT = str(Path(__file__).resolve().parent.parent) + "/"
ADMIN = "og_admin_bench_" + uuid.uuid4().hex
TRIVIAL = "query($h: String!) { store(handle: $h) { handle } }"
# The page of bench/reads.py (and of tests/api/test_round_trips_pg.py).
PAGE = """query($h: String!) { store(handle: $h) { orders(first: 50) { nodes {
  id number placedAt status stockStatus lines { id sku quantity allocated backordered
  unitPrice { amount currencyCode } product { id sku title } } } } } }"""
# The backlog read of bench/reads.py: the figures now.
BACKLOG = (
    "query($h: String!) { store(handle: $h) { backlog { backlog { orders units value { amount } }"
    " backorders { orders units value { amount } } overdue { orders units value { amount } } } } }"
)
# The figures bench's trends (bench/figures_trends.py): 30 DAY points and 1,000 HOUR points.
TALLY = "orders units value { amount }"
TREND = (
    "query($h: String!, $from: DateTime!, $to: DateTime!) { store(handle: $h) {"
    " backlogTrend(from: $from, to: $to, interval: %s) {"
    f" at backlog {{ {TALLY} }} backorders {{ {TALLY} }} overdue {{ {TALLY} }} }} }} }}"
)
SKUS = (SKU, "BENCH-2", "BENCH-3")
SEED = 11
# Where a frame's own time is counted: the database side (driver, SQLAlchemy, our storage
# and domain code, which a stored function would replace) and socket I/O; the rest is the
# HTTP + GraphQL layer.
SIDES = {
    "database": ("/sqlalchemy/", "/asyncpg/", "/storage/", "/domain/", "greenlet"),
    "io": ("_socket.socket", "select.epoll", "selector_events.py", "selectors.py"),
}


async def setup(app: App, orders: int) -> tuple[str, str, str]:
    created = await call(
        app,
        {
            "query": """mutation($input: CreateStoreInput!) { createStore(input: $input) {
                 store { id handle } token userErrors { code } } }""",
            "variables": {
                "input": {
                    "handle": "bench-" + uuid.uuid4().hex[:8],
                    "name": "Bench",
                    "currencyCode": "USD",
                    "timezone": "UTC",
                    "defaultBackorderPolicy": "DENY",
                }
            },
        },
        ADMIN,
    )
    payload = created["data"]["createStore"]
    gid, handle, token = payload["store"]["id"], payload["store"]["handle"], payload["token"]
    for sku, price in zip(SKUS, ("9.99", "4.25", "4.25"), strict=True):
        for query, variables in (
            (
                "mutation($input: UpsertProductInput!) { upsertProduct(input: $input) "
                "{ userErrors { code } } }",
                {"input": {"storeId": gid, "sku": sku, "title": f"Item {sku}", "price": price}},
            ),
            (
                "mutation($input: ReceiveStockInput!) { receiveStock(input: $input) "
                "{ userErrors { code } } }",
                {"input": {"storeId": gid, "sku": sku, "quantity": STOCK}},
            ),
        ):
            answer = await call(app, {"query": query, "variables": variables}, token)
            assert "errors" not in answer, answer
    rng = random.Random(SEED)
    for _ in range(orders):  # as bench/reads.py seeds its store
        skus = rng.sample(SKUS, rng.randint(1, 3))
        lines = [{"sku": sku, "quantity": rng.randint(1, 4)} for sku in skus]
        body = {"query": PLACE_ORDER, "variables": {"input": {"storeId": gid, "lines": lines}}}
        answer = await call(app, body, token)
        assert "errors" not in answer, answer
        assert not answer["data"]["placeOrder"]["userErrors"], answer
    return gid, handle, token


def place_body(gid: str) -> dict[str, Any]:
    return {
        "query": PLACE_ORDER,
        "variables": {"input": {"storeId": gid, "lines": [{"sku": SKU, "quantity": 1}]}},
    }


def outcomes_body(query: str, handle: str, **more: str) -> dict[str, Any]:
    """An outcomes read (bench/figures_outcomes.py's) over the last 90 days."""
    end = dt.datetime.now(dt.UTC)
    start = end - dt.timedelta(days=90)
    window = {"from": start.isoformat(), "to": end.isoformat()}
    return {"query": query, "variables": {"h": handle, **window, **more}}


def trend_body(handle: str, interval: str, points: int) -> dict[str, Any]:
    """`backlogTrend` of `points` points ending at the current hour."""
    end = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    step = dt.timedelta(days=1) if interval == "DAY" else dt.timedelta(hours=1)
    start = end - step * (points - 1)
    return {
        "query": TREND % interval,
        "variables": {"h": handle, "from": start.isoformat(), "to": end.isoformat()},
    }


class DatabaseClock:
    """The process CPU spent in the database work of a request: inside SQLAlchemy's async
    calls (every statement, checkout, begin, commit, rollback and close goes through
    `greenlet_spawn`: the driver, SQLAlchemy and the socket I/O they wait on), and, with
    `whole=True`, all of a unit of work (`run`: the domain service and the statements it
    builds) and of the DataLoaders' batch reads, which a stored function or a result
    built from the transaction would replace."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._depth = 0

    def timed(self, original: Any) -> Any:
        async def timed(*args: Any, **kwargs: Any) -> Any:
            if self._depth:
                return await original(*args, **kwargs)
            self._depth += 1
            started = time.process_time()
            try:
                return await original(*args, **kwargs)
            finally:
                self.seconds += time.process_time() - started
                self._depth -= 1

        return timed

    def install(self, *, whole: bool) -> None:
        spawn = self.timed(concurrency.greenlet_spawn)
        for module in (async_engine, async_result, async_session):
            module.greenlet_spawn = spawn  # type: ignore[attr-defined]
        if not whole:
            return
        for module in (orders_resolvers, inventory_resolvers):
            module.run = self.timed(module.run)  # type: ignore[attr-defined]
        for name in ("_stores", "_products", "_orders", "_lines", "_line"):
            setattr(Loaders, name, self.timed(getattr(Loaders, name)))


DB_CLOCK = DatabaseClock()


PG_SPENT: dict[str, list[float]] = {}  # PostgreSQL's CPU ms per request, by kind


async def batch(
    app: App, body: dict[str, Any], token: str, n: int, kind: str = ""
) -> tuple[float, float]:
    """(CPU ms per request, of which inside the database calls) over n requests; with a
    kind, PostgreSQL's own CPU per request (all its processes) is noted in PG_SPENT."""
    started, in_db = time.process_time(), DB_CLOCK.seconds
    pg_before = database_cpu_seconds()
    for _ in range(n):
        answer = await call(app, body, token)
        if "errors" in answer:
            raise RuntimeError(answer["errors"])
    total = (time.process_time() - started) * 1000 / n
    pg_after = database_cpu_seconds()
    if kind and pg_before is not None and pg_after is not None:
        PG_SPENT.setdefault(kind, []).append((pg_after - pg_before) * 1000 / n)
    return total, (DB_CLOCK.seconds - in_db) * 1000 / n


def shares(profile: cProfile.Profile) -> dict[str, float]:
    """The share of each side (and "layer", the rest) in the profiled CPU, by own time."""
    stats = pstats.Stats(profile)
    seconds = dict.fromkeys([*SIDES, "layer"], 0.0)
    for (filename, _, function), row in stats.stats.items():  # type: ignore[attr-defined]
        where = f"{filename}:{function}"
        side = next((s for s, parts in SIDES.items() if any(p in where for p in parts)), "layer")
        seconds[side] += row[2]
    total = sum(seconds.values()) or 1.0
    return {side: value / total for side, value in seconds.items()}


def calls(profile: cProfile.Profile, requests: int) -> float:
    """Function calls per request seen by the profiler (a count, steadier than time)."""
    stats = pstats.Stats(profile)
    return float(stats.total_calls) / requests  # type: ignore[attr-defined]


def by_package(profile: cProfile.Profile, requests: int) -> list[tuple[str, float]]:
    """Own CPU per request, by package (our modules by file), most first."""
    stats = pstats.Stats(profile)
    totals: dict[str, float] = {}
    for (filename, _, function), row in stats.stats.items():  # type: ignore[attr-defined]
        if "site-packages/" in filename:
            where = filename.split("site-packages/")[1].split("/")[0]
        elif filename.startswith(ROOT):
            where = filename[len(ROOT) :]
        elif filename == "~":
            where = function.split(" of ")[-1][:40]
        else:
            where = "stdlib " + Path(filename).parent.name + "/" + Path(filename).name
        totals[where] = totals.get(where, 0.0) + row[2] * 1000 / requests
    return sorted(totals.items(), key=lambda item: -item[1])


async def main(args: argparse.Namespace) -> None:
    DB_CLOCK.install(whole=args.whole)
    name = f"og_cpu_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    db = Database(url, pool_size=5)
    try:
        await upgrade(db)
        settings = Settings(
            database_url=url,
            admin_token=ADMIN,
            rate_limit_capacity=10**9,
            rate_limit_restore_per_second=10**9,
            overdue_sweep_seconds=0,
            **({} if args.gzip_min_bytes is None else {"gzip_min_bytes": args.gzip_min_bytes}),
        )
        app: Any = create_app(settings, db=db)
        async with app.router.lifespan_context(app):
            await measure(app, name, args)
    finally:
        await db.dispose()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def measure(app: Any, name: str, args: argparse.Namespace) -> None:
    # Rows in a store of their own first, so that ANALYZE records tables of a deployment's
    # size: analyzed at a few dozen orders, every connection would plan the foreign-key
    # checks of placeOrder as sequential scans (storage/statistics.py).
    await setup(app, args.seed_orders)
    gid, handle, token = await setup(app, args.orders)
    conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:5432/{name}")
    await conn.execute("ANALYZE")
    await conn.close()
    trivial = {"query": TRIVIAL, "variables": {"h": handle}}
    kinds = {
        "placeOrder": place_body(gid),
        "trivial": trivial,
        "typename": {"query": "{ __typename }"},  # the layer alone: no database work
        "page": {"query": PAGE, "variables": {"h": handle}},
        "trend30": trend_body(handle, "DAY", 30),
        "trend1000": trend_body(handle, "HOUR", 1000),
        "backlog": {"query": BACKLOG, "variables": {"h": handle}},
        "outcomes": outcomes_body(OUTCOMES_QUERY, handle),
        "leaders": outcomes_body(LEADERS_QUERY, handle, by="LOST_REVENUE"),
    }
    kinds = {k: v for k, v in kinds.items() if k in args.kinds.split(",")}
    for body in kinds.values():  # warm up
        await batch(app, body, token, 20)
    # What lives after start is frozen, as `ordergraph serve` does (gc_governor.py): full
    # collections then look only at objects made since, as in the served process.
    gc.collect()
    gc.freeze()
    figures: dict[str, list[float]] = {k: [] for k in kinds}
    layer: dict[str, list[float]] = {k: [] for k in kinds}
    for _ in range(args.rounds):
        for kind, body in kinds.items():
            total, in_db = await batch(app, body, token, args.requests, kind)
            figures[kind].append(total)
            layer[kind].append(total - in_db)
    guard = app.state.guard
    print(f"token lookups in the database: {guard.lookups} (after setup, warm-up and rounds)")
    print(
        f"CPU ms per request, {args.requests} requests x {args.rounds} rounds "
        f"(code: {Path(ordergraph.__file__).parent.parent})"
    )
    for kind, values in figures.items():
        outside = layer[kind]
        print(
            f"  {kind:11s} all: min {min(values):6.2f}  median {statistics.median(values):6.2f}"
            f"  max {max(values):6.2f}   outside the database calls: min {min(outside):6.2f}"
            f"  median {statistics.median(outside):6.2f}  max {max(outside):6.2f}"
        )
        spent = PG_SPENT.get(kind)
        if spent:
            print(
                f"  {'':11s} PostgreSQL's own CPU: min {min(spent):6.2f}  median "
                f"{statistics.median(spent):6.2f}  max {max(spent):6.2f}"
            )
    for kind, body in kinds.items():
        if args.profile < 0:
            break
        profile = cProfile.Profile(time.process_time)
        profile.enable()
        await batch(app, body, token, args.requests)
        profile.disable()
        median = statistics.median(figures[kind])
        split = "  ".join(
            f"{side} {share:5.1%} ~{median * share:5.2f} ms"
            for side, share in shares(profile).items()
        )
        print(f"  {kind:11s} {split}")
        print(f"  {kind}: {calls(profile, args.requests):.0f} Python calls per request")
        if args.profile:
            print(f"  {kind}: own CPU ms per request by package")
            for where, ms in by_package(profile, args.requests)[: args.profile]:
                print(f"    {ms:6.3f}  {where}")
            print_profile(profile, args)


def print_profile(profile: cProfile.Profile, args: argparse.Namespace) -> None:
    pstats.Stats(profile).sort_stats("tottime").print_stats(args.profile)
    for name in args.callers:
        pstats.Stats(profile).print_callers(name)
    for name in args.callees:
        pstats.Stats(profile).print_callees(name)
    pstats.Stats(profile).sort_stats("cumulative").print_stats(args.profile)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--profile", type=int, default=0, help="print the top N functions (-1: no profile)"
    )
    parser.add_argument(
        "--whole",
        action="store_true",
        help="count units of work and DataLoader reads as database work, not only SQLAlchemy",
    )
    parser.add_argument("--orders", type=int, default=60, help="orders placed for the page")
    parser.add_argument(
        "--seed-orders",
        type=int,
        default=1000,
        help="orders placed first in another store, before ANALYZE",
    )
    parser.add_argument(
        "--kinds",
        default="placeOrder,trivial,typename,page",
        help="which requests, comma-separated: placeOrder, trivial, typename, page, trend30,"
        " trend1000, backlog",
    )
    parser.add_argument("--gzip-min-bytes", type=int, default=None)
    parser.add_argument("--callers", nargs="*", default=[], help="print who calls these")
    parser.add_argument("--callees", nargs="*", default=[], help="print whom these call")
    asyncio.run(main(parser.parse_args()))

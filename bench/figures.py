"""Benchmark: the backlog figures over HTTP on stores of 1,000 to 1,000,000 orders.

It creates a fresh PostgreSQL database, runs the migrations, and fills one store per
size N with N orders spread over the past 365 days. The rows are loaded in bulk SQL
(INSERT ... SELECT with window functions for the running totals), not through the API,
but they are exactly the rows the application writes for that history: orders and
lines, the event log with its payloads, the figures' history (tally_points,
overdue_points, overdue_totals), the backorder facts (backorder_facts, with
orders.backordered_since), the products' stock and the stores' counters.

Each order has one line and a short fixed life, drawn at random in Python: placed at
p; on a product at zero stock (policy ALLOW) it waits until a receipt of exactly its
units fills it at p + the product's lead time, unless the customer cancels first;
then it ships a little later, or not at all; orders on stocked products ship or are
cancelled. Half ask for a ship date a few days out; the overdue sweep flags them once
that date has ended (New York time) while they are still open. Lead times are fixed
per product, so receipts fill strictly oldest first, as the application would.

Before measuring it checks the load two ways and prints "consistency: ok":
- replay: a separate store of 300 orders is loaded the same way, and its order lives are
  applied again through the application's own services (one locked unit of work per
  change, the clock at the change's time) into a twin store; every row of every table
  must equal the bulk load;
- HTTP: `backlog(asOf)` at a dozen instants, now, and a 30-day trend, on every store,
  must equal the figures computed directly from the order lives in Python; so must
  `backorderOutcomes` over the last 90 days, both `backorderLeaders` lists and three
  weeks of the 52-week outcomes trend (bench/figures_outcomes.py);
- queue: a store whose `--queue-lines` orders (10,000) all wait on one product, with
  four receipts scheduled through the application's service: every line's
  `expectedFillDate` and the product's `unitsToReorder` must equal a walk of the lives
  (bench/figures_queue.py).

Then it starts `python -m ordergraph serve` on the database, creates a READ key with
the admin `createApiKey` mutation, and times sequential requests (after warm-up) of
`backlog(asOf: null)`, `backlog(asOf: <182 days ago>)` and a 30-point DAY
`backlogTrend`, and prints the median per store size and the ratio to the smallest.

Last, on the store nearest 100,000 orders (`--trend-store`), it measures the 1,000-point
HOUR `backlogTrend` (its points are checked against the order lives too, one in 50)
against the 30-point DAY trend: three rounds (`--rounds`) of 10 requests each
(`--trend-samples`), the two alternating, and prints each trend's min/median/max of the
round medians, its ratio to the 30-point trend, and the CPU per request of the server
process and of its PostgreSQL backends, read from /proc.

Then what waiting costs, on every store, in the same rounds (`--outcome-samples`
requests per query, store and round): `backorderOutcomes` over the last 90 days,
`backorderLeaders(by: LOST_REVENUE)` and `(by: WAIT_P90)` over those days, and a 52-point
WEEK `backorderOutcomesTrend`, each with its ratio to the smallest store (goal: 3x).
And the queue store's product: its whole backorder queue read page after page with
`expectedFillDate` (goal: under 100 ms), its first page, and `unitsToReorder` (one
walk of the whole queue), `--queue-samples` reads per round.

Run from the repository root, in the project's environment:

    python bench/figures.py                       # N = 1,000, 100,000, 1,000,000
    python bench/figures.py --sizes 1000,20000 --samples 10
    python bench/figures.py --smoke               # N = 200 and 2,000, 5 samples, queue 600
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import secrets
import sys
import tempfile
import time
import uuid
from pathlib import Path

from ordergraph.storage.db import Database
from ordergraph.storage.migrate import upgrade

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.figures_http import Client, Measured, check_all_http, measure, read_key
from bench.figures_load import Store, load_all
from bench.figures_outcomes import check_all_outcomes, measure_outcomes, outcomes_table
from bench.figures_queue import check_queue, measure_queue, queue_table, schedule_receipts
from bench.figures_replay import check_replay
from bench.figures_trends import check_hour_trend, measure_trends, trend_table
from bench.figures_world import HISTORY, Timeline
from bench.harness import Server, ServerFailed, running, start_serve
from bench.pg import add_pg_dsn, admin_execute, with_database

# -- the run ---------------------------------------------------------------------------


def table(rows: list[Measured], samples: int, warmup: int) -> str:
    base = rows[0]
    head = (
        f"{'orders':>10}  {'backlog now':>12} {'ratio':>6}  {'backlog past':>12} {'ratio':>6}"
        f"  {'trend 30 days':>13} {'ratio':>6}"
    )
    lines = [
        f"median latency over HTTP ({samples} sequential requests each, after {warmup} warm-up);"
        f" ratio to {base.orders:,} orders",
        head,
        "-" * len(head),
    ]
    for r in rows:
        lines.append(
            f"{r.orders:>10,}  {r.now_ms:>9.2f} ms {r.now_ms / base.now_ms:>6.2f}"
            f"  {r.past_ms:>9.2f} ms {r.past_ms / base.past_ms:>6.2f}"
            f"  {r.trend_ms:>10.2f} ms {r.trend_ms / base.trend_ms:>6.2f}"
        )
    top = rows[-1]
    lines.append("")
    lines.append(f"goals at {top.orders:,} orders (ratio to {base.orders:,}):")
    for name, ratio, goal in (
        ("backlog(asOf: null)", top.now_ms / base.now_ms, 1.5),
        ("backlog(asOf: 182 days ago)", top.past_ms / base.past_ms, 3.0),
        ("backlogTrend, 30 DAY points", top.trend_ms / base.trend_ms, 10.0),
    ):
        verdict = "met" if ratio <= goal else "MISSED"
        lines.append(f"  {name:<30} {ratio:>6.2f} <= {goal:<4g} {verdict}")
    return "\n".join(lines)


def run(args: argparse.Namespace, dsn: str, logs: Path) -> int:
    url = dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
    asyncio.run(upgrade_database(url))
    end = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)).replace(microsecond=0)
    timeline = Timeline(start=end - HISTORY, end=end)
    began = time.perf_counter()
    plan = [("replay", args.replay_orders)] + [("figures", n) for n in args.sizes]
    plan.append(("queue", args.queue_lines))
    replayed, *stores, queue = asyncio.run(load_all(dsn, plan, timeline, args.seed, args.verbose))
    total = sum(n for _, n in plan)
    print(f"loaded {total:,} orders in {time.perf_counter() - began:.1f} s", flush=True)

    problems = asyncio.run(check_replay(dsn, url, replayed, timeline))
    receipts = asyncio.run(schedule_receipts(url, queue))
    admin_token = "og_admin_bench_" + secrets.token_urlsafe(16)
    with running(start_server(url, admin_token, logs / "server.log")) as server:
        token = read_key(server.url, admin_token, [s.loaded.store_id for s in [*stores, queue]])
        client = Client(server.url, token)
        try:
            problems += check_all_http(client, stores, timeline)
            trended = trend_store(stores, args.trend_store)
            problems += [
                f"N={trended.orders:,}: {p}" for p in check_hour_trend(client, trended, timeline)
            ]
            problems += check_all_outcomes(client, stores, timeline)
            problems += check_queue(client, queue, receipts)
            if problems:
                print("consistency: FAILED", *problems[:20], sep="\n  ", file=sys.stderr)
                return 1
            print("consistency: ok", flush=True)
            rows = measure(client, stores, timeline, args.warmup, args.samples)
            print()
            print(table(rows, args.samples, args.warmup), flush=True)
            trends = measure_trends(
                client,
                trended,
                timeline,
                server.process.pid,
                dsn,
                args.rounds,
                args.trend_samples,
                args.warmup,
            )
            print()
            print(trend_table(trended, trends, args.rounds, args.trend_samples), flush=True)
            pid = server.process.pid
            outcomes = measure_outcomes(
                client, stores, timeline, pid, dsn, args.rounds, args.outcome_samples, args.warmup
            )
            print()
            print(outcomes_table(outcomes, args.rounds, args.outcome_samples), flush=True)
            queued = measure_queue(
                client, queue, pid, dsn, args.rounds, args.queue_samples, args.warmup
            )
            print()
            print(queue_table(queue, queued, args.rounds, args.queue_samples), flush=True)
        finally:
            client.close()
    return 0


def trend_store(stores: list[Store], orders: int) -> Store:
    """The store whose size is nearest `orders`: the one the trend rows are measured on."""
    return min(stores, key=lambda s: (abs(s.orders - orders), s.orders))


def start_server(database_url: str, admin_token: str, log: Path) -> Server:
    env = {
        "ORDERGRAPH_DATABASE_URL": database_url,
        "ORDERGRAPH_ADMIN_TOKEN": admin_token,
        "ORDERGRAPH_LOG_LEVEL": "WARNING",
        "ORDERGRAPH_OVERDUE_SWEEP_SECONDS": "0",  # nothing writes while we measure
        # The 1,000-point trend costs more than the default limit allows (schema/cost.py
        # prices each point as a query of its own); the bench measures time, not limits.
        "ORDERGRAPH_MAX_COST": "100000",
        "ORDERGRAPH_OPERATION_TIMEOUT_MS": "120000",
        "ORDERGRAPH_RATE_LIMIT_CAPACITY": "1000000000",
        "ORDERGRAPH_RATE_LIMIT_RESTORE_PER_SECOND": "1000000000",
    }
    try:
        return start_serve(log, env)
    except ServerFailed as err:
        raise SystemExit(str(err)) from None


async def upgrade_database(url: str) -> None:
    db = Database(url)
    try:
        await upgrade(db)
    finally:
        await db.dispose()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        type=lambda raw: sorted({int(s.replace("_", "")) for s in raw.split(",")}),
        default=[1_000, 100_000, 1_000_000],
        help="orders per store, comma-separated; ratios are to the smallest",
    )
    parser.add_argument("--samples", type=int, default=30, help="timed requests per query")
    parser.add_argument("--warmup", type=int, default=5, help="untimed requests first")
    parser.add_argument("--seed", type=int, default=20_270_124)
    parser.add_argument(
        "--trend-store",
        type=int,
        default=100_000,
        help="the trend rows are measured on the store whose size is nearest this",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the trend rows")
    parser.add_argument(
        "--trend-samples", type=int, default=10, help="timed requests per trend and round"
    )
    parser.add_argument(
        "--outcome-samples",
        type=int,
        default=10,
        help="timed requests per outcome query, store and round",
    )
    parser.add_argument(
        "--queue-lines",
        type=int,
        default=10_000,
        help="waiting lines of the queue store's product (expectedFillDate rows)",
    )
    parser.add_argument(
        "--queue-samples", type=int, default=5, help="timed reads of the queue per round"
    )
    parser.add_argument(
        "--replay-orders",
        type=int,
        default=300,
        help="orders of the store loaded in bulk and replayed through the services to compare",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a quick run: N = 200 and 2,000, 5 samples, a queue of 600 lines",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--verbose", action="store_true", help="time each step of the load")
    add_pg_dsn(parser)
    args = parser.parse_args(argv)
    if args.smoke:
        args.sizes, args.samples, args.warmup, args.replay_orders = [200, 2_000], 5, 2, 150
        args.trend_samples = args.outcome_samples = args.queue_samples = 2
        args.queue_lines = 600
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if (
        args.samples < 1
        or min(args.rounds, args.trend_samples, args.outcome_samples, args.queue_samples) < 1
        or args.warmup < 0
        or not args.sizes
        or min(args.sizes[0], args.replay_orders, args.queue_lines) < 10
    ):
        print("need --samples >= 1, --warmup >= 0 and sizes of at least 10", file=sys.stderr)
        return 2
    name = f"ordergraph_figures_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    dsn = with_database(args.pg_dsn, name)
    asyncio.run(admin_execute(args.pg_dsn, f'CREATE DATABASE "{name}"'))
    print(f"database: {dsn}", flush=True)
    try:
        with tempfile.TemporaryDirectory(prefix="ordergraph-figures-") as logs:
            return run(args, dsn, Path(logs))
    finally:
        if args.keep:
            print(f"kept database {name}")
        else:
            asyncio.run(
                admin_execute(args.pg_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            )


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: three reads through ordergraph against a bare Starlette + asyncpg endpoint
returning the same JSON, and against the stack's floor.

It creates a fresh PostgreSQL database, starts `python -m ordergraph serve` on it, makes a
store with three products through the API and places --orders orders of 1-3 lines there
(a fixed seed), runs ANALYZE, and starts bench/baseline_app.py and bench/floor_app.py (the
baseline's statements served as GraphQL by a minimal Strawberry app: what any Strawberry
app costs) on the same database. It checks that all three answer each read with the same
JSON, then in each of --rounds rounds runs the contenders in turn (the order rotated each
round) from the same number of keep-alive connections for the same time, for each read:

- store: `{ store(handle: "...") { handle } }`;
- orders: a page of 50 orders with their lines and each line's product;
- backlog: the store's backlog, backorder and overdue tallies now.

It prints the median and range over the rounds of requests/s, latency, the server's CPU
per request and the client's CPU per request, and the ratios ordergraph / baseline,
ordergraph / floor and floor / baseline of the median rates; then drops the database.

    python bench/reads.py --seconds 5 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import sys
from pathlib import Path
from typing import Any

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.api import PLACE_ORDER, SKU, STOCK, BenchStore, add_product, gql, make_store
from bench.harness import Server, free_port, serve_command, start
from bench.pg import add_pg_dsn, safe_dsn, scratch
from bench.place_orders_load import UNTHROTTLED, Request, Result, Target, drive, graphql_ok
from bench.rounds import one_line, ratio_line, rotation, summary

HERE = Path(__file__).resolve().parent
SKUS = (SKU, "BENCH-2", "BENCH-3")
SEED = 11

_TALLY = "{ orders units value { amount currencyCode } }"
QUERIES = {
    "store": '{ store(handle: "%s") { handle } }',
    "orders": (
        '{ store(handle: "%s") { orders(first: 50) { nodes { id number placedAt status '
        "stockStatus lines { id sku quantity allocated backordered "
        "unitPrice { amount currencyCode } product { id sku title } } } } } }"
    ),
    "backlog": (
        '{ store(handle: "%s") { backlog { '
        f"backlog {_TALLY} backorders {_TALLY} overdue {_TALLY} }} }} }}"
    ),
}


# -- setup ------------------------------------------------------------------------


def seed_store(url: str, admin_token: str, orders: int) -> BenchStore:
    """A store with three products in stock and `orders` orders of 1-3 lines."""
    store = make_store(url, admin_token)
    for sku in SKUS[1:]:
        add_product(url, store, sku, f"Item {sku}", "4.25", STOCK)
    rng = random.Random(SEED)
    for _ in range(orders):
        skus = rng.sample(SKUS, rng.randint(1, 3))
        lines = [{"sku": sku, "quantity": rng.randint(1, 4)} for sku in skus]
        gql(
            url,
            PLACE_ORDER,
            {"input": {"storeId": store.gid, "lines": lines}},
            store.token,
            "placeOrder",
        )
    return store


async def analyze(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


CONTENDERS = ("baseline", "floor", "ordergraph")


def targets(read: str, urls: dict[str, str], store: BenchStore) -> dict[str, Target]:
    query = QUERIES[read] % store.handle
    auth = {"Authorization": f"Bearer {store.token}"}
    base = Request({"handle": store.handle}, {})
    return {
        "baseline": Target("baseline", [urls["baseline"]], f"/reads/{read}", [base]),
        "floor": Target(
            "floor", [urls["floor"]], "/graphql", [Request({"query": query}, {})], graphql_ok()
        ),
        "ordergraph": Target(
            "ordergraph",
            [urls["ordergraph"]],
            "/graphql",
            [Request({"query": query}, auth)],
            graphql_ok(),
        ),
    }


def _answer(url: str, target: Target) -> dict[str, Any]:
    request = target.requests[0]
    response = httpx.post(url + target.path, json=request.body, headers=request.headers, timeout=30)
    answer: dict[str, Any] = response.json()
    return answer


def same_json(read: str, contenders: dict[str, Target]) -> tuple[str | None, Any]:
    """(None if all contenders answer the read with the same data, else their answers;
    ordergraph's extensions.cost)."""
    answers = {name: _answer(t.urls[0], t) for name, t in contenders.items()}
    cost = answers["ordergraph"].get("extensions", {}).get("cost", {}).get("requestedQueryCost")
    data = {"data": answers["ordergraph"].get("data")}
    if answers["baseline"] == data and answers["floor"] == data:
        return None, cost
    shown = "".join(f"\n  {name:<10} {json.dumps(a)[:1500]}" for name, a in answers.items())
    return f"{read}: the answers differ:{shown}", cost


# -- main -----------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measured time per run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of all contenders")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent connections")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first")
    parser.add_argument(
        "--pool-size",
        type=int,
        default=None,
        help="database connections of each server process (both contenders; "
        "default: --concurrency, one per client connection, as pgbench has)",
    )
    parser.add_argument("--orders", type=int, default=200, help="orders in the store")
    parser.add_argument(
        "--reads",
        default=",".join(QUERIES),
        help=f"which reads, comma-separated (of {', '.join(QUERIES)})",
    )
    add_pg_dsn(parser)
    args = parser.parse_args(argv)
    args.pool_size = args.pool_size or args.concurrency
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    reads = [r for r in args.reads.split(",") if r]
    if (
        args.seconds <= 0
        or args.rounds < 1
        or args.concurrency < 1
        or args.warmup < 0
        or args.pool_size < 1
        or args.orders < 0
        or not reads
        or any(r not in QUERIES for r in reads)
    ):
        print(
            "need --seconds > 0, --rounds >= 1, --concurrency >= 1, --warmup >= 0, "
            "--pool-size >= 1, "
            f"--orders >= 0, --reads among {', '.join(QUERIES)}",
            file=sys.stderr,
        )
        return 2
    with scratch(args.pg_dsn, "reads") as (dsn, logs):
        return run(args, reads, dsn, logs)


def run(args: argparse.Namespace, reads: list[str], dsn: str, logs: Path) -> int:
    admin_token = "og_admin_bench_" + secrets.token_urlsafe(16)
    servers: list[Server] = []
    try:
        env = {
            **os.environ,
            "ORDERGRAPH_DATABASE_URL": dsn.replace("postgresql://", "postgresql+asyncpg://", 1),
            "ORDERGRAPH_ADMIN_TOKEN": admin_token,
            "ORDERGRAPH_LOG_LEVEL": "WARNING",
            **UNTHROTTLED,
            "ORDERGRAPH_DB_POOL_SIZE": str(args.pool_size),
        }
        port = free_port()
        og = start(serve_command(port), port=port, log=logs / "og.log", env=env, name="ordergraph")
        servers.append(og)
        store = seed_store(og.url, admin_token, args.orders)
        asyncio.run(analyze(dsn))
        port = free_port()
        command = [
            *(sys.executable, str(HERE / "baseline_app.py"), "--dsn", dsn),
            *("--port", str(port), "--pool-size", str(args.pool_size)),
        ]
        base = start(command, port=port, log=logs / "base.log", name="baseline")
        servers.append(base)
        port = free_port()
        command[1] = str(HERE / "floor_app.py")
        command[command.index("--port") + 1] = str(port)
        floor = start(command, port=port, log=logs / "floor.log", name="floor")
        servers.append(floor)
        print(
            f"reads: a store of {args.orders} orders of 1-3 lines made through the API, then "
            f"ANALYZE; {args.concurrency} concurrent connections, {args.seconds:g} s measured "
            f"after {args.warmup:g} s warm-up per run, {args.rounds} round(s), order rotated "
            f"each round, {args.pool_size} database connections per server, on {safe_dsn(dsn)}",
            flush=True,
        )
        pids = {"baseline": [base.process.pid], "floor": [floor.process.pid]}
        pids["ordergraph"] = [og.process.pid]
        urls = {"baseline": base.url, "floor": floor.url, "ordergraph": og.url}
        return _measure(args, reads, {r: targets(r, urls, store) for r in reads}, pids)
    except Exception:
        for server in servers:
            server.stop()
            print(f"--- {server.name} log ---\n{server.log.read_text()[-4000:]}", file=sys.stderr)
        raise
    finally:
        for server in servers:
            server.stop()


def _measure(
    args: argparse.Namespace,
    reads: list[str],
    by_read: dict[str, dict[str, Target]],
    pids: dict[str, list[int]],
) -> int:
    costs = {}
    for read in reads:
        problem, costs[read] = same_json(read, by_read[read])
        if problem:
            print(problem)
            return 1
    print(
        f"same JSON from all three for: {', '.join(reads)} (ordergraph's data; it adds "
        "extensions.cost, requested cost: "
        + ", ".join(f"{read} {cost}" for read, cost in costs.items())
        + "); per-key rate limits lifted"
    )
    runs: dict[str, dict[str, list[Result]]] = {r: {n: [] for n in CONTENDERS} for r in reads}
    for read in reads:
        for round_index in range(args.rounds):
            for name in rotation(list(CONTENDERS), round_index):
                target = by_read[read][name]
                result = asyncio.run(
                    drive(target, args.concurrency, args.seconds, args.warmup, pids[name])
                )
                runs[read][name].append(result)
                print(
                    f"round {round_index + 1} {read} {name}: {one_line(result, 'requests')}",
                    flush=True,
                )
    failed = _report(args, reads, runs)
    print()
    print(
        "server CPU: the server process from /proc per request, PostgreSQL not included; "
        "db CPU: all of PostgreSQL's processes meanwhile (this machine's), per request; "
        "client CPU: this process's, per request"
    )
    return 1 if failed else 0


def _report(
    args: argparse.Namespace, reads: list[str], runs: dict[str, dict[str, list[Result]]]
) -> bool:
    """Print each read's summary and ratios and any failed requests; whether any failed."""
    failed = False
    for read in reads:
        print()
        print(f"== {read}: median [min-max] over {args.rounds} round(s) ==")
        print(summary(runs[read], "requests"))
        for numerator, denominator in (
            ("ordergraph", "baseline"),
            ("ordergraph", "floor"),
            ("floor", "baseline"),
        ):
            print(ratio_line(runs[read], numerator, denominator))
        for name, results in runs[read].items():
            for result in results:
                if result.first_error:
                    print(f"{read} {name}: {result.errors} failed; first: {result.first_error}")
                    failed = True
    return failed


if __name__ == "__main__":
    raise SystemExit(main())

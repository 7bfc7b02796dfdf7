"""Benchmark: the embedded store. placeOrder on SQLite through a real `ordergraph serve`
process, and the time `ordergraph seed-demo` takes.

It starts `python -m ordergraph serve` on a fresh SQLite file in a temporary folder,
creates a store with one product of ample stock through the API, and then, round after
round (interleaved), measures:

- placeOrder: one-line orders from --concurrency connections for --seconds, after a
  warm-up: orders/s, latency p50/p99, the server's CPU per order (from /proc) and this
  client's CPU per request (so a client that is the bottleneck shows);
- seed-demo: `ordergraph seed-demo --orders N` on a fresh SQLite file, wall and CPU time
  (the CLI as users run it: startup, migrations, seeding), and the same world seeded one
  operation per unit of work (`seed_demo(batched=False)`, what seed-demo did before) as
  the baseline of the ratio.

It prints each round, then min/median/max over the rounds and the figures against the
goals (300 orders/s at 4 connections; seed-demo of 3,000 orders under 10 s).

Run from the repository root, in the project's environment:

    python bench/embedded.py                      # 3 rounds, 10 s each, 3,000 demo orders
    python bench/embedded.py --rounds 1 --seconds 2 --orders 150 --no-baseline   # smoke
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import place_orders_load as load
from bench.api import PLACE_ORDER, SKU, make_store
from bench.harness import Server, start_serve
from bench.place_orders_load import Request, Result, Target, drive

ROOT = Path(__file__).resolve().parent.parent
GOAL_RATE = 300.0  # orders/s at 4 connections (issue 11, point 6)
GOAL_SEED = 10.0  # seconds for seed-demo's default 3,000 orders
END = "2026-07-15T12:00:00+00:00"  # the demo's end instant: every round seeds the same world
ONE_BY_ONE = """
import asyncio, datetime as dt, sys
from ordergraph import demo
from ordergraph.storage.db import Database
from ordergraph.storage.migrate import upgrade

async def main() -> None:
    db = Database(sys.argv[1])
    await upgrade(db)
    end = dt.datetime.fromisoformat(sys.argv[3])
    await demo.seed_demo(db, seed=1, orders=int(sys.argv[2]), now=end, batched=False)
    await db.dispose()

asyncio.run(main())
"""


@dataclass
class Round:
    place: Result
    client_ms: float  # this process's CPU per request sent
    seed: tuple[float, float]  # seed-demo: wall, CPU seconds
    baseline: tuple[float, float] | None  # one unit of work per operation: wall, CPU


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Run a command to completion: its wall and CPU seconds (children included)."""
    cpu = _children_cpu()
    began = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - began
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} failed:\n{done.stdout}\n{done.stderr}")
    return wall, _children_cpu() - cpu


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERGRAPH_")}
    env["PYTHONPATH"] = str(ROOT)
    env["ORDERGRAPH_LOG_LEVEL"] = "WARNING"
    return env


def seed_times(
    folder: Path, n: int, orders: int, baseline: bool
) -> tuple[tuple[float, float], tuple[float, float] | None]:
    """seed-demo through the CLI, and (`baseline`) one unit of work per operation."""
    env = _env()
    url = f"sqlite:///{folder / f'seed-{n}.db'}"
    command = [sys.executable, "-m", "ordergraph", "seed-demo", "--database-url", url]
    seed = _timed([*command, "--orders", str(orders), "--now", END], env)
    single = None
    if baseline:
        url = f"sqlite+aiosqlite:///{folder / f'single-{n}.db'}"
        single = _timed([sys.executable, "-c", ONE_BY_ONE, url, str(orders), END], env)
    return seed, single


def place_order_target(url: str, store_gid: str, token: str) -> Target:
    """placeOrder of one unit, answered without errors, as bench/place_orders_load.py
    checks it (with its GraphQL check where the load module has one, else its flag)."""
    request = Request(
        {
            "query": PLACE_ORDER,
            "variables": {"input": {"storeId": store_gid, "lines": [{"sku": SKU, "quantity": 1}]}},
        },
        {"Authorization": f"Bearer {token}"},
    )
    check = getattr(load, "graphql_ok", None)
    options: dict[str, Any] = {"graphql": True} if check is None else {"check": check("placeOrder")}
    make: Any = Target
    target: Target = make("ordergraph", [url], "/graphql", [request], **options)
    return target


def place_orders(server: Server, target: Target, args: argparse.Namespace) -> tuple[Result, float]:
    client = time.process_time()
    result = asyncio.run(
        drive(target, args.concurrency, args.seconds, args.warmup, [server.process.pid])
    )
    client_ms = (time.process_time() - client) * 1000 / max(1, result.orders + result.errors)
    if result.first_error:
        raise RuntimeError(f"{result.errors} placeOrder requests failed: {result.first_error}")
    return result, client_ms


def _spread(values: list[float], fmt: str) -> str:
    if not values:
        return "-"
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"{low:{fmt}} / {mid:{fmt}} / {high:{fmt}}"


def report(rounds: list[Round], args: argparse.Namespace) -> str:
    head = (
        f"{'round':<6} {'orders/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'server CPU ms/order':>20}"
        f" {'client CPU ms/req':>18} {'seed-demo s':>12} {'seed CPU s':>11}"
        f" {'one-by-one s':>13}"
    )
    lines = [head, "-" * len(head)]
    for n, r in enumerate(rounds, 1):
        single = f"{r.baseline[0]:>13.1f}" if r.baseline else f"{'-':>13}"
        lines.append(
            f"{n:<6} {r.place.rate:>9.1f} {r.place.percentile_ms(0.5):>7.2f}"
            f" {r.place.percentile_ms(0.99):>7.2f} {r.place.cpu_ms_per_order:>20.2f}"
            f" {r.client_ms:>18.2f} {r.seed[0]:>12.1f} {r.seed[1]:>11.1f} {single}"
        )
    rates = [r.place.rate for r in rounds]
    cpu = [r.place.cpu_ms_per_order for r in rounds]
    seeds = [r.seed[0] for r in rounds]
    singles = [r.baseline[0] for r in rounds if r.baseline]
    ratios = [r.baseline[0] / r.seed[0] for r in rounds if r.baseline]
    lines += [
        "",
        "min / median / max over the rounds:",
        f"  placeOrder orders/s            {_spread(rates, '.1f')}"
        f"   (goal {GOAL_RATE:g}: median {statistics.median(rates) / GOAL_RATE:.2f}x)",
        f"  server CPU ms per order        {_spread(cpu, '.2f')}",
        f"  client CPU ms per request      {_spread([r.client_ms for r in rounds], '.2f')}",
        f"  seed-demo s ({args.orders} orders)     {_spread(seeds, '.1f')}"
        f"   (goal {GOAL_SEED:g} s: median {statistics.median(seeds) / GOAL_SEED:.2f}x)",
        f"  one unit of work per operation {_spread(singles, '.1f')}",
        f"  ratio one-by-one / seed-demo   {_spread(ratios, '.2f')}",
        f"(SQLite, one `ordergraph serve` process, one store, one-line orders,"
        f" {args.concurrency} connections, {args.seconds:g} s per round)",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="placeOrder per round")
    parser.add_argument("--concurrency", type=int, default=4, help="concurrent connections")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, interleaved")
    parser.add_argument("--orders", type=int, default=3000, help="seed-demo orders")
    parser.add_argument(
        "--no-baseline", action="store_true", help="skip seeding one unit of work per operation"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.seconds <= 0 or args.concurrency < 1 or args.rounds < 1 or args.orders < 1:
        print("need --seconds > 0 and --concurrency, --rounds, --orders >= 1", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="ordergraph-embedded-") as tmp:
        return run(args, Path(tmp))


def run(args: argparse.Namespace, folder: Path) -> int:
    admin_token = "og_admin_bench_" + secrets.token_urlsafe(16)
    env = {
        "ORDERGRAPH_DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'serve.db'}",
        "ORDERGRAPH_ADMIN_TOKEN": admin_token,
        "ORDERGRAPH_LOG_LEVEL": "WARNING",
        "ORDERGRAPH_RATE_LIMIT_CAPACITY": "1000000000",
        "ORDERGRAPH_RATE_LIMIT_RESTORE_PER_SECOND": "1000000000",
    }
    server = start_serve(folder / "serve.log", env, base_env=_env(), cwd=ROOT, timeout=60)
    try:
        store = make_store(server.url, admin_token)
        target = place_order_target(server.url, store.gid, store.token)
        print(
            f"embedded: placeOrder on SQLite at {args.concurrency} connections for"
            f" {args.seconds:g} s, then seed-demo of {args.orders} orders"
            f"{'' if args.no_baseline else ' and its one-by-one baseline'},"
            f" {args.rounds} round(s); server log in {folder}",
            flush=True,
        )
        rounds = [_round(n, server, target, args, folder) for n in range(args.rounds)]
    finally:
        server.stop()
    print()
    print(report(rounds, args))
    return 0


def _round(n: int, server: Server, target: Target, args: argparse.Namespace, folder: Path) -> Round:
    def say(text: str) -> None:
        print(f"round {n + 1}: {text}", flush=True)

    place, client_ms = place_orders(server, target, args)
    say(f"placeOrder {place.rate:.1f} orders/s, {place.cpu_ms_per_order:.2f} ms server CPU each")
    seed, single = seed_times(folder, n, args.orders, not args.no_baseline)
    say(f"seed-demo {seed[0]:.1f} s" + (f", one-by-one {single[0]:.1f} s" if single else ""))
    return Round(place, client_ms, seed, single)


if __name__ == "__main__":
    raise SystemExit(main())

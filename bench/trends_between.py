"""Benchmark: the figures bench's two trend rows, served by two versions of ordergraph on
one database that `bench/figures.py --keep` left, alternately (run by hand).

Loading the figures bench's store of 100,000 orders takes minutes, and on a shared,
noisy machine a comparison is only fair when both versions run in the same minutes. So
this serves the kept database with each given tree in turn (`<tree>/.venv/bin/python -m
ordergraph serve`, from the tree, so each runs its own code), and for each, round after
round, times the 30-point DAY `backlogTrend` and the 1,000-point HOUR one (the queries
and windows of bench/figures_trends.py) on the database's largest store: --samples
sequential requests per trend and round, after a warm-up. It prints each tree's
min/median/max of the round medians, the server's CPU per request and its PostgreSQL
backends' (from /proc), and the ratio of the 1,000-point trend to the 30-point one
(goal: 2). The trees are taken in turn --turns times (A, B, A, B, ...).

    python bench/figures.py --sizes 100000 --keep      # prints "kept database NAME"
    git worktree add /tmp/before <rev> && (cd /tmp/before && python -m venv .venv \\
        && .venv/bin/pip install -e .)
    python bench/trends_between.py NAME /tmp/before . --turns 2

The kept database is the figures bench's: drop it when done (DROP DATABASE NAME).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import secrets
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.figures_http import TREND_QUERY, Client, read_key, trend_window
from bench.figures_trends import GOAL_RATIO, HOUR_TREND_QUERY, backend_pids, hour_window
from bench.harness import Server, free_port, running, start
from bench.proc import process_cpu_seconds

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
TRENDS = (("30 DAY", TREND_QUERY, trend_window), ("1,000 HOUR", HOUR_TREND_QUERY, hour_window))


@dataclass
class Measured:
    """One tree's figures for one trend, a value per round."""

    latency_ms: list[float] = field(default_factory=list)
    app_cpu_ms: list[float] = field(default_factory=list)
    db_cpu_ms: list[float] = field(default_factory=list)


async def largest_store(dsn: str) -> tuple[int, str, int]:
    """(id, handle, orders) of the store with the most orders."""
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT s.id, s.handle, count(*) AS n FROM stores s"
            " JOIN orders o ON o.store_id = s.id GROUP BY s.id ORDER BY n DESC LIMIT 1"
        )
    finally:
        await conn.close()
    if row is None:
        raise SystemExit("the database has no orders: is it one that bench/figures.py kept?")
    return int(row["id"]), str(row["handle"]), int(row["n"])


def _cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):  # (one that ended)
            total += process_cpu_seconds(pid)
    return total


def serve(tree: Path, dsn: str, admin_token: str, log: Path) -> Server:
    """`ordergraph serve` from `tree`'s own environment, as bench/figures.py starts it."""
    port = free_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "ORDERGRAPH_DATABASE_URL": dsn.replace("postgresql://", "postgresql+asyncpg://", 1),
        "ORDERGRAPH_ADMIN_TOKEN": admin_token,
        "ORDERGRAPH_LOG_LEVEL": "WARNING",
        "ORDERGRAPH_OVERDUE_SWEEP_SECONDS": "0",
        "ORDERGRAPH_MAX_COST": "100000",
        "ORDERGRAPH_OPERATION_TIMEOUT_MS": "120000",
        "ORDERGRAPH_RATE_LIMIT_CAPACITY": "1000000000",
        "ORDERGRAPH_RATE_LIMIT_RESTORE_PER_SECOND": "1000000000",
    }
    python = tree / ".venv" / "bin" / "python"
    command = [str(python), "-m", "ordergraph", "serve", "--port", str(port)]
    return start(command, port=port, log=log, env=env, cwd=tree, name=f"serve ({tree})")


def measure(
    tree: Path, dsn: str, store: tuple[int, str, int], args: argparse.Namespace, logs: Path
) -> dict[str, Measured]:
    admin = "og_admin_bench_" + secrets.token_urlsafe(16)
    found = {name: Measured() for name, _, _ in TRENDS}
    server = serve(tree, dsn, admin, logs / f"serve-{time.monotonic_ns()}.log")
    with running(server) as up:
        client = Client(up.url, read_key(up.url, admin, [store[0]]))
        try:
            end = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)).replace(microsecond=0)
            bodies = []
            for name, query, window in TRENDS:
                start_at, end_at = window(end)
                variables = {"h": store[1], "from": start_at.isoformat(), "to": end_at.isoformat()}
                bodies.append((name, query, variables))
                for _ in range(args.warmup):
                    client.post(query, variables)
            backends = asyncio.run(backend_pids(dsn))
            for index in range(args.rounds):
                for name, query, variables in bodies if index % 2 == 0 else bodies[::-1]:
                    took = []
                    app, db = _cpu([up.process.pid]), _cpu(backends)
                    for _ in range(args.samples):
                        began = time.perf_counter()
                        client.post(query, variables)
                        took.append(time.perf_counter() - began)
                    m = found[name]
                    m.latency_ms.append(statistics.median(took) * 1000)
                    m.app_cpu_ms.append((_cpu([up.process.pid]) - app) * 1000 / args.samples)
                    m.db_cpu_ms.append((_cpu(backends) - db) * 1000 / args.samples)
        finally:
            client.close()
    return found


def report(tree: Path, turn: int, found: dict[str, Measured]) -> str:
    lines = []
    for name, m in found.items():
        lat = m.latency_ms
        lines.append(
            f"{tree!s:28} turn {turn}  {name:>10}  {min(lat):7.1f} {statistics.median(lat):7.1f}"
            f" {max(lat):7.1f} ms   app CPU {statistics.median(m.app_cpu_ms):5.1f} ms"
            f"   db CPU {statistics.median(m.db_cpu_ms):5.1f} ms"
        )
    short, long = (statistics.median(found[name].latency_ms) for name, _, _ in TRENDS)
    lines.append(
        f"{tree!s:28} turn {turn}  ratio 1,000 HOUR / 30 DAY: {long / short:.2f}"
        f" (goal {GOAL_RATIO:g})"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("database", help="a database bench/figures.py --keep left")
    parser.add_argument("trees", nargs="+", type=Path, help="checkouts, each with its .venv")
    parser.add_argument("--turns", type=int, default=2, help="times each tree is served")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per turn")
    parser.add_argument("--samples", type=int, default=10, help="requests per trend and round")
    parser.add_argument("--warmup", type=int, default=3, help="untimed requests first")
    parser.add_argument(
        "--pg-dsn",
        default=os.environ.get("ORDERGRAPH_BENCH_PG_DSN", DEFAULT_DSN),
        help="the PostgreSQL server (its database is replaced by the one given)",
    )
    args = parser.parse_args(argv)
    trees = [tree.resolve() for tree in args.trees]
    for tree in trees:
        if not (tree / ".venv" / "bin" / "python").exists():
            raise SystemExit(f"{tree} has no .venv: each tree runs its own environment")
    dsn = urlsplit(args.pg_dsn)._replace(path=f"/{args.database}").geturl()
    store = asyncio.run(largest_store(dsn))
    print(
        f"store {store[1]} ({store[2]:,} orders); {args.turns} turns of {len(trees)} trees,"
        f" {args.rounds} rounds of {args.samples} requests per trend; latency min/median/max"
        " of the round medians, CPU per request (median of the rounds)",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as logs:
        for turn in range(1, args.turns + 1):
            for tree in trees:
                print(report(tree, turn, measure(tree, dsn, store, args, Path(logs))), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

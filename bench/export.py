"""Benchmark: bulk export of a large store from one server process (GET /export/...).

It creates a fresh PostgreSQL database, starts one `python -m ordergraph serve` process on
it (which migrates it), creates a store through the API, then writes the store's products
and N orders with one to three lines each (two on average) straight into the tables with
`generate_series` (going through the API for a million orders would take hours; the
store's running totals and event log do not know of these orders, which the export does
not read). Then it reads the server's idle VmRSS from /proc (after one small export, so
the code paths are warm) and streams the whole orders export, as CSV and as NDJSON,
`--repeats` times each, sampling the server's VmRSS every 20 ms. For each format it
prints min / median / max of: peak RSS minus idle (goal: under 150 MB), time to first
byte (goal: under 1 s), orders per second, and the server's CPU (user + system, from
/proc) per 1,000 orders. It checks that every order and every line arrived, drops the
database, and exits non-zero when one did not or a goal was missed.

The server runs with its rate limit lifted (the key's bucket would otherwise pace the
export: docs/integrations.md) and the default page size (ORDERGRAPH_EXPORT_PAGE_SIZE).
The client reads in this process, on the same machine: its CPU competes with the
server's.

Run from the repository root, in the project's environment:

    python bench/export.py                   # 1,000,000 orders, three rounds per format
    python bench/export.py --orders 2000     # a quick run (--smoke: 2,000 orders)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.api import create_store
from bench.harness import Server, free_port, serve_command, start
from bench.pg import (
    add_pg_dsn,
    create_database,
    drop_database,
    safe_dsn,
    store_id_of,
    with_database,
)
from bench.proc import process_cpu_seconds, vm_kib

PRODUCTS = 100
FIRST_ORDER_ID = 1_000_001  # above the product ids; a store's ids share one counter
FIRST_LINE_ID = 10_000_001_000
RSS_GOAL_MB = 150.0
TTFB_GOAL_S = 1.0
SAMPLE_SECONDS = 0.02
SKU_KEY = b'"sku":'  # once per order line in NDJSON


@dataclass
class Round:
    format: str
    peak_rss_mb: float
    ttfb_s: float
    orders_per_s: float
    cpu_ms_per_1000: float
    orders: int
    lines: int


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=None, help="default 1,000,000")
    parser.add_argument("--repeats", type=int, default=3, help="rounds per format (default 3)")
    parser.add_argument("--smoke", action="store_true", help="2,000 orders (what CI runs)")
    parser.add_argument("--log-dir", type=Path, help="keep the server's log in this folder")
    add_pg_dsn(parser)
    args = parser.parse_args(argv)
    args.orders = args.orders or (2000 if args.smoke else 1_000_000)
    return args


async def seed(dsn: str, store_id: int, orders: int) -> int:
    """Products and `orders` orders of 1-3 lines straight into the tables; the lines."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute(
                """INSERT INTO products (store_id, id, sku, title, price, backorder_policy,
                     backorder_limit, restock_date, on_hand, allocated, backordered, created_at)
                   SELECT $1, g, 'SKU-' || g, 'Product ' || g || ', "bench"', 9.99, 'ALLOW',
                     NULL, NULL, 1000000, 0, 0, now()
                   FROM generate_series(1, $2::int) g""",
                store_id,
                PRODUCTS,
            )
            await conn.execute(
                """INSERT INTO orders (store_id, id, number, external_id, customer_ref,
                     placed_at, requested_ship_date, overdue_at, status, stock_status,
                     in_backlog, is_backordered, overdue_notified)
                   SELECT $1, $2::bigint + g, 1000 + g, 'ext-' || g,
                     'customer, "' || (g % 5000) || '"',
                     timestamptz '2026-01-01 00:00:00+00' + g * interval '1 second',
                     NULL, NULL, 'OPEN', 'ALLOCATED', true, false, false
                   FROM generate_series(1, $3::int) g""",
                store_id,
                FIRST_ORDER_ID - 1,
                orders,
            )
            await conn.execute(
                """INSERT INTO order_lines (store_id, id, order_id, product_id, sku, quantity,
                     unit_price, allocated, backordered, shipped, cancelled, placed_at,
                     order_number)
                   SELECT $1, $2::bigint + g * 3 + k, $3::bigint + g, 1 + (g * 7 + k) % $4,
                     'SKU-' || (1 + (g * 7 + k) % $4), 1 + k, 9.99, 1 + k, 0, 0, 0,
                     timestamptz '2026-01-01 00:00:00+00' + g * interval '1 second', 1000 + g
                   FROM generate_series(1, $5::int) g, generate_series(0, 2) k
                   WHERE k <= g % 3""",
                store_id,
                FIRST_LINE_ID,
                FIRST_ORDER_ID - 1,
                PRODUCTS,
                orders,
            )
            await conn.execute(
                "UPDATE stores SET next_id = $2::bigint, next_order_number = $3::bigint"
                " WHERE id = $1",
                store_id,
                FIRST_LINE_ID + orders * 3 + 10,
                1000 + orders + 1,
            )
        await conn.execute("ANALYZE products")
        await conn.execute("ANALYZE orders")
        await conn.execute("ANALYZE order_lines")
        lines = await conn.fetchval(
            "SELECT count(*) FROM order_lines WHERE store_id = $1", store_id
        )
    finally:
        await conn.close()
    return int(lines)


class RssSampler(threading.Thread):
    """The highest VmRSS of a process while running, sampled every SAMPLE_SECONDS."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_kib = vm_kib(pid, "VmRSS")
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.peak_kib = max(self.peak_kib, vm_kib(self.pid, "VmRSS"))
            self._halt.wait(SAMPLE_SECONDS)

    def finish(self) -> int:
        self._halt.set()
        self.join()
        self.peak_kib = max(self.peak_kib, vm_kib(self.pid, "VmRSS"))
        return self.peak_kib


def stream(server: Server, token: str, handle: str, fmt: str, idle_kib: int, orders: int) -> Round:
    """One full orders export in `fmt`, read as it comes, measured from outside."""
    pid = server.process.pid
    sampler = RssSampler(pid)
    cpu0 = process_cpu_seconds(pid)
    sampler.start()
    began = time.perf_counter()
    first: float | None = None
    newlines = skus = 0
    try:
        with httpx.stream(
            "GET",
            f"{server.url}/export/orders.{fmt}",
            params={"store": handle},
            headers={"Authorization": f"Bearer {token}", "Accept-Encoding": "identity"},
            timeout=httpx.Timeout(60.0, read=600.0),
        ) as response:
            if response.status_code != 200:
                raise RuntimeError(f"export answered {response.status_code}: {response.read()!r}")
            carried = b""  # the end of the previous chunk: a key may straddle two
            for chunk in response.iter_raw(1 << 16):
                if first is None and chunk:
                    first = time.perf_counter() - began
                newlines += chunk.count(b"\n")
                skus += (carried + chunk).count(SKU_KEY)
                carried = chunk[-(len(SKU_KEY) - 1) :]
    finally:
        peak = sampler.finish()
    took = time.perf_counter() - began
    cpu = process_cpu_seconds(pid) - cpu0
    if fmt == "csv":  # one row per line after the header; orders are checked by NDJSON
        got_orders, got_lines = orders, newlines - 1
    else:
        got_orders, got_lines = newlines, skus
    return Round(
        format=fmt,
        peak_rss_mb=(peak - idle_kib) / 1024,
        ttfb_s=first if first is not None else took,
        orders_per_s=orders / took,
        cpu_ms_per_1000=cpu * 1000 / (orders / 1000),
        orders=got_orders,
        lines=got_lines,
    )


def spread(values: list[float], digits: int) -> str:
    return " / ".join(
        f"{v:.{digits}f}" for v in (min(values), statistics.median(values), max(values))
    )


def run(args: argparse.Namespace, dsn: str, logs: Path) -> int:
    admin_token = "og_admin_bench_" + secrets.token_urlsafe(16)
    port = free_port()
    env = {
        **os.environ,
        "ORDERGRAPH_DATABASE_URL": dsn.replace("postgresql://", "postgresql+asyncpg://", 1),
        "ORDERGRAPH_ADMIN_TOKEN": admin_token,
        "ORDERGRAPH_LOG_LEVEL": "WARNING",
        "ORDERGRAPH_WEBHOOK_DELIVERY": "false",
        "ORDERGRAPH_RATE_LIMIT_CAPACITY": "1000000000",
        "ORDERGRAPH_RATE_LIMIT_RESTORE_PER_SECOND": "1000000000",
    }
    server = start(
        serve_command(port), port=port, log=logs / "ordergraph.log", env=env, name="ordergraph"
    )
    try:
        pid = server.process.pid
        store = create_store(server.url, admin_token, policy="ALLOW")
        store_id = asyncio.run(store_id_of(dsn, store.handle))
        began = time.monotonic()
        lines = asyncio.run(seed(dsn, store_id, args.orders))
        print(
            f"export: {args.orders:,} orders with {lines:,} lines seeded in "
            f"{time.monotonic() - began:.1f} s; one server process (pid {pid}) on "
            f"{safe_dsn(dsn)}",
            flush=True,
        )
        # Warm the paths (a small export), then let the process settle.
        warm = httpx.get(
            f"{server.url}/export/products.csv",
            params={"store": store.handle},
            headers={"Authorization": f"Bearer {store.token}"},
            timeout=60,
        )
        if warm.status_code != 200:
            raise RuntimeError(f"the warm-up export answered {warm.status_code}: {warm.text}")
        time.sleep(1.0)
        idle_kib = vm_kib(pid, "VmRSS")
        print(f"server idle RSS {idle_kib / 1024:.1f} MB", flush=True)

        failures = []
        results: dict[str, list[Round]] = {"csv": [], "ndjson": []}
        for repeat in range(args.repeats):
            for fmt in ("csv", "ndjson"):
                result = stream(server, store.token, store.handle, fmt, idle_kib, args.orders)
                complete = result.lines == lines and result.orders == args.orders
                if not complete:
                    failures.append(
                        f"{fmt} round {repeat + 1}: {result.orders} orders and "
                        f"{result.lines} lines, expected {args.orders} and {lines}"
                    )
                print(
                    f"round {repeat + 1} {fmt:6}  peak RSS over idle {result.peak_rss_mb:7.1f} MB"
                    f"  first byte {result.ttfb_s * 1000:7.1f} ms"
                    f"  {result.orders_per_s:9,.0f} orders/s"
                    f"  server CPU {result.cpu_ms_per_1000:6.1f} ms per 1,000 orders"
                    f"  {'complete' if complete else 'INCOMPLETE'}",
                    flush=True,
                )
                results[fmt].append(result)
        print("\nmin / median / max over", args.repeats, "rounds")
        print(
            f"{'format':8}{'peak RSS - idle MB':>26}{'first byte ms':>26}"
            f"{'orders/s':>30}{'CPU ms / 1,000 orders':>26}"
        )
        for fmt, rounds in results.items():
            print(
                f"{fmt:8}"
                f"{spread([r.peak_rss_mb for r in rounds], 1):>26}"
                f"{spread([r.ttfb_s * 1000 for r in rounds], 1):>26}"
                f"{spread([r.orders_per_s for r in rounds], 0):>30}"
                f"{spread([r.cpu_ms_per_1000 for r in rounds], 1):>26}"
            )
        every = [r for rounds in results.values() for r in rounds]
        worst_rss = max(r.peak_rss_mb for r in every)
        worst_ttfb = max(r.ttfb_s for r in every)
        print(
            f"\ngoals: peak RSS over idle {worst_rss:.1f} MB (goal < {RSS_GOAL_MB:g}): "
            f"{'met' if worst_rss < RSS_GOAL_MB else 'NOT MET'}; first byte "
            f"{worst_ttfb * 1000:.0f} ms (goal < {TTFB_GOAL_S * 1000:g}): "
            f"{'met' if worst_ttfb < TTFB_GOAL_S else 'NOT MET'}"
        )
        for failure in failures:
            print("FAILED:", failure)
        if failures or worst_rss >= RSS_GOAL_MB or worst_ttfb >= TTFB_GOAL_S:
            return 1
        print("every order and line exported in every round")
        return 0
    finally:
        server.stop()


def _stop_on_term(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # the server is stopped and the database dropped on the way out


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _stop_on_term)
    args = parse_args(argv)
    if args.orders < 1 or args.repeats < 1:
        print("need --orders >= 1 and --repeats >= 1", file=sys.stderr)
        return 2
    name = f"ordergraph_bench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    asyncio.run(create_database(args.pg_dsn, name))
    dsn = with_database(args.pg_dsn, name)
    print(f"database {safe_dsn(dsn)}", flush=True)
    try:
        if args.log_dir is not None:
            args.log_dir.mkdir(parents=True, exist_ok=True)
            return run(args, dsn, args.log_dir)
        with tempfile.TemporaryDirectory(prefix="ordergraph-export-") as logs:
            return run(args, dsn, Path(logs))
    finally:
        asyncio.run(drop_database(args.pg_dsn, name))
        print(f"dropped database {name}", flush=True)


if __name__ == "__main__":
    sys.exit(main())

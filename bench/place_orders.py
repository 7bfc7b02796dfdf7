"""Benchmark: placeOrder through ordergraph against a bare baseline doing the same writes.

It creates a fresh PostgreSQL database, starts `python -m ordergraph serve` on it
as a real process (or --processes N of them, on the same database), creates
stores for each contender (--stores K each, default 1) with one product of ample
stock, starts bench/baseline_app.py on the same database (as many processes),
then sends one-line orders to each in turn from the same number of concurrent
connections for the same time, the connections spread evenly over the processes
and the stores. It prints orders per second, latency percentiles and the ratio
ordergraph / baseline, checks that both wrote what a placeOrder writes, and
drops the database.

Run from the repository root, in the project's environment:

    python bench/place_orders.py --seconds 10 --concurrency 16
    python bench/place_orders.py --processes 2 --stores 8
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import tempfile
import uuid
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.api import PLACE_ORDER, SKU, make_store
from bench.harness import Server, free_port, serve_command, start
from bench.pg import create_database, drop_database, last_seq, safe_dsn, store_id_of, with_database
from bench.place_orders_load import Request, Result, Target, drive

HERE = Path(__file__).resolve().parent


# -- database ---------------------------------------------------------------


async def check_writes(dsn: str, store_id: int, seq_before: int) -> tuple[int, str | None]:
    """The orders the store holds, and what is wrong with their rows (None: as placeOrder writes).

    Each one-unit order must have written one orders row, one order_lines row, a PLACED
    and an ALLOCATED event with gapless positions after `seq_before`, one `tally_points`
    row growing the backlog by one, one unit allocated, and advanced the store's counters.
    """
    conn = await asyncpg.connect(dsn)
    try:
        placed = await conn.fetchval("SELECT count(*) FROM orders WHERE store_id = $1", store_id)
        lines = await conn.fetchval(
            "SELECT count(*) FROM order_lines WHERE store_id = $1", store_id
        )
        kinds = await conn.fetch(
            "SELECT stream, type, count(*) AS n FROM events WHERE store_id = $1 AND seq > $2 "
            "GROUP BY stream, type",
            store_id,
            seq_before,
        )
        events = await conn.fetchrow(
            "SELECT count(*) AS n, max(seq) AS last FROM events WHERE store_id = $1", store_id
        )
        allocated = await conn.fetchval(
            "SELECT allocated FROM products WHERE store_id = $1 AND sku = $2", store_id, SKU
        )
        store = await conn.fetchrow(
            "SELECT next_order_number, last_event_seq FROM stores WHERE id = $1", store_id
        )
        tally = await conn.fetchrow(
            "SELECT count(*) AS points, max(backlog_orders) AS backlog, "
            "max(backlog_units) AS units FROM tally_points WHERE store_id = $1",
            store_id,
        )
    finally:
        await conn.close()
    found = {
        "lines": lines,
        "new events": {f"{row['stream']}/{row['type']}": row["n"] for row in kinds},
        "units allocated": allocated,
        "next order number": store["next_order_number"],
        "last event seq": store["last_event_seq"],
        "events stored, last position": (events["n"], events["last"]),
        "tally points, backlog orders, units": tuple(tally),
    }
    new_events = {"order/PLACED": placed, "inventory/ALLOCATED": placed} if placed else {}
    last = seq_before + 2 * placed
    wanted = {
        "lines": placed,
        "new events": new_events,
        "units allocated": placed,
        "next order number": 1001 + placed,
        "last event seq": last,
        "events stored, last position": (last, last),
        "tally points, backlog orders, units": (placed, placed or None, placed or None),
    }
    if found != wanted:
        return placed, f"for {placed} orders expected {wanted}, found {found}"
    return placed, None


# -- report ---------------------------------------------------------------------


def table(results: list[Result], concurrency: int, processes: int = 1, stores: int = 1) -> str:
    head = (
        f"{'':<12} {'orders':>8} {'errors':>7} {'orders/s':>10} {'p50 ms':>8} {'p99 ms':>8}"
        f" {'server CPU ms/order':>20}"
    )
    rows = [head, "-" * len(head)]
    for r in results:
        rows.append(
            f"{r.name:<12} {r.orders:>8} {r.errors:>7} {r.rate:>10.1f} "
            f"{r.percentile_ms(0.50):>8.2f} {r.percentile_ms(0.99):>8.2f}"
            f" {r.cpu_ms_per_order:>20.2f}"
        )
    ordergraph, baseline = results[1], results[0]
    ratio = ordergraph.rate / baseline.rate if baseline.rate else float("nan")
    rows.append("")
    rows.append(f"ratio (ordergraph / baseline): {ratio:.3f}")
    each = "one store each" if stores == 1 else f"{stores} stores each"
    spread = "one process each" if processes == 1 else f"{processes} processes each"
    rows.append(f"(one-line orders, {concurrency} concurrent connections, {each}, {spread})")
    return "\n".join(rows)


# -- main -----------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured time per contender")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent connections")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first")
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="server processes per contender, on the one database; connections spread over them",
    )
    parser.add_argument(
        "--stores", type=int, default=1, help="stores per contender; connections spread over them"
    )
    parser.add_argument(
        "--pg-dsn",
        default=os.environ.get(
            "ORDERGRAPH_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="a PostgreSQL database to connect to for CREATE/DROP DATABASE",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if (
        args.seconds <= 0
        or args.concurrency < 1
        or args.warmup < 0
        or args.processes < 1
        or args.stores < 1
    ):
        print(
            "need --seconds > 0, --concurrency >= 1, --warmup >= 0, --processes >= 1, "
            "--stores >= 1",
            file=sys.stderr,
        )
        return 2
    name = f"ordergraph_bench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    asyncio.run(create_database(args.pg_dsn, name))
    try:
        with tempfile.TemporaryDirectory(prefix="ordergraph-bench-") as logs:
            return run(args, with_database(args.pg_dsn, name), Path(logs))
    finally:
        asyncio.run(drop_database(args.pg_dsn, name))


def _report_failures(
    dsn: str, result: Result, store_ids: list[int], seq_before: dict[int, int]
) -> bool:
    """Print a target's failed requests and check its stores' rows; whether anything failed."""
    failed = False
    if result.first_error:
        print(f"{result.name}: {result.errors} requests failed; first: {result.first_error}")
        failed = True
    total, wrong = 0, False
    for store_id in store_ids:
        placed, problem = asyncio.run(check_writes(dsn, store_id, seq_before[store_id]))
        total += placed
        if problem:
            print(f"{result.name}: the rows are not what placeOrder writes: {problem}")
            wrong = True
    if not wrong:
        print(
            f"{result.name}: {total} orders (warm-up included) in {len(store_ids)} "
            "store(s) checked in the database: "
            "1 order, 1 line, PLACED + ALLOCATED events, 1 tally point, counters each"
        )
    return failed or wrong


def run(args: argparse.Namespace, dsn: str, logs: Path) -> int:
    admin_token = "og_admin_bench_" + secrets.token_urlsafe(16)
    servers: list[Server] = []
    try:
        env = {
            **os.environ,
            "ORDERGRAPH_DATABASE_URL": dsn.replace("postgresql://", "postgresql+asyncpg://", 1),
            "ORDERGRAPH_ADMIN_TOKEN": admin_token,
            "ORDERGRAPH_LOG_LEVEL": "WARNING",
        }
        ordergraphs = []
        for n in range(args.processes):
            port = free_port()
            server = start(
                serve_command(port),
                port=port,
                log=logs / f"og-{n + 1}.log",
                env=env,
                name=f"ordergraph-{n + 1}",
            )
            servers.append(server)
            ordergraphs.append(server)
        setup_url = ordergraphs[0].url
        og_stores = [make_store(setup_url, admin_token) for _ in range(args.stores)]
        base_stores = [make_store(setup_url, admin_token) for _ in range(args.stores)]
        og_ids = [asyncio.run(store_id_of(dsn, store.handle)) for store in og_stores]
        base_ids = [asyncio.run(store_id_of(dsn, store.handle)) for store in base_stores]
        seq_before = {sid: asyncio.run(last_seq(dsn, sid)) for sid in og_ids + base_ids}

        baselines = []
        for n in range(args.processes):
            port = free_port()
            command = [
                *(sys.executable, str(HERE / "baseline_app.py")),
                *("--dsn", dsn, "--port", str(port)),
            ]
            server = start(
                command, port=port, log=logs / f"base-{n + 1}.log", name=f"baseline-{n + 1}"
            )
            servers.append(server)
            baselines.append(server)

        targets = [
            (
                Target(
                    "baseline",
                    [server.url for server in baselines],
                    "/orders",
                    [Request({"storeId": sid, "sku": SKU, "quantity": 1}, {}) for sid in base_ids],
                    graphql=False,
                ),
                base_ids,
            ),
            (
                Target(
                    "ordergraph",
                    [server.url for server in ordergraphs],
                    "/graphql",
                    [
                        Request(
                            {
                                "query": PLACE_ORDER,
                                "variables": {
                                    "input": {
                                        "storeId": store.gid,
                                        "lines": [{"sku": SKU, "quantity": 1}],
                                    }
                                },
                            },
                            {"Authorization": f"Bearer {store.token}"},
                        )
                        for store in og_stores
                    ],
                    graphql=True,
                ),
                og_ids,
            ),
        ]
        print(
            f"placeOrder: {args.concurrency} concurrent connections, {args.seconds:g} s measured "
            f"after {args.warmup:g} s warm-up, baseline then ordergraph, "
            f"{args.processes} process(es) and {args.stores} store(s) each, on {safe_dsn(dsn)}",
            flush=True,
        )
        pids = {
            "baseline": [server.process.pid for server in baselines],
            "ordergraph": [server.process.pid for server in ordergraphs],
        }
        results = [
            asyncio.run(
                drive(target, args.concurrency, args.seconds, args.warmup, pids[target.name])
            )
            for target, _ in targets
        ]
        print()
        print(table(results, args.concurrency, args.processes, args.stores))
        print()

        failed = False
        for result, (_, store_ids) in zip(results, targets, strict=True):
            failed = _report_failures(dsn, result, store_ids, seq_before) or failed
        return 1 if failed else 0
    except Exception:
        for server in servers:
            server.stop()
            print(f"--- {server.name} log ---\n{server.log.read_text()[-4000:]}", file=sys.stderr)
        raise
    finally:
        for server in servers:
            server.stop()


if __name__ == "__main__":
    raise SystemExit(main())

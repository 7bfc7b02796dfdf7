"""Benchmark: placeOrder through ordergraph against a bare baseline, the stack's floor and
pgbench, all doing the same writes.

It creates a fresh PostgreSQL database, starts `python -m ordergraph serve` on it as a
real process (or --processes N of them), creates the stores of each contender through
the API (one store for the hot workload, --stores for the spread one) with one product of
ample stock, installs the bench's PL/pgSQL copy of the transaction, places 1,000 orders
in a store of its own and runs ANALYZE, then starts bench/baseline_app.py and
bench/floor_app.py (the baseline's transaction behind a minimal Strawberry mutation: what
any Strawberry app costs; --no-floor leaves it out) on the same database. In each of
--rounds rounds it runs every contender in turn (the order rotated each round) for the
same time from the same number of connections: ordergraph, the floor and the baseline
through a light keep-alive HTTP client, pgbench calling the function. It prints the median
and range over the rounds of orders/s, latency, the servers' CPU per order and the
client's CPU per request, the ratios of the medians and the store lock's hold time when
the server reports it; checks that every contender wrote what a placeOrder writes; and
drops the database.

Run from the repository root, in the project's environment:

    python bench/place_orders.py --seconds 8 --rounds 3
    python bench/place_orders.py --workload hot --processes 2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.api import PLACE_ORDER, SKU, BenchStore, make_store
from bench.harness import Server, free_port, serve_command, start
from bench.pg import add_pg_dsn, last_seq, safe_dsn, scratch, store_id_of
from bench.pgbench_place import NAME as PGBENCH
from bench.pgbench_place import drive_pgbench, install, pgbench_binary
from bench.place_orders_load import UNTHROTTLED, Request, Result, Target, drive, graphql_ok
from bench.rounds import one_line, ratio_line, rotation, spread, summary

HERE = Path(__file__).resolve().parent
SEED_ORDERS = 1000

# -- database ---------------------------------------------------------------


async def check_writes(dsn: str, store_id: int, seq_before: int) -> tuple[int, str | None]:
    """The orders the store holds, and what is wrong with their rows (None: as placeOrder writes).

    Each one-unit order must have written one orders row, one order_lines row, a PLACED
    and an ALLOCATED event with gapless positions after `seq_before`, one unit allocated,
    and advanced the store's counters; the `tally_points` rows grow the backlog to the
    number of orders, one row per unit of work: one per order, or fewer where ordergraph
    ran orders that arrived together in one unit (resolvers/batches.py).
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
        "backlog orders, units at the last tally point": (tally["backlog"], tally["units"]),
        "one tally point per unit of work": tally["points"] <= placed
        and (tally["points"] >= 1 or not placed),
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
        "backlog orders, units at the last tally point": (placed or None, placed or None),
        "one tally point per unit of work": True,
    }
    if found != wanted:
        return placed, f"for {placed} orders expected {wanted}, found {found}"
    return placed, None


async def prepare_database(dsn: str, seed_store: int) -> None:
    """Install the pgbench function, give the tables rows (orders in a store of their own)
    and statistics: ANALYZE, as a deployment's database would have them."""
    await install(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "SELECT count(bench_place_order($1, $2, 1)) FROM generate_series(1, $3)",
            seed_store,
            SKU,
            SEED_ORDERS,
        )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def seq_scans(dsn: str) -> dict[str, int]:
    """Sequential scans of orders and order_lines so far (from pg_stat_user_tables)."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT relname, seq_scan FROM pg_stat_user_tables "
            "WHERE relname IN ('orders', 'order_lines')"
        )
    finally:
        await conn.close()
    return {row["relname"]: int(row["seq_scan"]) for row in rows}


# -- contenders -----------------------------------------------------------------


@dataclass
class Contender:
    name: str
    stores: dict[str, list[int]]  # workload -> store ids
    run: Callable[[str], Result]  # workload -> one measured run
    runs: dict[str, list[Result]] = field(default_factory=dict)


def _http_contender(
    args: argparse.Namespace, target_of: Callable[[str], Target], pids: list[int]
) -> Callable[[str], Result]:
    def run(workload: str) -> Result:
        target = target_of(workload)
        return asyncio.run(drive(target, args.concurrency, args.seconds, args.warmup, pids))

    return run


def _baseline_target(urls: list[str], ids: list[int]) -> Target:
    requests = [Request({"storeId": sid, "sku": SKU, "quantity": 1}, {}) for sid in ids]
    return Target("baseline", urls, "/orders", requests)


def _floor_target(urls: list[str], ids: list[int]) -> Target:
    """The same mutation as ordergraph's, the store named by its number, no key."""
    lines = [{"sku": SKU, "quantity": 1}]
    inputs = [{"input": {"storeId": str(sid), "lines": lines}} for sid in ids]
    requests = [Request({"query": PLACE_ORDER, "variables": v}, {}) for v in inputs]
    return Target("floor", urls, "/graphql", requests, graphql_ok("placeOrder"))


def _floor_contender(
    args: argparse.Namespace, floors: list[Server], ids: dict[str, list[int]]
) -> list[Contender]:
    """The floor as a contender, or none if it was left out."""
    if not floors:
        return []
    urls = [s.url for s in floors]
    run = _http_contender(
        args, lambda w: _floor_target(urls, ids[w]), [s.process.pid for s in floors]
    )
    return [Contender("floor", ids, run)]


def _pgbench_contender(
    args: argparse.Namespace, binary: str | None, dsn: str, ids: dict[str, list[int]]
) -> list[Contender]:
    """pgbench as a contender, or none where it is not installed or was left out."""
    if binary is None:
        return []

    def run(workload: str) -> Result:
        return drive_pgbench(
            binary, dsn, ids[workload], SKU, args.concurrency, args.seconds, args.warmup
        )

    return [Contender(PGBENCH, ids, run)]


def _ordergraph_target(urls: list[str], stores: list[BenchStore]) -> Target:
    requests = [
        Request(
            {
                "query": PLACE_ORDER,
                "variables": {
                    "input": {"storeId": store.gid, "lines": [{"sku": SKU, "quantity": 1}]}
                },
            },
            {"Authorization": f"Bearer {store.token}"},
        )
        for store in stores
    ]
    return Target("ordergraph", urls, "/graphql", requests, graphql_ok("placeOrder"), True)


# -- report ---------------------------------------------------------------------


def lock_hold_line(results: list[Result]) -> str:
    holds = [r.lock_hold for r in results if r.lock_hold is not None]
    if not holds:
        return "n/a (server has no lock-hold metric)"
    mean = spread([h.mean_ms for h in holds]).text(2)
    median = spread([h.median_ms for h in holds]).text(2)
    line = f"mean {mean} ms, median about {median} ms (from the histogram's buckets)"
    shares = [h.per_change_ms for h in holds if h.per_change_ms is not None]
    sizes = [h.changes_per_unit for h in holds if h.changes_per_unit is not None]
    if shares and sizes:
        line = (
            f"per unit of work {line}; {spread(sizes).text(2)} orders per unit, so "
            f"{spread(shares).text(2)} ms of hold per order"
        )
    return line


def report(workload: str, width: int, contenders: list[Contender], args: argparse.Namespace) -> str:
    runs = {c.name: c.runs[workload] for c in contenders}
    stores = "one store" if width == 1 else f"{width} stores"
    lines = [
        f"== {workload}: {stores} per contender, {args.concurrency} connections, "
        f"{args.rounds} round(s) of {args.seconds:g} s; median [min-max] over the rounds ==",
        summary(runs),
        "",
    ]
    for numerator, other in (
        ("ordergraph", "baseline"),
        ("ordergraph", PGBENCH),
        ("ordergraph", "floor"),
        ("floor", "baseline"),
    ):
        ratio = ratio_line(runs, numerator, other)
        if ratio:
            lines.append(ratio)
    lines.append(f"store lock hold, ordergraph: {lock_hold_line(runs['ordergraph'])}")
    lines.append("store lock hold per order, the other contenders: n/a (not measured)")
    return "\n".join(lines)


# -- main -----------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured time per run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every contender")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent connections")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first")
    parser.add_argument(
        "--pool-size",
        type=int,
        default=None,
        help="database connections of each server process (both contenders; "
        "default: --concurrency, one per client connection, as pgbench has)",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="server processes per HTTP contender, on the one database",
    )
    parser.add_argument(
        "--workload",
        choices=("both", "hot", "spread"),
        default="both",
        help="hot: one store per contender; spread: --stores stores, connection i in store i",
    )
    parser.add_argument("--stores", type=int, default=16, help="stores of the spread workload")
    parser.add_argument(
        "--no-pgbench", action="store_true", help="leave pgbench out even where it is installed"
    )
    parser.add_argument(
        "--no-floor", action="store_true", help="leave out the stack's floor (bench/floor_app.py)"
    )
    add_pg_dsn(parser)
    args = parser.parse_args(argv)
    args.pool_size = args.pool_size or args.concurrency
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if (
        args.seconds <= 0
        or args.rounds < 1
        or args.concurrency < 1
        or args.warmup < 0
        or args.pool_size < 1
        or args.processes < 1
        or args.stores < 1
    ):
        print(
            "need --seconds > 0, --rounds >= 1, --concurrency >= 1, --warmup >= 0, "
            "--pool-size >= 1, "
            "--processes >= 1, --stores >= 1",
            file=sys.stderr,
        )
        return 2
    with scratch(args.pg_dsn, "place") as (dsn, logs):
        return run(args, dsn, logs)


def _check_contender(dsn: str, contender: Contender, seq_before: dict[int, int]) -> bool:
    """Print a contender's failed requests and check its stores' rows; whether anything failed."""
    failed = False
    for results in contender.runs.values():
        for result in results:
            if result.first_error:
                first = result.first_error
                print(f"{contender.name}: {result.errors} requests failed; first: {first}")
                failed = True
    total, wrong = 0, False
    store_ids = [sid for ids in contender.stores.values() for sid in ids]
    for store_id in store_ids:
        placed, problem = asyncio.run(check_writes(dsn, store_id, seq_before[store_id]))
        total += placed
        if problem:
            print(f"{contender.name}: the rows are not what placeOrder writes: {problem}")
            wrong = True
    if not wrong:
        print(
            f"{contender.name}: {total} orders (warm-up included) in {len(store_ids)} "
            "store(s) checked in the database: "
            "1 order, 1 line, PLACED + ALLOCATED events gapless, 1 unit allocated, "
            "counters each; the backlog's tally points add up"
        )
    return failed or wrong


def _start_servers(
    args: argparse.Namespace,
    command: Callable[[int], list[str]],
    env: dict[str, str],
    logs: Path,
    kind: str,
) -> list[Server]:
    servers = []
    for n in range(args.processes):
        port = free_port()
        servers.append(
            start(
                command(port),
                port=port,
                log=logs / f"{kind}-{n + 1}.log",
                env=env,
                name=f"{kind}-{n + 1}",
            )
        )
    return servers


def _workloads(args: argparse.Namespace) -> dict[str, int]:
    wanted = {"hot": 1, "spread": args.stores}
    return wanted if args.workload == "both" else {args.workload: wanted[args.workload]}


def _pgbench_or_note(args: argparse.Namespace) -> str | None:
    if args.no_pgbench:
        print("pgbench: left out (--no-pgbench)")
        return None
    binary = pgbench_binary()
    if binary is None:
        print("!" * 79)
        print("!! pgbench NOT FOUND: the pgbench contender is SKIPPED; install postgresql-client")
        print("!" * 79)
    return binary


def run(args: argparse.Namespace, dsn: str, logs: Path) -> int:
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
        for private in ("ORDERGRAPH_METRICS_TOKEN", "ORDERGRAPH_METRICS_PORT"):
            env.pop(private, None)  # /metrics on the API's port, open: the lock-hold histogram
        ordergraphs = _start_servers(args, serve_command, env, logs, "ordergraph")
        servers += ordergraphs
        setup_url = ordergraphs[0].url
        binary = _pgbench_or_note(args)
        workloads = _workloads(args)

        def stores_of(workload: str) -> list[BenchStore]:
            return [make_store(setup_url, admin_token) for _ in range(workloads[workload])]

        def ids_of(stores: list[BenchStore]) -> list[int]:
            return [asyncio.run(store_id_of(dsn, store.handle)) for store in stores]

        og_stores = {w: stores_of(w) for w in workloads}
        base_ids = {w: ids_of(stores_of(w)) for w in workloads}
        pg_ids = {w: ids_of(stores_of(w)) for w in workloads} if binary else {}
        floor_ids = {} if args.no_floor else {w: ids_of(stores_of(w)) for w in workloads}
        seed = ids_of([make_store(setup_url, admin_token)])[0]
        asyncio.run(prepare_database(dsn, seed))
        print(
            f"setup: stores and products made through the API, {SEED_ORDERS} orders placed "
            "in a store of their own, then ANALYZE of the whole database (statistics for "
            "every contender, before any measured order)"
        )

        def app_command(script: str) -> Callable[[int], list[str]]:
            def command(port: int) -> list[str]:
                return [sys.executable, str(HERE / script), "--dsn", dsn, "--port", str(port)]

            return command

        app_env = dict(os.environ)
        baselines = _start_servers(args, app_command("baseline_app.py"), app_env, logs, "baseline")
        servers += baselines
        floor_command = app_command("floor_app.py")
        floors = (
            [] if args.no_floor else _start_servers(args, floor_command, app_env, logs, "floor")
        )
        servers += floors
        og_ids = {w: ids_of(stores) for w, stores in og_stores.items()}
        base_urls = [s.url for s in baselines]
        og_urls = [s.url for s in ordergraphs]
        contenders = [
            Contender(
                "baseline",
                base_ids,
                _http_contender(
                    args,
                    lambda w: _baseline_target(base_urls, base_ids[w]),
                    [s.process.pid for s in baselines],
                ),
            ),
            Contender(
                "ordergraph",
                og_ids,
                _http_contender(
                    args,
                    lambda w: _ordergraph_target(og_urls, og_stores[w]),
                    [s.process.pid for s in ordergraphs],
                ),
            ),
        ]
        contenders += _floor_contender(args, floors, floor_ids)
        contenders += _pgbench_contender(args, binary, dsn, pg_ids)
        return _measure(args, dsn, contenders, workloads)
    except Exception:
        for server in servers:
            server.stop()
            print(f"--- {server.name} log ---\n{server.log.read_text()[-4000:]}", file=sys.stderr)
        raise
    finally:
        for server in servers:
            server.stop()


def _measure(
    args: argparse.Namespace, dsn: str, contenders: list[Contender], workloads: dict[str, int]
) -> int:
    seq_before = {
        sid: asyncio.run(last_seq(dsn, sid))
        for c in contenders
        for ids in c.stores.values()
        for sid in ids
    }
    names = [c.name for c in contenders]
    by_name = {c.name: c for c in contenders}
    print(
        f"placeOrder: {args.concurrency} concurrent connections, {args.seconds:g} s measured "
        f"after {args.warmup:g} s warm-up per run, {args.rounds} round(s), contenders "
        f"{', '.join(names)} (order rotated each round), {args.processes} server process(es) "
        f"per HTTP contender with {args.pool_size} database connections each, on {safe_dsn(dsn)}",
        flush=True,
    )
    scans_before = asyncio.run(seq_scans(dsn))
    for workload in workloads:
        for contender in contenders:
            contender.runs[workload] = []
        for round_index in range(args.rounds):
            for name in rotation(names, round_index):
                result = by_name[name].run(workload)
                by_name[name].runs[workload].append(result)
                print(
                    f"round {round_index + 1} {workload} {name}: {one_line(result, 'orders')}",
                    flush=True,
                )
    scans_after = asyncio.run(seq_scans(dsn))
    print()
    for workload, width in workloads.items():
        print(report(workload, width, contenders, args))
        print()
    print(
        "sequential scans during the runs: "
        + ", ".join(
            f"{t} {scans_after.get(t, 0) - scans_before.get(t, 0)}"
            for t in ("orders", "order_lines")
        )
    )
    print(
        "client CPU ms/req: this process's CPU (HTTP contenders) or pgbench's, per request; "
        "server CPU: the HTTP servers' processes from /proc, PostgreSQL not included; "
        "db CPU: all of PostgreSQL's processes meanwhile (this machine's), per order"
    )
    print()
    failed = False
    for contender in contenders:
        failed = _check_contender(dsn, contender, seq_before) or failed
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

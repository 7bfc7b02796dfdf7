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
import contextlib
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]
import httpx

HERE = Path(__file__).resolve().parent
SKU = "BENCH-1"
STOCK = 1_000_000_000

PLACE_ORDER = """
mutation($input: PlaceOrderInput!) {
  placeOrder(input: $input) { order { id number } userErrors { code message } }
}"""


# -- database ---------------------------------------------------------------


def with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, ""))


async def create_database(admin_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(admin_dsn, timeout=10)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def drop_database(admin_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(admin_dsn, timeout=10)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def store_id_of(dsn: str, handle: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        value = await conn.fetchval("SELECT id FROM stores WHERE handle = $1", handle)
    finally:
        await conn.close()
    return int(value)


async def last_seq(dsn: str, store_id: int) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        value = await conn.fetchval("SELECT last_event_seq FROM stores WHERE id = $1", store_id)
    finally:
        await conn.close()
    return int(value)


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


# -- processes --------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(name: str, command: list[str], env: dict[str, str], port: int, log: Path) -> Server:
    out = log.open("wb")
    process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    out.close()
    server = Server(name, f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited early:\n{log.read_text()}")
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"{name} did not start within 60 s:\n{log.read_text()}")


# -- setup through the API ------------------------------------------------------


def gql(
    url: str, query: str, variables: dict[str, Any], token: str, field_name: str
) -> dict[str, Any]:
    response = httpx.post(
        f"{url}/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    body = response.json()
    if body.get("errors"):
        raise RuntimeError(f"{field_name}: {body['errors']}")
    payload: dict[str, Any] = body["data"][field_name]
    if payload.get("userErrors"):
        raise RuntimeError(f"{field_name}: {payload['userErrors']}")
    return payload


@dataclass
class BenchStore:
    gid: str
    handle: str
    token: str


def make_store(url: str, admin_token: str) -> BenchStore:
    handle = "bench-" + uuid.uuid4().hex[:10]
    created = gql(
        url,
        """mutation($input: CreateStoreInput!) { createStore(input: $input) {
             store { id handle } token userErrors { code message } } }""",
        {
            "input": {
                "handle": handle,
                "name": "Benchmark store",
                "currencyCode": "USD",
                "timezone": "UTC",
                "defaultBackorderPolicy": "DENY",
            }
        },
        admin_token,
        "createStore",
    )
    store = BenchStore(created["store"]["id"], handle, created["token"])
    gql(
        url,
        """mutation($input: UpsertProductInput!) { upsertProduct(input: $input) {
             product { id } userErrors { code message } } }""",
        {"input": {"storeId": store.gid, "sku": SKU, "title": "Benchmark item", "price": "9.99"}},
        store.token,
        "upsertProduct",
    )
    gql(
        url,
        """mutation($input: ReceiveStockInput!) { receiveStock(input: $input) {
             product { onHand } userErrors { code message } } }""",
        {"input": {"storeId": store.gid, "sku": SKU, "quantity": STOCK}},
        store.token,
        "receiveStock",
    )
    return store


# -- load -----------------------------------------------------------------------


@dataclass
class Request:
    """One order in one store: the body and headers to send."""

    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class Target:
    """How to place one order on a contender, and how to tell that it was placed.

    Connection i goes to process `urls[i % len(urls)]` and orders in store
    `requests[i % len(requests)]`."""

    name: str
    urls: list[str]
    path: str
    requests: list[Request]
    graphql: bool

    def placed(self, response: httpx.Response) -> bool:
        if response.status_code != 200:
            return False
        if not self.graphql:
            return True
        body = response.json()
        if body.get("errors"):
            return False
        payload = body["data"]["placeOrder"]
        return payload["order"] is not None and not payload["userErrors"]


@dataclass
class Result:
    name: str
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None
    cpu_seconds: float | None = None  # used by the contender's server processes, when known

    @property
    def orders(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        return self.orders / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms_per_order(self) -> float:
        if self.cpu_seconds is None or not self.orders:
            return float("nan")
        return self.cpu_seconds * 1000 / self.orders

    def percentile_ms(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        index = min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))
        return ordered[index] * 1000


def cpu_seconds(pids: list[int]) -> float | None:
    """CPU time (user + system) the processes have used so far; None where /proc is missing."""
    total = 0
    try:
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    except (OSError, ValueError, IndexError):
        return None
    return total / os.sysconf("SC_CLK_TCK")


async def drive(
    target: Target, concurrency: int, seconds: float, warmup: float, pids: list[int] | None = None
) -> Result:
    result = Result(target.name)
    per_process = -(-concurrency // len(target.urls))
    limits = httpx.Limits(max_connections=per_process, max_keepalive_connections=per_process)
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=url, limits=limits, timeout=60)
            )
            for url in target.urls
        ]

        async def worker(index: int, until: float, record: bool) -> None:
            client = clients[index % len(clients)]
            request = target.requests[index % len(target.requests)]
            while time.perf_counter() < until:
                began = time.perf_counter()
                try:
                    response = await client.post(
                        target.path, json=request.body, headers=request.headers
                    )
                    ok = target.placed(response)
                    problem = None if ok else f"{response.status_code}: {response.text[:300]}"
                except httpx.HTTPError as err:
                    ok, problem = False, repr(err)
                if not record:
                    continue
                if ok:
                    result.latencies.append(time.perf_counter() - began)
                else:
                    result.errors += 1
                    result.first_error = result.first_error or problem

        if warmup > 0:
            until = time.perf_counter() + warmup
            await asyncio.gather(*(worker(i, until, False) for i in range(concurrency)))
        cpu_before = cpu_seconds(pids or [])
        began = time.perf_counter()
        until = began + seconds
        await asyncio.gather(*(worker(i, until, True) for i in range(concurrency)))
        result.seconds = time.perf_counter() - began
        cpu_after = cpu_seconds(pids or [])
        if pids and cpu_before is not None and cpu_after is not None:
            result.cpu_seconds = cpu_after - cpu_before
    return result


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
            command = [sys.executable, "-m", "ordergraph", "serve", "--port", str(port)]
            server = start(f"ordergraph-{n + 1}", command, env, port, logs / f"og-{n + 1}.log")
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
                f"baseline-{n + 1}", command, dict(os.environ), port, logs / f"base-{n + 1}.log"
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
            if result.first_error:
                print(
                    f"{result.name}: {result.errors} requests failed; first: {result.first_error}"
                )
                failed = True
            total, wrong = 0, False
            for store_id in store_ids:
                placed, problem = asyncio.run(check_writes(dsn, store_id, seq_before[store_id]))
                total += placed
                if problem:
                    print(f"{result.name}: the rows are not what placeOrder writes: {problem}")
                    wrong = True
            failed = failed or wrong
            if not wrong:
                print(
                    f"{result.name}: {total} orders (warm-up included) in {len(store_ids)} "
                    "store(s) checked in the database: "
                    "1 order, 1 line, PLACED + ALLOCATED events, 1 tally point, counters each"
                )
        return 1 if failed else 0
    except Exception:
        for server in servers:
            server.stop()
            print(f"--- {server.name} log ---\n{server.log.read_text()[-4000:]}", file=sys.stderr)
        raise
    finally:
        for server in servers:
            server.stop()


def safe_dsn(dsn: str) -> str:
    """The DSN without its password."""
    parts = urlsplit(dsn)
    netloc = parts.netloc.rpartition("@")
    user = netloc[0].partition(":")[0]
    host = f"{user}@{netloc[2]}" if netloc[1] else netloc[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


if __name__ == "__main__":
    raise SystemExit(main())

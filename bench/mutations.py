"""Benchmark: receiveStock filling many waiting lines, shipOrder and cancelOrder through
ordergraph, each against placeOrder measured the same way in the same run.

It creates a fresh PostgreSQL database and starts two `python -m ordergraph serve`
processes on it (per-key rate limits lifted, as in the other benches): one reaches the
database through bench/pg_wire.py's counting proxy, run in this process, so the round
trips of each call are counted; the other connects directly, for the concurrent runs.
In each of --rounds rounds:

- sequential (the proxied server, one connection, one store): --calls each of
  placeOrder (1-3 lines of 1-3 units, fixed seed), shipOrder (a whole order) and
  cancelOrder (a whole order), the three in an order rotated each round; the orders to
  ship and cancel are placed first, unmeasured;
- receiveStock: a fresh store whose product has --waiting backordered one-unit orders
  (placed through the API under the ALLOW policy), ANALYZE, then one receiveStock of
  --waiting units through the proxied server: its wall time, the server's CPU and the
  round trips;
- concurrent (the direct server, --concurrency connections, connection i in store i):
  --concurrent-calls per connection of each of the three, rotated likewise.

It prints every run, then median [min-max] over the rounds: calls/s, latency, server CPU
per call and per touched line (from /proc), round trips per call and per line, and the
ratio of each mutation's cost per touched line to placeOrder's per line and to
placeOrder's budget (4 ms of CPU, 4 round trips); it checks that every call did what it
should (orders SHIPPED or CANCELLED, every waiting line filled, the product's counts),
and drops the database.

    python bench/mutations.py --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.api import BenchStore, add_product, create_store
from bench.harness import Server, free_port, serve_command, start
from bench.light_client import Connection, HttpError, client_cpu_seconds, encode_head
from bench.pg import add_pg_dsn, safe_dsn, scratch
from bench.pg_wire import Wire, proxy
from bench.place_orders_load import UNTHROTTLED
from bench.proc import cpu_seconds
from bench.rounds import rotation, spread

SKUS = ("BENCH-1", "BENCH-2", "BENCH-3")
WAITING_SKU = "WAIT-1"
STOCK = 1_000_000_000
SEED = 11
# placeOrder's budget (issue 11): the others must stay within 2x of it per touched line.
BUDGET_CPU_MS = 4.0
BUDGET_TRIPS = 4.0
OPERATIONS = ("placeOrder", "shipOrder", "cancelOrder")

PLACE = """mutation($input: PlaceOrderInput!) { placeOrder(input: $input) {
  order { id status } userErrors { code message } } }"""
SHIP = """mutation($input: ShipOrderInput!) { shipOrder(input: $input) {
  order { id status } userErrors { code message } } }"""
CANCEL = """mutation($input: CancelOrderInput!) { cancelOrder(input: $input) {
  order { id status } userErrors { code message } } }"""
RECEIVE = """mutation($input: ReceiveStockInput!) { receiveStock(input: $input) {
  product { onHand allocated backordered } filledLines { id } userErrors { code message } } }"""
PRODUCT = """query($h: String!, $sku: String!) { store(handle: $h) {
  product(sku: $sku) { onHand allocated backordered } } }"""
WANTED_STATUS = {"placeOrder": "OPEN", "shipOrder": "SHIPPED", "cancelOrder": "CANCELLED"}


# -- the counting proxy, in a thread of its own ------------------------------------------


@contextlib.contextmanager
def counting_proxy(host: str, port: int) -> Iterator[Wire]:
    """bench/pg_wire.py's proxy in front of host:port, served by its own event loop in a
    thread, so the rest of the bench may block (starting a server, a sync request)."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    found: dict[str, Any] = {}

    async def serve() -> None:
        stop = asyncio.Event()
        async with proxy(host, port) as wire:
            found["wire"], found["stop"] = wire, stop
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    try:
        if not ready.wait(10):
            raise RuntimeError("the counting proxy did not start")
        yield found["wire"]
    finally:
        if "stop" in found:
            loop.call_soon_threadsafe(found["stop"].set)
        thread.join(10)
        if not thread.is_alive():
            loop.close()


# -- calls and runs -----------------------------------------------------------------------


@dataclass
class Call:
    body: bytes
    lines: int  # order lines the call touches


@dataclass
class Lane:
    """One connection's calls, in one store (its token)."""

    token: str
    calls: list[Call]


@dataclass
class Run:
    name: str
    seconds: float = 0.0
    lines: int = 0
    latencies: list[float] = field(default_factory=list)
    trips: list[int] = field(default_factory=list)  # per call, when counted
    cpu_seconds: float | None = None
    client_cpu_seconds: float = 0.0
    errors: int = 0
    first_error: str | None = None
    # Per lane: (payload, lines) of each successful call, in order.
    done: list[list[tuple[dict[str, Any], int]]] = field(default_factory=list)

    @property
    def calls(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        return self.calls / self.seconds if self.seconds else 0.0

    def cpu_ms(self, per_line: bool = False) -> float:
        count = self.lines if per_line else self.calls
        if self.cpu_seconds is None or not count:
            return float("nan")
        return self.cpu_seconds * 1000 / count

    def trips_per(self, per_line: bool = False) -> float:
        count = self.lines if per_line else len(self.trips)
        return sum(self.trips) / count if self.trips and count else float("nan")

    def percentile_ms(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))] * 1000


def request_body(query: str, variables: dict[str, Any]) -> bytes:
    return json.dumps({"query": query, "variables": variables}).encode()


def payload_of(name: str, status: int, body: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """The mutation's payload, or what is wrong with the answer."""
    if status != 200:
        return None, f"{status}: {body[:300]!r}"
    answer = json.loads(body)
    if answer.get("errors") or not answer.get("data"):
        return None, f"errors: {body[:300]!r}"
    payload: dict[str, Any] = answer["data"][name]
    if payload.get("userErrors"):
        return None, f"userErrors: {body[:300]!r}"
    order = payload.get("order")
    if name in WANTED_STATUS and (order is None or order["status"] != WANTED_STATUS[name]):
        return None, f"not {WANTED_STATUS[name]}: {body[:300]!r}"
    return payload, None


async def _lane(run: Run, index: int, url: str, lane: Lane, wire: Wire | None) -> None:
    connection = Connection(url)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {lane.token}"}
    head = encode_head("POST", "/graphql", connection.authority, headers)
    try:
        for call in lane.calls:
            if wire is not None:
                wire.reset()
            began = time.perf_counter()
            try:
                payload, problem = payload_of(run.name, *await connection.request(head, call.body))
            except HttpError as err:
                payload, problem = None, str(err)
            elapsed = time.perf_counter() - began
            if wire is not None:
                run.trips.append(wire.round_trips)
            if payload is None:
                run.errors += 1
                run.first_error = run.first_error or problem
                continue
            run.latencies.append(elapsed)
            run.lines += call.lines
            run.done[index].append((payload, call.lines))
    finally:
        await connection.close()


async def drive(
    name: str, url: str, lanes: list[Lane], pids: list[int], wire: Wire | None = None
) -> Run:
    """Every lane's calls, lanes at once, each over its own keep-alive connection; with
    `wire` (one lane only), the round trips of each call."""
    assert wire is None or len(lanes) == 1
    run = Run(name, done=[[] for _ in lanes])
    cpu_before = cpu_seconds(pids)
    client_before = client_cpu_seconds()
    began = time.perf_counter()
    await asyncio.gather(*(_lane(run, i, url, lane, wire) for i, lane in enumerate(lanes)))
    run.seconds = time.perf_counter() - began
    run.client_cpu_seconds = client_cpu_seconds() - client_before
    cpu_after = cpu_seconds(pids)
    if cpu_before is not None and cpu_after is not None:
        run.cpu_seconds = cpu_after - cpu_before
    return run


# -- the workload ---------------------------------------------------------------------------


def new_store(url: str, admin_token: str, waiting: bool = False) -> BenchStore:
    """A store with SKUS in ample stock, or (waiting) one with WAITING_SKU out of stock
    and backorders allowed."""
    store = create_store(url, admin_token, "ALLOW" if waiting else "DENY")
    for sku in (WAITING_SKU,) if waiting else SKUS:
        add_product(url, store, sku, f"Item {sku}", "4.25", 0 if waiting else STOCK)
    return store


def place_calls(store: BenchStore, count: int, rng: random.Random) -> list[Call]:
    """Orders of 1-3 lines of 1-3 units each."""
    calls = []
    for _ in range(count):
        skus = rng.sample(SKUS, rng.randint(1, len(SKUS)))
        lines = [{"sku": sku, "quantity": rng.randint(1, 3)} for sku in skus]
        variables = {"input": {"storeId": store.gid, "lines": lines}}
        calls.append(Call(request_body(PLACE, variables), len(lines)))
    return calls


def waiting_calls(store: BenchStore, count: int) -> list[Call]:
    variables = {"input": {"storeId": store.gid, "lines": [{"sku": WAITING_SKU, "quantity": 1}]}}
    return [Call(request_body(PLACE, variables), 1) for _ in range(count)]


def close_calls(name: str, placed: list[tuple[dict[str, Any], int]]) -> list[Call]:
    """shipOrder or cancelOrder of each placed order, whole."""
    query = SHIP if name == "shipOrder" else CANCEL
    calls = []
    for payload, lines in placed:
        variables: dict[str, Any] = {"orderId": payload["order"]["id"]}
        if name == "cancelOrder":
            variables["reason"] = "CUSTOMER_REQUEST"
        calls.append(Call(request_body(query, {"input": variables}), lines))
    return calls


@dataclass
class Bench:
    args: argparse.Namespace
    admin_token: str
    dsn: str
    proxied: Server
    direct: Server
    wire: Wire
    seq_store: BenchStore
    stores: list[BenchStore]
    rng: random.Random = field(default_factory=lambda: random.Random(SEED))
    runs: dict[str, dict[str, list[Run]]] = field(
        default_factory=lambda: {"sequential": {}, "concurrent": {}}
    )
    receives: list[Receive] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # orders by wanted status
    problems: list[str] = field(default_factory=list)

    def note(self, run: Run, label: str) -> Run:
        if run.errors:
            self.problems.append(f"{label} {run.name}: {run.errors} failed; {run.first_error}")
        status = WANTED_STATUS[run.name]
        self.counts[status] = self.counts.get(status, 0) + run.calls
        if run.name != "placeOrder":
            self.counts["OPEN"] = self.counts.get("OPEN", 0) - run.calls
        return run


def _print_run(label: str, run: Run) -> None:
    trips = f", round trips/call {run.trips_per():.2f}" if run.trips else ""
    print(
        f"{label} {run.name}: {run.calls} calls ({run.lines} lines), {run.errors} errors, "
        f"{run.rate:.1f} calls/s, p50 {run.percentile_ms(0.5):.1f} ms, "
        f"p99 {run.percentile_ms(0.99):.1f} ms, server CPU {run.cpu_ms():.2f} ms/call "
        f"{run.cpu_ms(True):.2f} ms/line{trips}, "
        f"client CPU {run.client_cpu_seconds * 1000 / max(1, run.calls):.2f} ms/call",
        flush=True,
    )


def mode_round(bench: Bench, mode: str, round_index: int) -> None:
    """placeOrder, shipOrder, cancelOrder, in the round's order, sequential or concurrent."""
    sequential = mode == "sequential"
    stores = [bench.seq_store] if sequential else bench.stores
    count = bench.args.calls if sequential else bench.args.concurrent_calls
    server = bench.proxied if sequential else bench.direct
    # The orders to ship and cancel, placed first (unmeasured, from the direct server).
    setup = [Lane(s.token, place_calls(s, 2 * count, bench.rng)) for s in stores]
    placed = bench.note(asyncio.run(drive("placeOrder", bench.direct.url, setup, [])), "setup")
    lanes = {
        "placeOrder": [Lane(s.token, place_calls(s, count, bench.rng)) for s in stores],
        "shipOrder": [
            Lane(s.token, close_calls("shipOrder", placed.done[i][:count]))
            for i, s in enumerate(stores)
        ],
        "cancelOrder": [
            Lane(s.token, close_calls("cancelOrder", placed.done[i][count:]))
            for i, s in enumerate(stores)
        ],
    }
    wire = bench.wire if sequential else None
    for name in rotation(list(OPERATIONS), round_index):
        run = asyncio.run(drive(name, server.url, lanes[name], [server.process.pid], wire))
        bench.runs[mode].setdefault(name, []).append(bench.note(run, mode))
        _print_run(f"round {round_index + 1} {mode}", run)


# -- receiveStock filling the waiting lines ----------------------------------------------------


@dataclass
class Receive:
    lines: int
    wall_ms: float
    cpu_ms: float
    trips: int


async def _product(url: str, store: BenchStore) -> dict[str, int]:
    connection = Connection(url)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {store.token}"}
    body = request_body(PRODUCT, {"h": store.handle, "sku": WAITING_SKU})
    try:
        _, answer = await connection.request(
            encode_head("POST", "/graphql", connection.authority, headers), body
        )
    finally:
        await connection.close()
    product: dict[str, int] = json.loads(answer)["data"]["store"]["product"]
    return product


def _filled_problem(waiting: int, before: dict[str, int], product: dict[str, int]) -> str | None:
    wanted = {
        "onHand": before["onHand"] + waiting,
        "allocated": before["allocated"] + waiting,
        "backordered": before["backordered"] - waiting,
    }
    if before["backordered"] != waiting or product != wanted or product["backordered"] != 0:
        return f"before {before}, after {product}, wanted {wanted}"
    return None


async def receive_once(bench: Bench, store: BenchStore, waiting: int) -> Receive:
    """One receiveStock of `waiting` units into a product with `waiting` lines waiting."""
    url, pid = bench.proxied.url, bench.proxied.process.pid
    before = await _product(url, store)  # also caches the store's token in the server
    connection = Connection(url, timeout=300)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {store.token}"}
    head = encode_head("POST", "/graphql", connection.authority, headers)
    body = request_body(
        RECEIVE, {"input": {"storeId": store.gid, "sku": WAITING_SKU, "quantity": waiting}}
    )
    try:
        bench.wire.reset()
        cpu_before = cpu_seconds([pid])
        began = time.perf_counter()
        status, answer = await connection.request(head, body)
        wall = time.perf_counter() - began
        cpu_after = cpu_seconds([pid])
        trips = bench.wire.round_trips
    finally:
        await connection.close()
    payload, problem = payload_of("receiveStock", status, answer)
    if payload is not None and len(payload["filledLines"]) != waiting:
        problem = f"{len(payload['filledLines'])} lines filled of {waiting}"
    problem = problem or _filled_problem(waiting, before, await _product(url, store))
    if problem:
        bench.problems.append(f"receiveStock: {problem}")
    if cpu_before is None or cpu_after is None:
        raise RuntimeError("no /proc: the server's CPU cannot be read")
    return Receive(waiting, wall * 1000, (cpu_after - cpu_before) * 1000, trips)


def receive_round(bench: Bench, round_index: int) -> None:
    waiting = bench.args.waiting
    store = new_store(bench.direct.url, bench.admin_token, waiting=True)
    lanes = [Lane(store.token, []) for _ in range(bench.args.concurrency)]
    for index, call in enumerate(waiting_calls(store, waiting)):
        lanes[index % len(lanes)].calls.append(call)
    placed = asyncio.run(drive("placeOrder", bench.direct.url, lanes, []))
    if placed.errors or placed.calls != waiting:
        bench.problems.append(f"waiting orders: {placed.calls} placed; {placed.first_error}")
    asyncio.run(analyze(bench.dsn))
    result = asyncio.run(receive_once(bench, store, waiting))
    bench.receives.append(result)
    print(
        f"round {round_index + 1} receiveStock filling {waiting} lines: "
        f"{result.wall_ms:.0f} ms wall, server CPU {result.cpu_ms:.0f} ms, "
        f"{result.trips} round trips",
        flush=True,
    )


async def analyze(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def order_statuses(dsn: str, handles: list[str]) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT o.status, count(*) AS n FROM orders o JOIN stores s ON s.id = o.store_id "
            "WHERE s.handle = ANY($1::text[]) GROUP BY o.status",
            handles,
        )
    finally:
        await conn.close()
    return {row["status"]: int(row["n"]) for row in rows}


# -- the report ---------------------------------------------------------------------------


def _cell(values: list[float], digits: int) -> str:
    return spread(values).text(digits)


def _table(head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(head[i]), *(len(r[i]) for r in rows)) for i in range(len(head))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))]
    lines.append("-" * len(lines[0]))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


Column = tuple[str, Callable[[Run], float], int]
COLUMNS: list[Column] = [
    ("calls/s", lambda r: r.rate, 1),
    ("p50 ms", lambda r: r.percentile_ms(0.5), 1),
    ("p99 ms", lambda r: r.percentile_ms(0.99), 1),
    ("CPU ms/call", lambda r: r.cpu_ms(), 2),
    ("CPU ms/line", lambda r: r.cpu_ms(True), 2),
    ("trips/call", lambda r: r.trips_per(), 2),
    ("trips/line", lambda r: r.trips_per(True), 2),
    ("lines/call", lambda r: r.lines / r.calls if r.calls else float("nan"), 2),
    ("client CPU ms/call", lambda r: r.client_cpu_seconds * 1000 / max(1, r.calls), 2),
]


def _ratio(above: float, below: float) -> float:
    return above / below if below else float("nan")


def _median(runs: list[Run], read: Callable[[Run], float]) -> float:
    return spread([read(r) for r in runs]).mid


def mode_report(mode: str, runs: dict[str, list[Run]]) -> str:
    columns = [c for c in COLUMNS if mode == "sequential" or not c[0].startswith("trips")]
    rows = [
        [name, *(_cell([read(r) for r in runs[name]], digits) for _, read, digits in columns)]
        for name in OPERATIONS
    ]
    out = [_table(["", *(c[0] for c in columns)], rows)]
    place = runs["placeOrder"]
    for name in OPERATIONS[1:]:
        out.append(per_line_ratios(name, runs[name], place, mode == "sequential"))
    return "\n".join(out)


def per_line_ratios(name: str, runs: list[Run], place: list[Run], trips: bool) -> str:
    cpu = _median(runs, lambda r: r.cpu_ms(True))
    text = (
        f"{name} per touched line vs placeOrder's per line: CPU "
        f"{_ratio(cpu, _median(place, lambda r: r.cpu_ms(True))):.2f}x"
    )
    budget = (
        f"vs placeOrder's budget per line ({BUDGET_CPU_MS:g} ms): CPU {cpu / BUDGET_CPU_MS:.2f}x"
    )
    if trips:
        line_trips = _median(runs, lambda r: r.trips_per(True))
        place_trips = _median(place, lambda r: r.trips_per(True))
        text += f", round trips {_ratio(line_trips, place_trips):.2f}x"
        budget += f", round trips {line_trips / BUDGET_TRIPS:.2f}x (of {BUDGET_TRIPS:g})"
    return f"{text}; {budget} (goal <= 2x)"


def receive_report(bench: Bench) -> str:
    results = bench.receives
    waiting = bench.args.waiting
    place = bench.runs["sequential"]["placeOrder"]
    rows = [
        ["wall ms", _cell([r.wall_ms for r in results], 0)],
        ["server CPU ms", _cell([r.cpu_ms for r in results], 0)],
        ["round trips", _cell([float(r.trips) for r in results], 0)],
        ["server CPU ms/line", _cell([r.cpu_ms / r.lines for r in results], 3)],
        ["round trips/line", _cell([r.trips / r.lines for r in results], 3)],
    ]
    cpu = spread([r.cpu_ms / r.lines for r in results]).mid
    trips = spread([r.trips / r.lines for r in results]).mid
    place_cpu = _median(place, lambda r: r.cpu_ms(True))
    place_trips = _median(place, lambda r: r.trips_per(True))
    return "\n".join(
        [
            _table([f"receiveStock filling {waiting} lines", "median [min-max]"], rows),
            f"receiveStock per filled line vs placeOrder's per line (sequential): CPU "
            f"{_ratio(cpu, place_cpu):.3f}x, round trips {_ratio(trips, place_trips):.3f}x; "
            f"vs placeOrder's budget per line: CPU {cpu / BUDGET_CPU_MS:.3f}x, round trips "
            f"{trips / BUDGET_TRIPS:.3f}x (goal <= 2x)",
        ]
    )


def report(bench: Bench) -> None:
    args = bench.args
    print()
    print(
        f"== sequential: one connection, one store, {args.calls} calls each, through the proxy =="
    )
    print(mode_report("sequential", bench.runs["sequential"]))
    print()
    print(
        f"== concurrent: {args.concurrency} connections over {args.concurrency} stores, "
        f"{args.concurrent_calls} calls per connection each, direct ==",
    )
    print(mode_report("concurrent", bench.runs["concurrent"]))
    print()
    print(f"== receiveStock: {args.rounds} round(s), a fresh store each ==")
    print(receive_report(bench))
    print()
    print(
        "median [min-max] over the rounds. server CPU: user + system of the serving process "
        "from /proc over the calls (PostgreSQL not included); round trips: Query and Sync "
        "messages on the server's database connections, counted by bench/pg_wire.py's proxy "
        "(a background task of the server, about once a second, may add a few); client CPU: "
        "this process's, the proxy's thread included; lines: order lines the calls touched "
        "(placed, shipped, cancelled, filled)"
    )


def check(bench: Bench) -> bool:
    handles = [bench.seq_store.handle, *(s.handle for s in bench.stores)]
    found = asyncio.run(order_statuses(bench.dsn, handles))
    wanted = {status: n for status, n in bench.counts.items() if n}
    if found != wanted:
        bench.problems.append(f"orders by status: wanted {wanted}, found {found}")
    for problem in bench.problems:
        print(f"check failed: {problem}")
    if not bench.problems:
        waiting = bench.args.waiting
        print(
            f"checks: ok (every call answered as wanted; orders by status {found}; each "
            f"receiveStock filled all {waiting} waiting lines: backordered 0, allocated "
            f"+{waiting})"
        )
    return not bench.problems


# -- main ---------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds, interleaved")
    parser.add_argument("--calls", type=int, default=200, help="sequential calls of each")
    parser.add_argument(
        "--concurrent-calls", type=int, default=25, help="calls of each per connection"
    )
    parser.add_argument("--concurrency", type=int, default=16, help="connections and stores")
    parser.add_argument("--waiting", type=int, default=1000, help="lines receiveStock fills")
    add_pg_dsn(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if min(args.rounds, args.calls, args.concurrent_calls, args.concurrency, args.waiting) < 1:
        print("every count must be >= 1", file=sys.stderr)
        return 2
    with scratch(args.pg_dsn, "mutations") as (dsn, logs):
        return run(args, dsn, logs)


def _server_env(dsn: str, admin_token: str, pool_size: int) -> dict[str, str]:
    return {
        **os.environ,
        "ORDERGRAPH_DATABASE_URL": dsn.replace("postgresql://", "postgresql+asyncpg://", 1),
        "ORDERGRAPH_ADMIN_TOKEN": admin_token,
        "ORDERGRAPH_LOG_LEVEL": "WARNING",
        **UNTHROTTLED,
        "ORDERGRAPH_DB_POOL_SIZE": str(pool_size),
    }


def _start(logs: Path, name: str, env: dict[str, str]) -> Server:
    port = free_port()
    return start(serve_command(port), port=port, log=logs / f"{name}.log", env=env, name=name)


def run(args: argparse.Namespace, dsn: str, logs: Path) -> int:
    admin_token = "og_admin_bench_" + secrets.token_urlsafe(16)
    parts = urlsplit(dsn)
    servers: list[Server] = []
    with counting_proxy(parts.hostname or "127.0.0.1", parts.port or 5432) as wire:
        try:
            user, at, _ = parts.netloc.rpartition("@")
            proxied_dsn = dsn.replace(parts.netloc, f"{user}{at}127.0.0.1:{wire.port}", 1)
            servers.append(_start(logs, "proxied", _server_env(proxied_dsn, admin_token, 4)))
            servers.append(_start(logs, "direct", _server_env(dsn, admin_token, args.concurrency)))
            bench = Bench(
                args,
                admin_token,
                dsn,
                servers[0],
                servers[1],
                wire,
                new_store(servers[1].url, admin_token),
                [new_store(servers[1].url, admin_token) for _ in range(args.concurrency)],
            )
            return measure(bench)
        except Exception:
            for server in servers:
                server.stop()
                print(
                    f"--- {server.name} log ---\n{server.log.read_text()[-4000:]}", file=sys.stderr
                )
            raise
        finally:
            for server in servers:
                server.stop()


def warm_up(bench: Bench) -> None:
    """A few calls of each kind on the proxied server, so its pooled connections have
    their statements prepared; then ANALYZE."""
    store = bench.seq_store
    placed = asyncio.run(
        drive(
            "placeOrder",
            bench.proxied.url,
            [Lane(store.token, place_calls(store, 12, bench.rng))],
            [],
        )
    )
    bench.note(placed, "warm-up")
    for name, done in (("shipOrder", placed.done[0][:6]), ("cancelOrder", placed.done[0][6:])):
        lane = Lane(store.token, close_calls(name, done))
        bench.note(asyncio.run(drive(name, bench.proxied.url, [lane], [])), "warm-up")
    waiting = new_store(bench.direct.url, bench.admin_token, waiting=True)
    asyncio.run(
        drive("placeOrder", bench.direct.url, [Lane(waiting.token, waiting_calls(waiting, 5))], [])
    )
    asyncio.run(receive_once(bench, waiting, 5))
    asyncio.run(analyze(bench.dsn))


def measure(bench: Bench) -> int:
    args = bench.args
    print(
        f"mutations: PostgreSQL {safe_dsn(bench.dsn)}; two ordergraph serve processes, one "
        f"through a round-trip-counting proxy (sequential runs, receiveStock), one direct "
        f"(concurrent runs); per-key rate limits lifted; {args.rounds} round(s), the "
        "operations' order rotated each round; ANALYZE after the warm-up and before each "
        "receiveStock",
        flush=True,
    )
    warm_up(bench)
    for round_index in range(args.rounds):
        mode_round(bench, "sequential", round_index)
        receive_round(bench, round_index)
        mode_round(bench, "concurrent", round_index)
    report(bench)
    print()
    return 0 if check(bench) else 1


if __name__ == "__main__":
    raise SystemExit(main())

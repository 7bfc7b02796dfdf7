"""Benchmark: one server fanning the order events of one store out to many websocket subscribers.

It creates a fresh PostgreSQL database, starts one `python -m ordergraph serve` process on
it, creates a store through the API, and opens N graphql-transport-ws subscriptions to
`orderEvents(storeId)` from K client processes (N/K sockets each). Every subscription
starts at the same log position (`after`), so each subscriber must receive every later
order event exactly once, in order. Then it places orders at a steady rate for a fixed
time, waits for delivery to finish, and prints: events expected (subscribers x order
events committed) against events delivered, checked per subscriber by cursor; delivery
latency (client receive time minus the event's `occurredAt`, same machine, same clock)
p50 / p99 / max; and server memory per subscriber (VmRSS of the server process with all
subscribed minus before subscribing, over N). It drops the database at the end and
exits non-zero when an event was missed, duplicated or reordered, or an order or a read
failed. Beside each order it sends a read (the store's backlog and its last 20 orders, at
the same rate), and prints both requests' p50 / p99: what the fan-out costs the other
users of the process.
After the server stopped, it measures the floor (bench/fanout_floor.py): a bare uvloop
process writing one ready frame of the same size to as many sockets at the same rate,
and prints the server's CPU per delivery as a multiple of that floor. The client
processes run at nice 10 (`--client-nice`): on a machine they share with the server they
take the CPU it leaves, as clients on other machines would.

Run from the repository root, in the project's environment:

    python bench/fanout.py                           # 2,000 subscribers, 5 orders/s, 30 s
    python bench/fanout.py --subscribers 5000
    python bench/fanout.py --smoke                   # 50 subscribers, 3 s
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing
import os
import secrets
import sys
import tempfile
import time
import uuid
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.api import PLACE_ORDER, SKU, BenchStore, make_store
from bench.fanout_clients import (
    GOAL_P99_SECONDS,
    Client,
    Job,
    ask_all,
    client_process,
    cursor_of,
    percentile,
)
from bench.fanout_floor import measure as measure_floor
from bench.harness import Server, free_port, serve_command, start
from bench.pg import (
    add_server_options,
    create_database,
    drop_database,
    safe_dsn,
    store_id_of,
    with_database,
)
from bench.proc import machine_busy, process_cpu_seconds, raise_fd_limit, vm_kib

GOAL_SUBSCRIBERS = 5000
GOAL_REQUEST_P99_SECONDS = 0.25
FLOOR_FRAME_BYTES = 250  # about the size of this bench's `next` frames


# -- the order stream ---------------------------------------------------------------


@dataclass
class Placed:
    latencies: list[float] = field(default_factory=list)
    failed: int = 0
    first_error: str | None = None


READ_PAGE = """query Page($h: String!) {
  store(handle: $h) { backlog { backlog { orders units } }
    orders(first: 20) { nodes { number status lines { quantity } } } } }"""


async def place_orders(url: str, token: str, store_gid: str, rate: float, seconds: float) -> Placed:
    """Place one-line orders on a fixed schedule (open loop: a slow answer delays no other)."""
    placed, _ = await orders_and_reads(url, token, store_gid, None, rate, seconds)
    return placed


async def orders_and_reads(
    url: str, token: str, store_gid: str, handle: str | None, rate: float, seconds: float
) -> tuple[Placed, Placed]:
    """Orders, and (given the store's handle) a read of the backlog and the last 20 orders
    at the same rate, each on a fixed schedule: what a merchant's screen asks meanwhile."""
    placed, read = Placed(), Placed()
    order_body = {
        "query": PLACE_ORDER,
        "variables": {"input": {"storeId": store_gid, "lines": [{"sku": SKU, "quantity": 1}]}},
    }
    read_body = {"query": READ_PAGE, "variables": {"h": handle}}
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=300
    ) as http:

        async def one(body: dict[str, Any], into: Placed, field: str) -> None:
            began = time.perf_counter()
            try:
                response = await http.post("/graphql", json=body)
                payload = response.json()
                data = payload["data"][field]
                ok = (
                    not payload.get("errors")
                    and data is not None
                    and (field != "placeOrder" or (data["order"] and not data["userErrors"]))
                )
                problem = None if ok else response.text[:300]
            except (httpx.HTTPError, ValueError, KeyError, TypeError) as err:
                ok, problem = False, repr(err)
            if ok:
                into.latencies.append(time.perf_counter() - began)
            else:
                into.failed += 1
                into.first_error = into.first_error or problem

        count = max(1, round(rate * seconds))
        began = time.perf_counter()
        tasks = []
        for i in range(count):
            delay = began + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(order_body, placed, "placeOrder")))
            if handle is not None:
                tasks.append(asyncio.create_task(one(read_body, read, "store")))
        await asyncio.gather(*tasks)
    return placed, read


async def order_event_seqs(dsn: str, store_id: int, after: int) -> list[int]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT seq FROM events WHERE store_id = $1 AND stream = 'order' AND seq > $2 "
            "ORDER BY seq",
            store_id,
            after,
        )
    finally:
        await conn.close()
    return [int(row["seq"]) for row in rows]


async def last_event_seq(dsn: str, store_id: int) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        value = await conn.fetchval(
            "SELECT coalesce(max(seq), 0) FROM events WHERE store_id = $1", store_id
        )
    finally:
        await conn.close()
    return int(value)


# -- report ---------------------------------------------------------------------------


@dataclass
class Figures:
    subscribers: int
    clients: int
    connected: int
    orders: int
    orders_failed: int
    events: int
    expected: int
    delivered: int
    missing: int
    duplicate: int
    unexpected: int
    out_of_order: int
    complete: int
    closes: dict[str, int]
    latency: list[float]
    order_latency: list[float]
    read_latency: list[float]
    reads_failed: int
    rss_before_kib: int
    rss_subscribed_kib: int
    rss_peak_kib: int
    server_cpu: float
    client_cpu: float
    machine_busy: float
    drain_seconds: float
    load_seconds: float
    load_deliveries: int

    @property
    def cpu_per_delivery_us(self) -> float:
        used = self.server_cpu * self.load_seconds
        return used / self.load_deliveries * 1e6 if self.load_deliveries else float("nan")

    @property
    def correct(self) -> bool:
        return (
            self.delivered == self.expected
            and self.missing == self.duplicate == self.unexpected == self.out_of_order == 0
            and self.complete == self.subscribers
        )

    def table(self) -> str:
        ms = [x * 1000 for x in self.latency]
        om = sorted(x * 1000 for x in self.order_latency)
        rm = sorted(x * 1000 for x in self.read_latency)
        per_sub = (self.rss_subscribed_kib - self.rss_before_kib) / max(1, self.subscribers)
        closes = ", ".join(f"{n} x {code}" for code, n in sorted(self.closes.items())) or "none"
        rows = [
            ("subscribers connected", f"{self.connected} / {self.subscribers}"),
            ("client processes", f"{self.clients}"),
            ("orders placed (failed)", f"{self.orders} ({self.orders_failed})"),
            ("order events committed", f"{self.events}"),
            ("events expected", f"{self.expected}"),
            ("events delivered", f"{self.delivered}"),
            ("missing", f"{self.missing}"),
            ("duplicate", f"{self.duplicate}"),
            ("unexpected", f"{self.unexpected}"),
            ("subscribers out of order", f"{self.out_of_order}"),
            ("subscribers complete", f"{self.complete} / {self.subscribers}"),
            ("connections closed by server", closes),
            ("latency p50 ms", f"{percentile(ms, 0.50):.1f}"),
            ("latency p99 ms", f"{percentile(ms, 0.99):.1f}"),
            ("latency max ms", f"{(ms[-1] if ms else float('nan')):.1f}"),
            ("drain after last order s", f"{self.drain_seconds:.2f}"),
            ("placeOrder p50 / p99 ms", f"{percentile(om, 0.5):.1f} / {percentile(om, 0.99):.1f}"),
            ("read query p50 / p99 ms", f"{percentile(rm, 0.5):.1f} / {percentile(rm, 0.99):.1f}"),
            ("read queries failed", f"{self.reads_failed}"),
            ("server RSS before MiB", f"{self.rss_before_kib / 1024:.1f}"),
            ("server RSS subscribed MiB", f"{self.rss_subscribed_kib / 1024:.1f}"),
            ("server RSS peak MiB", f"{self.rss_peak_kib / 1024:.1f}"),
            ("server memory per subscriber KiB", f"{per_sub:.1f}"),
            ("server CPU during load %", f"{self.server_cpu * 100:.0f}"),
            ("server CPU per delivered event us", f"{self.cpu_per_delivery_us:.0f}"),
            ("client CPU during load %", f"{self.client_cpu * 100:.0f}"),
            ("machine CPU busy during load %", f"{self.machine_busy * 100:.0f} of 200"),
        ]
        width = max(len(name) for name, _ in rows)
        lines = [f"{'':<{width}}  value", "-" * (width + 14)]
        lines += [f"{name:<{width}}  {value}" for name, value in rows]
        return "\n".join(lines)


# -- main -------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=None, help="default 2000 (smoke: 50)")
    parser.add_argument("--rate", type=float, default=None, help="orders per second (default 5)")
    parser.add_argument("--seconds", type=float, default=None, help="load time (default 30)")
    parser.add_argument(
        "--clients", type=int, default=None, help="client processes (default: one per 500)"
    )
    parser.add_argument(
        "--drain", type=float, default=60.0, help="seconds to wait for delivery after the load"
    )
    parser.add_argument(
        "--no-compression",
        action="store_true",
        help="do not offer permessage-deflate (browsers and most clients offer it)",
    )
    parser.add_argument(
        "--client-nice",
        type=int,
        default=10,
        help="niceness of the client processes (default 10): on a machine they share with "
        "the server, they take the CPU it leaves, as clients on other machines would",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=15.0,
        help="seconds to wait after every subscriber is live, before the load (default 15)",
    )
    parser.add_argument(
        "--no-floor",
        action="store_true",
        help="skip the bare write floor measured after the run (bench/fanout_floor.py)",
    )
    parser.add_argument("--smoke", action="store_true", help="50 subscribers, 3 s, 5 orders/s")
    add_server_options(parser)
    args = parser.parse_args(argv)
    smoke = args.smoke
    args.subscribers = args.subscribers or (50 if smoke else 2000)
    args.rate = args.rate or 5.0
    args.seconds = args.seconds or (3.0 if smoke else 30.0)
    if smoke:
        args.settle = 0.0
    args.clients = args.clients or max(1, min(16, math.ceil(args.subscribers / 500)))
    if smoke:
        args.clients = min(args.clients, 2)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.subscribers < 1 or args.rate <= 0 or args.seconds <= 0 or args.clients < 1:
        print("need --subscribers >= 1, --rate > 0, --seconds > 0, --clients >= 1", file=sys.stderr)
        return 2
    args.clients = min(args.clients, args.subscribers)
    limit = raise_fd_limit(args.subscribers + 500)
    if limit < args.subscribers + 200:
        print(f"open-file limit {limit} is too low for {args.subscribers} sockets", file=sys.stderr)
        return 2
    name = f"ordergraph_bench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    asyncio.run(create_database(args.pg_dsn, name))
    try:
        if args.log_dir is not None:
            args.log_dir.mkdir(parents=True, exist_ok=True)
            code, figures = run(args, with_database(args.pg_dsn, name), args.log_dir)
        else:
            with tempfile.TemporaryDirectory(prefix="ordergraph-fanout-") as logs:
                code, figures = run(args, with_database(args.pg_dsn, name), Path(logs))
    finally:
        asyncio.run(drop_database(args.pg_dsn, name))
    if figures is not None and not args.no_floor:
        _compare_with_the_floor(args, figures)
    return code


def _compare_with_the_floor(args: argparse.Namespace, figures: Figures) -> None:
    """The same writes from a bare process (bench/fanout_floor.py), after the server stopped:
    the machine's own cost of one frame to one socket, beside the server's per delivery."""
    floor = measure_floor(
        args.subscribers, args.rate, min(args.seconds, 15.0), FLOOR_FRAME_BYTES, args.clients
    )
    said = (
        f"bare write floor (the same sockets and rate, one {FLOOR_FRAME_BYTES}-byte frame "
        f"each, from a bare uvloop process): {floor.us_per_write:.1f} us of CPU per write"
    )
    if not floor.us_per_write > 0:  # zero, or nan when nothing was written
        # A short run (the smoke) can spend less CPU than the process clock's tick shows.
        print(f"{said}: too little to measure in so short a run, no ratio", flush=True)
        return
    ratio = figures.cpu_per_delivery_us / floor.us_per_write
    print(f"{said}; server CPU per delivery is {ratio:.2f}x the floor", flush=True)


def _server_env(args: argparse.Namespace, dsn: str, admin_token: str) -> dict[str, str]:
    extra = dict(item.split("=", 1) for item in args.server_env)
    return {
        **os.environ,
        "ORDERGRAPH_DATABASE_URL": dsn.replace("postgresql://", "postgresql+asyncpg://", 1),
        "ORDERGRAPH_ADMIN_TOKEN": admin_token,
        "ORDERGRAPH_LOG_LEVEL": "WARNING",
        # Every subscriber here uses the store's one key: lift the per-key caps
        # (docs/security.md) above the subscriber count.
        "ORDERGRAPH_MAX_WEBSOCKETS_PER_KEY": str(args.subscribers + 100),
        "ORDERGRAPH_MAX_SUBSCRIPTIONS_PER_KEY": str(args.subscribers + 100),
        # ... and its rate: thousands of subscriptions cost more points than the bucket
        # holds (each is charged when it starts), and the orders must not wait on them.
        "ORDERGRAPH_RATE_LIMIT_CAPACITY": "1000000000",
        **extra,
    }


def _start_clients(
    args: argparse.Namespace, url: str, store: BenchStore, start_seq: int, clients: list[Client]
) -> None:
    """Start the client processes, the subscribers shared out among them; each is added to
    `clients` as soon as it runs, so that the caller stops it whatever happens next."""
    context = multiprocessing.get_context("spawn")
    ws_url = url.replace("http://", "ws://") + "/graphql"
    share, extra_one = divmod(args.subscribers, args.clients)
    for index in range(args.clients):
        job = Job(
            index=index,
            ws_url=ws_url,
            token=store.token,
            store_gid=store.gid,
            after=cursor_of(start_seq),
            count=share + (1 if index < extra_one else 0),
            compression=not args.no_compression,
            connect_concurrency=max(4, 64 // args.clients),
            nice=args.client_nice,
        )
        ours, theirs = context.Pipe()
        process = context.Process(target=client_process, args=(job, theirs), daemon=True)
        process.start()
        clients.append(Client(process, ours))


def _drain(
    clients: list[Client],
    dsn: str,
    store_id: int,
    start_seq: int,
    drain: float,
    last_order_at: float,
) -> list[int]:
    """Wait for every subscriber to reach the last order event; again if more committed
    meanwhile (an order whose answer timed out may still commit). The order events'
    sequence numbers."""
    expected = asyncio.run(order_event_seqs(dsn, store_id, start_seq))
    for _ in range(5):
        wait = max(1.0, drain - (time.monotonic() - last_order_at))
        ask_all(clients, "await", (expected[-1], wait), "reached", wait + 30)
        again = asyncio.run(order_event_seqs(dsn, store_id, start_seq))
        if again == expected:
            break
        expected = again
    return expected


def _measured_latencies(results: list[dict[str, Any]], warm_seq: int) -> list[float]:
    """Every subscriber's delivery latencies of the events after the warm-up one, sorted."""
    latency: list[float] = []
    for result in results:
        seqs = array("q")
        seqs.frombytes(result["received_seq"])
        lat = array("d")
        lat.frombytes(result["latency"])
        latency.extend(x for s, x in zip(seqs, lat, strict=True) if s > warm_seq)
    latency.sort()
    return latency


def _closes(results: list[dict[str, Any]]) -> dict[str, int]:
    """How many connections closed with each code, over all client processes."""
    closes: dict[str, int] = {}
    for result in results:
        for code, n in result["closes"].items():
            closes[code] = closes.get(code, 0) + n
    return closes


def _print_outcome(
    args: argparse.Namespace, figures: Figures, results: list[dict[str, Any]], placed: Placed
) -> None:
    print()
    print(figures.table())
    print()
    print(
        "(order events include the one warm-up order that every subscriber received "
        "before the measurement; latency is the client's receive time minus the event's "
        "occurredAt, over the measured events only)"
    )
    first_error = next((r["first_error"] for r in results if r["first_error"]), None)
    if first_error:
        print(f"first subscriber error: {first_error}")
    if placed.first_error:
        print(f"first placeOrder failure: {placed.first_error}")
    p99 = percentile(figures.latency, 0.99)
    goal = figures.correct and p99 < GOAL_P99_SECONDS
    print(
        f"goal at {GOAL_SUBSCRIBERS} subscribers (p99 < {GOAL_P99_SECONDS:g} s, nothing "
        f"missing): {'met' if goal else 'missed'} at {args.subscribers}"
    )
    requests = sorted(figures.order_latency + figures.read_latency)
    quick = percentile(requests, 0.99) < GOAL_REQUEST_P99_SECONDS and not figures.reads_failed
    print(
        f"goal for requests during the fan-out (placeOrder and the read, p99 < "
        f"{GOAL_REQUEST_P99_SECONDS * 1000:.0f} ms): {'met' if quick else 'missed'}"
    )
    print("delivery: " + ("every event exactly once, in order" if figures.correct else "FAILED"))


def run(args: argparse.Namespace, dsn: str, logs: Path) -> tuple[int, Figures | None]:
    admin_token = "og_admin_bench_" + secrets.token_urlsafe(16)
    server: Server | None = None
    clients: list[Client] = []
    try:
        port = free_port()
        env = _server_env(args, dsn, admin_token)
        server = start(
            serve_command(port), port=port, log=logs / "ordergraph.log", env=env, name="ordergraph"
        )
        pid = server.process.pid
        store = make_store(server.url, admin_token)
        store_id = asyncio.run(store_id_of(dsn, store.handle))
        print(
            f"fan-out: {args.subscribers} subscribers of orderEvents on one store from "
            f"{args.clients} client processes, placeOrder at {args.rate:g}/s for "
            f"{args.seconds:g} s, one server process (pid {pid}) on {safe_dsn(dsn)}",
            flush=True,
        )
        # One order before measuring, so that the memory baseline includes a warm write path.
        warm = asyncio.run(place_orders(server.url, store.token, store.gid, 1.0, 1.0))
        if warm.failed:
            raise RuntimeError(f"placeOrder failed: {warm.first_error}")
        time.sleep(0.5)
        rss_before = vm_kib(pid, "VmRSS")
        start_seq = asyncio.run(last_event_seq(dsn, store_id))

        _start_clients(args, server.url, store, start_seq, clients)
        began = time.monotonic()
        ready = [c.expect("ready", 120 + args.subscribers / 10) for c in clients]
        connected = sum(n for n, _ in ready)
        print(
            f"{connected} of {args.subscribers} subscribed in {time.monotonic() - began:.1f} s",
            flush=True,
        )
        problem = next((error for _, error in ready if error), None)
        if problem:
            print(f"first subscribe failure: {problem}", flush=True)

        # A first event, awaited by every subscriber: all are live before the measurement.
        warm = asyncio.run(place_orders(server.url, store.token, store.gid, 1.0, 1.0))
        if warm.failed:
            raise RuntimeError(f"the warm-up placeOrder failed: {warm.first_error}")
        warm_seq = asyncio.run(order_event_seqs(dsn, store_id, start_seq))[-1]
        reached = sum(ask_all(clients, "await", (warm_seq, 120.0), "reached", 130))
        print(f"{reached} of {connected} received the warm-up event", flush=True)
        # Measure the steady state: the collections the ramp of new connections causes
        # (ordergraph.gc_governor's growth pass, or CPython's own) happen before the load.
        time.sleep(max(0.5, args.settle))
        rss_subscribed = vm_kib(pid, "VmRSS")

        client_pids = [c.process.pid for c in clients if c.process.pid is not None]
        cpu0 = (
            process_cpu_seconds(pid),
            sum(process_cpu_seconds(p) for p in client_pids),
            machine_busy(),
        )
        t0 = time.monotonic()
        placed, read = asyncio.run(
            orders_and_reads(
                server.url, store.token, store.gid, store.handle, args.rate, args.seconds
            )
        )
        last_order_at = time.monotonic()
        expected = _drain(clients, dsn, store_id, start_seq, args.drain, last_order_at)
        drained = time.monotonic() - last_order_at
        t1 = time.monotonic()
        cpu1 = (
            process_cpu_seconds(pid),
            sum(process_cpu_seconds(p) for p in client_pids),
            machine_busy(),
        )
        time.sleep(1.0)  # anything sent twice arrives now
        results = ask_all(clients, "report", expected, "result", 120)
        rss_peak = vm_kib(pid, "VmHWM")

        latency = _measured_latencies(results, warm_seq)
        closes = _closes(results)
        elapsed = t1 - t0
        figures = Figures(
            subscribers=args.subscribers,
            clients=args.clients,
            connected=connected,
            orders=len(placed.latencies) + placed.failed,
            orders_failed=placed.failed,
            events=len(expected),
            expected=args.subscribers * len(expected),
            delivered=sum(r["delivered"] for r in results),
            missing=sum(r["missing"] for r in results),
            duplicate=sum(r["duplicate"] for r in results),
            unexpected=sum(r["unexpected"] for r in results),
            out_of_order=sum(r["out_of_order"] for r in results),
            complete=sum(r["complete"] for r in results),
            closes=closes,
            latency=latency,
            order_latency=placed.latencies,
            read_latency=read.latencies,
            reads_failed=read.failed,
            rss_before_kib=rss_before,
            rss_subscribed_kib=rss_subscribed,
            rss_peak_kib=rss_peak,
            server_cpu=(cpu1[0] - cpu0[0]) / elapsed,
            client_cpu=(cpu1[1] - cpu0[1]) / elapsed,
            machine_busy=(cpu1[2][0] - cpu0[2][0]) / elapsed,
            drain_seconds=drained,
            load_seconds=elapsed,
            load_deliveries=len(latency),
        )
        _print_outcome(args, figures, results, placed)
        return (0 if figures.correct and not placed.failed and not read.failed else 1), figures
    except Exception:
        if server is not None:
            server.stop()
            print(f"--- server log ---\n{server.log.read_text()[-4000:]}", file=sys.stderr)
        raise
    finally:
        for client in clients:
            client.stop()
        if server is not None:
            server.stop()


if __name__ == "__main__":
    raise SystemExit(main())

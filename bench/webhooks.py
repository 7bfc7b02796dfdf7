"""Benchmark: webhook delivery by a real server, against the same HTTP posts from a bare loop.

It creates a fresh PostgreSQL database, starts one `python -m ordergraph serve` process on
it (`ORDERGRAPH_WEBHOOK_ALLOW_PRIVATE=true`: the receiver is on loopback, plain http;
every other webhook setting at its default), and a receiver in a process of its own
(bench/webhooks_receiver.py: uvloop, answers 200, records each request's arrival time
and body). For each subscription count N (`--subscriptions`, default 1 and 10) it makes
a store with one product through the API and N subscriptions to ORDER_PLACED, each to a
path of its own on the receiver. Each round (`--rounds`, default 3) runs, per N, the two
contenders in turn, the order rotated each round:

- **ordergraph**: (1) the reference: the subscriptions paused, orders placed at `--rate`
  for `--seconds` by a light client (bench/light_client.py, its CPU measured): what
  placing costs the server without delivery; (2) catch-up: the subscriptions resumed,
  the backlog of those orders (N x orders deliveries) timed until the last arrived;
  (3) sustained: the same orders again with the subscriptions active, until every
  delivery arrived: latency commit -> receiver per delivery.
- **baseline** (bench/webhooks_baseline.py): the same bodies (the bytes ordergraph sent
  in the warm-up), signed the same way at send time, posted by a bare asyncio loop with
  an httpx client configured as the worker's, one at a time per subscription awaiting
  the 2xx, to the same receiver: catch-up (all at once), catch-up with keep-alive
  connections (the worker makes a connection per delivery), and sustained at the rate.

Every run checks, per subscription, that every event arrived (no loss), in log order,
each signature verified with the subscription's secret and the Ordergraph-Event-Id
header equal to the body's id; the bench exits non-zero otherwise.

The commit time of a delivery is not observable from outside; the latency is given
from both sides of it: from the placeOrder answer's arrival at the client (after the
commit: a lower bound) and from the event's `occurredAt` (the server's wall clock when
the unit of work began, before the commit: an upper bound). Same machine, same clock.

Server CPU comes from /proc/<pid>/stat; PostgreSQL's from the /proc of the server's
backends (pg_stat_activity of the bench's database). Per delivery in sustained runs, the
reference's CPU per order is subtracted (net of placing the order).

Run from the repository root, in the project's environment:

    python bench/webhooks.py                          # N = 1 and 10, 20 orders/s, 6 s, 3 rounds
    python bench/webhooks.py --subscriptions 1,5,20 --rate 50 --seconds 5
    python bench/webhooks.py --smoke                  # N = 2, 10 orders/s, 2 s, 1 round
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import multiprocessing
import os
import secrets
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.api import PLACE_ORDER, SKU, BenchStore, gql, make_store
from bench.harness import Server, free_port, serve_command, start
from bench.light_client import Connection, HttpError, client_cpu_seconds, encode_head
from bench.pg import (
    add_server_options,
    create_database,
    drop_database,
    safe_dsn,
    store_id_of,
    with_database,
)
from bench.proc import cpu_seconds, process_cpu_seconds
from bench.rounds import rotation, spread
from bench.webhooks_baseline import Done, Job, baseline_process
from bench.webhooks_receiver import Arrival, read_bodies, receiver_process

CREATE = """mutation($input: CreateWebhookSubscriptionInput!) {
  createWebhookSubscription(input: $input) {
    webhookSubscription { id } secret userErrors { code message } } }"""
UPDATE = """mutation($input: UpdateWebhookSubscriptionInput!) {
  updateWebhookSubscription(input: $input) {
    webhookSubscription { id state } userErrors { code message } } }"""


# -- the receiver process -----------------------------------------------------------


class Receiver:
    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipe, theirs = context.Pipe()
        port_ours, port_theirs = context.Pipe()
        self.process = context.Process(
            target=receiver_process, args=(theirs, port_theirs), daemon=True
        )
        self.process.start()
        if not port_ours.poll(60):
            raise RuntimeError("the receiver did not start")
        self.port = int(port_ours.recv())
        self.url = f"http://127.0.0.1:{self.port}"

    def ask(self, *message: Any) -> Any:
        self.pipe.send(message)
        if not self.pipe.poll(120):
            raise RuntimeError(f"the receiver did not answer {message[0]!r}")
        return self.pipe.recv()

    def reset(self) -> None:
        self.ask("reset")

    def count(self) -> int:
        return int(self.ask("count"))

    async def wait_for(self, expected: int, within: float) -> bool:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.count() >= expected:
                return True
            await asyncio.sleep(0.02)
        return self.count() >= expected

    def stop(self) -> None:
        if self.process.is_alive():
            with contextlib.suppress(OSError):
                self.pipe.send(("stop",))
            self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


# -- placing orders through the API ---------------------------------------------------


@dataclass
class Placed:
    answered_at: dict[int, float] = field(default_factory=dict)  # order number -> wall clock
    failed: int = 0
    first_error: str | None = None
    began: float = 0.0  # wall clock of the first order sent
    client_cpu: float = 0.0

    @property
    def orders(self) -> int:
        return len(self.answered_at)


async def place_orders(
    url: str, store: BenchStore, count: int, rate: float | None, connections: int = 8
) -> Placed:
    """`count` one-line orders: at `rate` per second on a fixed schedule (open loop: a slow
    answer delays no other), or (rate None) as fast as `connections` connections go."""
    placed = Placed()
    host = url.removeprefix("http://")
    head = encode_head(
        "POST",
        "/graphql",
        host,
        {"Authorization": f"Bearer {store.token}", "Content-Type": "application/json"},
    )
    body = json.dumps(
        {
            "query": PLACE_ORDER,
            "variables": {"input": {"storeId": store.gid, "lines": [{"sku": SKU, "quantity": 1}]}},
        }
    ).encode()
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(Connection(url))

    async def one() -> None:
        conn = await pool.get()
        try:
            status, content = await conn.post(head, body)
            answered = time.time()
            data = json.loads(content)["data"]["placeOrder"]
            if status != 200 or data["userErrors"] or not data["order"]:
                raise ValueError(content[:300])
            placed.answered_at[int(data["order"]["number"])] = answered
        except (HttpError, ValueError, KeyError, TypeError) as err:
            placed.failed += 1
            placed.first_error = placed.first_error or repr(err)
        finally:
            pool.put_nowait(conn)

    cpu0 = client_cpu_seconds()
    placed.began = time.time()
    began = time.perf_counter()
    tasks = []
    for i in range(count):
        if rate is not None:
            delay = began + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)
    placed.client_cpu = client_cpu_seconds() - cpu0
    while not pool.empty():
        await pool.get_nowait().close()
    return placed


# -- the database side -----------------------------------------------------------------


class Db:
    """The bench's own connection to its database: the events to expect, and the CPU of
    the server's backends."""

    def __init__(self, dsn: str, name: str) -> None:
        self.dsn, self.name = dsn, name
        self.conn: asyncpg.Connection | None = None

    async def open(self) -> None:
        self.conn = await asyncpg.connect(self.dsn)

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()

    async def last_seq(self, store_id: int) -> int:
        assert self.conn is not None
        value = await self.conn.fetchval(
            "SELECT last_event_seq FROM stores WHERE id = $1", store_id
        )
        return int(value)

    async def placed_seqs(self, store_id: int, after: int) -> list[int]:
        assert self.conn is not None
        rows = await self.conn.fetch(
            "SELECT seq FROM events WHERE store_id = $1 AND stream = 'order' "
            "AND type = 'PLACED' AND seq > $2 ORDER BY seq",
            store_id,
            after,
        )
        return [int(r["seq"]) for r in rows]

    async def backend_cpu(self) -> dict[int, float]:
        """CPU seconds so far of each backend of the bench's database but this one."""
        assert self.conn is not None
        rows = await self.conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            self.name,
        )
        found = {}
        for row in rows:
            used = cpu_seconds([int(row["pid"])])
            if used is not None:
                found[int(row["pid"])] = used
        return found


def backend_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU the backends used between two readings (a backend that ended meanwhile is lost;
    one that started counts from zero)."""
    return sum(used - before.get(pid, 0.0) for pid, used in after.items())


# -- what a run measured --------------------------------------------------------------


@dataclass
class Check:
    """Per subscription: every expected event arrived, in order, signed."""

    expected: int = 0
    arrived: int = 0
    missing: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    bad_signatures: int = 0
    bad_event_ids: int = 0

    @property
    def ok(self) -> bool:
        return (
            self.missing == self.out_of_order == self.bad_signatures == self.bad_event_ids == 0
            and self.arrived >= self.expected
        )

    def add(self, arrivals: list[Arrival], expected: list[int]) -> None:
        self.expected += len(expected)
        self.arrived += len(arrivals)
        seqs = [a.seq for a in arrivals]
        self.missing += len(set(expected) - set(seqs))
        self.duplicates += len(seqs) - len(set(seqs))
        self.out_of_order += sum(1 for a, b in itertools.pairwise(seqs) if b < a)
        self.bad_signatures += sum(1 for a in arrivals if not a.signed)
        self.bad_event_ids += sum(1 for a in arrivals if not a.header_id)

    def text(self) -> str:
        return (
            f"{self.arrived} of {self.expected} arrived, missing {self.missing}, "
            f"duplicates {self.duplicates}, out of order {self.out_of_order}, "
            f"bad signatures {self.bad_signatures}, bad event-id headers {self.bad_event_ids}"
        )


@dataclass
class Run:
    """One contender's figures in one round (nan where not measured)."""

    catchup_rate: float = math.nan
    catchup_start_s: float = math.nan
    catchup_cpu_ms: float = math.nan
    catchup_db_ms: float = math.nan
    keepalive_rate: float = math.nan
    keepalive_cpu_ms: float = math.nan
    sustained_rate: float = math.nan
    from_answer: list[float] = field(default_factory=list)  # seconds
    from_occurred: list[float] = field(default_factory=list)
    sustained_cpu_ms: float = math.nan  # net of placing (ordergraph)
    sustained_gross_cpu_ms: float = math.nan
    sustained_db_ms: float = math.nan
    reference_cpu_ms: float = math.nan  # per order, no delivery
    reference_db_ms: float = math.nan
    client_cpu_ms: float = math.nan  # per order placed
    body_bytes: float = math.nan


def percentile_ms(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


# -- the contenders --------------------------------------------------------------------


@dataclass
class Setup:
    """One subscription count: its store, subscriptions and what the baseline posts."""

    n: int
    store: BenchStore
    store_id: int
    ids: list[str]  # the subscriptions' global ids
    secrets: dict[str, str]  # receiver path -> secret (ordergraph's and the baseline's)
    bodies: list[bytes] = field(default_factory=list)

    @property
    def og_paths(self) -> list[str]:
        return [f"/og{self.n}/{i}" for i in range(self.n)]

    @property
    def base_paths(self) -> dict[str, str]:
        return {f"/base{self.n}/{i}": self.secrets[f"/og{self.n}/{i}"] for i in range(self.n)}


class Bench:
    def __init__(
        self, args: argparse.Namespace, server: Server, receiver: Receiver, db: Db
    ) -> None:
        self.args = args
        self.server = server
        self.receiver = receiver
        self.db = db
        self.check = Check()
        self.count = max(1, round(args.rate * args.seconds))

    def log(self, text: str) -> None:
        print(text, flush=True)

    # setup

    def setup(self, n: int, admin_token: str) -> Setup:
        store = make_store(self.server.url, admin_token)
        store_id = asyncio.run(store_id_of(self.db.dsn, store.handle))
        found = Setup(n, store, store_id, [], {})
        for path in found.og_paths:
            created = gql(
                self.server.url,
                CREATE,
                {
                    "input": {
                        "storeId": store.gid,
                        "url": self.receiver.url + path,
                        "topics": ["ORDER_PLACED"],
                    }
                },
                store.token,
                "createWebhookSubscription",
            )
            found.ids.append(created["webhookSubscription"]["id"])
            found.secrets[path] = created["secret"]
        found.secrets.update(found.base_paths)
        return found

    async def pause(self, setup: Setup, paused: bool) -> None:
        async with httpx.AsyncClient(
            base_url=self.server.url,
            headers={"Authorization": f"Bearer {setup.store.token}"},
            timeout=30,
        ) as http:
            for gid in setup.ids:
                response = await http.post(
                    "/graphql",
                    json={"query": UPDATE, "variables": {"input": {"id": gid, "paused": paused}}},
                )
                payload = response.json()
                data = (payload.get("data") or {}).get("updateWebhookSubscription")
                if payload.get("errors") or not data or data["userErrors"]:
                    raise RuntimeError(f"updateWebhookSubscription: {payload}")

    def report(self, setup: Setup) -> dict[str, list[Arrival]]:
        found: dict[str, list[Arrival]] = self.receiver.ask("report", setup.secrets)
        return found

    def verify(
        self, what: str, arrivals: dict[str, list[Arrival]], expected: dict[str, list[int]]
    ) -> None:
        check = Check()
        for path, seqs in expected.items():
            check.add(arrivals.get(path, []), seqs)
        unexpected = set(arrivals) - set(expected)
        for path in unexpected:
            check.arrived += len(arrivals[path])
            check.out_of_order += len(arrivals[path])
        for name in ("expected", "arrived", "missing", "duplicates", "out_of_order"):
            setattr(self.check, name, getattr(self.check, name) + getattr(check, name))
        self.check.bad_signatures += check.bad_signatures
        self.check.bad_event_ids += check.bad_event_ids
        if not check.ok or unexpected:
            self.log(f"  !! {what}: {check.text()}; unexpected paths {sorted(unexpected)}")

    async def snapshot(self) -> tuple[float, dict[int, float]]:
        return process_cpu_seconds(self.server.process.pid), await self.db.backend_cpu()

    async def since(self, before: tuple[float, dict[int, float]]) -> tuple[float, float]:
        now = await self.snapshot()
        return now[0] - before[0], backend_delta(before[1], now[1])

    async def placed_ok(self, placed: Placed) -> None:
        if placed.failed:
            raise RuntimeError(f"{placed.failed} orders failed: {placed.first_error}")

    async def drain(self, expected: int, what: str) -> None:
        if not await self.receiver.wait_for(expected, self.args.drain):
            self.log(f"  !! {what}: {self.receiver.count()} of {expected} arrived in time")

    # warm-up: the baseline's bodies

    async def warm_up(self, setup: Setup) -> None:
        """Unmeasured: place the run's number of orders while paused, resume, wait for all
        of them; keep the bodies the first subscription got (the baseline posts them)."""
        await self.pause(setup, True)
        seq0 = await self.db.last_seq(setup.store_id)
        self.receiver.reset()
        placed = await place_orders(self.server.url, setup.store, self.count, None)
        await self.placed_ok(placed)
        await self.pause(setup, False)
        await self.drain(self.count * setup.n, "warm-up")
        await asyncio.sleep(0.2)
        seqs = await self.db.placed_seqs(setup.store_id, seq0)
        self.verify("warm-up", self.report(setup), {p: seqs for p in setup.og_paths})
        setup.bodies = self.receiver.ask("bodies", setup.og_paths[0])
        await self.pause(setup, True)

    # ordergraph

    async def ordergraph(self, setup: Setup) -> Run:
        run = Run()
        n = setup.n
        # (1) the reference: placing without delivery (subscriptions paused).
        seq0 = await self.db.last_seq(setup.store_id)
        before = await self.snapshot()
        placed = await place_orders(self.server.url, setup.store, self.count, self.args.rate)
        cpu, db_cpu = await self.since(before)
        await self.placed_ok(placed)
        run.reference_cpu_ms = cpu / placed.orders * 1000
        run.reference_db_ms = db_cpu / placed.orders * 1000
        seqs = await self.db.placed_seqs(setup.store_id, seq0)

        # (2) catch-up: resume, time the backlog.
        self.receiver.reset()
        before = await self.snapshot()
        resumed = time.time()  # the first resume request's
        await self.pause(setup, False)
        await self.drain(len(seqs) * n, "ordergraph catch-up")
        cpu, db_cpu = await self.since(before)
        await asyncio.sleep(0.2)
        arrivals = self.report(setup)
        self.verify("ordergraph catch-up", arrivals, {p: seqs for p in setup.og_paths})
        times = sorted(a.at for found in arrivals.values() for a in found)
        delivered = len(times)
        if delivered > 1:
            run.catchup_rate = (delivered - 1) / max(1e-9, times[-1] - times[0])
            run.catchup_start_s = times[0] - resumed
        run.catchup_cpu_ms = cpu / delivered * 1000 if delivered else math.nan
        run.catchup_db_ms = db_cpu / delivered * 1000 if delivered else math.nan

        # (3) sustained: orders at the rate, delivered as they commit.
        self.receiver.reset()
        seq0 = await self.db.last_seq(setup.store_id)
        before = await self.snapshot()
        placed = await place_orders(self.server.url, setup.store, self.count, self.args.rate)
        await self.placed_ok(placed)
        seqs = await self.db.placed_seqs(setup.store_id, seq0)
        await self.drain(len(seqs) * n, "ordergraph sustained")
        cpu, db_cpu = await self.since(before)
        await asyncio.sleep(0.2)
        arrivals = self.report(setup)
        self.verify("ordergraph sustained", arrivals, {p: seqs for p in setup.og_paths})
        every = [a for found in arrivals.values() for a in found]
        delivered = len(every)
        if every:
            run.sustained_rate = delivered / max(1e-9, max(a.at for a in every) - placed.began)
            run.from_occurred = [a.at - a.occurred_at for a in every]
            run.from_answer = [
                a.at - placed.answered_at[a.number] for a in every if a.number in placed.answered_at
            ]
            run.body_bytes = sum(a.size for a in every) / delivered
            run.sustained_gross_cpu_ms = cpu / delivered * 1000
            placing = run.reference_cpu_ms / 1000 * placed.orders
            run.sustained_cpu_ms = (cpu - placing) / delivered * 1000
            placing_db = run.reference_db_ms / 1000 * placed.orders
            run.sustained_db_ms = (db_cpu - placing_db) / delivered * 1000
        run.client_cpu_ms = placed.client_cpu / max(1, placed.orders) * 1000
        await self.pause(setup, True)
        return run

    # the baseline

    async def post_from_baseline(
        self, setup: Setup, mode: str, keepalive: bool
    ) -> tuple[Done, dict[str, list[Arrival]]]:
        self.receiver.reset()
        job = Job(
            base_url=self.receiver.url,
            paths=setup.base_paths,
            bodies=setup.bodies,
            mode=mode,
            rate=self.args.rate,
            keepalive=keepalive,
        )
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        process = context.Process(target=baseline_process, args=(job, theirs), daemon=True)
        process.start()
        try:
            deadline = time.monotonic() + self.args.drain + self.args.seconds + 60
            while not ours.poll(0):
                if time.monotonic() > deadline or not process.is_alive():
                    raise RuntimeError(f"the baseline ({mode}) did not finish")
                await asyncio.sleep(0.02)
            done: Done = ours.recv()
        finally:
            process.join(10)
            if process.is_alive():
                process.kill()
        await self.drain(done.posts, f"baseline {mode}")
        arrivals = self.report(setup)
        expected = [a.seq for a in self.prepared(setup)]
        self.verify(
            f"baseline {mode}{' keep-alive' if keepalive else ''}",
            arrivals,
            {p: expected for p in setup.base_paths},
        )
        if done.failed:
            self.log(f"  !! baseline {mode}: {done.failed} posts failed: {done.first_error}")
        return done, arrivals

    def prepared(self, setup: Setup) -> list[Arrival]:
        """The baseline's bodies read as the receiver reads them (their ids and seqs)."""
        return read_bodies(setup.bodies)

    async def baseline(self, setup: Setup) -> Run:
        run = Run()
        done, arrivals = await self.post_from_baseline(setup, "catchup", keepalive=False)
        times = sorted(a.at for found in arrivals.values() for a in found)
        if len(times) > 1:
            run.catchup_rate = (len(times) - 1) / max(1e-9, times[-1] - times[0])
        run.catchup_cpu_ms = done.cpu_seconds / done.posts * 1000
        run.catchup_start_s = times[0] - done.t0 if times else math.nan
        done, arrivals = await self.post_from_baseline(setup, "catchup", keepalive=True)
        times = sorted(a.at for found in arrivals.values() for a in found)
        if len(times) > 1:
            run.keepalive_rate = (len(times) - 1) / max(1e-9, times[-1] - times[0])
        run.keepalive_cpu_ms = done.cpu_seconds / done.posts * 1000
        done, arrivals = await self.post_from_baseline(setup, "sustained", keepalive=False)
        index = {a.event_id: i for i, a in enumerate(self.prepared(setup))}
        every = [a for found in arrivals.values() for a in found]
        if every:
            run.sustained_rate = len(every) / max(1e-9, max(a.at for a in every) - done.t0)
            run.from_answer = [a.at - (done.t0 + index[a.event_id] / self.args.rate) for a in every]
            run.body_bytes = sum(a.size for a in every) / len(every)
        run.sustained_cpu_ms = done.cpu_seconds / done.posts * 1000
        run.sustained_gross_cpu_ms = run.sustained_cpu_ms
        return run


# -- the tables -------------------------------------------------------------------------


Column = tuple[str, Callable[[Run], float], int]


def table(title: str, runs: dict[str, list[Run]], columns: list[Column]) -> str:
    cells = {
        name: [spread([read(r) for r in found]).text(digits) for _, read, digits in columns]
        for name, found in runs.items()
    }
    widths = [
        max(len(head), *(len(row[i]) for row in cells.values()))
        for i, (head, _, _) in enumerate(columns)
    ]
    name_width = max(12, *(len(name) for name in runs))
    head = " ".join(
        [
            f"{'':<{name_width}}",
            *(f"{h:>{w}}" for (h, _, _), w in zip(columns, widths, strict=True)),
        ]
    )
    lines = [title, head, "-" * len(head)]
    for name, row in cells.items():
        lines.append(
            " ".join(
                [f"{name:<{name_width}}", *(f"{c:>{w}}" for c, w in zip(row, widths, strict=True))]
            )
        )
    return "\n".join(lines)


def median(runs: list[Run], read: Callable[[Run], float]) -> float:
    return spread([read(r) for r in runs]).mid


def print_tables(args: argparse.Namespace, n: int, og: list[Run], base: list[Run]) -> None:
    count = max(1, round(args.rate * args.seconds))
    print()
    print(
        f"== {n} subscription{'s' if n > 1 else ''}: {count} orders per run, "
        f"{count * n} deliveries; median [min-max] over {len(og)} round(s); body "
        f"{median(og, lambda r: r.body_bytes):.0f} bytes"
    )
    catchup: list[Column] = [
        ("deliveries/s", lambda r: r.catchup_rate, 0),
        ("first after s", lambda r: r.catchup_start_s, 3),
        ("CPU ms/delivery", lambda r: r.catchup_cpu_ms, 3),
        ("db CPU ms/delivery", lambda r: r.catchup_db_ms, 3),
    ]
    keep: list[Run] = [
        Run(catchup_rate=r.keepalive_rate, catchup_cpu_ms=r.keepalive_cpu_ms) for r in base
    ]
    print(
        table(
            "catch-up (the backlog of one run's orders, all at once; deliveries/s from the "
            "first arrival to the last; first after: from the first resume request, or the "
            "baseline's start, to the first arrival):",
            {"ordergraph": og, "baseline": base, "baseline keep-alive": keep},
            catchup,
        )
    )
    offered = args.rate * n
    sustained: list[Column] = [
        ("deliveries/s", lambda r: r.sustained_rate, 1),
        ("p50 ms", lambda r: percentile_ms(r.from_answer, 0.5), 1),
        ("p99 ms", lambda r: percentile_ms(r.from_answer, 0.99), 1),
        ("p50 ms occurredAt", lambda r: percentile_ms(r.from_occurred, 0.5), 1),
        ("p99 ms occurredAt", lambda r: percentile_ms(r.from_occurred, 0.99), 1),
        ("CPU ms/delivery", lambda r: r.sustained_cpu_ms, 3),
        ("db CPU ms/delivery", lambda r: r.sustained_db_ms, 3),
    ]
    print()
    print(
        table(
            f"sustained ({args.rate:g} orders/s, {offered:g} deliveries/s offered; latency: "
            "ordergraph from the placeOrder answer (p50/p99) and from occurredAt; baseline "
            "from the moment the body was due):",
            {"ordergraph": og, "baseline": base},
            sustained,
        )
    )
    print()
    ref = spread([r.reference_cpu_ms for r in og]).text(3)
    ref_db = spread([r.reference_db_ms for r in og]).text(3)
    gross = spread([r.sustained_gross_cpu_ms for r in og]).text(3)
    client = spread([r.client_cpu_ms for r in og]).text(3)
    print(
        f"placing without delivery (subscriptions paused): server CPU {ref} ms/order, db CPU "
        f"{ref_db} ms/order; sustained server CPU per delivery before subtracting it: {gross} "
        f"ms; the client's own CPU {client} ms/order"
    )

    def ratio(read: Callable[[Run], float]) -> str:
        below = median(base, read)
        return f"{median(og, read) / below:.2f}" if below else "n/a"

    print(
        "ratios ordergraph / baseline (medians): catch-up deliveries/s "
        f"{ratio(lambda r: r.catchup_rate)}, catch-up CPU per delivery "
        f"{ratio(lambda r: r.catchup_cpu_ms)}, sustained CPU per delivery "
        f"{ratio(lambda r: r.sustained_cpu_ms)}, sustained p50 latency "
        f"{ratio(lambda r: percentile_ms(r.from_answer, 0.5))}"
    )


# -- main -------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--subscriptions", default=None, help="comma-separated subscription counts (default 1,10)"
    )
    parser.add_argument("--rate", type=float, default=None, help="orders per second (default 20)")
    parser.add_argument("--seconds", type=float, default=None, help="per run (default 6)")
    parser.add_argument("--rounds", type=int, default=None, help="default 3")
    parser.add_argument(
        "--drain", type=float, default=120.0, help="seconds to wait for every delivery"
    )
    parser.add_argument("--smoke", action="store_true", help="N = 2, 10 orders/s, 2 s, 1 round")
    add_server_options(parser)
    args = parser.parse_args(argv)
    smoke = args.smoke
    raw = args.subscriptions or ("2" if smoke else "1,10")
    args.subscriptions = [int(x) for x in raw.split(",") if x.strip()]
    args.rate = args.rate or (10.0 if smoke else 20.0)
    args.seconds = args.seconds or (2.0 if smoke else 6.0)
    args.rounds = args.rounds or (1 if smoke else 3)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.subscriptions or min(args.subscriptions) < 1 or args.rate <= 0 or args.seconds <= 0:
        print("need --subscriptions >= 1, --rate > 0, --seconds > 0", file=sys.stderr)
        return 2
    name = f"ordergraph_bench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    asyncio.run(create_database(args.pg_dsn, name))
    try:
        if args.log_dir is not None:
            args.log_dir.mkdir(parents=True, exist_ok=True)
            return run(args, with_database(args.pg_dsn, name), name, args.log_dir)
        with tempfile.TemporaryDirectory(prefix="ordergraph-webhooks-") as logs:
            return run(args, with_database(args.pg_dsn, name), name, Path(logs))
    finally:
        asyncio.run(drop_database(args.pg_dsn, name))
        print(f"dropped database {safe_dsn(with_database(args.pg_dsn, name))}")


def _server_env(args: argparse.Namespace, dsn: str, admin_token: str) -> dict[str, str]:
    extra = dict(item.split("=", 1) for item in args.server_env)
    return {
        **os.environ,
        "ORDERGRAPH_DATABASE_URL": dsn.replace("postgresql://", "postgresql+asyncpg://", 1),
        "ORDERGRAPH_ADMIN_TOKEN": admin_token,
        "ORDERGRAPH_LOG_LEVEL": "WARNING",
        # The receiver is on loopback, over plain http.
        "ORDERGRAPH_WEBHOOK_ALLOW_PRIVATE": "true",
        # The bench measures what an order and a delivery cost, not the per-key policy.
        "ORDERGRAPH_RATE_LIMIT_CAPACITY": "1000000000",
        "ORDERGRAPH_RATE_LIMIT_RESTORE_PER_SECOND": "1000000000",
        **extra,
    }


def run(args: argparse.Namespace, dsn: str, name: str, logs: Path) -> int:
    admin_token = "og_admin_bench_" + secrets.token_urlsafe(16)
    server: Server | None = None
    receiver: Receiver | None = None
    try:
        receiver = Receiver()
        port = free_port()
        server = start(
            serve_command(port),
            port=port,
            log=logs / "ordergraph.log",
            env=_server_env(args, dsn, admin_token),
            name="ordergraph",
        )
        print(
            f"webhooks: subscriptions {args.subscriptions}, {args.rate:g} orders/s for "
            f"{args.seconds:g} s per run, {args.rounds} round(s); one server process (pid "
            f"{server.process.pid}) on {safe_dsn(dsn)}; receiver pid {receiver.process.pid} "
            f"on {receiver.url}",
            flush=True,
        )
        return asyncio.run(_rounds(args, server, receiver, dsn, name, admin_token))
    except Exception:
        if server is not None:
            server.stop()
            print(f"--- server log ---\n{server.log.read_text()[-4000:]}", file=sys.stderr)
        raise
    finally:
        if server is not None:
            server.stop()
        if receiver is not None:
            receiver.stop()


async def _rounds(
    args: argparse.Namespace,
    server: Server,
    receiver: Receiver,
    dsn: str,
    name: str,
    admin_token: str,
) -> int:
    db = Db(dsn, name)
    await db.open()
    try:
        bench = Bench(args, server, receiver, db)
        setups = {}
        for n in args.subscriptions:
            setups[n] = await asyncio.to_thread(bench.setup, n, admin_token)
            await bench.warm_up(setups[n])
            print(f"N = {n}: store and subscriptions made, warm-up delivered", flush=True)
        results: dict[int, dict[str, list[Run]]] = {
            n: {"ordergraph": [], "baseline": []} for n in args.subscriptions
        }
        for index in range(args.rounds):
            for n in args.subscriptions:
                for contender in rotation(["ordergraph", "baseline"], index):
                    began = time.monotonic()
                    if contender == "ordergraph":
                        found = await bench.ordergraph(setups[n])
                    else:
                        found = await bench.baseline(setups[n])
                    results[n][contender].append(found)
                    print(
                        f"round {index + 1}, N = {n}, {contender}: catch-up "
                        f"{found.catchup_rate:.0f}/s, sustained p50/p99 "
                        f"{percentile_ms(found.from_answer, 0.5):.1f}/"
                        f"{percentile_ms(found.from_answer, 0.99):.1f} ms "
                        f"({time.monotonic() - began:.0f} s)",
                        flush=True,
                    )
        for n in args.subscriptions:
            print_tables(args, n, results[n]["ordergraph"], results[n]["baseline"])
        print()
        print(f"checks: {bench.check.text()}")
        ok = bench.check.ok
        print(
            "delivery: " + ("every event arrived, in order, signatures valid" if ok else "FAILED")
        )
        return 0 if ok else 1
    finally:
        await db.close()


if __name__ == "__main__":
    raise SystemExit(main())

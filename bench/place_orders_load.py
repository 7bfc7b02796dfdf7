"""The load of bench/place_orders.py and bench/reads.py: one request (placeOrder, the
baseline's POST /orders, a read) from many keep-alive connections at once, each answer
checked, counted and timed, with the CPU the servers and this client spent meanwhile."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.light_client import Connection, HttpError, client_cpu_seconds, encode_head
from bench.proc import cpu_seconds, database_cpu_seconds
from bench.prom import LockHold, lock_hold_between, scrape_lock_hold

# The per-key rate limits lifted for the benches' ordergraph servers: a bench measures what a
# request costs, not the per-key policy (16 connections on one key would be throttled by
# design). The buckets are still charged and reconciled, as in a deployment.
UNTHROTTLED = {
    "ORDERGRAPH_RATE_LIMIT_CAPACITY": "1000000000",
    "ORDERGRAPH_RATE_LIMIT_RESTORE_PER_SECOND": "1000000000",
    "ORDERGRAPH_MAX_HEAVY_OPERATIONS_PER_KEY": "1000",
}

# What an answer means: None if it is what was wanted, else what is wrong with it.
Check = Callable[[int, bytes], str | None]


@dataclass
class Request:
    """One request: the JSON body and headers to send (one order in one store, one read)."""

    body: dict[str, Any]
    headers: dict[str, str]


def status_ok(status: int, body: bytes) -> str | None:
    return None if status == 200 else f"{status}: {body[:300]!r}"


def graphql_ok(field_name: str | None = None) -> Check:
    """A 200 with no `errors`; with `field_name`, a payload with no userErrors (a mutation)."""

    def check(status: int, body: bytes) -> str | None:
        if status != 200:
            return f"{status}: {body[:300]!r}"
        answer = json.loads(body)
        if answer.get("errors") or answer.get("data") is None:
            return f"errors: {body[:300]!r}"
        if field_name is not None:
            payload = answer["data"][field_name]
            if payload.get("userErrors") or not any(
                v is not None for k, v in payload.items() if k != "userErrors"
            ):
                return f"userErrors: {body[:300]!r}"
        return None

    return check


@dataclass
class Target:
    """How to send a request to a contender, and how to tell that it did what was asked.

    Connection i goes to process `urls[i % len(urls)]` and sends `requests[i % len(requests)]`
    (for placeOrder: orders in that store)."""

    name: str
    urls: list[str]
    path: str
    requests: list[Request]
    check: Check = status_ok
    metrics: bool = False  # whether the servers may expose the lock-hold histogram


@dataclass
class Result:
    name: str
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None
    cpu_seconds: float | None = None  # used by the contender's server processes, when known
    client_cpu_seconds: float | None = None  # used by the client (this process, or pgbench)
    db_cpu_seconds: float | None = None  # used by PostgreSQL's processes meanwhile
    lock_hold: LockHold | None = None  # from the servers' /metrics, when they have it

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

    @property
    def db_cpu_ms_per_order(self) -> float:
        if self.db_cpu_seconds is None or not self.orders:
            return float("nan")
        return self.db_cpu_seconds * 1000 / self.orders

    @property
    def client_cpu_ms_per_request(self) -> float:
        sent = self.orders + self.errors
        if self.client_cpu_seconds is None or not sent:
            return float("nan")
        return self.client_cpu_seconds * 1000 / sent

    def percentile_ms(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        index = min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))
        return ordered[index] * 1000


class _Spent:
    """The CPU the servers, PostgreSQL and this client use from now until `note`."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.server = cpu_seconds(pids)
        self.database = database_cpu_seconds()
        self.client = client_cpu_seconds()

    def note(self, result: Result) -> None:
        result.client_cpu_seconds = client_cpu_seconds() - self.client
        server, database = cpu_seconds(self.pids), database_cpu_seconds()
        if self.pids and self.server is not None and server is not None:
            result.cpu_seconds = server - self.server
        if self.database is not None and database is not None:
            result.db_cpu_seconds = database - self.database


@dataclass
class _Prepared:
    connection: Connection
    head: bytes
    body: bytes


def _prepare(target: Target, concurrency: int) -> list[_Prepared]:
    prepared = []
    for index in range(concurrency):
        connection = Connection(target.urls[index % len(target.urls)])
        request = target.requests[index % len(target.requests)]
        headers = {"Content-Type": "application/json", **request.headers}
        head = encode_head("POST", target.path, connection.authority, headers)
        prepared.append(_Prepared(connection, head, json.dumps(request.body).encode()))
    return prepared


async def drive(
    target: Target, concurrency: int, seconds: float, warmup: float, pids: list[int] | None = None
) -> Result:
    result = Result(target.name)
    prepared = _prepare(target, concurrency)

    async def worker(one: _Prepared, until: float, record: bool) -> None:
        while time.perf_counter() < until:
            began = time.perf_counter()
            try:
                status, body = await one.connection.request(one.head, one.body)
                problem = target.check(status, body)
            except HttpError as err:
                problem = str(err)
            if not record:
                continue
            if problem is None:
                result.latencies.append(time.perf_counter() - began)
            else:
                result.errors += 1
                result.first_error = result.first_error or problem

    try:
        if warmup > 0:
            until = time.perf_counter() + warmup
            await asyncio.gather(*(worker(one, until, False) for one in prepared))
        holds_before = await scrape_lock_hold(target.urls) if target.metrics else None
        spent = _Spent(pids or [])
        began = time.perf_counter()
        until = began + seconds
        await asyncio.gather(*(worker(one, until, True) for one in prepared))
        result.seconds = time.perf_counter() - began
        spent.note(result)
        if holds_before is not None:
            result.lock_hold = lock_hold_between(holds_before, await scrape_lock_hold(target.urls))
    finally:
        for one in prepared:
            await one.connection.close()
    return result

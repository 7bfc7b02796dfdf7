"""The load of bench/place_orders.py: placeOrder (or the baseline's POST /orders) from many
connections at once, each result counted and timed."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.proc import cpu_seconds


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

"""The baseline of bench/webhooks.py: the same HTTP posts from a bare asyncio loop.

A process of its own (its CPU is its own) posts prepared bodies (the exact bytes
ordergraph sent in the warm-up) to the receiver, one path per subscription: each
path's bodies one at a time, in order, the next only after a 2xx, all paths at once.
Each post carries what the worker's carry: `Content-Type`, `Ordergraph-Signature`
computed at send time with the path's secret (domain/webhooks.py `signature_header`, as
the worker does), `Ordergraph-Event-Id`, `Ordergraph-Topic` and the User-Agent, through
an httpx client configured as the worker's (ordergraph/webhooks.py `new_client`: no
redirects, no proxy from the environment, and no connection kept for another request),
the answer's body read up to the same cap. `keepalive=True` keeps connections instead:
what a connection per post costs.

`catchup`: every body is there at the start, posted as fast as the answers allow.
`sustained`: body i becomes available at `t0 + i / rate` (as ordergraph's orders are
placed) and is posted then, or as soon as the previous one of its path was answered.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import httpx

from ordergraph.domain.webhooks import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    TOPIC_HEADER,
    signature_header,
)

USER_AGENT = "ordergraph-webhooks/1"
MAX_RESPONSE_BYTES = 4096  # ORDERGRAPH_WEBHOOK_MAX_RESPONSE_BYTES's default
TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Job:
    base_url: str  # http://127.0.0.1:<receiver port>
    paths: dict[str, str]  # path -> secret
    bodies: list[bytes]
    mode: str  # "catchup" or "sustained"
    rate: float
    keepalive: bool


@dataclass(frozen=True)
class Done:
    posts: int
    failed: int
    first_error: str | None
    t0: float  # wall clock at the start (sustained: body i is due at t0 + i / rate)
    elapsed: float
    cpu_seconds: float  # this process's, during the posts


def baseline_process(job: Job, pipe: Connection) -> None:
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    pipe.send(runner(_run(job)))


def _headers(bodies: list[bytes]) -> list[tuple[str, str]]:
    """(event id, topic) of each body, read before the clock starts."""
    found = []
    for body in bodies:
        document = json.loads(body)
        found.append((document["id"], document["topic"]))
    return found


class _Poster:
    """Posts one job's bodies; counts the failed attempts."""

    def __init__(self, job: Job, client: httpx.AsyncClient) -> None:
        self.job = job
        self.client = client
        self.meta = _headers(job.bodies)
        self.failed = 0
        self.first_error: str | None = None

    async def post(self, url: str, secret: str, body: bytes, event: str, topic: str) -> bool:
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature_header([secret], int(time.time()), body),
            EVENT_ID_HEADER: event,
            TOPIC_HEADER: topic,
        }
        request = self.client.build_request("POST", url, content=body, headers=headers)
        response = await self.client.send(request, stream=True, follow_redirects=False)
        try:
            read = 0
            async for chunk in response.aiter_raw():
                read += len(chunk)
                if read >= MAX_RESPONSE_BYTES:
                    break
        finally:
            await response.aclose()
        return 200 <= response.status_code < 300

    async def attempt(self, url: str, secret: str, i: int) -> str | None:
        event, topic = self.meta[i]
        try:
            ok = await self.post(url, secret, self.job.bodies[i], event, topic)
        except httpx.HTTPError as err:
            return repr(err)
        return None if ok else "not a 2xx"

    async def one_path(self, path: str, secret: str, t0: float) -> None:
        job = self.job
        url = job.base_url + path
        for i in range(len(job.bodies)):
            if job.mode == "sustained":
                delay = t0 + i / job.rate - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            # At least once: again until a 2xx, as the worker would.
            while (problem := await self.attempt(url, secret, i)) is not None:
                self.failed += 1
                self.first_error = self.first_error or problem
                await asyncio.sleep(0.05)


async def _run(job: Job) -> Done:
    limits = httpx.Limits(max_keepalive_connections=None if job.keepalive else 0)
    async with httpx.AsyncClient(
        timeout=httpx.Timeout(TIMEOUT_SECONDS),
        follow_redirects=False,
        headers={"User-Agent": USER_AGENT},
        trust_env=False,
        limits=limits,
    ) as client:
        poster = _Poster(job, client)
        cpu0 = time.process_time()
        t0 = time.time()
        began = time.perf_counter()
        await asyncio.gather(*(poster.one_path(p, s, t0) for p, s in job.paths.items()))
        elapsed = time.perf_counter() - began
        cpu = time.process_time() - cpu0
    posts = len(job.paths) * len(job.bodies)
    return Done(posts, poster.failed, poster.first_error, t0, elapsed, cpu)

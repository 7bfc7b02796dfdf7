"""Webhook delivery by real server processes, to a receiver that fails at random, with a
process killed (SIGKILL) while it delivers: on PostgreSQL two processes deliver at once,
on SQLite one after the other.

Afterwards: every matching event arrived and was acknowledged, each request's signature
verifies, each subscription's requests came in log order (never an event before the
previous one was acknowledged), and an event was sent again only after a failed or cut
attempt (a 200 the receiver wrote after the worker's timeout is one: the worker never saw
it), or, for at most one event per subscription, because the killed process had sent it
and died before recording the answer."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from ordergraph.domain.webhooks import DeliveryStatus, WebhookTopic, event_id, verify
from ordergraph.resolvers import ids
from ordergraph.storage import tables as t
from ordergraph.storage.db import Database
from tests import conftest
from tests.client import Api
from tests.conftest import ADMIN_TOKEN, UNTHROTTLED, LiveServer
from tests.webhook_receiver import Answer, Received, Receiver

ORDERS = 1000
CREATE = """mutation($input: CreateWebhookSubscriptionInput!) {
  createWebhookSubscription(input: $input) { webhookSubscription { id } secret
    userErrors { message } } }"""
SERVER_ENV = {
    **UNTHROTTLED,
    "ORDERGRAPH_WEBHOOK_ALLOW_PRIVATE": "true",
    "ORDERGRAPH_WEBHOOK_TIMEOUT_SECONDS": "1",
    "ORDERGRAPH_WEBHOOK_BACKOFF_BASE_SECONDS": "1",
    "ORDERGRAPH_WEBHOOK_BACKOFF_MAX_SECONDS": "1",
    "ORDERGRAPH_WEBHOOK_CLAIM_SECONDS": "6",
    "ORDERGRAPH_WEBHOOK_POLL_MS": "100",
}


@dataclass
class Setup:
    url: str
    servers: list[LiveServer]
    folder: Path
    concurrent: bool  # PostgreSQL: two processes at once; SQLite: one after the other

    def start(self) -> LiveServer:
        log = self.folder / f"server-{len(self.servers)}.log"
        server = conftest.start_server(self.url, log, SERVER_ENV)
        self.servers.append(server)
        return server


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Setup]:
    if request.param == "postgres":
        url = request.getfixturevalue("own_pg_url")
    else:
        url = f"sqlite+aiosqlite:///{tmp_path}/hooks.db"
        conftest.run_outside_loop(conftest._migrate(url))
    found = Setup(url, [], tmp_path, concurrent=request.param == "postgres")
    try:
        yield found
    finally:
        for server in found.servers:
            if server.process.poll() is None:
                server.stop()


def flaky(rng: random.Random) -> Answer:
    roll = rng.random()
    if roll < 0.02:
        return 500
    if roll < 0.035:
        return "close"
    if roll < 0.04:
        return "timeout"
    return 200


async def expected_ids(url: str, store_gid: str) -> dict[str, list[str]]:
    """Per receiver path, the ids of every matching slot in log order, from the database."""
    store_id = ids.store_id(store_gid)
    assert store_id is not None
    db = Database(url)
    try:
        async with db.read() as conn:
            e, p = t.events, t.tally_points
            placed = await conn.execute(
                select(e.c.seq).where(
                    e.c.store_id == store_id, e.c.stream == "order", e.c.type == "PLACED"
                )
            )
            points = await conn.execute(select(p.c.seq).where(p.c.store_id == store_id))
            order_slots = [(2 * seq, seq, WebhookTopic.ORDER_PLACED) for (seq,) in placed]
            backlog_slots = [(2 * seq + 1, seq, WebhookTopic.BACKLOG_CHANGED) for (seq,) in points]
    finally:
        await db.dispose()

    def in_order(slots: list[tuple[int, int, WebhookTopic]]) -> list[str]:
        return [event_id(store_id, seq, topic) for _, seq, topic in sorted(slots)]

    return {"/a": in_order(order_slots), "/b": in_order(order_slots + backlog_slots)}


async def failures_logged(url: str, store_gid: str) -> dict[str, Counter[str]]:
    """Per receiver path, how many failed attempts the servers logged for each event id."""
    store_id = ids.store_id(store_gid)
    assert store_id is not None
    db = Database(url)
    try:
        async with db.read() as conn:
            ws, wd = t.webhook_subscriptions, t.webhook_deliveries
            rows = await conn.execute(
                select(ws.c.url, wd.c.seq, wd.c.topic)
                .join(ws, (ws.c.store_id == wd.c.store_id) & (ws.c.id == wd.c.subscription_id))
                .where(wd.c.store_id == store_id, wd.c.status != DeliveryStatus.SUCCEEDED.value)
            )
            found: dict[str, Counter[str]] = {}
            for url_, seq, topic in rows:
                path = "/" + str(url_).rsplit("/", 1)[1]
                found.setdefault(path, Counter())[event_id(store_id, seq, WebhookTopic(topic))] += 1
    finally:
        await db.dispose()
    return found


def check_order(
    requests: list[Received], expected: list[str], secret: str, failed: Counter[str]
) -> dict[str, int]:
    """Every request verified and in order; returns counts of the kinds of re-sends.

    `failed`: the failed attempts the servers logged per event. A receiver's 200 that
    came after the worker's timeout is a failure to the worker (it never saw the 200):
    such a re-send counts as `late_answer`, not `after_success`, up to the number of
    failures logged beyond the receiver's own non-200 answers for that event."""
    index = {event: i for i, event in enumerate(expected)}
    acked = -1
    attempted: set[str] = set()
    succeeded: set[str] = set()
    answered_failure: Counter[str] = Counter()
    late: Counter[str] = Counter()
    counts = {"after_failure": 0, "after_success": 0, "late_answer": 0}
    now = int(time.time())
    for request in requests:
        assert verify(request.headers["ordergraph-signature"], secret, request.body, now)
        event = request.json["id"]
        assert request.headers["ordergraph-event-id"] == event
        at = index[event]
        assert at <= acked + 1, f"event {at} sent before {acked + 1} was acknowledged"
        if event in succeeded:
            if late[event] < failed[event] - answered_failure[event]:
                late[event] += 1
                counts["late_answer"] += 1
            else:
                counts["after_success"] += 1
        elif event in attempted:
            counts["after_failure"] += 1
        attempted.add(event)
        if request.answer == 200:
            succeeded.add(event)
            acked = max(acked, at)
        else:
            answered_failure[event] += 1
    assert acked == len(expected) - 1, f"acknowledged {acked + 1} of {len(expected)}"
    assert succeeded == set(expected)
    return counts


async def place_orders(api: Api, store: Any, count: int, workers: int = 8) -> None:
    queue = list(range(count))

    async def run() -> None:
        while queue:
            queue.pop()
            result = await api.place(store, [("SKU", 1)])
            assert result["userErrors"] == [], result

    await asyncio.gather(*(run() for _ in range(workers)))


async def test_every_event_arrives_in_order_through_failures_and_a_killed_process(
    setup: Setup,
) -> None:
    """PostgreSQL: two processes deliver at once, one is killed. SQLite: one process
    delivers, is killed, and the next one started on the database takes over."""
    rng = random.Random(13)
    receiver = await Receiver(answer=lambda _: flaky(rng)).start()
    limits = httpx.Limits(max_connections=50)
    first = setup.start()
    second = setup.start() if setup.concurrent else first
    try:
        async with (
            httpx.AsyncClient(base_url=first.url, timeout=60, limits=limits) as one,
            httpx.AsyncClient(base_url=second.url, timeout=60, limits=limits) as two,
        ):
            api_one, api_two = Api(one, ADMIN_TOKEN, None), Api(two, ADMIN_TOKEN, None)
            store = await api_one.create_store(policy="ALLOW")
            await api_one.upsert(store, "SKU")
            secrets = {}
            for path, topics in (
                ("/a", ["ORDER_PLACED"]),
                ("/b", ["ORDER_PLACED", "BACKLOG_CHANGED"]),
            ):
                data = await api_one.gql(
                    CREATE,
                    {
                        "input": {
                            "storeId": store.id,
                            "url": receiver.url.replace("/hook", path),
                            "topics": topics,
                        }
                    },
                    token=store.token,
                )
                secrets[path] = data["createWebhookSubscription"]["secret"]
            half = ORDERS // 2
            await asyncio.gather(
                place_orders(api_one, store, half // 2),
                place_orders(api_two, store, half - half // 2),
            )
            # Kill the second process while deliveries are under way.
            before = len(receiver.received)
            for _ in range(200):
                if len(receiver.received) > before + 20:
                    break
                await asyncio.sleep(0.05)
            second.process.kill()
            second.process.wait()
        survivor = first if setup.concurrent else setup.start()
        async with httpx.AsyncClient(base_url=survivor.url, timeout=60, limits=limits) as http:
            await place_orders(Api(http, ADMIN_TOKEN, None), store, ORDERS - half)
            placed = time.monotonic()
            expected = await expected_ids(setup.url, store.id)
            wanted = expected
            assert len(wanted["/a"]) == ORDERS
            deadline = time.monotonic() + 400
            while time.monotonic() < deadline:
                done = all(
                    set(wanted[p])
                    <= {r.json["id"] for r in receiver.received if r.path == p and r.answer == 200}
                    for p in wanted
                )
                if done:
                    break
                await asyncio.sleep(0.5)
        took = time.monotonic() - placed
        logged = await failures_logged(setup.url, store.id)
        for path in wanted:
            requests = [r for r in receiver.received if r.path == path]
            counts = check_order(requests, wanted[path], secrets[path], logged.get(path, Counter()))
            failed = sum(1 for r in requests if r.answer != 200)
            print(
                f"\nsubscription {path}: {len(wanted[path])} events, {len(requests)} requests, "
                f"{failed} failed answers, re-sent {counts['after_failure']} after a failure, "
                f"{counts['late_answer']} after a 200 that came after the timeout and "
                f"{counts['after_success']} after a success (the kill); all acknowledged "
                f"{took:.1f} s after the last order"
            )
            # Only the killed process's last attempt can be sent again after a 2xx it got.
            assert counts["after_success"] <= 1, counts
        failures = [r for r in receiver.received if r.answer != 200]
        assert failures, "the receiver never failed: the test proves nothing"
    finally:
        await receiver.stop()

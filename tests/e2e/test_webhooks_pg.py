"""Webhook delivery by two real server processes on PostgreSQL, to a receiver that fails
at random, with one process killed (SIGKILL) while it delivers.

Afterwards: every matching event arrived and was acknowledged, each request's signature
verifies, each subscription's requests came in log order (never an event before the
previous one was acknowledged), and an event was sent again only after a failed or cut
attempt (or, for at most one event per subscription, because the killed process had
sent it and died before recording the answer)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from ordergraph.domain.webhooks import verify
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
    "ORDERGRAPH_WEBHOOK_CLAIM_SECONDS": "4",
    "ORDERGRAPH_WEBHOOK_POLL_MS": "100",
}
pytestmark = pytest.mark.postgres


@pytest.fixture
def servers(own_pg_url: str, tmp_path: Path) -> Iterator[list[LiveServer]]:
    started = [
        conftest.start_server(own_pg_url, tmp_path / f"server-{i}.log", SERVER_ENV)
        for i in range(2)
    ]
    yield started
    for server in started:
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


async def expected_ids(url: str, store_gid: str) -> dict[str, list[tuple[int, str]]]:
    """Per topic set, the (position, topic) of every matching slot, from the database."""
    from ordergraph.domain.webhooks import WebhookTopic, event_id
    from ordergraph.resolvers import ids

    store_id = ids.store_id(store_gid)
    dsn = url.replace("postgresql+asyncpg", "postgresql")
    conn = await asyncpg.connect(dsn)
    try:
        placed = await conn.fetch(
            "SELECT seq FROM events WHERE store_id = $1 AND stream = 'order' AND type = 'PLACED'",
            store_id,
        )
        points = await conn.fetch("SELECT seq FROM tally_points WHERE store_id = $1", store_id)
    finally:
        await conn.close()
    assert store_id is not None
    orders = [
        (2 * r["seq"], event_id(store_id, r["seq"], WebhookTopic.ORDER_PLACED)) for r in placed
    ]
    backlog = [
        (2 * r["seq"] + 1, event_id(store_id, r["seq"], WebhookTopic.BACKLOG_CHANGED))
        for r in points
    ]
    return {"/a": sorted(orders), "/b": sorted(orders + backlog)}


def check_order(requests: list[Received], expected: list[str], secret: str) -> dict[str, int]:
    """Every request verified and in order; returns counts of the kinds of re-sends."""
    index = {event: i for i, event in enumerate(expected)}
    acked = -1
    attempted: set[str] = set()
    succeeded: set[str] = set()
    counts = {"after_failure": 0, "after_success": 0}
    now = int(time.time())
    for request in requests:
        assert verify(request.headers["ordergraph-signature"], secret, request.body, now)
        event = request.json["id"]
        assert request.headers["ordergraph-event-id"] == event
        at = index[event]
        assert at <= acked + 1, f"event {at} sent before {acked + 1} was acknowledged"
        if event in succeeded:
            counts["after_success"] += 1
        elif event in attempted:
            counts["after_failure"] += 1
        attempted.add(event)
        if request.answer == 200:
            succeeded.add(event)
            acked = max(acked, at)
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


async def test_two_processes_deliver_every_event_in_order_through_failures_and_a_kill(
    servers: list[LiveServer], own_pg_url: str
) -> None:
    rng = random.Random(13)
    receiver = await Receiver(answer=lambda _: flaky(rng)).start()
    limits = httpx.Limits(max_connections=50)
    try:
        async with (
            httpx.AsyncClient(base_url=servers[0].url, timeout=60, limits=limits) as one,
            httpx.AsyncClient(base_url=servers[1].url, timeout=60, limits=limits) as two,
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
            servers[1].process.kill()
            servers[1].process.wait()
            await place_orders(api_one, store, ORDERS - half)
            placed = time.monotonic()
            expected = await expected_ids(own_pg_url, store.id)
            wanted = {path: [event for _, event in slots] for path, slots in expected.items()}
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
        for path in wanted:
            requests = [r for r in receiver.received if r.path == path]
            counts = check_order(requests, wanted[path], secrets[path])
            failed = sum(1 for r in requests if r.answer != 200)
            print(
                f"\nsubscription {path}: {len(wanted[path])} events, {len(requests)} requests, "
                f"{failed} failed answers, re-sent {counts['after_failure']} after a failure and "
                f"{counts['after_success']} after a success (the kill); all acknowledged "
                f"{took:.1f} s after the last order"
            )
            assert counts["after_success"] <= 1, counts
        failures = [r for r in receiver.received if r.answer != 200]
        assert failures, "the receiver never failed: the test proves nothing"
    finally:
        await receiver.stop()

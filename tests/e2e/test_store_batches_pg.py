"""Orders that reach one store together run in one unit of work (resolvers/batches.py),
against a served process on PostgreSQL: each decided in turn on what the earlier ones
left, the refused ones changing nothing, one lock and one commit for the lot; while they
wait, they hold no database connection, so other stores go on.

The store's lock is held by another connection while the orders arrive, so that they
queue in the server (its `ordergraph_store_queued_changes` gauge says when all have).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from bench.prom import CHANGES, parse
from ordergraph.resolvers.ids import store_id
from tests.api.boundary.test_http_deadline import store_locked, waiting_on_lock
from tests.client import ERRORS, Api, StoreHandle
from tests.conftest import ADMIN_TOKEN, UNTHROTTLED, start_server

PLACE = f"""mutation($input: PlaceOrderInput!) {{ placeOrder(input: $input) {{
  order {{ number }} {ERRORS} }} }}"""
QUEUED = "ordergraph_store_queued_changes"


def _sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


async def _metrics(http: httpx.AsyncClient) -> str:
    response = await http.get("/metrics")
    assert response.status_code == 200
    return response.text


async def _until_queued(http: httpx.AsyncClient, count: int) -> None:
    deadline = time.monotonic() + 30
    while (seen := _sample(await _metrics(http), QUEUED)) != count:
        assert time.monotonic() < deadline, f"the orders never queued: {seen} of {count}"
        await asyncio.sleep(0.05)


def _one(store: StoreHandle) -> dict[str, Any]:
    return {"input": {"storeId": store.id, "lines": [{"sku": "LOT", "quantity": 1}]}}


async def _until_waiting_on_lock(pg_url: str) -> None:
    deadline = time.monotonic() + 30
    while not await waiting_on_lock(pg_url):
        assert time.monotonic() < deadline, "no unit ever waited for the lock"
        await asyncio.sleep(0.02)


@asynccontextmanager
async def _served(
    pg_url: str, tmp_path: Path, stock: int, **env: str
) -> AsyncIterator[tuple[httpx.AsyncClient, Api, StoreHandle]]:
    """A served process on PostgreSQL and a store whose product LOT has `stock` units
    (DENY: no backorders)."""
    server = start_server(pg_url, tmp_path / "server.log", {**UNTHROTTLED, **env})
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            api = Api(http, ADMIN_TOKEN, None)
            yield http, api, await _stocked(api, stock)
    finally:
        server.stop()


async def _stocked(api: Api, stock: int) -> StoreHandle:
    store = await api.create_store(policy="DENY")
    await api.upsert(store, "LOT")
    await api.receive(store, "LOT", stock)
    return store


def _dsn(pg_url: str) -> str:
    return make_url(pg_url).set(drivername="postgresql").render_as_string(hide_password=False)


def _place(api: Api, store: StoreHandle, key: str | None = None) -> asyncio.Task[dict[str, Any]]:
    variables = _one(store)
    if key is not None:
        variables["input"]["idempotencyKey"] = key
    return asyncio.create_task(api.raw(PLACE, variables, token=store.token))


@pytest.mark.postgres
async def test_orders_queued_behind_a_busy_store_are_decided_in_turn_in_one_unit(
    pg_url: str, tmp_path: Path
) -> None:
    async with _served(pg_url, tmp_path, 5) as (http, api, store):
        before = parse(await _metrics(http), CHANGES)
        conn = await asyncpg.connect(_dsn(pg_url))
        sid = store_id(store.id)
        points = "SELECT count(*) FROM tally_points WHERE store_id = $1"
        points_before = await conn.fetchval(points, sid)

        async with store_locked(pg_url, store):
            # the first order's unit waits for the lock; the eleven others then queue
            tasks = [_place(api, store)]
            await _until_waiting_on_lock(pg_url)
            tasks += [_place(api, store) for _ in range(11)]
            await _until_queued(http, 11)
            # ... without a database connection each: the busy store holds one (a unit
            # per store at a time), and another store's orders go through
            # (the rest: background reads of the tail, webhooks and rate limits, if any)
            assert _sample(await _metrics(http), "ordergraph_db_pool_in_use") <= 5
            other = await _stocked(api, 1)
            elsewhere = await _place(api, other)
            assert elsewhere["data"]["placeOrder"]["order"]["number"] == 1001
            assert not any(task.done() for task in tasks)
        bodies = await asyncio.gather(*tasks)

        results = [body["data"]["placeOrder"] for body in bodies]
        placed = sorted(r["order"]["number"] for r in results if r["order"] is not None)
        refused = [r["userErrors"] for r in results if r["order"] is None]
        assert placed == [1001, 1002, 1003, 1004, 1005]
        assert len(refused) == 7
        assert all([e["code"] for e in errors] == ["INSUFFICIENT_STOCK"] for errors in refused)
        product = await api.product(store, "LOT")
        assert (product["allocated"], product["available"]) == (5, 0)

        after = parse(await _metrics(http), CHANGES)
        assert before is not None
        assert after is not None
        # two units of work: the first order alone, then the eleven queued behind it
        # (and three in the other store, one change each)
        assert (after.count - before.count, after.total - before.total) == (2 + 3, 12 + 3)
        assert await conn.fetchval(points, sid) == points_before + 2
        seqs = await conn.fetch("SELECT seq FROM events WHERE store_id = $1 ORDER BY seq", sid)
        assert [r["seq"] for r in seqs] == list(range(1, len(seqs) + 1))
        await conn.close()


@pytest.mark.postgres
async def test_orders_queued_behind_a_lock_that_outlives_their_deadline_change_nothing(
    pg_url: str, tmp_path: Path
) -> None:
    """Both requests go past ORDERGRAPH_OPERATION_TIMEOUT_MS: the one whose unit waits
    for the lock and the one queued behind it. The unit stops waiting; once the lock is
    free, no order has been placed, and the server places the next one at once."""
    timeout = {"ORDERGRAPH_OPERATION_TIMEOUT_MS": "1000"}
    async with _served(pg_url, tmp_path, 5, **timeout) as (http, api, store):
        async with store_locked(pg_url, store):
            bodies = await asyncio.gather(*(_place(api, store) for _ in range(2)))
            for body in bodies:
                assert body["errors"][0]["extensions"]["code"] == "TIMEOUT"
        assert _sample(await _metrics(http), QUEUED) == 0
        conn = await asyncpg.connect(_dsn(pg_url))
        try:
            count = "SELECT count(*) FROM orders WHERE store_id = $1"
            assert await conn.fetchval(count, store_id(store.id)) == 0
        finally:
            await conn.close()
        body = await _place(api, store)
        assert body["data"]["placeOrder"]["order"]["number"] == 1001


@pytest.mark.postgres
async def test_keyed_orders_queued_together_share_a_unit_and_a_retry_finds_its_order(
    pg_url: str, tmp_path: Path
) -> None:
    """Five orders with their own idempotency keys queue behind a busy store, then
    retries of two of them: the five run in one unit (their records read together), the
    retries in the next, and each retry answers its first order."""
    async with _served(pg_url, tmp_path, 100) as (http, api, store):
        before = parse(await _metrics(http), CHANGES)
        async with store_locked(pg_url, store):
            first = _place(api, store, "k0")
            await _until_waiting_on_lock(pg_url)
            keyed = [_place(api, store, f"k{i}") for i in range(1, 6)]
            await _until_queued(http, 5)
            retries = [_place(api, store, "k1"), _place(api, store, "k3")]
            await _until_queued(http, 7)
        bodies = await asyncio.gather(first, *keyed, *retries)

        numbers = [body["data"]["placeOrder"]["order"]["number"] for body in bodies]
        assert sorted(numbers[:6]) == [1001, 1002, 1003, 1004, 1005, 1006]
        assert numbers[6:] == [numbers[1], numbers[3]]
        product = await api.product(store, "LOT")
        assert product["allocated"] == 6
        after = parse(await _metrics(http), CHANGES)
        assert before is not None
        assert after is not None
        # units of 1 (k0, alone with the lock), 5 (k1..k5) and 2 (the two retries)
        assert (after.count - before.count, after.total - before.total) == (3, 8)
        assert after.buckets[4.0] - before.buckets[4.0] == 2  # the 5 is in no bucket <= 4

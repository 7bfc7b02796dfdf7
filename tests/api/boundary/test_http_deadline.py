"""Deadlines and cancellation over HTTP, on SQLite and PostgreSQL: an operation past
ORDERGRAPH_OPERATION_TIMEOUT_MS is stopped and answered TIMEOUT, its database connections
go back to the pool and it changes nothing; an operation whose client went away is
stopped too.

The slow operation is a real one: `placeOrder` waiting for the store's write lock,
held by another connection (PostgreSQL: a row lock on the store; SQLite: the database's
write lock).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from ordergraph.app import create_app
from ordergraph.http_request import GRAPHQL_RESPONSE
from ordergraph.resolvers.ids import store_id
from ordergraph.settings import Settings
from ordergraph.storage.db import Database
from tests.client import Api, StoreHandle
from tests.conftest import ADMIN_TOKEN, start_server

PLACE = """mutation Place($input: PlaceOrderInput!) { placeOrder(input: $input) {
    order { number } userErrors { code } } }"""


def place_body(store: StoreHandle) -> dict[str, Any]:
    return {
        "query": PLACE,
        "variables": {"input": {"storeId": store.id, "lines": [{"sku": "A", "quantity": 1}]}},
    }


def headers(store: StoreHandle, accept: str = GRAPHQL_RESPONSE) -> dict[str, str]:
    return {"authorization": f"Bearer {store.token}", "accept": accept}


@asynccontextmanager
async def store_locked(db_url: str, store: StoreHandle) -> AsyncIterator[None]:
    """Another connection holds the lock placeOrder needs, until the block ends."""
    url = make_url(db_url)
    if url.drivername.startswith("sqlite"):
        conn = sqlite3.connect(str(url.database), isolation_level=None, timeout=30)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    holder = await asyncpg.connect(dsn)
    try:
        lock = holder.transaction()
        await lock.start()
        await holder.execute(
            "SELECT id FROM stores WHERE id = $1 FOR NO KEY UPDATE", store_id(store.id)
        )
        try:
            yield
        finally:
            await lock.rollback()
    finally:
        await holder.close()


async def waiting_on_lock(db_url: str) -> int:
    """PostgreSQL backends of this database waiting for a lock."""
    dsn = make_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return count
    finally:
        await conn.close()


async def order_count(api: Api, store: StoreHandle) -> int:
    data = await api.gql(
        "query($h: String!) { store(handle: $h) { orders { totalCount } } }",
        {"h": store.handle},
        token=store.token,
    )
    count: int = data["store"]["orders"]["totalCount"]
    return count


@pytest.fixture
async def slow_app(database: Database) -> AsyncIterator[tuple[Api, httpx.AsyncClient, Database]]:
    """The app with the default deadline (to set up), and the same app with a 400 ms
    deadline, on one pool of their own (to count what they hold)."""
    db = Database(database.url, pool_size=5)
    settings = Settings(database_url=db.url, admin_token=ADMIN_TOKEN)
    hurried = settings.with_overrides(operation_timeout_ms=400)
    async with (
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(settings, db=db)),
            base_url="http://test",
            timeout=60,
        ) as http,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(hurried, db=db)),
            base_url="http://test",
            timeout=60,
        ) as slow,
    ):
        yield Api(http, ADMIN_TOKEN, db), slow, db
    await db.dispose()


def checked_out(db: Database) -> int:
    pool: Any = db.engine.pool
    return int(pool.checkedout())


async def test_past_its_deadline_an_operation_is_stopped_and_gives_its_connection_back(
    slow_app: tuple[Api, httpx.AsyncClient, Database],
) -> None:
    api, slow, db = slow_app
    store = await api.create_store()
    await api.upsert(store, "A", backorderPolicy="ALLOW")
    before = checked_out(db)
    async with store_locked(db.url, store):
        started = time.perf_counter()
        strict = await slow.post("/graphql", json=place_body(store), headers=headers(store))
        took = time.perf_counter() - started
        assert strict.status_code == 504, strict.text
        assert strict.json()["errors"][0]["extensions"]["code"] == "TIMEOUT"
        assert "data" not in strict.json()
        assert 0.35 < took < 2.5, took
        legacy = await slow.post(
            "/graphql", json=place_body(store), headers=headers(store, "application/json")
        )
        assert legacy.status_code == 200
        assert legacy.json()["errors"][0]["extensions"]["code"] == "TIMEOUT"
        if not db.is_sqlite:
            # The waiting statements were cancelled, their connections are back. (A cancel
            # request reaches its backend a moment later on a loaded machine: up to 2 s.)
            # On Citus the coordinator's backend also waits for the worker's to be
            # cancelled before it answers, and the connection comes back then.
            waiting = await waiting_on_lock(db.url)
            for _ in range(40):
                if waiting == 0 and checked_out(db) == before:
                    break
                await asyncio.sleep(0.05)
                waiting = await waiting_on_lock(db.url)
            assert waiting == 0
            assert checked_out(db) == before
    # Once the lock is gone: nothing was placed, and the next order goes through.
    for _ in range(100):  # SQLite: a blocked driver call finishes in its thread first
        if checked_out(db) == before:
            break
        await asyncio.sleep(0.05)
    assert checked_out(db) == before
    assert await order_count(api, store) == 0
    placed = await api.http.post("/graphql", json=place_body(store), headers=headers(store))
    assert placed.status_code == 200, placed.text
    assert placed.json()["data"]["placeOrder"]["order"]["number"] == 1001
    metrics = (await slow.get("/metrics")).text
    assert 'operation="Place",outcome="timeout",type="mutation"} 2.0' in metrics


@contextmanager
def live(database: Database, tmp_path: Path) -> Iterator[str]:
    server = start_server(
        database.url,
        tmp_path / "server.log",
        {"ORDERGRAPH_LOG_LEVEL": "INFO", "ORDERGRAPH_OPERATION_TIMEOUT_MS": "30000"},
    )
    try:
        yield server.url
    finally:
        server.stop()


@pytest.mark.e2e  # starts a process
async def test_when_the_client_goes_away_its_operation_is_stopped(
    database: Database, tmp_path: Path
) -> None:
    with live(database, tmp_path) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            api = Api(http, ADMIN_TOKEN, None)
            store = await api.create_store()
            await api.upsert(store, "A", backorderPolicy="ALLOW")
            async with store_locked(database.url, store):
                async with httpx.AsyncClient(base_url=url, timeout=0.7) as impatient:
                    with pytest.raises(httpx.ReadTimeout):
                        await impatient.post(
                            "/graphql", json=place_body(store), headers=headers(store)
                        )
                if not database.is_sqlite:
                    for _ in range(50):  # the server notices and cancels the statement
                        if await waiting_on_lock(database.url) == 0:
                            break
                        await asyncio.sleep(0.05)
                    assert await waiting_on_lock(database.url) == 0
                await asyncio.sleep(0.5)
            await asyncio.sleep(0.5)
            assert await order_count(api, store) == 0
            placed = await http.post("/graphql", json=place_body(store), headers=headers(store))
            assert placed.json()["data"]["placeOrder"]["order"]["number"] == 1001
    lines = [
        json.loads(line)
        for line in (tmp_path / "server.log").read_text().splitlines()
        if line.startswith("{")
    ]
    abandoned = [e for e in lines if e.get("operation") == "Place" and e.get("status") == 499]
    assert len(abandoned) == 1, abandoned
    assert abandoned[0]["outcome"] == "cancelled", abandoned
    assert not [e for e in lines if e.get("level") == "ERROR"]

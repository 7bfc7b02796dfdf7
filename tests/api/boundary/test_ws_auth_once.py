"""The token is looked up once per request, concurrent requests share a lookup, and the
short per-process cache (auth_cache_seconds) bounds how long another process's
revocation takes to reach HTTP requests here."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
from sqlalchemy import event

from ordergraph.app import create_app
from ordergraph.clock import Clock
from ordergraph.settings import Settings
from ordergraph.storage.db import Database
from tests.client import Api
from tests.conftest import ADMIN_TOKEN
from tests.ws_support import make_key, revoke_by_api, shop

STORES = "{ stores(first: 5) { nodes { id } } }"
NODES = "query($ids: [ID!]!) { nodes(ids: $ids) { id ... on Order { number } } }"


@contextmanager
def token_lookups(db: Database) -> Iterator[list[str]]:
    """The SELECTs by token hash the database is sent while the block runs."""
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        text = statement.lstrip().upper()
        if text.startswith("SELECT") and "TOKEN_HASH =" in text:
            seen.append(statement)

    engine = db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", note)


@asynccontextmanager
async def app_api(db: Database, **settings: Any) -> AsyncIterator[Api]:
    """One app (as one server process would be) on the test database."""
    app = create_app(
        Settings(database_url=db.url, admin_token=ADMIN_TOKEN).with_overrides(**settings),
        clock=Clock(),
        db=db,
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield Api(http, ADMIN_TOKEN, db)


async def test_a_request_resolving_250_nodes_looks_its_token_up_once(database: Database) -> None:
    async with app_api(database) as api:
        store = await shop(api)
        orders = [(await api.place(store, [("A", 1)]))["order"]["id"] for _ in range(5)]
        key = await make_key(api, [store], ["READ"], "reader")
        wanted = [orders[i % 5] for i in range(249)] + [store.id]

        with token_lookups(database) as seen:
            body = await api.raw(NODES, {"ids": wanted}, token=key.token)
        assert "errors" not in body, body
        assert len(body["data"]["nodes"]) == 250
        assert len(seen) == 1

        with token_lookups(database) as seen:  # within auth_cache_seconds: none
            assert "errors" not in await api.raw(NODES, {"ids": wanted}, token=key.token)
        assert seen == []


async def test_concurrent_requests_with_one_token_share_one_lookup(database: Database) -> None:
    async with app_api(database) as api:
        store = await shop(api)
        key = await make_key(api, [store], ["READ"], "busy")
        with token_lookups(database) as seen:
            bodies = await asyncio.gather(*(api.raw(STORES, token=key.token) for _ in range(20)))
        assert all("errors" not in body for body in bodies)
        assert len(seen) == 1
        # Unknown tokens are cached too: guessing costs no query per try within the window.
        with token_lookups(database) as seen:
            for _ in range(5):
                body = await api.raw(STORES, token="og_guess")
                assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert len(seen) == 1


async def test_without_the_cache_each_request_still_looks_its_token_up_once(
    database: Database,
) -> None:
    async with app_api(database, auth_cache_seconds=0) as api:
        store = await shop(api)
        key = await make_key(api, [store], ["READ"], "uncached")
        with token_lookups(database) as seen:
            for _ in range(3):
                assert "errors" not in await api.raw(STORES, token=key.token)
        assert len(seen) == 3


async def test_a_revocation_in_another_process_reaches_http_requests_within_the_cache_time(
    database: Database,
) -> None:
    """Two apps on one database stand for two processes: the one that revokes refuses the
    key at once; the other within auth_cache_seconds (2 s)."""
    async with app_api(database) as here, app_api(database) as there:
        store = await shop(here)
        key = await make_key(here, [store], ["READ"], "partner")
        assert "errors" not in await there.raw(STORES, token=key.token)  # cached there

        await revoke_by_api(here, key)
        revoked = time.monotonic()
        body = await here.raw(STORES, token=key.token)
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        while "errors" not in (body := await there.raw(STORES, token=key.token)):
            assert time.monotonic() - revoked < 5  # the promise is 5 s; the cache holds 2 s
            await asyncio.sleep(0.05)
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert time.monotonic() - revoked < 5

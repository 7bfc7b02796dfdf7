"""Pooled connections the server closed are dropped at checkout, without a ping.

The pool does not ping a connection before handing it out (that cost three round trips
per request); the driver knows a connection is closed once the server said so. After
every backend of the app is terminated (as a database restart does), the next requests
are answered, none with an error: a change retries its BEGIN on another connection.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from ordergraph.storage.db import Database
from tests.client import Api


async def _terminate_backends(url: str) -> int:
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    try:
        ended: int = await conn.fetchval(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()) AS t"
        )
        return ended
    finally:
        await conn.close()


async def test_after_the_servers_backends_end_the_next_requests_are_answered(
    pg_api: Api,
) -> None:
    api = pg_api
    assert isinstance(api.db, Database)
    store = await api.create_store(policy="ALLOW")
    assert (await api.upsert(store, "A"))["userErrors"] == []
    for _ in range(3):
        assert (await api.place(store, [("A", 1)]))["userErrors"] == []
    assert await _terminate_backends(api.db.url) >= 1
    for number in (1004, 1005):
        placed = await api.place(store, [("A", 1)])
        assert placed["userErrors"] == []
        assert placed["order"]["number"] == number
    assert (await api.product(store, "A"))["backordered"] == 5
    # And a read first, after the backends ended again. A read has no retry: it relies
    # on the driver having read the close, which the event loop does within moments (a
    # read racing the close itself can still fail once: docs/operations.md).
    assert await _terminate_backends(api.db.url) >= 1
    await asyncio.sleep(0.2)
    assert (await api.product(store, "A"))["backordered"] == 5


async def test_a_checkout_is_given_back_clean_with_or_without_a_driver_transaction(
    pg_url: str,
) -> None:
    """A checkout of `Database.connection` runs in autocommit; one whose driver was left
    in a transaction (autocommit switched off inside) is rolled back when it is given
    back: the next checkout of the same connection (one connection in the pool) is in no
    transaction and sees no row of the rolled-back one."""
    db = Database(pg_url, pool_size=1)
    try:
        async with db.connection() as conn:
            raw: Any = (await conn.get_raw_connection()).driver_connection
            await conn.exec_driver_sql("CREATE TEMP TABLE given_back (n int)")
        async with db.connection() as conn:
            adapted: Any = (await conn.get_raw_connection()).dbapi_connection
            adapted.autocommit = False  # the driver begins a transaction at the next statement
            await conn.exec_driver_sql("INSERT INTO given_back VALUES (1)")
            assert adapted._transaction is not None
        async with db.connection() as conn:
            again: Any = (await conn.get_raw_connection()).driver_connection
            assert again is raw
            assert not again.is_in_transaction()
            rows = (await conn.exec_driver_sql("SELECT count(*) FROM given_back")).scalar()
            assert rows == 0
    finally:
        await db.dispose()

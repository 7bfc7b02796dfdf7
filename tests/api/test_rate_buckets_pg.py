"""The rate buckets shared through PostgreSQL (storage/buckets.py): a reconciliation adds
each bucket's charges to its shared level, which leaks at the restore rate, however many
buckets a process sends; and its statements are built once per process, so that a
reconciliation landing in the middle of a read builds no SQL expression."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.sql import coercions

from ordergraph.storage import buckets
from ordergraph.storage import tables as t
from ordergraph.storage.db import Database
from tests.client import Api
from tests.conftest import ADMIN_TOKEN, app_client

pytestmark = pytest.mark.postgres


@pytest.fixture
async def database(pg_url: str) -> AsyncIterator[Database]:
    db = Database(pg_url, pool_size=4)
    yield db
    await db.dispose()


async def bucket_keys(database: Database, stores: int) -> list[buckets.BucketKey]:
    """(store id, key id) of the keys of `stores` new stores."""
    async with app_client(database) as http:
        api = Api(http, ADMIN_TOKEN, database)
        for _ in range(stores):
            await api.create_store()
    k = t.api_key_stores
    async with database.read() as conn:
        rows = (await conn.execute(select(k.c.store_id, k.c.api_key_id))).all()
    keys = sorted({(int(r.store_id), int(r.api_key_id)) for r in rows})
    return keys[-stores:]  # the new stores' (the database is shared with other tests)


async def test_levels_add_up_in_one_statement_and_leak_at_the_rate(database: Database) -> None:
    """Five buckets go out in one statement and every bucket's level comes back; a second
    reconciliation adds to the first, less what leaked meanwhile (a slow rate: less than a
    point in the test's time); a fast rate empties them, and forget_empty deletes them."""
    keys = await bucket_keys(database, 5)
    sent: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(statement)

    first = {key: 10.0 + i for i, key in enumerate(keys)}
    event.listen(database.engine.sync_engine, "before_cursor_execute", count)
    try:
        async with database.connection() as conn:
            levels = await buckets.reconcile(conn, first, rate=0.001)
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", count)
    assert levels == pytest.approx(first)
    assert len([s for s in sent if "rate_buckets" in s]) == 1, sent
    async with database.connection() as conn:
        levels = await buckets.reconcile(conn, {keys[0]: 5.0, keys[4]: 1.0}, rate=0.001)
    assert levels == pytest.approx({keys[0]: 15.0, keys[4]: 15.0}, abs=0.05)
    # (The database is shared with other tests: their buckets may go too.)
    r = t.rate_buckets
    async with database.connection() as conn:
        assert await buckets.forget_empty(conn, rate=1e9) >= 5
        left = (await conn.execute(select(r.c.store_id, r.c.api_key_id))).all()
    assert not set(keys) & {(int(s), int(k)) for s, k in left}


async def test_a_reconciliation_builds_its_statements_once(
    database: Database, monkeypatch: Any
) -> None:
    built: list[str] = []
    expect = coercions.expect

    def counting(role: Any, element: Any, *args: Any, **kwargs: Any) -> Any:
        built.append(type(element).__name__)
        return expect(role, element, *args, **kwargs)

    keys = await bucket_keys(database, 3)
    for round_ in range(3):
        monkeypatch.setattr(coercions, "expect", counting)
        built.clear()
        async with database.connection() as conn:
            levels = await buckets.reconcile(conn, {key: 1.0 for key in keys}, rate=0.001)
            await buckets.forget_empty(conn, rate=0.001)
        monkeypatch.setattr(coercions, "expect", expect)
        assert levels == pytest.approx({key: 1.0 + round_ for key in keys}, abs=0.05)
        if round_ > 0:  # (the first may build them)
            assert built == [], built

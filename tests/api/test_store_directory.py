"""Store handles are unique through the store directory (migration 0008): one store per
handle however many ask for it at once, and a handle is found, and a token resolved to
its stores, from the directory and the key tables alone (reference tables on Citus:
storage/distribution.py). On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from ordergraph.storage.db import Database
from ordergraph.storage.distribution import TABLES, distribute, has_citus
from ordergraph.storage.migrate import downgrade, upgrade
from tests.api.test_schema_and_queries_count import counting_statements
from tests.client import Api
from tests.conftest import ADMIN_TOKEN, _pg_admin_dsn, app_client, without_placements

CREATE_STORE = """mutation($input: CreateStoreInput!) { createStore(input: $input) {
  store { id handle } token userErrors { field code } } }"""
STORE = """query($h: String!) { store(handle: $h) { id handle name } }"""
GLOBAL_TABLES = {name for name, layout in TABLES.items() if layout == "reference"}


def _store_input(handle: str) -> dict[str, object]:
    return {"input": {"handle": handle, "name": "Race", "currencyCode": "EUR", "timezone": "UTC"}}


async def _count(db: Database, sql: str, **params: object) -> int:
    async with db.read() as conn:
        return int(await conn.scalar(text(sql), params) or 0)


async def test_eight_stores_asked_at_once_with_one_handle_make_one(api: Api) -> None:
    handle = "race-" + uuid.uuid4().hex[:8]

    results = await asyncio.gather(
        *(api.gql(CREATE_STORE, _store_input(handle), token=ADMIN_TOKEN) for _ in range(8))
    )

    payloads = [r["createStore"] for r in results]
    made = [p for p in payloads if p["store"] is not None]
    assert len(made) == 1, payloads
    refused = [p["userErrors"] for p in payloads if p["store"] is None]
    assert refused == [[{"field": ["input", "handle"], "code": "DUPLICATE"}]] * 7
    assert api.db is not None
    assert await _count(api.db, "SELECT count(*) FROM stores WHERE handle = :h", h=handle) == 1
    in_directory = "SELECT count(*) FROM store_directory WHERE handle = :h"
    assert await _count(api.db, in_directory, h=handle) == 1
    found = await api.gql(STORE, {"h": handle}, token=made[0]["token"])
    assert found["store"]["handle"] == handle


def _tables_read(statement: str) -> set[str]:
    return set(re.findall(r'(?:FROM|JOIN|UPDATE|INTO)\s+"?(\w+)', statement, re.IGNORECASE))


async def test_a_token_is_resolved_from_the_key_tables_and_a_handle_from_the_directory(
    api: Api,
) -> None:
    store = await api.create_store()
    assert api.db is not None
    async with app_client(api.db, auth_cache_seconds=0) as http:
        reader = Api(http, ADMIN_TOKEN, api.db)
        with counting_statements(api.db) as statements:
            found = await reader.gql(STORE, {"h": store.handle}, token=store.token)

    assert found["store"] == {
        "id": store.id,
        "handle": store.handle,
        "name": found["store"]["name"],
    }
    # (the rate limit's reconciliation writes its buckets in the background, whenever it
    # falls due: its upserts are not the request's reads)
    reads = [_tables_read(s) for s in statements if _tables_read(s) and "rate_buckets" not in s]
    # the store's own row is read last, in one statement, through the directory
    assert reads[-1] == {"stores", "store_directory"}, statements[-1]
    before = set().union(*reads[:-1])
    assert before <= GLOBAL_TABLES, statements


async def test_the_migrated_database_holds_exactly_the_classified_tables(
    database: Database,
) -> None:
    async with database.read() as conn:
        names = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
    assert without_placements(names) == set(TABLES)


# -- migration 0008 on a database of stores made before it ---------------------------


@asynccontextmanager
async def _fresh(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'before.db'}"
        return
    base = request.getfixturevalue("pg_url")  # skips or fails as the other PostgreSQL tests
    name = f"ordergraph_0008_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(_pg_admin_dsn())
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.rsplit("/", 1)[0] + "/" + name
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


BEFORE = [
    "INSERT INTO stores (id, handle, name, currency_code, timezone, default_backorder_policy,"
    " created_at) VALUES (1, 'north', 'N', 'EUR', 'UTC', 'DENY', '2026-01-01 00:00:00+00'),"
    " (2, 'south', 'S', 'EUR', 'UTC', 'DENY', '2026-01-01 00:00:00+00')",
    "INSERT INTO products (store_id, id, sku, title, price, backorder_policy, on_hand,"
    " allocated, backordered, created_at)"
    " VALUES (1, 1, 'MUG', 'Mug', 100000, 'DENY', 3, 0, 0, '2026-01-01 00:00:00+00')",
    "INSERT INTO api_keys (id, name, token_hash, scopes, created_at)"
    " VALUES (1, 'both', 'x', 'READ', '2026-01-01 00:00:00+00')",
    "INSERT INTO api_key_stores (store_id, api_key_id) VALUES (1, 1), (2, 1)",
]
SECOND_NORTH = (
    "INSERT INTO stores (id, handle, name, currency_code, timezone, default_backorder_policy,"
    " created_at) VALUES (3, 'north', 'N2', 'EUR', 'UTC', 'DENY', '2026-01-01 00:00:00+00')"
)


async def _refused(db: Database, statement: str) -> bool:
    try:
        async with db.engine.begin() as conn:
            await conn.execute(text(statement))
            await conn.rollback()
    except IntegrityError:
        return True
    return False


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_0008_fills_the_directory_from_the_stores_and_is_undone(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    async with _fresh(kind, tmp_path, request) as url:
        db = Database(url)
        try:
            await upgrade(db, "0007")
            async with db.engine.begin() as conn:
                for statement in BEFORE:
                    await conn.execute(text(statement))

            await upgrade(db)

            async with db.read() as conn:
                directory = (await conn.execute(text("SELECT * FROM store_directory"))).all()
            assert sorted(tuple(row) for row in directory) == [(1, "north"), (2, "south")]
            assert await _count(db, "SELECT count(*) FROM api_key_stores") == 2
            assert await _count(db, "SELECT count(*) FROM products") == 1
            # the directory holds handles unique; the stores' rows no longer need to
            assert not await _refused(db, SECOND_NORTH)
            taken = "INSERT INTO store_directory (store_id, handle) VALUES (3, 'north')"
            assert await _refused(db, taken)

            await downgrade(db, "0007")

            async with db.read() as conn:
                names = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
            assert "store_directory" not in names
            assert await _count(db, "SELECT count(*) FROM api_key_stores") == 2
            assert await _refused(db, SECOND_NORTH)  # unique on the stores again

            await upgrade(db)
            assert await _count(db, "SELECT count(*) FROM store_directory") == 2
        finally:
            await db.dispose()


async def test_after_migrate_the_distribution_step_has_nothing_left_to_lay_out(
    pg_url: str,
) -> None:
    """Without citus it lays out nothing; on a Citus coordinator (docs/citus.md) migrate
    has laid every table out as TABLES says, a second step changes nothing, and the
    database's sessions read pg_class without Citus's shard-hiding filter."""
    db = Database(pg_url)
    try:
        async with db.engine.begin() as conn:
            assert await distribute(conn) == []
            if not await has_citus(conn):
                return
            rows = await conn.execute(
                text(
                    "SELECT logicalrelid::text, partmethod::text, column_to_column_name("
                    "logicalrelid, partkey) FROM pg_dist_partition"
                )
            )
            laid = {
                name: ("distributed", column) if method == "h" else "reference"
                for name, method, column in rows
            }
        assert laid == {n: layout for n, layout in TABLES.items() if layout != "local"}
        # The database's sessions read pg_class unfiltered: asyncpg's first look-up of a
        # type on a connection took 1.2 s through Citus's shard-hiding filter.
        async with db.engine.connect() as conn:
            shown = await conn.scalar(text("SHOW citus.override_table_visibility"))
        assert shown == "off"
    finally:
        await db.dispose()

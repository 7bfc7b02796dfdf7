"""A freshly migrated PostgreSQL database keeps index plans while its tables grow.

Connections keep the plans of foreign-key checks (order_lines -> orders, events ->
orders, ...) and of the hot queries until the next ANALYZE of the table. Planned while
the planner takes `orders` for a tiny table (analyzed empty, or at a few dozen rows by
autovacuum's first pass), every check then scans the whole table. `upgrade` (run by
`migrate`, `serve` and `seed-demo`) must leave a fresh database where that cannot happen:
2,000 orders placed through a few long-lived connections add no sequential scan of
`orders` or `order_lines`.

Statistics are read once the pool's connections have exited (a backend reports its
counts when it ends), so the counts are complete.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import event

from ordergraph.app import create_app
from ordergraph.domain import services
from ordergraph.domain.commands import CancelOrder, PlaceOrder, ShipOrder, reads_of
from ordergraph.domain.model import BackorderPolicy, CancelReason
from ordergraph.settings import Settings
from ordergraph.storage import statistics
from ordergraph.storage.admin import create_store
from ordergraph.storage.db import Database
from ordergraph.storage.migrate import upgrade
from ordergraph.storage.statistics import first_statistics
from ordergraph.storage.uow import store_session
from tests.conftest import (
    ADMIN_TOKEN,
    CITUS_WORKERS,
    _create_pg_database,
    _drop_pg_database,
    _pg_admin_dsn,
)

pytestmark = pytest.mark.postgres

ORDERS = 2000  # the analyzed-empty case shows with a quarter of them
CONNECTIONS = 4
PRODUCTS = 20
WATCHED = ("orders", "order_lines")
# Orders placed between two looks of the served process's first statistics (it looks every
# second: a new store taking 50 orders a second).
FIRST_STATS_EVERY = 50
# Rows of a watched table an order's writes may fetch by index once it has statistics:
# its lines' and events' foreign-key checks find one row of `orders` each (measured: 3.0
# per order of two lines; a check that matches only the store reads hundreds).
FETCHED_PER_ORDER = 5


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@pytest.fixture
async def fresh(pg_url: str) -> AsyncIterator[str]:
    """A freshly created and migrated database of its own (pg_url: PostgreSQL is up)."""
    if CITUS_WORKERS:
        # The orders' rows, their scans and their statistics live in the workers' shards,
        # and Citus keeps a daemon connected to every database: what these tests read on
        # one PostgreSQL does not exist on the coordinator (docs/citus.md).
        pytest.skip("one PostgreSQL's planner statistics: not the coordinator's on Citus")
    name = f"ordergraph_plans_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    await _create_pg_database(name)
    try:
        yield name
    finally:
        await _drop_pg_database(name)


async def _table_reads(name: str, watched: tuple[str, ...] = WATCHED) -> dict[str, tuple[int, int]]:
    """(sequential scans, rows fetched by index scans) per watched table, once no other
    backend is connected."""
    conn = await asyncpg.connect(_pg_admin_dsn(name))
    try:
        for _ in range(200):
            others = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            if others == 0:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the pool's connections did not exit")
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        rows = await conn.fetch(
            "SELECT relname, seq_scan, coalesce(idx_tup_fetch, 0) AS fetched"
            " FROM pg_stat_user_tables WHERE relname = ANY($1)",
            list(watched),
        )
    finally:
        await conn.close()
    return {row["relname"]: (row["seq_scan"], row["fetched"]) for row in rows}


async def _seq_scans(name: str, watched: tuple[str, ...] = WATCHED) -> dict[str, int]:
    """Sequential scans per watched table, once no other backend is connected."""
    return {table: scans for table, (scans, _) in (await _table_reads(name, watched)).items()}


async def _open_store(url: str, products: int = PRODUCTS, stock_every: int = 1) -> int:
    """A store of `products` products, every `stock_every`-th of them in stock."""
    db = Database(url)
    try:
        store, _ = await create_store(
            db,
            handle="plans",
            name="Plans",
            currency_code="EUR",
            timezone="UTC",
            default_policy=BackorderPolicy.ALLOW,
            now=now(),
        )
        async with store_session(db, store.id, now) as session:
            for i in range(products):
                await services.upsert_product(
                    session, services.UpsertProduct(f"SKU-{i}", f"Product {i}", "9.99")
                )
                if i % stock_every == 0:
                    await services.receive_stock(session, f"SKU-{i}", 1_000_000)
    finally:
        await db.dispose()
    return store.id


async def _autovacuum_pass(name: str) -> None:
    """What autovacuum's analyze pass does, made deterministic: ANALYZE each table whose
    rows added since its last ANALYZE exceed its threshold (the table's own storage
    parameters, else the server's settings). Updates count for autovacuum too: this is
    the gentler side of it."""
    conn = await asyncpg.connect(_pg_admin_dsn(name))
    try:
        await conn.execute("SET enable_seqscan = off")  # its counting is no scan to count
        base = await conn.fetchval("SELECT current_setting('autovacuum_analyze_threshold')")
        scale = await conn.fetchval("SELECT current_setting('autovacuum_analyze_scale_factor')")
        tables = await conn.fetch(
            "SELECT relname, reltuples, reloptions FROM pg_class WHERE relkind = 'r'"
            " AND relnamespace = current_schema()::regnamespace"
        )
        for table in tables:
            options = dict(o.split("=", 1) for o in table["reloptions"] or [])
            analyzed = max(float(table["reltuples"]), 0.0)
            threshold = (
                float(options.get("autovacuum_analyze_threshold", base))
                + float(options.get("autovacuum_analyze_scale_factor", scale)) * analyzed
            )
            rows = await conn.fetchval(f'SELECT count(*) FROM "{table["relname"]}"')
            if rows - analyzed > threshold:
                await conn.execute(f'ANALYZE "{table["relname"]}"')
    finally:
        await conn.close()


# When autovacuum's pass comes by, in orders placed: early (it wakes every minute, and a
# new store takes its first orders within one), then now and then.
PASSES = (60, 500, 1000, 1500)


async def _place_orders(
    url: str, store_id: int, name: str, orders: int, *, autovacuum: bool
) -> int:
    """`orders` orders of two lines through CONNECTIONS long-lived connections, by the
    domain services in the product's unit of work; the connections the pool opened."""
    db = Database(url, pool_size=CONNECTIONS)
    opened = 0

    def count(*_: Any) -> None:
        nonlocal opened
        opened += 1

    event.listen(db.engine.sync_engine, "connect", count)
    placed = 0

    async def customer() -> None:
        nonlocal placed
        while placed < orders:
            placed += 1
            n = placed
            lines = [services.LineRequest(f"SKU-{(n + k) % PRODUCTS}", 1) for k in range(2)]
            async with store_session(db, store_id, now) as session:
                await services.place_order(session, services.PlaceOrder(lines=lines))
            if autovacuum and n in PASSES:
                await _autovacuum_pass(name)
            if n % FIRST_STATS_EVERY == 0:
                await first_statistics(db)  # what a served process does every second

    try:
        await asyncio.gather(*(customer() for _ in range(CONNECTIONS)))
    finally:
        await db.dispose()
    return opened


async def _reads_added(
    name: str, orders: int, *, autovacuum: bool, store_id: int | None = None
) -> tuple[dict[str, int], dict[str, int]]:
    """The sequential scans of the watched tables, and the rows fetched from them by
    index, that placing `orders` orders (in a new store unless given) added."""
    url = f"postgresql+asyncpg://{_pg_admin_dsn(name).split('://', 1)[1]}"
    if store_id is None:
        store_id = await _open_store(url)
    before = await _table_reads(name)
    opened = await _place_orders(url, store_id, name, orders, autovacuum=autovacuum)
    assert opened <= CONNECTIONS  # the same few connections placed every order
    after = await _table_reads(name)
    scans = {table: after[table][0] - before[table][0] for table in WATCHED}
    fetched = {table: after[table][1] - before[table][1] for table in WATCHED}
    return scans, fetched


async def _scans_added(name: str, orders: int, *, autovacuum: bool) -> dict[str, int]:
    return (await _reads_added(name, orders, autovacuum=autovacuum))[0]


async def _analyzed(name: str) -> dict[str, bool]:
    conn = await asyncpg.connect(_pg_admin_dsn(name))
    try:
        rows = await conn.fetch(
            "SELECT relname, reltuples >= 0 AS analyzed FROM pg_class WHERE relname = ANY($1)",
            list(WATCHED),
        )
    finally:
        await conn.close()
    return {row["relname"]: row["analyzed"] for row in rows}


async def test_autovacuum_first_pass_leaves_index_plans(fresh: str) -> None:
    """Autovacuum analyzes a table after 50 changed rows by default: `orders` would be
    recorded as a page or two, and every connection would plan its checks as scans."""
    added = await _scans_added(fresh, ORDERS, autovacuum=True)
    assert added == {"orders": 0, "order_lines": 0}


async def test_young_tables_get_statistics_and_lookups_by_key(fresh: str) -> None:
    """Never analyzed, `orders` is planned as tiny and the foreign-key checks of its lines
    and events match only the store in an index of its own, reading the store's whole
    order history each time (3,000 rows per order placed over 2,000 orders, measured
    before storage/statistics.py). The served process's first statistics (looked for
    every FIRST_STATS_EVERY orders here) analyze it once it is a few pages; from then on
    each check reads its one row, and nothing is ever a sequential scan."""
    url = f"postgresql+asyncpg://{_pg_admin_dsn(fresh).split('://', 1)[1]}"
    store_id = await _open_store(url)
    # (No simulated autovacuum pass: its counting reads the tables by index too.)
    young_scans, young = await _reads_added(fresh, ORDERS // 2, autovacuum=False, store_id=store_id)
    print(f"rows fetched by index over the first orders: {young} / {ORDERS // 2}")
    assert await _analyzed(fresh) == {"orders": True, "order_lines": True}
    scans, fetched = await _reads_added(fresh, ORDERS // 2, autovacuum=False, store_id=store_id)
    print(f"rows fetched by index per order, once analyzed: {fetched} / {ORDERS // 2}")
    assert young_scans == scans == {"orders": 0, "order_lines": 0}
    assert all(n <= FETCHED_PER_ORDER * ORDERS // 2 for n in fetched.values()), fetched


async def test_a_fresh_database_analyzed_empty_is_planned_as_new_after_migrating(
    fresh: str,
) -> None:
    """Someone ran ANALYZE on the empty database (vacuumdb, a setup script, a bench);
    `serve` migrates on start, and its connections must not plan on empty tables."""
    conn = await asyncpg.connect(_pg_admin_dsn(fresh))
    try:
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    url = f"postgresql+asyncpg://{_pg_admin_dsn(fresh).split('://', 1)[1]}"
    db = Database(url)
    try:
        await upgrade(db)
    finally:
        await db.dispose()
    added = await _scans_added(fresh, ORDERS // 4, autovacuum=False)
    assert added == {"orders": 0, "order_lines": 0}


CATALOGUE = 1000  # products in the store
UNITS = 40  # orders placed, then each fifth shipped and each fifth cancelled


async def test_a_unit_reads_its_products_by_index_in_a_large_catalogue(fresh: str) -> None:
    """og_open reads the products a unit names (by sku, by id, and those of the orders it
    names) through indexes (migration 0013): in a store of 1,000 products, placing,
    shipping and cancelling orders adds no sequential scan of `products`. Before, one OR
    of the three read the store's whole catalogue in every unit, under the store's lock."""
    url = f"postgresql+asyncpg://{_pg_admin_dsn(fresh).split('://', 1)[1]}"
    store_id = await _open_store(url, CATALOGUE, stock_every=100)
    await _autovacuum_pass(fresh)  # the catalogue's statistics, as autovacuum leaves them
    before = await _seq_scans(fresh, ("products",))
    db = Database(url, pool_size=2)
    try:
        placed = []
        for n in range(UNITS):
            # One product in stock (shipped later), one waiting for stock.
            skus = (f"SKU-{n % 10 * 100}", f"SKU-{n * 37 % CATALOGUE | 1}")
            lines = [services.LineRequest(sku, 1) for sku in skus]
            cmd = PlaceOrder(lines=lines)
            async with store_session(db, store_id, now, reads_of(cmd, None)) as session:
                placed.append((await services.place_order(session, cmd)).id)
        for order_id in placed[::5]:
            ship = ShipOrder(order_id=order_id, lines=None)
            async with store_session(db, store_id, now, reads_of(ship, None)) as session:
                await services.execute(session, ship)
        for order_id in placed[1::5]:
            cancel = CancelOrder(order_id, CancelReason.CUSTOMER_REQUEST)
            async with store_session(db, store_id, now, reads_of(cancel, None)) as session:
                await services.execute(session, cancel)
    finally:
        await db.dispose()
    after = await _seq_scans(fresh, ("products",))
    assert after["products"] - before["products"] == 0


async def test_a_served_process_gives_young_tables_their_statistics(
    fresh: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The app's lifespan looks every ORDERGRAPH_FIRST_STATS_MS (here with a threshold of
    one page, reached by a few orders), and analyzes a young table once it is that big;
    with the setting at 0 it does not look."""
    monkeypatch.setattr(statistics, "FIRST_STATS_PAGES", 1)
    url = f"postgresql+asyncpg://{_pg_admin_dsn(fresh).split('://', 1)[1]}"
    store_id = await _open_store(url)
    await _place_orders(url, store_id, fresh, FIRST_STATS_EVERY - 1, autovacuum=False)
    assert await _analyzed(fresh) == {"orders": False, "order_lines": False}
    for every_ms, analyzed in ((0, False), (20, True)):
        db = Database(url, pool_size=2)
        settings = Settings(database_url=url, admin_token=ADMIN_TOKEN, first_stats_ms=every_ms)
        app = create_app(settings, db=db)
        try:
            async with app.router.lifespan_context(app):
                for _ in range(100):
                    if (await _analyzed(fresh))["orders"]:
                        break
                    await asyncio.sleep(0.02)
        finally:
            await db.dispose()
        assert await _analyzed(fresh) == {"orders": analyzed, "order_lines": analyzed}

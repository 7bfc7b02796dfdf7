"""Hot reads run by the driver (storage/driver_reads.py) give the rows SQLAlchemy gives.

On PostgreSQL `fetch` runs a statement compiled once on asyncpg, converting parameters
and values as the columns' types do; on SQLite, and for an expanding parameter, it is
SQLAlchemy's execution. Both are compared here on the statements that use it: the store
by handle (with and without the key's stores) and the figures now and at past instants
of a store with backorders and overdue orders, including instants before its first event
(every column null). On PostgreSQL the driver's path must run no statement through
SQLAlchemy at all.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ordergraph.clock import Clock
from ordergraph.storage import history
from ordergraph.storage.db import Database
from ordergraph.storage.driver_reads import fetch, fetch_values
from ordergraph.storage.queries import orders as order_reads
from ordergraph.storage.queries import products as product_reads
from ordergraph.storage.queries import stores as store_queries
from tests.api.test_schema_and_queries_count import counting_statements
from tests.client import Api


async def _both(db: Database, statement: Any, values: dict[str, Any]) -> tuple[Any, Any]:
    async with db.connection() as conn:
        with (
            counting_statements(db, driver=False, connection=conn) as sent,
            counting_statements(db, connection=conn) as all_sent,
        ):
            fetched = [dict(row) for row in await fetch(conn, statement, values)]
        if db.is_sqlite:
            assert [s for s in sent if s.startswith("SELECT")] != []
        else:
            assert sent == [], "the driver's path runs nothing through SQLAlchemy"
            assert len(all_sent) == 1, "and the statement counters see it"
        result = await conn.execute(statement, values)
        executed = [dict(row) for row in result.mappings()]
    return fetched, executed


async def test_the_store_by_handle_is_the_same_row_either_way(api: Api) -> None:
    db = api.db
    assert isinstance(db, Database)
    store = await api.create_store()
    other = await api.create_store()
    async with db.connection() as conn:
        found = await store_queries.store_by_handle(conn, store.handle)
        assert found is not None
        assert found.handle == store.handle
        ids = [found.id]
        other_found = await store_queries.store_by_handle(conn, other.handle)
        assert other_found is not None
    fetched, executed = await _both(db, store_queries._BY_HANDLE, {"handle": store.handle})
    assert fetched == executed
    assert len(fetched) == 1
    assert fetched[0]["created_at"].tzinfo == dt.UTC

    for among in ([found.id], [found.id, other_found.id], [other_found.id]):
        values: dict[str, Any] = {f"among_{n}": i for n, i in enumerate(sorted(among))}
        values["handle"] = store.handle
        statement = store_queries._by_handle_among(len(among))
        fetched, executed = await _both(db, statement, values)
        assert fetched == executed
        assert len(fetched) == (1 if found.id in among else 0)

    async with db.connection() as conn:
        assert await store_queries.store_by_handle(conn, store.handle, ids) == found
        assert await store_queries.store_by_handle(conn, store.handle, [other_found.id]) is None
        many = [other_found.id + n for n in range(1, 40)] + ids  # past the few: expanding
        assert await store_queries.store_by_handle(conn, store.handle, many) == found
        assert await store_queries.store_by_handle(conn, "no-such-store", ids) is None
        assert await store_queries.store_by_handle(conn, store.handle, []) is None


async def test_the_figures_now_and_past_are_the_same_row_either_way(api: Api, clock: Clock) -> None:
    db = api.db
    assert isinstance(db, Database)
    start = clock()
    store = await api.create_store(policy="ALLOW")
    assert (await api.upsert(store, "A"))["userErrors"] == []
    assert (await api.receive(store, "A", 3))["userErrors"] == []
    yesterday = (start - dt.timedelta(days=1)).date().isoformat()
    await api.place(store, [("A", 2)], requestedShipDate=yesterday)  # overdue at once
    clock.advance(dt.timedelta(hours=1))
    await api.place(store, [("A", 4)])  # one unit short: backordered
    clock.advance(dt.timedelta(hours=1))
    async with db.connection() as conn:
        found = await store_queries.store_by_handle(conn, store.handle)
    assert found is not None
    instants = [
        start - dt.timedelta(days=30),  # before anything: every column null
        start,
        start + dt.timedelta(minutes=30),
        start + dt.timedelta(hours=1, minutes=30),
        clock(),
    ]
    seen_backorders = False
    for past in (False, True):
        statement = history._figures_query(past=past)
        for at in instants:
            values = {"store_id": found.id, "at": at}
            fetched, executed = await _both(db, statement, values)
            assert fetched == executed, (past, at)
            seen_backorders |= bool(fetched[0]["backorder_orders"])
    assert seen_backorders
    # A trend's statement, read by position (`fetch_values`), in both its forms.
    asked = sorted(instants)
    for full in (False, True):
        statement = history._trend_query(not db.is_sqlite, full)
        async with db.connection() as conn:
            values = history._trend_params(conn, found.id, asked)
            with (
                counting_statements(db, driver=False, connection=conn) as sent,
                counting_statements(db, connection=conn) as all_sent,
            ):
                by_position = [tuple(row) for row in await fetch_values(conn, statement, values)]
            if not db.is_sqlite:
                assert sent == [], "PostgreSQL's goes to the driver"
                assert len(all_sent) == 1, "and the statement counters see it"
            executed = [tuple(row) for row in await conn.execute(statement, values)]
        assert by_position == executed, full
        assert len(by_position) == len(asked)
        assert any(row[3] for row in by_position), "the backorders are read"
    async with db.connection() as conn:
        now = await history.figures_now(conn, found.id, clock())
    assert now.backorders.orders == 1
    assert now.backlog.orders == 2
    assert now.overdue.orders == 1


async def test_rows_named_by_store_and_id_are_the_same_either_way(api: Api) -> None:
    """The DataLoaders' reads (storage/queries/scoping.py): on PostgreSQL the ids of one
    store go to the driver as one array; several stores, and SQLite, keep the IN lists."""
    db = api.db
    assert isinstance(db, Database)
    first = await api.create_store(policy="ALLOW")
    second = await api.create_store(policy="ALLOW")
    numbers: dict[str, list[int]] = {}
    for store in (first, second):
        assert (await api.upsert(store, "A"))["userErrors"] == []
        assert (await api.upsert(store, "B"))["userErrors"] == []
        assert (await api.receive(store, "A", 5))["userErrors"] == []
        placed = [await api.place(store, [("A", 2), ("B", 1)]) for _ in range(3)]
        numbers[store.handle] = [p["order"]["number"] for p in placed]
    async with db.connection() as conn:
        one = await store_queries.store_by_handle(conn, first.handle)
        two = await store_queries.store_by_handle(conn, second.handle)
    assert one is not None
    assert two is not None
    # the ids of rows are numbered per store; a few more that name nothing
    ids = list(range(1, 12))
    cases = [[(one.id, i) for i in ids], [(one.id, i) for i in ids] + [(two.id, i) for i in ids]]
    for scoped in (order_reads.LINES_BY_ORDER, order_reads.ORDERS_BY_ID, product_reads.BY_ID):
        for keys in cases:
            async with db.connection() as conn:
                with counting_statements(db, driver=False, connection=conn) as sent:
                    fetched = [dict(row) for row in await scoped.rows(conn, keys)]
                found = scoped.statement(keys)
                assert found is not None
                executed = [dict(row) for row in (await conn.execute(*found)).mappings()]
            key = ("store_id", scoped.id_column, "id")
            assert sorted(fetched, key=lambda r: [r[k] for k in key]) == sorted(
                executed, key=lambda r: [r[k] for k in key]
            )
            assert fetched, "the reads find rows"
            one_store = len({store_id for store_id, _ in keys}) == 1
            assert (sent == []) == (one_store and not db.is_sqlite)
    async with db.connection() as conn:
        orders = await order_reads.orders_by_id(conn, [(one.id, i) for i in ids])
    assert sorted(o.number for o in orders.values()) == numbers[first.handle]
    assert all(len(order.lines) == 2 for order in orders.values())

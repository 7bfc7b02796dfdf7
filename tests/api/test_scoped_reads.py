"""The reads of rows named by (store id, row id) pairs (storage/queries/scoping.py): the
DataLoaders' reads of orders, lines, products and receipts, and the fill-date walk's
waiting lines and open receipts. For one store, a request's usual case, the statement is
built once per process; for several stores (the admin token's reads) it is built per
read. Both answer the same rows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.sql import coercions

from ordergraph.resolvers.ids import decode
from ordergraph.storage import queries
from ordergraph.storage import tables as t
from ordergraph.storage.db import Database
from tests.client import Api, StoreHandle

SCHEDULE = """mutation($input: ScheduleReceiptInput!) { scheduleReceipt(input: $input) {
  receipt { id } userErrors { field message code } } }"""

Keys = list[tuple[int, int]]
Read = Callable[[Any, Keys], Awaitable[dict[Any, Any]]]
READS: dict[str, tuple[Read, str, str]] = {
    # name: (the read, the table whose rows name the keys, the key's id column)
    "orders_by_id": (queries.orders_by_id, "orders", "id"),
    "lines_by_order": (queries.lines_by_order, "order_lines", "order_id"),
    "lines_by_id": (queries.lines_by_id, "order_lines", "id"),
    "products_by_id": (queries.products_by_id, "products", "id"),
    "receipts_by_id": (queries.receipts_by_id, "incoming_receipts", "id"),
    "open_receipts": (queries.open_receipts, "incoming_receipts", "product_id"),
    "waiting_lines": (queries.waiting_lines, "products", "id"),
}


async def a_store(api: Api) -> StoreHandle:
    """A store selling A (in stock) and B (none: its orders wait), with three orders,
    two of them waiting for B, and a receipt of B scheduled."""
    store = await api.create_store(policy="ALLOW")
    await api.upsert(store, "A")
    await api.upsert(store, "B")
    await api.receive(store, "A", 10)
    await api.place(store, [("A", 1), ("B", 2)])
    await api.place(store, [("B", 1)])
    await api.place(store, [("A", 2)])
    on = (dt.datetime.now(dt.UTC) + dt.timedelta(days=5)).date().isoformat()
    scheduled = await api.gql(
        SCHEDULE,
        {"input": {"storeId": store.id, "sku": "B", "quantity": 3, "expectedAt": on}},
        token=store.token,
    )
    assert scheduled["scheduleReceipt"]["userErrors"] == []
    return store


async def keys_of(database: Database, table: str, column: str) -> dict[int, Keys]:
    """Each store's (store id, `column`) pairs of `table`'s rows."""
    rows = t.metadata.tables[table]
    async with database.read() as conn:
        found = await conn.execute(select(rows.c.store_id, rows.c[column]).distinct())
    grouped: dict[int, Keys] = {}
    for store_id, row_id in found:
        grouped.setdefault(int(store_id), []).append((int(store_id), int(row_id)))
    return grouped


async def test_one_store_and_several_stores_read_the_same_rows(
    api: Api, database: Database
) -> None:
    """Every read, for two stores' keys at once (per-store IN lists) and for each store's
    on its own (the statement built once): the same rows; no keys, nothing."""
    first, second = await a_store(api), await a_store(api)
    assert first.handle != second.handle
    for name, (read, table, column) in READS.items():
        grouped = await keys_of(database, table, column)
        stores = sorted(grouped)[-2:]  # the two stores just made (the database is shared)
        async with database.read() as conn:
            together = await read(conn, [k for s in stores for k in grouped[s]])
            alone: dict[Any, Any] = {}
            for s in stores:
                alone.update(await read(conn, grouped[s]))
            assert await read(conn, []) == {}, name
        assert together, name
        assert repr(sorted(together.items())) == repr(sorted(alone.items())), name


async def test_a_read_for_one_store_builds_its_statement_once(
    api: Api, database: Database, monkeypatch: Any
) -> None:
    await a_store(api)
    built: list[str] = []
    expect = coercions.expect

    def counting(role: Any, element: Any, *args: Any, **kwargs: Any) -> Any:
        built.append(type(element).__name__)
        return expect(role, element, *args, **kwargs)

    for name, (read, table, column) in READS.items():
        grouped = await keys_of(database, table, column)
        keys = grouped[max(grouped)]
        async with database.read() as conn:
            await read(conn, keys)  # (the first may build it)
            monkeypatch.setattr(coercions, "expect", counting)
            built.clear()
            found = await read(conn, keys[:1])
            monkeypatch.setattr(coercions, "expect", expect)
        assert found, name
        assert built == [], (name, built)


async def test_the_waiting_lines_come_in_fill_order(api: Api, database: Database) -> None:
    """A product's waiting lines in the order `receiveStock` fills them (placedAt, order
    number, line id), whatever order their rows lie in: a line whose units a recount
    took back waits again at the head of the queue, though its row was written last. On
    PostgreSQL the lines come as arrays aggregated in fill order (read here without index
    scans, so the rows come as they lie), on SQLite as rows."""
    store = await api.create_store(policy="ALLOW")
    await api.upsert(store, "B")
    await api.receive(store, "B", 2)
    first = await api.place(store, [("B", 2)])  # allocated
    second = await api.place(store, [("B", 3)])  # waits
    third = await api.place(store, [("B", 1)])  # waits
    assert first["order"]["stockStatus"] == "ALLOCATED"
    recount = await api.adjust(store, "B", setOnHand=0)  # the first order waits again
    assert recount["userErrors"] == []
    line_ids = [
        row_id(line["id"]) for placed in (first, second, third) for line in placed["order"]["lines"]
    ]
    [(store_id, product_id)] = (await keys_of(database, "products", "id"))[
        max(await keys_of(database, "products", "id"))
    ]
    async with database.read() as conn:
        if conn.dialect.name == "postgresql":  # the rows in the order they lie in
            await conn.execute(text("SET enable_indexscan = off"))
            await conn.execute(text("SET enable_bitmapscan = off"))
        try:
            found = await queries.waiting_lines(conn, [(store_id, product_id)])
        finally:
            if conn.dialect.name == "postgresql":
                await conn.execute(text("RESET enable_indexscan"))
                await conn.execute(text("RESET enable_bitmapscan"))
    assert found[(store_id, product_id)].lines == [
        (line_ids[0], 2),
        (line_ids[1], 3),
        (line_ids[2], 1),
    ]


def row_id(global_id: str) -> int:
    found = decode(global_id)
    assert found is not None
    return found[1][-1]

"""The replay check: a store's order lives applied again through the application's own
services into a twin store, whose rows must equal the bulk load's."""

from __future__ import annotations

import datetime as dt
import functools
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from bench.figures_load import Store
from bench.figures_world import (
    BY_ID,
    CANCEL,
    FILL,
    INITIAL_STOCK,
    PLACE,
    PRODUCTS,
    SHIP,
    STOCKED,
    SWEEP,
    TABLES,
    TIMEZONE,
    Life,
    Timeline,
    changes,
)
from ordergraph.domain import services
from ordergraph.domain.model import BackorderPolicy, CancelReason
from ordergraph.storage import admin
from ordergraph.storage.db import Database
from ordergraph.storage.uow import SqlStoreSession, store_session

Action = Callable[[SqlStoreSession], Awaitable[object]]


def _step(kind: int, life: Life) -> Action:
    """The service call that makes this change to this order."""
    spec = BY_ID[life.product]

    async def place(session: SqlStoreSession) -> object:
        lines = [services.LineRequest(spec.sku, life.qty)]
        command = services.PlaceOrder(lines=lines, requested_ship_date=life.rsd)
        return await services.place_order(session, command)

    async def fill(session: SqlStoreSession) -> object:
        return await services.receive_stock(session, spec.sku, life.qty)

    async def cancel(session: SqlStoreSession) -> object:
        reason = CancelReason(life.cancel_reason or "")
        return await services.cancel_order(session, life.order_id, reason, None)

    async def ship(session: SqlStoreSession) -> object:
        return await services.ship_order(session, life.order_id, None)

    steps: dict[int, Action] = {PLACE: place, FILL: fill, CANCEL: cancel, SHIP: ship}
    return steps.get(kind, services.mark_overdue)


async def _apply(db: Database, store_id: int, at: dt.datetime, action: Action) -> None:
    async with store_session(db, store_id, lambda: at) as session:
        await action(session)


async def replay(url: str, lives: list[Life], timeline: Timeline, handle: str) -> int:
    """Apply the lives again through the domain services, each change in its own locked unit
    of work with the clock at the change's time; returns the twin store's id."""
    db = Database(url)
    try:
        store, _ = await admin.create_store(
            db,
            handle=handle,
            name="Figures benchmark, replayed",
            currency_code="USD",
            timezone=TIMEZONE,
            default_policy=BackorderPolicy.ALLOW,
            now=timeline.created_at,
        )
        for spec in PRODUCTS:
            command = services.UpsertProduct(
                sku=spec.sku, title=spec.title, price=spec.price, backorder_policy=spec.policy
            )
            upsert = functools.partial(services.upsert_product, cmd=command)
            await _apply(db, store.id, timeline.product_created_at(spec), upsert)
        for spec in STOCKED:
            receive = functools.partial(
                services.receive_stock, sku=spec.sku, quantity=INITIAL_STOCK
            )
            await _apply(db, store.id, timeline.received_at(spec), receive)
        by_number = {life.number: life for life in lives}
        last_sweep = None
        for at, kind, number in changes(lives):
            if kind == SWEEP:
                if at == last_sweep:
                    continue  # one sweep flags every order due then
                last_sweep = at
            await _apply(db, store.id, at, _step(kind, by_number[number]))
        return store.id
    finally:
        await db.dispose()


_ORDER_BY = {
    "products": "id",
    "orders": "id",
    "order_lines": "id",
    "events": "seq",
    "tally_points": "seq",
    "overdue_points": "overdue_at, seq",
    "overdue_totals": "overdue_at",
    "overdue_crossings": "overdue_at",
    "backorder_facts": "seq, n",
    "backorder_days": "product_id, day, kind, reason, wait_bucket",
    "backorder_ages": "product_id, kind, start_day, at_day",
}


async def compare_stores(conn: asyncpg.Connection, bulk: int, twin: int) -> list[str]:
    """What differs between two stores' rows (store ids aside); empty when all equal."""
    problems = []
    counters = (
        "SELECT currency_code, timezone, default_backorder_policy, created_at, next_id,"
        " next_order_number, last_event_seq, last_event_at FROM stores WHERE id = $1"
    )
    a, b = await conn.fetchrow(counters, bulk), await conn.fetchrow(counters, twin)
    if dict(a) != dict(b):
        problems.append(f"stores: bulk {dict(a)} != replayed {dict(b)}")
    for table in TABLES:
        query = f"SELECT * FROM {table} WHERE store_id = $1 ORDER BY {_ORDER_BY[table]}"

        def rows(found: list[asyncpg.Record]) -> list[dict[str, Any]]:
            out = []
            for record in found:
                row = dict(record)
                row.pop("store_id")
                if "data" in row:
                    row["data"] = json.loads(row["data"])
                out.append(row)
            return out

        mine, theirs = rows(await conn.fetch(query, bulk)), rows(await conn.fetch(query, twin))
        if len(mine) != len(theirs):
            problems.append(f"{table}: {len(mine)} bulk rows, {len(theirs)} replayed")
            continue
        for x, y in zip(mine, theirs, strict=True):
            if x != y:
                problems.append(f"{table}: bulk {x}\n    != replayed {y}")
                break
    return problems


async def check_replay(dsn: str, url: str, store: Store, timeline: Timeline) -> list[str]:
    began = time.perf_counter()
    twin = await replay(url, store.lives, timeline, f"replayed-{uuid.uuid4().hex[:8]}")
    conn = await asyncpg.connect(dsn)
    try:
        problems = await compare_stores(conn, store.loaded.store_id, twin)
    finally:
        await conn.close()
    if not problems:
        print(
            f"replay: {store.orders:,} orders replayed through the application's services in"
            f" {time.perf_counter() - began:.1f} s; the stores row and every row of"
            f" {len(TABLES)} tables equal the bulk load",
            flush=True,
        )
    return [f"replay: {p}" for p in problems]

"""Seeding the figures benchmark: each store's order lives loaded in bulk SQL, with the keys
and indexes dropped during the load and rebuilt once at the end."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

import ordergraph.storage
from bench.figures_sql import (
    CHANGES_SQL,
    DAYS_SQL,
    EVENTS_SQL,
    FACTS_SQL,
    LINES_SQL,
    ORDERS_SQL,
    OVERDUE_POINTS_SQL,
    OVERDUE_TOTALS_SQL,
    PRODUCTS_SQL,
    SQL_FUNCTIONS,
    TALLY_SQL,
)
from bench.figures_world import (
    BULK_TABLES,
    FIRST_ORDER_ID,
    INITIAL_STOCK,
    NO_END,
    PRODUCTS,
    STOCKED,
    TIMEZONE,
    Life,
    ProductSpec,
    Timeline,
    make_lives,
    make_queue_lives,
)
from ordergraph.domain.outcomes import wait_bucket


def _fill_0012(store_id: int) -> list[str]:
    """Migration 0012's statements filling a store's crossings and late sums from its
    overdue points (the load writes the points directly, as the units would have)."""
    versions = Path(ordergraph.storage.__file__).parent / "migrations" / "versions"
    (path,) = versions.glob("0012_*.py")
    spec = importlib.util.spec_from_file_location("og_migration_0012_bench", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    statements: list[str] = module.fill_statements(store_id)
    return statements


def _inventory_state(spec: ProductSpec, on_hand: int, **extra: Any) -> str:
    state = {
        "sku": spec.sku,
        "onHand": on_hand,
        "allocated": 0,
        "available": on_hand,
        "backordered": 0,
        **extra,
    }
    return json.dumps(state)


@dataclass
class Loaded:
    store_id: int
    handle: str
    orders: int
    events: int
    tally_points: int
    overdue_points: int
    facts: int
    seconds: float


async def prepare_session(conn: asyncpg.Connection) -> None:
    for setting in (
        "SET synchronous_commit = off",
        "SET work_mem = '256MB'",
        "SET maintenance_work_mem = '1GB'",
        "SET temp_buffers = '1GB'",
    ):
        await conn.execute(setting)
    for statement in SQL_FUNCTIONS:
        await conn.execute(statement)


async def load_store(
    conn: asyncpg.Connection,
    lives: list[Life],
    timeline: Timeline,
    handle: str,
    verbose: bool = False,
) -> Loaded:
    """Write one store's rows for these order lives, as the application would have."""
    began = time.perf_counter()
    n = len(lives)
    store_id = int(
        await conn.fetchval(
            "INSERT INTO stores (handle, name, currency_code, timezone, default_backorder_policy,"
            " created_at, next_id, next_order_number) VALUES ($1, $2, 'USD', $3, 'ALLOW', $4,"
            " $5, $6) RETURNING id",
            handle,
            f"Figures benchmark, {n:,} orders",
            TIMEZONE,
            timeline.created_at,
            FIRST_ORDER_ID + 2 * n,
            1001 + n,
        )
    )
    await conn.execute(
        "INSERT INTO store_directory (store_id, handle) VALUES ($1, $2)", store_id, handle
    )
    await conn.execute("TRUNCATE life, prod")
    await conn.execute("DROP TABLE IF EXISTS chg")
    await conn.copy_records_to_table(
        "prod",
        records=[
            (
                p.id,
                p.sku,
                p.title,
                p.price_units,
                p.price_text,
                p.policy.value,
                p.stocked,
                INITIAL_STOCK if p.stocked else 0,
                timeline.product_created_at(p),
            )
            for p in PRODUCTS
        ],
    )
    await conn.copy_records_to_table(
        "life",
        records=[
            (
                life.number,
                life.order_id,
                life.line_id,
                life.product,
                life.qty,
                life.placed_at,
                life.rsd,
                life.overdue_at,
                life.fill_at,
                life.cancel_at,
                life.cancel_reason,
                life.ship_at,
                life.sweep_at,
                # the fill's wait bucket, as the application computes it
                wait_bucket((life.fill_at - life.placed_at).total_seconds())
                if life.fill_at is not None
                else None,
            )
            for life in lives
        ],
    )
    await conn.execute("ANALYZE life")
    await conn.execute("ANALYZE prod")
    # Setup: each stocked product receives its stock (RECEIVED, then BACK_IN_STOCK).
    setup: list[tuple[int, str, dt.datetime, int, str]] = []
    for spec in STOCKED:
        at = timeline.received_at(spec)
        state = _inventory_state(spec, INITIAL_STOCK)
        received = _inventory_state(spec, INITIAL_STOCK, quantity=INITIAL_STOCK, note=None)
        setup.append((len(setup) + 1, "RECEIVED", at, spec.id, received))
        setup.append((len(setup) + 1, "BACK_IN_STOCK", at, spec.id, state))
    steps = {
        "changes": CHANGES_SQL.format(base=len(setup)),
        "analyze": "ANALYZE chg",
        "products": PRODUCTS_SQL.format(store=store_id),
        "orders": ORDERS_SQL.format(store=store_id),
        "order_lines": LINES_SQL.format(store=store_id),
        "events": EVENTS_SQL.format(store=store_id),
        "tally_points": TALLY_SQL.format(store=store_id, no_end=NO_END),
        "overdue_points": OVERDUE_POINTS_SQL.format(store=store_id),
        "overdue_totals": OVERDUE_TOTALS_SQL.format(store=store_id),
        # the crossings and late sums, as migration 0012 fills them from the points
        **dict(zip(("late sums", "overdue_crossings"), _fill_0012(store_id), strict=True)),
        "backorder_facts": FACTS_SQL.format(store=store_id),
        "backorder_days": DAYS_SQL.format(store=store_id, tz=TIMEZONE),
    }
    took = {}
    for step, statement in steps.items():
        step_began = time.perf_counter()
        await conn.execute(statement)
        took[step] = time.perf_counter() - step_began
    if verbose:
        print("  " + ", ".join(f"{k} {v:.1f} s" for k, v in took.items()), flush=True)
    await conn.executemany(
        "INSERT INTO events (store_id, seq, stream, type, occurred_at, product_id, data)"
        " VALUES ($1, $2, 'inventory', $3, $4, $5, $6::jsonb)",
        [(store_id, *row) for row in setup],
    )
    last = await conn.fetchrow(
        "SELECT seq, occurred_at FROM events WHERE store_id = $1 ORDER BY seq DESC LIMIT 1",
        store_id,
    )
    await conn.execute(
        "UPDATE stores SET last_event_seq = $2, last_event_at = $3 WHERE id = $1",
        store_id,
        last["seq"],
        last["occurred_at"],
    )
    # The overdue alarm, as the units leave it: the earliest instant still to be flagged.
    await conn.execute(
        "INSERT INTO overdue_alarms (store_id, due_at) SELECT store_id, min(overdue_at)"
        " FROM orders WHERE store_id = $1 AND in_backlog AND NOT overdue_notified"
        " AND overdue_at IS NOT NULL GROUP BY store_id",
        store_id,
    )
    await conn.execute(
        "UPDATE stores SET overdue_alarm_at = (SELECT due_at FROM overdue_alarms"
        " WHERE store_id = $1) WHERE id = $1",
        store_id,
    )
    counts = {
        table: int(
            await conn.fetchval(f"SELECT count(*) FROM {table} WHERE store_id = $1", store_id)
        )
        for table in ("events", "tally_points", "overdue_points", "backorder_facts")
    }
    if counts["events"] != last["seq"]:
        raise SystemExit(f"store {handle}: {counts['events']} events but last seq {last['seq']}")
    return Loaded(
        store_id,
        handle,
        n,
        counts["events"],
        counts["tally_points"],
        counts["overdue_points"],
        counts["backorder_facts"],
        time.perf_counter() - began,
    )


# -- keys and indexes around the load -------------------------------------------------


async def schema_objects(conn: asyncpg.Connection) -> list[tuple[str, str, str, str]]:
    """(kind, table, name, definition) of the bulk tables' constraints and indexes."""
    constraints = await conn.fetch(
        "SELECT contype::text AS kind, conrelid::regclass::text AS tbl, conname AS name,"
        " pg_get_constraintdef(oid) AS def FROM pg_constraint"
        " WHERE conrelid::regclass::text = ANY($1::text[]) AND contype IN ('p', 'u', 'f')",
        list(BULK_TABLES),
    )
    indexes = await conn.fetch(
        "SELECT 'i' AS kind, tablename AS tbl, indexname AS name, indexdef AS def"
        " FROM pg_indexes WHERE schemaname = 'public' AND tablename = ANY($1::text[])"
        " AND indexname NOT IN (SELECT conname FROM pg_constraint)",
        list(BULK_TABLES),
    )
    return sorted((r["kind"], r["tbl"], r["name"], r["def"]) for r in [*constraints, *indexes])


async def drop_keys(conn: asyncpg.Connection) -> list[tuple[str, str, str, str]]:
    """Drop the bulk tables' keys and indexes (a bulk load builds them faster afterwards)."""
    objects = await schema_objects(conn)
    for kind in ("f", "i", "u", "p"):
        for k, table, name, _ in objects:
            if k != kind:
                continue
            if kind == "i":
                await conn.execute(f'DROP INDEX "{name}"')
            else:
                await conn.execute(f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"')
    return objects


async def restore_keys(conn: asyncpg.Connection, objects: list[tuple[str, str, str, str]]) -> None:
    for kind in ("p", "u", "i", "f"):
        for k, table, name, definition in objects:
            if k != kind:
                continue
            if kind == "i":
                await conn.execute(definition)
            else:
                await conn.execute(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {definition}')
    if await schema_objects(conn) != objects:
        raise SystemExit("the restored keys and indexes differ from the migration's")


@dataclass
class Store:
    loaded: Loaded
    lives: list[Life]

    @property
    def orders(self) -> int:
        return self.loaded.orders

    @property
    def handle(self) -> str:
        return self.loaded.handle


async def load_all(
    dsn: str, plan: list[tuple[str, int]], timeline: Timeline, seed: int, verbose: bool = False
) -> list[Store]:
    """Load a store per (name, orders) in the plan; keys and indexes are rebuilt once at the end.
    A store named "queue" gets a product's long queue (make_queue_lives), the others the
    drawn order lives (make_lives)."""
    conn = await asyncpg.connect(dsn)
    try:
        await prepare_session(conn)
        objects = await drop_keys(conn)
        stores = []
        for name, n in plan:
            began = time.perf_counter()
            make = make_queue_lives if name == "queue" else make_lives
            lives = make(n, timeline, seed + n)
            made = time.perf_counter() - began
            handle = f"{name}-{n}-{uuid.uuid4().hex[:6]}"
            result = await load_store(conn, lives, timeline, handle, verbose)
            print(
                f"store {handle}: {n:,} orders, {result.events:,} events,"
                f" {result.tally_points:,} tally points, {result.overdue_points:,} overdue points,"
                f" {result.facts:,} backorder facts;"
                f" lives drawn in {made:.1f} s, loaded in {result.seconds:.1f} s",
                flush=True,
            )
            stores.append(Store(result, lives))
        began = time.perf_counter()
        await restore_keys(conn, objects)
        restored = time.perf_counter() - began
        began = time.perf_counter()
        await conn.execute("VACUUM (ANALYZE)")
        print(
            f"keys and indexes rebuilt in {restored:.1f} s; vacuum analyze in"
            f" {time.perf_counter() - began:.1f} s",
            flush=True,
        )
        return stores
    finally:
        await conn.close()

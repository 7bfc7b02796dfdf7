"""The overdue totals at any instant from two running sums (storage/history.py, migration
0012): what a read of the figures costs does not grow with the number of overdue
instants, and migration 0012's fill from `overdue_points` gives exactly what the writes
keep. (Exactness against a replay of the event log: tests/api/test_figures_replay.py;
a trend against single instants: tests/api/test_figures_trend.py.)"""

from __future__ import annotations

import datetime as dt
import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

import ordergraph.storage
from ordergraph.clock import Clock
from ordergraph.storage import history
from ordergraph.storage import tables as t
from tests.api.test_figures_replay import store_id_of
from tests.client import Api, StoreHandle

START = dt.datetime(2027, 3, 1, tzinfo=dt.UTC)
LATE = tuple(f"late_{name}" for name in history._COLUMNS)


def migration_0012() -> ModuleType:
    versions = Path(ordergraph.storage.__file__).parent / "migrations" / "versions"
    (path,) = versions.glob("0012_*.py")
    spec = importlib.util.spec_from_file_location("og_migration_0012_test", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def overdue_days(api: Api, clock: Clock, days: int) -> StoreHandle:
    """A store with an order due on each of `days` days, placed the day before (UTC); two
    of them cancelled and one shipped in part after they were due (changes to orders
    already overdue), and a last order placed after every due date passed, so that every
    overdue instant has been crossed by a change. The clock then stands an hour later."""
    clock.freeze(START)
    store = await api.create_store(policy="ALLOW")
    await api.upsert(store, "MUG", price="2.50")
    ids = []
    for day in range(days):
        clock.freeze(START + dt.timedelta(days=day, hours=1))
        ship_by = (START + dt.timedelta(days=day + 1)).date().isoformat()
        placed = await api.place(store, [("MUG", 1 + day % 3)], requestedShipDate=ship_by)
        ids.append(placed["order"]["id"])
    clock.freeze(START + dt.timedelta(days=days + 2))
    await api.cancel(store, ids[0])
    await api.cancel(store, ids[days // 2])
    await api.receive(store, "MUG", 2)
    await api.ship(store, ids[1])
    clock.freeze(START + dt.timedelta(days=days + 3))
    await api.place(store, [("MUG", 1)])
    clock.freeze(clock() + dt.timedelta(hours=1))
    return store


FIGURE_TABLES = ("tally_points", "overdue_points", "overdue_totals", "overdue_crossings")


async def table_reads(conn: AsyncConnection) -> dict[str, int]:
    """This transaction's index scans and rows read, over the figures' tables."""
    found = await conn.execute(
        text(
            "SELECT coalesce(sum(idx_scan), 0), coalesce(sum(seq_scan), 0),"
            " coalesce(sum(seq_tup_read), 0) + coalesce(sum(idx_tup_fetch), 0)"
            " FROM pg_stat_xact_user_tables WHERE relname = ANY(:names)"
        ),
        {"names": list(FIGURE_TABLES)},
    )
    index_scans, seq_scans, rows = found.one()
    return {"index scans": index_scans, "sequential scans": seq_scans, "rows": rows}


async def reads_of_figures(api: Api, store: StoreHandle, clock: Clock) -> dict[str, Any]:
    """What reading the figures now, at a past instant and as a 100-hour trend costs."""
    assert api.db is not None
    store_id = await store_id_of(api.db, store)
    now = clock()
    past = now - dt.timedelta(hours=30)
    hours = [now - dt.timedelta(hours=h) for h in range(100, 0, -1)]
    costs: dict[str, Any] = {}
    async with api.db.write() as conn:  # one transaction: its own statistics
        for name, read in (
            ("now", lambda: history.figures_now(conn, store_id, now)),
            ("past", lambda: history.figures_at(conn, store_id, past)),
            ("trend", lambda: history.points_over(conn, store_id, hours)),
        ):
            before = await table_reads(conn)
            found = await read()
            after = await table_reads(conn)
            costs[name] = {key: after[key] - before[key] for key in after}
            costs[name + " figures"] = found
    return costs


@pytest.mark.postgres
async def test_reading_the_figures_costs_the_same_whatever_the_overdue_instants(
    pg_api: Api, clock: Clock
) -> None:
    """The figures now, at a past instant and over a trend read as many index scans and
    rows for a store with 4 overdue instants as for one with 60 (one probe of each running
    sum per instant asked); before, each read probed once per overdue instant."""
    few = await overdue_days(pg_api, clock, 4)
    few_costs = await reads_of_figures(pg_api, few, clock)
    many = await overdue_days(pg_api, clock, 60)
    many_costs = await reads_of_figures(pg_api, many, clock)
    for read in ("now", "past", "trend"):
        assert many_costs[read]["index scans"] == few_costs[read]["index scans"], read
        assert many_costs[read]["sequential scans"] == few_costs[read]["sequential scans"], read
        # Heap rows may differ by the odd row not yet visible to all; not by the instants.
        assert many_costs[read]["rows"] <= few_costs[read]["rows"] + 3, (read, many_costs)
    assert few_costs["trend"]["index scans"] <= 2 * 100 + 10, few_costs["trend"]
    # The figures read are those of many overdue orders (60 due, 2 cancelled, 1 shipped).
    assert many_costs["now figures"].overdue.orders == 57
    assert few_costs["now figures"].overdue.orders == 1


async def history_rows(conn: AsyncConnection, store_id: int) -> tuple[list[Any], list[Any]]:
    p, c = t.tally_points, t.overdue_crossings
    late = await conn.execute(
        select(p.c.seq, *(p.c[name] for name in LATE))
        .where(p.c.store_id == store_id)
        .order_by(p.c.seq)
    )
    crossed = await conn.execute(select(c).where(c.c.store_id == store_id).order_by(c.c.overdue_at))
    return [tuple(row) for row in late], [tuple(row) for row in crossed]


async def test_the_migrations_fill_equals_what_the_writes_keep(api: Api, clock: Clock) -> None:
    """Migration 0012 fills the crossings and late sums of an existing history from its
    `overdue_points`: the same rows, to the unit, as the writes keep as they go."""
    store = await overdue_days(api, clock, 9)
    assert api.db is not None
    store_id = await store_id_of(api.db, store)
    async with api.db.write() as conn:
        kept_late, kept_crossed = await history_rows(conn, store_id)
        assert any(any(row[1:]) for row in kept_late), "no change to an overdue order"
        assert len(kept_crossed) == 9
        await conn.execute(
            t.overdue_crossings.delete().where(t.overdue_crossings.c.store_id == store_id)
        )
        await conn.execute(
            update(t.tally_points)
            .where(t.tally_points.c.store_id == store_id)
            .values({name: 0 for name in LATE})
        )
        await conn.run_sync(lambda sync: migration_0012().fill(sync, store_id))
        assert await history_rows(conn, store_id) == (kept_late, kept_crossed)

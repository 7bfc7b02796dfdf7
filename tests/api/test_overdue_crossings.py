"""The overdue totals at any instant from two running sums (storage/history.py, migration
0012): what a read of the figures costs does not grow with the number of overdue
instants, and migration 0012 fills an existing history with exactly what the writes
keep. (Exactness against a replay of the event log: tests/api/test_figures_replay.py;
a trend against single instants: tests/api/test_figures_trend.py.)"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from ordergraph.clock import Clock
from ordergraph.storage import history
from ordergraph.storage import tables as t
from ordergraph.storage.db import Database
from ordergraph.storage.migrate import downgrade, upgrade
from tests.api.test_figures_replay import store_id_of
from tests.client import Api, StoreHandle
from tests.conftest import ADMIN_TOKEN, app_client

START = dt.datetime(2027, 3, 1, tzinfo=dt.UTC)
LATE = tuple(f"late_{name}" for name in history._COLUMNS)


async def overdue_days(api: Api, clock: Clock, days: int) -> tuple[StoreHandle, list[str]]:
    """A store with an order due on each of `days` days, placed the day before (UTC); two
    of them cancelled and one shipped after they were due (changes to orders already
    overdue), and a last order placed after every due date passed, so that every overdue
    instant has been crossed by a change. The clock then stands an hour later. Returns
    the store and its orders' ids, by day."""
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
    return store, ids


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
    few, _ = await overdue_days(pg_api, clock, 4)
    few_costs = await reads_of_figures(pg_api, few, clock)
    many, _ = await overdue_days(pg_api, clock, 60)
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


async def migrated_history_is_kept(url: str, clock: Clock) -> None:
    """A history written with the two sums, taken back to migration 0011 (which drops them)
    and migrated again: 0012 fills them from `overdue_points` to the same rows, to the unit,
    and the writes then go on from them."""
    db = Database(url)
    try:
        async with app_client(db, clock) as http:
            api = Api(http, ADMIN_TOKEN, db)
            store, ids = await overdue_days(api, clock, 9)
        store_id = await store_id_of(db, store)
        async with db.read() as conn:
            kept_late, kept_crossed = await history_rows(conn, store_id)
            figures = await history.figures_now(conn, store_id, clock())
        assert any(any(row[1:]) for row in kept_late), "no change to an overdue order"
        assert len(kept_crossed) == 9
        await downgrade(db, "0011")
        async with db.read() as conn:
            columns = await conn.run_sync(lambda sync: inspect(sync).get_columns("tally_points"))
            assert not [c for c in columns if c["name"].startswith("late_")]
        await upgrade(db)
        async with db.read() as conn:
            assert await history_rows(conn, store_id) == (kept_late, kept_crossed)
            assert await history.figures_now(conn, store_id, clock()) == figures
        async with app_client(db, clock) as http:  # a late change, written on the sums
            api = Api(http, ADMIN_TOKEN, db)
            assert (await api.cancel(store, ids[2]))["userErrors"] == []
        async with db.read() as conn:
            after = await history.figures_now(conn, store_id, clock())
        assert after.overdue.orders == figures.overdue.orders - 1
    finally:
        await db.dispose()


async def test_migration_0012_fills_an_existing_history_on_sqlite(
    own_sqlite_url: str, clock: Clock
) -> None:
    await migrated_history_is_kept(own_sqlite_url, clock)


async def test_migration_0012_fills_an_existing_history_on_postgresql(
    own_pg_url: str, clock: Clock
) -> None:
    await migrated_history_is_kept(own_pg_url, clock)

"""A trend in one statement: `history.figures_over` (and `points_over`, what the API serves)
against `history.figures_at` instant by instant, on generated histories, on SQLite and
PostgreSQL; the statements a trend runs; the product's calls per point of a trend.

The histories are the replay test's (tests/api/test_figures_replay.py): stores in several
zones, fills, partial shipments and cancellations, price changes, overdue sweeps, a clock
moved by nothing, minutes, hours, days or to just around a local midnight. The instants
asked include every event's time, one microsecond before some, the overdue instants and
one microsecond and one second around them, and random ones; asked all at once, as
random runs of consecutive instants (so that the first instant asked, where the trend's
reading of the overdue points starts, falls everywhere), one by one, and shuffled with a
repeat.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import os
import random
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import event as label
from hypothesis import strategies as st

import ordergraph
from ordergraph.app import create_app
from ordergraph.clock import Clock
from ordergraph.schema import execution as schema_execution
from ordergraph.settings import Settings
from ordergraph.storage import history as figures_history
from ordergraph.storage.db import Database
from ordergraph.storage.history import TrendPoint
from tests.api.test_figures_replay import History, instants_to_check, order_log, store_id_of
from tests.api.test_schema_and_queries_count import counting_statements
from tests.client import Api, StoreHandle
from tests.conftest import (
    ADMIN_TOKEN,
    app_client,
)

MICRO = dt.timedelta(microseconds=1)


async def compare(db: Database, store_id: int, instants: list[dt.datetime], seed: int) -> None:
    async with db.read() as conn:
        one_by_one = [await figures_history.figures_at(conn, store_id, t) for t in instants]
        assert await figures_history.figures_over(conn, store_id, instants) == one_by_one
        chooser = random.Random(seed)
        for _ in range(4):
            start = chooser.randrange(len(instants))
            end = chooser.randrange(start, len(instants)) + 1
            run = await figures_history.figures_over(conn, store_id, instants[start:end])
            assert run == one_by_one[start:end], (instants[start], instants[end - 1])
        for t, expected in zip(instants, one_by_one, strict=True):
            assert await figures_history.figures_over(conn, store_id, [t]) == [expected], t
        shuffled = [*instants, instants[len(instants) // 2]]
        chooser.shuffle(shuffled)
        by_instant = dict(zip(instants, one_by_one, strict=True))
        found = await figures_history.figures_over(conn, store_id, shuffled)
        assert found == [by_instant[t] for t in shuffled]
        assert await figures_history.figures_over(conn, store_id, []) == []
        # What the API serves: the same statement without what a point does not show.
        shown = [TrendPoint.of(f.as_of, f.backlog, f.backorders, f.overdue) for f in one_by_one]
        assert await figures_history.points_over(conn, store_id, instants) == shown
        for _ in range(2):
            start = chooser.randrange(len(instants))
            end = chooser.randrange(start, len(instants)) + 1
            run_points = await figures_history.points_over(conn, store_id, instants[start:end])
            assert run_points == shown[start:end], (instants[start], instants[end - 1])
        by_point = dict(zip(instants, shown, strict=True))
        found_points = await figures_history.points_over(conn, store_id, shuffled)
        assert found_points == [by_point[t] for t in shuffled]


async def run_history(url: str, draw: st.DataObject) -> None:
    clock = Clock()
    db = Database(url, pool_size=2)
    app = create_app(Settings(database_url=db.url, admin_token=ADMIN_TOKEN), clock=clock, db=db)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            api = Api(http, ADMIN_TOKEN, db)
            history = History(api, clock, draw)
            await history.open()
            first = clock()
            for _ in range(history.pick(st.integers(4, 14), "steps")):
                await history.step()
            history.move_clock()
            store_id = await store_id_of(db, history.store)
            log = await order_log(db, store_id)
            now = clock()
            instants = instants_to_check(history, log, first, now)
            instants = sorted({*instants, *(t + MICRO for t in instants if t < now)})
            await compare(db, store_id, instants, history.pick(st.integers(0, 2**32), "seed"))
            async with db.read() as conn:
                final = await figures_history.figures_at(conn, store_id, now)
            # For --hypothesis-show-statistics: whether the history made anything overdue.
            label(f"overdue at the end: {final.overdue.orders > 0}")
    finally:
        await db.dispose()


TREND_SETTINGS = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def run_example(url: str, draw: st.DataObject) -> None:
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(run_history(url, draw))
    finally:
        loop.close()


@TREND_SETTINGS
@given(draw=st.data())
def test_a_trend_in_one_statement_equals_each_instant_on_sqlite(
    own_sqlite_url: str, draw: st.DataObject
) -> None:
    run_example(own_sqlite_url, draw)


@pytest.mark.postgres
@TREND_SETTINGS
@given(draw=st.data())
def test_a_trend_in_one_statement_equals_each_instant_on_postgresql(
    own_pg_url: str, draw: st.DataObject
) -> None:
    run_example(own_pg_url, draw)


# -- what a trend costs the database ----------------------------------------------------

HOUR_TREND = """query($h: String!, $from: DateTime!, $to: DateTime!) { store(handle: $h) {
  backlogTrend(from: $from, to: $to, interval: HOUR) { at overdue { orders } } } }"""


def figure_statements(statements: list[str]) -> list[str]:
    return [s for s in statements if "tally_points" in s or "overdue_points" in s]


async def forty_overdue_days(api: Api, clock: Clock) -> StoreHandle:
    """A store with an order due on each of 40 days, none shipped; the clock two days
    after the last is due."""
    start = dt.datetime(2027, 3, 1, tzinfo=dt.UTC)
    clock.freeze(start)
    store = await api.create_store(policy="ALLOW")
    await api.upsert(store, "MUG", price="2.50")
    for day in range(40):
        clock.freeze(start + dt.timedelta(days=day, hours=1))
        ship_by = (start + dt.timedelta(days=day + 1)).date().isoformat()
        await api.place(store, [("MUG", 1 + day % 3)], requestedShipDate=ship_by)
    clock.freeze(start + dt.timedelta(days=42))
    return store


def hours_up_to(store: StoreHandle, ends: dt.datetime, hours: int) -> dict[str, str]:
    start = ends - dt.timedelta(hours=hours)
    return {"h": store.handle, "from": start.isoformat(), "to": ends.isoformat()}


async def test_a_trend_reads_the_figures_in_one_statement_whatever_its_length(
    api: Api, clock: Clock
) -> None:
    """One statement reads the figures for a trend of 1 or 999 points, over a history
    with an overdue instant on each of 40 days."""
    store = await forty_overdue_days(api, clock)
    assert api.db is not None
    ends = clock() - dt.timedelta(minutes=1)
    # The cost limit prices each point as a query of its own: lifted, as the count is
    # what this test is about.
    async with app_client(api.db, clock, max_cost=10**6, rate_limit_capacity=10**9) as http:
        roomy = Api(http, ADMIN_TOKEN, api.db)
        for hours in (1, 999):
            with counting_statements(api.db) as seen:
                data = await roomy.gql(
                    HOUR_TREND, hours_up_to(store, ends, hours), token=store.token
                )
            points = data["store"]["backlogTrend"]
            assert len(points) == hours
            assert points[-1]["overdue"]["orders"] == 40
            assert len(figure_statements(seen)) == 1, figure_statements(seen)


# -- what a trend's point costs the server ----------------------------------------------

TALLY = "orders units value { amount currencyCode }"
FULL_HOUR_TREND = f"""query($h: String!, $from: DateTime!, $to: DateTime!) {{ store(handle: $h) {{
  backlogTrend(from: $from, to: $to, interval: HOUR) {{
    at backlog {{ {TALLY} }} backorders {{ {TALLY} }} overdue {{ {TALLY} }} }} }} }}"""
PRODUCT = str(Path(ordergraph.__file__).parent) + os.sep
ASYNC = inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR | inspect.CO_ITERABLE_COROUTINE
# graphql-core asks whether each resolved value is awaitable, and schema/execution.py answers
# for it (a cache of types) and completes plain fields in place of graphql-core: counted
# apart, as "executor", since it replaces the library's work, not adds to ours.
EXECUTOR = schema_execution.__file__


@contextmanager
def product_calls() -> Iterator[Counter[str]]:
    """Calls of Python functions in this thread while inside: "all" of them (libraries
    included), and of the product's own: "calls" of plain functions, "async" of coroutines
    and async generators (each resumption counts, so a few more or fewer as the I/O
    goes), "executor" of schema/execution.py's."""
    counts: Counter[str] = Counter()

    def profile(frame: FrameType, event: str, _arg: object) -> None:
        if event != "call":
            return
        counts["all"] += 1
        code = frame.f_code
        if code.co_filename.startswith(PRODUCT):
            if code.co_filename == EXECUTOR:  # graphql-core's work, done by us
                counts["executor"] += 1
                return
            counts["async" if code.co_flags & ASYNC else "calls"] += 1

    sys.setprofile(profile)
    try:
        yield counts
    finally:
        sys.setprofile(None)


# Per point of a trend asked with every field, in the product's code: `at` serialized, the
# point made (BacklogPoint.series: three OrderTally, whose Money is made once per amount of
# the trend, as storage converts each amount once; this history repeats its amounts) and
# (SQLite) its instant bound as text: 5 on PostgreSQL, 6 on SQLite. The 16 fields are read
# by the compiled builders of schema/execution.py, one call per object (7), which are
# counted in "all" only: 17 and 19 in all. The count guards against a resolver, a loader
# or graphql-core's per-field execution per point (12 product calls and 79 in all before
# the builders; 11 and 31 before the amounts were converted once).
CALLS_PER_POINT = 7
ALL_CALLS_PER_POINT = 21


async def test_a_trend_point_costs_a_fixed_few_calls_and_no_awaitable(
    api: Api, clock: Clock
) -> None:
    """The server's own work per point of a trend: the extra calls of a 210-point trend
    over a 10-point one, divided by 200, whatever the history."""
    store = await forty_overdue_days(api, clock)
    assert api.db is not None
    ends = clock() - dt.timedelta(minutes=1)
    async with app_client(api.db, clock, max_cost=10**6, rate_limit_capacity=10**9) as http:
        roomy = Api(http, ADMIN_TOKEN, api.db)
        counted = []
        # The first, once, to warm the caches; then each size three times, keeping the
        # fewest calls of each kind: the profile sees every task of the thread, and the
        # server's background work (a pool ping, the rate limit's reconciliation) may run
        # during one request or another.
        for hours in (10, 10, 10, 10, 210, 210, 210):
            with product_calls() as counts:
                data = await roomy.gql(
                    FULL_HOUR_TREND, hours_up_to(store, ends, hours), token=store.token
                )
            points = data["store"]["backlogTrend"]
            assert len(points) == hours
            assert points[-1]["overdue"] == {
                "orders": 40,
                "units": 79,
                "value": {"amount": "197.50", "currencyCode": "USD"},
            }
            counted.append(counts)
        short = _fewest(counted[1:4])
        long = _fewest(counted[4:])
        per_point = (long["calls"] - short["calls"]) / 200
        assert per_point <= CALLS_PER_POINT, (short, long)
        # And all of the Python work per point, the libraries' included: graphql-core
        # completing a point's 16 fields took 500 calls; the one pass of plain fields
        # (schema/execution.py) does it in far fewer.
        everything = (long["all"] - short["all"]) / 200
        assert everything <= ALL_CALLS_PER_POINT, (short, long)
        # The points are made by the compiled builders, not the per-field pass: no call
        # of schema/execution.py's own per point (one per point would be 200 more).
        assert long["executor"] - short["executor"] < 20, (short, long)
        # No awaitable per point: one per point would be 200 more. Resumptions of the
        # request's own coroutines vary with the I/O (a busy PostgreSQL: a few dozen).
        assert abs(long["async"] - short["async"]) < 100, (short, long)


def _fewest(runs: list[Counter[str]]) -> Counter[str]:
    kinds = ("calls", "async", "all", "executor")
    return Counter({kind: min(run[kind] for run in runs) for kind in kinds})

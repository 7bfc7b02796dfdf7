"""What waiting costs, through the API on SQLite and PostgreSQL: the README's worked
example (a customer who waited 9 days and then declined), the product's figures, the
leaders, the trend, take-backs by adjustment, and the refusals."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine.interfaces import CacheStats

from ordergraph.clock import Clock
from ordergraph.storage.db import Database
from tests.api.test_schema_and_queries_count import counting_statements
from tests.client import Api, StoreHandle
from tests.conftest import ADMIN_TOKEN, app_client

OUTCOME_FIELDS = """from to
  started { orders units value { amount } }
  filled { orders units value { amount } }
  wait { p50 p90 max relativeError }
  cancelledWhileWaiting { reason tally { orders units value { amount } } }
  lostRevenue { amount currencyCode }
  ordersPlaced backorderRate overdueShare
  stillWaiting { label minDays maxDays tally { orders units value { amount } } }"""
STORE_OUTCOMES = f"""query($h: String!, $from: DateTime!, $to: DateTime!) {{ store(handle: $h) {{
  backorderOutcomes(from: $from, to: $to) {{ {OUTCOME_FIELDS} }} }} }}"""
PRODUCT_OUTCOMES = f"""query($h: String!, $sku: String!, $from: DateTime!, $to: DateTime!) {{
  store(handle: $h) {{ product(sku: $sku) {{
    backorderOutcomes(from: $from, to: $to) {{ {OUTCOME_FIELDS} }} }} }} }}"""
LEADERS = """query($h: String!, $by: OutcomeRanking!, $from: DateTime!, $to: DateTime!) {
  store(handle: $h) { backorderLeaders(by: $by, from: $from, to: $to) {
    product { sku } unitsToReorder
    outcomes { lostRevenue { amount } wait { p90 } stillWaiting { tally { units } } } } } }"""
TREND = """query($h: String!, $from: DateTime!, $to: DateTime!, $i: OutcomeInterval!) {
  store(handle: $h) { backorderOutcomesTrend(from: $from, to: $to, interval: $i) {
    at outcomes { from to started { orders units } filled { units }
      lostRevenue { amount } ordersPlaced } } } }"""

DAY0 = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)  # a Monday


def day(n: float, hour: int = 10) -> dt.datetime:
    return DAY0 + dt.timedelta(days=n, hours=hour)


async def ask(api: Api, store: StoreHandle, query: str, **variables: Any) -> Any:
    for name, value in variables.items():
        if isinstance(value, dt.datetime):
            variables[name] = value.isoformat()
    return await api.gql(query, {"h": store.handle, **variables}, token=store.token)


async def outcomes(api: Api, store: StoreHandle, start: dt.datetime, end: dt.datetime) -> Any:
    data = await ask(api, store, STORE_OUTCOMES, **{"from": start, "to": end})
    return data["store"]["backorderOutcomes"]


def buckets(found: Any) -> dict[str, tuple[int, int, str]]:
    return {
        b["label"]: (b["tally"]["orders"], b["tally"]["units"], b["tally"]["value"]["amount"])
        for b in found["stillWaiting"]
    }


async def worked_example(api: Api, clock: Clock) -> StoreHandle:
    """README "What waiting costs": mugs at $20, none in stock.

    - day 0, 10:00: order 1001, 3 mugs, to ship by day 2: all 3 backordered;
    - day 1, 10:00: order 1002, 2 mugs: backordered;
    - day 9, 10:00: the customer of 1001 declines after 9 days of waiting;
    - day 10, 10:00: 3 mugs arrive: 1002 gets 2 (after 9 days), 1 is left;
    - day 10, 11:00: order 1003, 1 mug: allocated at once."""
    clock.freeze(day(0, 9))
    store = await api.create_store(policy="ALLOW")
    await api.upsert(store, "MUG", price="20.00")
    clock.freeze(day(0))
    first = await api.place(store, [("MUG", 3)], requestedShipDate="2026-03-04")
    assert first["order"]["stockStatus"] == "BACKORDERED"
    clock.freeze(day(1))
    await api.place(store, [("MUG", 2)])
    clock.freeze(day(9))
    cancelled = await api.cancel(store, first["order"]["id"], "CUSTOMER_DECLINED_BACKORDER")
    assert cancelled["userErrors"] == []
    clock.freeze(day(10))
    await api.receive(store, "MUG", 3)
    clock.freeze(day(10, 11))
    third = await api.place(store, [("MUG", 1)])
    assert third["order"]["stockStatus"] == "ALLOCATED"
    clock.freeze(day(11))
    return store


async def test_the_worked_example(api: Api, clock: Clock) -> None:
    store = await worked_example(api, clock)
    found = await outcomes(api, store, DAY0, day(11))
    assert found["started"] == {"orders": 2, "units": 5, "value": {"amount": "100.00"}}
    assert found["filled"] == {"orders": 1, "units": 2, "value": {"amount": "40.00"}}
    # 1002 waited from day 1 to day 10: 216 hours, p50 and p90 within 2 %
    wait = found["wait"]
    assert wait["max"] == 216.0
    assert wait["relativeError"] == 0.02
    for q in ("p50", "p90"):
        assert abs(wait[q] - 216.0) <= 0.02 * 216.0, wait
    assert found["cancelledWhileWaiting"] == [
        {
            "reason": "CUSTOMER_DECLINED_BACKORDER",
            "tally": {"orders": 1, "units": 3, "value": {"amount": "60.00"}},
        }
    ]
    assert found["lostRevenue"] == {"amount": "60.00", "currencyCode": "USD"}
    assert found["ordersPlaced"] == 3
    assert found["backorderRate"] == pytest.approx(2 / 3)
    # 1001 was due to ship by the end of day 2 and still waited then; 1002 had no date
    assert found["overdueShare"] == 0.5
    assert set(buckets(found).values()) == {(0, 0, "0.00")}

    # on day 5 both waited: 1001 for 5 days, 1002 for 4
    early = await outcomes(api, store, DAY0, day(5))
    assert buckets(early) == {
        "0-2 days": (0, 0, "0.00"),
        "3-7 days": (2, 5, "100.00"),
        "8-14 days": (0, 0, "0.00"),
        "over 14 days": (0, 0, "0.00"),
    }
    assert early["lostRevenue"]["amount"] == "0.00"
    assert early["filled"]["units"] == 0
    assert early["wait"] == {"p50": None, "p90": None, "max": None, "relativeError": 0.02}
    # ages are calendar days of the store: on day 9 at 09:00, 1001 (placed on day 0) had
    # waited 9 days, 1002 (day 1) 8, though only 7 days and 23 hours had passed
    late = await outcomes(api, store, day(8), day(9, 9))
    assert buckets(late)["8-14 days"] == (2, 5, "100.00")
    assert buckets(late)["3-7 days"] == (0, 0, "0.00")
    # on day 8 just before midnight, 1002 had waited 7 days
    eve = await outcomes(api, store, day(7), day(8, 23) + dt.timedelta(minutes=59))
    assert buckets(eve)["3-7 days"] == (1, 2, "40.00")
    assert buckets(eve)["8-14 days"] == (1, 3, "60.00")
    assert late["started"]["units"] == 0
    assert late["ordersPlaced"] == 0
    assert late["backorderRate"] == 0.0


async def test_the_product_and_the_leaders(api: Api, clock: Clock) -> None:
    store = await worked_example(api, clock)
    await api.upsert(store, "CUP", price="5.00")
    await api.place(store, [("CUP", 4)])  # waiting, nothing lost
    clock.advance(dt.timedelta(hours=1))
    data = await ask(api, store, PRODUCT_OUTCOMES, sku="MUG", **{"from": DAY0, "to": day(12)})
    mug = data["store"]["product"]["backorderOutcomes"]
    assert mug["lostRevenue"]["amount"] == "60.00"
    assert mug["ordersPlaced"] == 3
    assert mug["started"]["orders"] == 2
    data = await ask(api, store, PRODUCT_OUTCOMES, sku="CUP", **{"from": DAY0, "to": day(12)})
    cup = data["store"]["product"]["backorderOutcomes"]
    assert cup["lostRevenue"]["amount"] == "0.00"
    assert cup["started"] == {"orders": 1, "units": 4, "value": {"amount": "20.00"}}
    assert buckets(cup)["0-2 days"] == (1, 4, "20.00")

    span = {"from": DAY0, "to": day(12)}
    by_lost = await ask(api, store, LEADERS, by="LOST_REVENUE", **span)
    assert [
        (x["product"]["sku"], x["outcomes"]["lostRevenue"]["amount"])
        for x in by_lost["store"]["backorderLeaders"]
    ] == [("MUG", "60.00")]
    by_units = await ask(api, store, LEADERS, by="UNITS_WAITING", **span)
    [cups] = by_units["store"]["backorderLeaders"]
    assert cups["product"]["sku"] == "CUP"
    assert cups["unitsToReorder"] == 4
    assert cups["outcomes"]["stillWaiting"][0]["tally"]["units"] == 4
    by_wait = await ask(api, store, LEADERS, by="WAIT_P90", **span)
    assert [x["product"]["sku"] for x in by_wait["store"]["backorderLeaders"]] == ["MUG"]


async def test_the_trend_adds_up_to_the_period(api: Api, clock: Clock) -> None:
    store = await worked_example(api, clock)
    start, end = day(0, 6), day(11)
    data = await ask(api, store, TREND, i="DAY", **{"from": start, "to": end})
    points = data["store"]["backorderOutcomesTrend"]
    assert len(points) == 12  # a partial first day, then days 1 to 10, then day 11's 10 hours
    assert points[0]["at"] == start.isoformat()
    assert points[1]["at"] == DAY0.replace(day=3).isoformat()
    assert all(p["outcomes"]["from"] == p["at"] for p in points)
    assert [p["outcomes"]["to"] for p in points[:-1]] == [p["at"] for p in points[1:]]
    assert points[-1]["outcomes"]["to"] == end.isoformat()
    started = [p["outcomes"]["started"]["units"] for p in points]
    assert started == [3, 2] + [0] * 10
    lost = [p["outcomes"]["lostRevenue"]["amount"] for p in points]
    assert lost[9] == "60.00"
    assert sum(p["outcomes"]["ordersPlaced"] for p in points) == 3
    weekly = await ask(api, store, TREND, i="WEEK", **{"from": start, "to": end})
    assert [p["at"] for p in weekly["store"]["backorderOutcomesTrend"]] == [
        start.isoformat(),
        day(7, 0).isoformat(),
    ]
    monthly = await ask(api, store, TREND, i="MONTH", **{"from": day(-5), "to": end})
    months = monthly["store"]["backorderOutcomesTrend"]
    assert [p["at"] for p in months] == [day(-5).isoformat(), "2026-03-01T00:00:00+00:00"]
    assert months[1]["outcomes"]["started"]["units"] == 5


async def test_every_outcomes_statement_is_compiled_once(api: Api, clock: Clock) -> None:
    """Each statement of an outcomes read, a trend and the leaders is one SQLAlchemy keeps
    compiled: asked again over other instants (as many periods), none is compiled anew.
    Their periods were a VALUES list with its data, which SQLAlchemy cannot cache: every
    statement was compiled at every call, some two thirds of an outcomes read's CPU."""
    store = await worked_example(api, clock)
    assert api.db is not None
    seen: list[CacheStats] = []
    missed: list[str] = []

    def record(
        _conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, *_: Any
    ) -> None:
        if context.compiled is None:  # SQL written out (BEGIN on SQLite): nothing to cache
            return
        seen.append(context.cache_hit)
        if context.cache_hit is not CacheStats.CACHE_HIT:
            missed.append(f"{context.cache_hit.name}: {statement}")

    async def read_all(end: dt.datetime) -> None:
        span = {"from": DAY0, "to": end}
        await ask(api, store, STORE_OUTCOMES, **span)
        await ask(api, store, PRODUCT_OUTCOMES, sku="MUG", **span)
        await ask(api, store, TREND, i="DAY", **span)
        for by in ("LOST_REVENUE", "WAIT_P90", "UNITS_WAITING"):
            await ask(api, store, LEADERS, by=by, **span)

    await read_all(day(9, 9))  # periods that end before now, in an hour without changes
    event.listen(api.db.engine.sync_engine, "before_cursor_execute", record)
    try:
        await read_all(day(9, 8))  # as many periods, the same facts, other instants
    finally:
        event.remove(api.db.engine.sync_engine, "before_cursor_execute", record)
    assert len(seen) > 20  # the outcomes' own statements, not only the key's and store's
    assert missed == []
    assert set(seen) == {CacheStats.CACHE_HIT}


async def test_a_take_back_starts_a_wait_filled_oldest_first(api: Api, clock: Clock) -> None:
    """An order placed with stock loses it to a recount, waits again, and is filled: the
    units taken back wait from the recount, not from the placement."""
    clock.freeze(day(0, 9))
    store = await api.create_store(policy="ALLOW")
    await api.upsert(store, "MUG", price="20.00")
    await api.receive(store, "MUG", 2)
    clock.freeze(day(0))
    placed = await api.place(store, [("MUG", 3)])  # 2 allocated, 1 waits from day 0
    assert placed["order"]["stockStatus"] == "PARTIALLY_BACKORDERED"
    clock.freeze(day(2))
    await api.adjust(store, "MUG", setOnHand=0)  # the 2 are taken back: they wait from day 2
    clock.freeze(day(3))
    await api.receive(store, "MUG", 1)  # the oldest waiting unit: waited 3 days
    clock.freeze(day(4))
    found = await outcomes(api, store, DAY0, day(4))
    assert found["started"] == {"orders": 1, "units": 3, "value": {"amount": "60.00"}}
    assert found["filled"]["units"] == 1
    assert found["filled"]["orders"] == 0  # still waiting for 2
    assert found["wait"]["max"] == 72.0
    assert buckets(found)["0-2 days"] == (0, 2, "40.00")  # the 2 taken back on day 2
    assert buckets(found)["3-7 days"] == (1, 0, "0.00")  # the order waits since day 0
    clock.freeze(day(6))
    await api.receive(store, "MUG", 2)
    clock.freeze(day(7))
    found = await outcomes(api, store, DAY0, day(7))
    assert found["filled"] == {"orders": 1, "units": 3, "value": {"amount": "60.00"}}
    assert found["wait"]["max"] == 96.0  # the 2 taken back on day 2, filled on day 6
    assert found["backorderRate"] == 1.0


async def test_an_order_filled_before_its_date_is_not_overdue(api: Api, clock: Clock) -> None:
    """Of two orders due by day 2, the one filled on day 1 never became overdue while
    waiting; the other still waited when day 2 ended. A product's share counts its lines."""
    clock.freeze(day(0, 9))
    store = await api.create_store(policy="ALLOW")
    await api.upsert(store, "MUG", price="20.00")
    clock.freeze(day(0))
    await api.place(store, [("MUG", 1)], requestedShipDate="2026-03-04")
    await api.place(store, [("MUG", 1)], requestedShipDate="2026-03-04")
    clock.freeze(day(1))
    await api.receive(store, "MUG", 1)  # the first: filled before its date
    clock.freeze(day(5))
    found = await outcomes(api, store, DAY0, day(5))
    assert found["started"]["orders"] == 2
    assert found["overdueShare"] == 0.5
    data = await ask(api, store, PRODUCT_OUTCOMES, sku="MUG", **{"from": DAY0, "to": day(5)})
    assert data["store"]["product"]["backorderOutcomes"]["overdueShare"] == 0.5
    # before day 2 ended, neither had become overdue
    assert (await outcomes(api, store, DAY0, day(2)))["overdueShare"] == 0.0


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"from": "2026-03-02T00:00:00+00:00", "to": "2026-03-01T00:00:00+00:00"}, "after"),
        ({"from": "2026-03-02T00:00:00", "to": "2026-03-03T00:00:00+00:00"}, "offset"),
        ({"from": "2999-01-01T00:00:00+00:00", "to": "2999-02-01T00:00:00+00:00"}, "future"),
    ],
)
async def test_bad_periods_are_refused(
    api: Api, clock: Clock, variables: dict[str, str], message: str
) -> None:
    store = await api.create_store(policy="ALLOW")
    result = await api.raw(STORE_OUTCOMES, {"h": store.handle, **variables}, token=store.token)
    [error] = result["errors"]
    assert error["extensions"]["code"] in ("INVALID", "BAD_USER_INPUT"), error
    assert message in error["message"].lower() or error["extensions"]["code"] == "BAD_USER_INPUT"


async def test_too_many_points_and_leaders_are_refused(api: Api, clock: Clock) -> None:
    store = await api.create_store(policy="ALLOW")
    span = {"from": "2020-01-01T00:00:00+00:00", "to": "2026-01-01T00:00:00+00:00"}
    result = await api.raw(TREND, {"h": store.handle, "i": "DAY", **span}, token=store.token)
    assert "at most 1000 points" in result["errors"][0]["message"]
    result = await api.raw(
        LEADERS.replace("to: $to)", "to: $to, first: 101)"),
        {"h": store.handle, "by": "LOST_REVENUE", **span},
        token=store.token,
    )
    assert result["errors"][0]["extensions"]["code"] == "INVALID"


async def test_what_changed_at_the_end_does_not_wait_at_it(api: Api, clock: Clock) -> None:
    """Still waiting at `to` is after every change before it: an order placed short at
    `to` itself (now) is not waiting yet, in no bucket."""
    clock.freeze(day(0, 9))
    store = await api.create_store(policy="ALLOW")
    await api.upsert(store, "MUG", price="20.00")
    clock.freeze(day(0))
    await api.place(store, [("MUG", 2)])
    found = await outcomes(api, store, day(-1), day(0))
    assert set(buckets(found).values()) == {(0, 0, "0.00")}
    assert found["started"]["units"] == 0
    clock.freeze(day(0, 11))
    assert buckets(await outcomes(api, store, day(-1), day(0))) == buckets(found)
    later = await outcomes(api, store, day(-1), day(0, 11))
    assert buckets(later)["0-2 days"] == (1, 2, "40.00")


async def test_the_longest_wait_is_exact_to_the_microsecond(api: Api, clock: Clock) -> None:
    clock.freeze(day(0, 9))
    store = await api.create_store(policy="ALLOW")
    await api.upsert(store, "MUG", price="20.00")
    placed_at = day(0) + dt.timedelta(microseconds=1)
    clock.freeze(placed_at)
    await api.place(store, [("MUG", 1)])
    filled_at = day(3, 7) + dt.timedelta(seconds=59, microseconds=250_000)
    clock.freeze(filled_at)
    await api.receive(store, "MUG", 1)
    clock.freeze(day(4))
    found = await outcomes(api, store, DAY0, day(4))
    assert found["wait"]["max"] == (filled_at - placed_at).total_seconds() / 3600


LEADERS_IN_FULL = f"""query($h: String!, $by: OutcomeRanking!, $from: DateTime!, $to: DateTime!) {{
  store(handle: $h) {{ backorderLeaders(by: $by, from: $from, to: $to, first: 100) {{
    product {{ sku }} outcomes {{ {OUTCOME_FIELDS} }} }} }} }}"""
SKUS = ("ANCHOR", "BELL", "CLOCK", "DRUM", "EASEL", "FLUTE")


@pytest.fixture
async def roomy(database: Database, clock: Clock) -> AsyncIterator[Api]:
    """The API with a rate limit these many reads do not reach."""
    roomy = {"rate_limit_capacity": 10**9, "rate_limit_restore_per_second": 10**9}
    async with app_client(database, clock, **roomy) as http:
        yield Api(http, ADMIN_TOKEN, database)


async def busy_store(api: Api, clock: Clock, seed: int) -> StoreHandle:
    """Six products over three weeks of orders (some with a ship date, many short),
    deliveries, declines and other cancellations, at hours drawn from `seed`."""
    rng = random.Random(seed)
    clock.freeze(day(-1))
    store = await api.create_store(policy="ALLOW")
    for n, sku in enumerate(SKUS):
        await api.upsert(store, sku, price=f"{3 + 4 * n}.50")
    await api.receive(store, "ANCHOR", 2)
    at, open_orders = day(0, 1), []
    while at < day(20):
        clock.freeze(at)
        roll = rng.random()
        if roll < 0.55:
            lines = [(sku, rng.randint(1, 4)) for sku in rng.sample(SKUS, rng.randint(1, 3))]
            due = {}
            if rng.random() < 0.5:  # due today or within two days
                ship_by = (at + dt.timedelta(days=rng.randint(0, 2))).date()
                due["requestedShipDate"] = ship_by.isoformat()
            placed = await api.place(store, lines, **due)
            assert placed["userErrors"] == []
            open_orders.append(placed["order"]["id"])
        elif roll < 0.8:
            await api.receive(store, rng.choice(SKUS), rng.randint(1, 6))
        elif open_orders:
            reason = rng.choice(("CUSTOMER_DECLINED_BACKORDER", "CUSTOMER_REQUEST"))
            await api.cancel(store, open_orders.pop(rng.randrange(len(open_orders))), reason)
        at += dt.timedelta(hours=rng.randint(1, 7), minutes=rng.randint(0, 59))
    clock.freeze(day(20, 15))
    return store


@pytest.mark.parametrize("seed", [1, 2])
async def test_the_leaders_outcomes_are_each_products_own(
    roomy: Api, clock: Clock, seed: int
) -> None:
    """The leaders' outcomes are read for all of them at once, each product in a lane of
    the same statements: each is exactly what the product's own `backorderOutcomes`
    answers, over periods of whole days and parts of days, ending now or before, within
    one day, and with the overdue instants and age buckets in play."""
    api = roomy
    store = await busy_store(api, clock, seed)
    periods = [
        (day(-1), day(20, 15)),  # ends now
        (day(2, 5), day(9, 13)),  # whole days and parts of days, ends before now
        (day(3, 1), day(3, 23)),  # within one day
        (day(6, 0), day(16, 0)),  # whole days only
        (day(19, 4), day(20, 15)),  # the last day and a part of it, ends now
        # across a midnight, no whole day: orders due that day become overdue in it
        *((day(k, 12), day(k + 1, 11)) for k in range(0, 19, 2)),
    ]
    compared, overdue_in_later_lanes = 0, 0
    for start, end in periods:
        span = {"from": start, "to": end}
        for by in ("LOST_REVENUE", "WAIT_P90", "UNITS_WAITING"):
            data = await ask(api, store, LEADERS_IN_FULL, by=by, **span)
            leaders = data["store"]["backorderLeaders"]
            for lane, leader in enumerate(leaders):
                sku = leader["product"]["sku"]
                own = await ask(api, store, PRODUCT_OUTCOMES, sku=sku, **span)
                assert leader["outcomes"] == own["store"]["product"]["backorderOutcomes"], (
                    by,
                    start,
                    end,
                    sku,
                )
                compared += 1
                overdue_in_later_lanes += lane > 0 and leader["outcomes"]["overdueShare"] > 0
            if by == "UNITS_WAITING" and end == day(20, 15):
                assert len(leaders) >= 3  # several lanes read together
    assert overdue_in_later_lanes > 0
    assert compared >= 25


async def test_the_leaders_statements_do_not_grow_with_their_number(api: Api, clock: Clock) -> None:
    """Four leaders cost the statements of one: their outcomes are read together (ranked
    by the wait, each has fills, so each reads the same parts)."""
    store = await busy_store(api, clock, 1)
    assert api.db is not None
    span = {"from": day(2, 5), "to": day(20, 15)}
    counted = []
    for first in (1, 4):
        query = LEADERS_IN_FULL.replace("first: 100", f"first: {first}")
        with counting_statements(api.db) as statements:
            data = await ask(api, store, query, by="WAIT_P90", **span)
        assert len(data["store"]["backorderLeaders"]) == first
        counted.append(len(statements))
    assert counted[0] == counted[1], counted

"""The rules of what waiting costs (domain/outcomes.py), without a database: the wait
histogram's error bound, a line's waiting chunks, episodes, calendar ages, trend periods."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from itertools import pairwise
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from ordergraph.domain.model import CancelReason, Order, OrderLine
from ordergraph.domain.outcomes import (
    RELATIVE_ERROR,
    Chunk,
    FactKind,
    LineBefore,
    OutcomeInterval,
    Waiting,
    WaitSketch,
    age_bucket,
    bucket_value,
    decode_waiting,
    encode_waiting,
    line_facts,
    order_facts,
    period_bounds,
    wait_bucket,
)

T0 = dt.datetime(2026, 3, 2, 10, tzinfo=dt.UTC)


def hours(n: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=n)


@given(st.floats(min_value=1.0, max_value=1e9, allow_nan=False))
def test_every_wait_is_within_the_relative_error_of_its_bucket(seconds: float) -> None:
    value = bucket_value(wait_bucket(seconds))
    assert abs(value - seconds) <= RELATIVE_ERROR * seconds * (1 + 1e-9)


@given(st.lists(st.tuples(st.integers(1, 10**7), st.integers(1, 5)), min_size=1, max_size=60))
def test_quantiles_are_within_the_error_of_the_exact_lower_quantile(
    waits: list[tuple[int, int]],
) -> None:
    sketch = WaitSketch()
    for seconds, units in waits:
        sketch.add(wait_bucket(seconds), units)
    ranked = sorted(s for s, units in waits for _ in range(units))
    for q in (0.5, 0.9):
        exact = ranked[max(1, math.ceil(q * len(ranked))) - 1]
        found = sketch.quantile(q)
        assert found is not None
        assert abs(found - exact) <= RELATIVE_ERROR * exact * (1 + 1e-9)


def test_the_chunks_of_a_line_round_trip_and_stay_implicit_when_all_began_at_placement() -> None:
    assert encode_waiting(Waiting(T0, (Chunk(T0, 3),)), T0) is None
    assert decode_waiting(None, T0, 3) == Waiting(T0, (Chunk(T0, 3),))
    assert decode_waiting(None, T0, 0) is None
    mixed = Waiting(T0, (Chunk(T0, 1), Chunk(hours(5), 2)))
    text = encode_waiting(mixed, T0)
    assert text is not None
    assert decode_waiting(text, T0, 3) == mixed


def line(backordered: int, cancelled: int = 0, allocated: int = 0) -> OrderLine:
    return OrderLine(
        store_id=1,
        id=7,
        order_id=3,
        product_id=5,
        sku="MUG",
        quantity=10,
        unit_price=Decimal("2.50"),
        placed_at=T0,
        order_number=1001,
        allocated=allocated,
        backordered=backordered,
        cancelled=cancelled,
    )


def test_fills_take_the_oldest_units_and_cancellations_the_newest() -> None:
    # 1 unit waits from placement, 2 more were taken back 5 hours later
    before = LineBefore(3, 0, encode_waiting(Waiting(T0, (Chunk(T0, 1), Chunk(hours(5), 2))), T0))
    filled, _ = line_facts(line(1, allocated=2), before, hours(10), None)
    assert [(f.kind, f.since, f.units) for f in filled] == [
        (FactKind.FILL, T0, 1),
        (FactKind.FILL, hours(5), 1),
    ]
    cancelled, after = line_facts(
        line(1, cancelled=2), before, hours(10), CancelReason.CUSTOMER_DECLINED_BACKORDER
    )
    assert [(f.kind, f.since, f.units, f.value) for f in cancelled] == [
        (FactKind.CANCEL, hours(5), 2, Decimal("5.00"))
    ]
    assert cancelled[0].reason is CancelReason.CUSTOMER_DECLINED_BACKORDER
    assert decode_waiting(after, T0, 1) == Waiting(T0, (Chunk(T0, 1),))


def test_episodes_open_with_the_first_waiting_unit_and_close_with_the_last() -> None:
    order = Order(store_id=1, id=3, number=1001, placed_at=T0, lines=[line(3)])
    opened, waiting, since = order_facts(order, {}, False, T0, None)
    assert [(f.kind, f.at_placement, f.line_episode, f.order_episode) for f in opened] == [
        (FactKind.START, True, T0, T0)
    ]
    assert since == T0
    order.backordered_since = since
    order.lines = [line(0, allocated=3)]
    before = {7: LineBefore(3, 0, waiting[7])}
    closed, _, since = order_facts(order, before, True, hours(30), None)
    assert [(f.kind, f.units, f.line_episode, f.order_episode) for f in closed] == [
        (FactKind.FILL, 3, T0, T0)
    ]
    assert since is None
    assert closed[0].wait_seconds == 30 * 3600


def test_ages_are_calendar_days_of_the_store() -> None:
    tokyo = ZoneInfo("Asia/Tokyo")
    late_evening = dt.datetime(2026, 3, 2, 14, 50, tzinfo=dt.UTC)  # 23:50 in Tokyo
    next_morning = dt.datetime(2026, 3, 2, 15, 10, tzinfo=dt.UTC)  # 00:10 the next day
    assert age_bucket(late_evening, next_morning, dt.UTC) == 0
    assert age_bucket(late_evening, next_morning + dt.timedelta(days=2), tokyo) == 1
    assert age_bucket(late_evening, next_morning + dt.timedelta(days=13), tokyo) == 2
    assert age_bucket(late_evening, next_morning + dt.timedelta(days=14), tokyo) == 3


def test_trend_periods_follow_the_stores_calendar_across_a_clock_change() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    start = dt.datetime(2026, 3, 27, 12, tzinfo=dt.UTC)
    end = dt.datetime(2026, 3, 31, 12, tzinfo=dt.UTC)
    bounds = period_bounds(start, end, OutcomeInterval.DAY, berlin)
    assert bounds[0] == start
    assert bounds[-1] == end
    midnights = [b.astimezone(berlin) for b in bounds[1:-1]]
    assert all(m.hour == 0 and m.minute == 0 for m in midnights)
    lengths = {(b - a).total_seconds() / 3600 for a, b in pairwise(bounds[1:-1])}
    assert lengths == {23.0, 24.0}  # March 29 has 23 hours
    june = dt.datetime(2026, 6, 15, tzinfo=dt.UTC)
    months = period_bounds(start, june, OutcomeInterval.MONTH, berlin)
    assert [b.astimezone(berlin).day for b in months[1:-1]] == [1, 1, 1]
    weeks = period_bounds(start, end + dt.timedelta(days=10), OutcomeInterval.WEEK, berlin)
    assert all(b.astimezone(berlin).weekday() == 0 for b in weeks[1:-1])

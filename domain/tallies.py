"""The figures a merchant steers by: backlog, backorders, overdue, overdue backorders.

Each order contributes to the store's tallies according to its state; a change
to an order moves the tallies by the difference of its contribution before and
after. Overdue is the backlog of the orders whose overdue instant has passed,
so it is kept per overdue instant and summed over the instants up to a time.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from ordergraph.domain.model import Order

ZERO = Decimal(0)


@dataclass(frozen=True)
class Tally:
    orders: int = 0
    units: int = 0
    value: Decimal = ZERO

    def __add__(self, other: Tally) -> Tally:
        return Tally(self.orders + other.orders, self.units + other.units, self.value + other.value)

    def __sub__(self, other: Tally) -> Tally:
        return Tally(self.orders - other.orders, self.units - other.units, self.value - other.value)

    def __bool__(self) -> bool:
        return bool(self.orders or self.units or self.value)


@dataclass(frozen=True)
class Contribution:
    """What one order (or a sum of orders) adds to the backlog and backorder tallies."""

    backlog: Tally = field(default_factory=Tally)
    backorders: Tally = field(default_factory=Tally)

    def __add__(self, other: Contribution) -> Contribution:
        return Contribution(self.backlog + other.backlog, self.backorders + other.backorders)

    def __sub__(self, other: Contribution) -> Contribution:
        return Contribution(self.backlog - other.backlog, self.backorders - other.backorders)

    def __bool__(self) -> bool:
        return bool(self.backlog or self.backorders)


NOTHING = Contribution()


def contribution(order: Order) -> Contribution:
    """Backlog: units left to ship and their value; backorders: units awaiting stock."""
    if not order.in_backlog:
        return NOTHING
    open_value = sum((line.open_units * line.unit_price for line in order.lines), ZERO)
    backlog = Tally(1, order.open_units, open_value)
    if not order.is_backordered:
        return Contribution(backlog, Tally())
    return Contribution(backlog, Tally(1, order.backordered_units, order.backordered_value))


@dataclass(frozen=True)
class Figures:
    as_of: dt.datetime
    backlog: Tally
    backorders: Tally
    overdue: Tally
    overdue_backorders: Tally
    oldest_backorder_placed_at: dt.datetime | None


def figures(
    as_of: dt.datetime,
    totals: Contribution,
    overdue: Contribution,
    oldest_backorder_placed_at: dt.datetime | None,
) -> Figures:
    return Figures(
        as_of=as_of,
        backlog=totals.backlog,
        backorders=totals.backorders,
        overdue=overdue.backlog,
        overdue_backorders=overdue.backorders,
        oldest_backorder_placed_at=oldest_backorder_placed_at,
    )


TREND_STEPS = {
    "HOUR": dt.timedelta(hours=1),
    "DAY": dt.timedelta(days=1),
    "WEEK": dt.timedelta(weeks=1),
}
MAX_TREND_POINTS = 1000


def trend_instants(
    start: dt.datetime, end: dt.datetime, interval: str, tz: dt.tzinfo
) -> list[dt.datetime]:
    """The interval boundaries in the store's zone from `start` to `end`, both included.

    DAY boundaries are local midnights and WEEK boundaries local Monday midnights, so
    a day around a daylight-saving change is 23 or 25 hours long.
    """
    if end < start:
        return []
    local = start.astimezone(tz)
    if interval == "HOUR":
        cursor = local.replace(minute=0, second=0, microsecond=0)
    else:
        cursor = local.replace(hour=0, minute=0, second=0, microsecond=0)
        if interval == "WEEK":
            cursor -= dt.timedelta(days=cursor.weekday())
    points: list[dt.datetime] = []
    day = cursor.date()
    hour_utc = cursor.astimezone(dt.UTC)
    while True:
        if interval == "HOUR":
            instant = hour_utc
            hour_utc += dt.timedelta(hours=1)
        else:
            instant = dt.datetime.combine(day, dt.time(0), tzinfo=tz).astimezone(dt.UTC)
            day += dt.timedelta(days=1 if interval == "DAY" else 7)
        if instant > end:
            break
        if instant >= start:
            points.append(instant)
        if len(points) > MAX_TREND_POINTS:
            break
    return points

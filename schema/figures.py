"""The figures' types: OrderTally, BacklogSummary, BacklogPoint, TrendInterval.

A trend has up to 1,000 points of 16 fields each when a client asks for everything, so
every field of OrderTally and BacklogPoint is a plain read of an attribute set when the
object is made (`nodes.plain`): no resolver, no Info, no awaitable.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal
from enum import Enum
from operator import attrgetter
from typing import Any, Protocol

import strawberry

from ordergraph.domain.tallies import Figures, Tally
from ordergraph.schema.enums import described
from ordergraph.schema.money import Money, money
from ordergraph.schema.nodes import plain


class TrendInterval(Enum):
    HOUR = "HOUR"
    DAY = "DAY"
    WEEK = "WEEK"


described(
    TrendInterval,
    "The step of a backlog trend, in the store's time zone.",
    {
        "HOUR": "Every hour, on the hour.",
        "DAY": "Every local midnight (a day is 23 to 25 hours around a clock change).",
        "WEEK": "Every Monday at local midnight.",
    },
)


def _read(graphql_type: Any, name: str, description: str) -> Any:
    """The field is the object's attribute `name`, read as it is."""
    return plain(graphql_type, attrgetter(name), description)


class Point(Protocol):
    """What a trend's point shows (storage's trend point): its instant and its three
    tallies' numbers, `(orders, units, value)` for the backlog, the backorders and the
    overdue orders, in that order."""

    @property
    def as_of(self) -> dt.datetime: ...
    @property
    def numbers(self) -> tuple[Any, ...]: ...


def _tally(tally: Tally, currency: str) -> OrderTally:
    return OrderTally(orders=tally.orders, units=tally.units, value=money(tally.value, currency))


@strawberry.type(description="A set of orders counted three ways: orders, units and value.")
class OrderTally:
    orders: int = _read(int, "orders", "How many orders.")
    units: int = _read(
        int, "units", "Backlog: units left to ship; backorders: units awaiting stock."
    )
    value: Money = _read(Money, "value", "Those units at their order-line unit price.")


@strawberry.type(
    description="A store's four figures at one instant: backlog, backorders, overdue and "
    "overdue backorders."
)
class BacklogSummary:
    as_of: dt.datetime = strawberry.field(description="The instant the figures are for.")
    backlog: OrderTally = strawberry.field(
        description="Orders received and not yet fully shipped or cancelled."
    )
    backorders: OrderTally = strawberry.field(
        description="Backlog orders with units awaiting stock."
    )
    overdue: OrderTally = strawberry.field(
        description="Backlog orders whose requested ship date has ended."
    )
    overdue_backorders: OrderTally = strawberry.field(
        description="Both: late because the item is not available."
    )
    oldest_backorder_placed_at: dt.datetime | None = strawberry.field(
        description="When the oldest order still awaiting stock was placed; null when no "
        "order awaits stock."
    )

    @classmethod
    def of(cls, found: Figures, currency: str) -> BacklogSummary:
        return cls(
            as_of=found.as_of,
            backlog=_tally(found.backlog, currency),
            backorders=_tally(found.backorders, currency),
            overdue=_tally(found.overdue, currency),
            overdue_backorders=_tally(found.overdue_backorders, currency),
            oldest_backorder_placed_at=found.oldest_backorder_placed_at,
        )


@strawberry.type(description="The figures at one interval boundary of a backlog trend.")
class BacklogPoint:
    at: dt.datetime = _read(dt.datetime, "at", "The interval boundary (in UTC).")
    backlog: OrderTally = _read(
        OrderTally, "backlog", "Orders received and not yet fully shipped or cancelled."
    )
    backorders: OrderTally = _read(
        OrderTally, "backorders", "Backlog orders with units awaiting stock."
    )
    overdue: OrderTally = _read(
        OrderTally, "overdue", "Backlog orders whose requested ship date had ended."
    )

    @classmethod
    def series(cls, found: Iterable[Point], currency: str) -> list[BacklogPoint]:
        """A trend's points, as shown. An amount's Money is made once per trend: points
        repeat amounts, and the objects shown are only read."""
        shown: dict[Decimal, Money] = {}

        def tally(orders: int, units: int, value: Decimal) -> OrderTally:
            amount = shown.get(value)
            if amount is None:
                amount = shown[value] = money(value, currency)
            return OrderTally(orders=orders, units=units, value=amount)

        points = []
        for point in found:
            n = point.numbers
            points.append(
                cls(
                    at=point.as_of,
                    backlog=tally(n[0], n[1], n[2]),
                    backorders=tally(n[3], n[4], n[5]),
                    overdue=tally(n[6], n[7], n[8]),
                )
            )
        return points

"""The figures' types: OrderTally, BacklogSummary, BacklogPoint, TrendInterval."""

from __future__ import annotations

import datetime as dt
from enum import Enum

import strawberry

from ordergraph.domain.tallies import Figures, Tally
from ordergraph.schema.money import Money, money


@strawberry.enum
class TrendInterval(Enum):
    HOUR = "HOUR"
    DAY = "DAY"
    WEEK = "WEEK"


def _tally(tally: Tally, currency: str) -> OrderTally:
    return OrderTally(orders=tally.orders, units=tally.units, value=money(tally.value, currency))


@strawberry.type
class OrderTally:
    orders: int = strawberry.field(description="How many orders.")
    units: int = strawberry.field(
        description="Backlog: units left to ship; backorders: units awaiting stock."
    )
    value: Money = strawberry.field(description="Those units at their order-line unit price.")


@strawberry.type
class BacklogSummary:
    as_of: dt.datetime
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
    oldest_backorder_placed_at: dt.datetime | None

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


@strawberry.type
class BacklogPoint:
    at: dt.datetime
    backlog: OrderTally
    backorders: OrderTally
    overdue: OrderTally

    @classmethod
    def of(cls, found: Figures, currency: str) -> BacklogPoint:
        return cls(
            at=found.as_of,
            backlog=_tally(found.backlog, currency),
            backorders=_tally(found.backorders, currency),
            overdue=_tally(found.overdue, currency),
        )

"""What waiting costs: BackorderOutcomes and its parts (domain/outcomes.py has the
rules; README "What waiting costs" the worked example)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import strawberry

from ordergraph.domain.model import CancelReason
from ordergraph.domain.outcomes import AGE_BUCKETS, RELATIVE_ERROR, Outcomes, Wait, Want
from ordergraph.domain.tallies import Tally
from ordergraph.schema.figures import OrderTally
from ordergraph.schema.money import Money, money


def wanted(info: Any) -> Want:
    """What the request selects of the outcomes beyond their sums (storage/queries/
    outcomes.py `Want`): the overdue share and what still waits cost statements of their
    own, worked out only when asked for (in any alias or fragment)."""
    names: set[str] = set()

    def walk(selections: Any) -> None:
        for selection in selections:
            name = getattr(selection, "name", None)
            if name:
                names.add(name)
            walk(getattr(selection, "selections", None) or ())

    walk(info.selected_fields)
    return Want(overdue="overdueShare" in names, waiting="stillWaiting" in names)


def _tally(tally: Tally, currency: str) -> OrderTally:
    return OrderTally(orders=tally.orders, units=tally.units, value=money(tally.value, currency))


@strawberry.type(
    description="How long backordered units waited for stock, in hours: from becoming "
    "backordered (placed short, or taken back by an adjustment) to being allocated, each "
    "unit counted once, over the units filled in the period. Null when none was filled."
)
class WaitQuantiles:
    p50: float | None = strawberry.field(
        description="Half the units waited at most this long (within `relativeError`)."
    )
    p90: float | None = strawberry.field(
        description="Nine in ten units waited at most this long (within `relativeError`)."
    )
    max: float | None = strawberry.field(description="The longest wait, exact.")
    relative_error: float = strawberry.field(
        description=f"The bound of p50's and p90's relative error ({RELATIVE_ERROR:g}): they "
        "come from a histogram with logarithmic buckets kept with every change."
    )

    @classmethod
    def of(cls, wait: Wait) -> WaitQuantiles:
        return cls(p50=wait.p50, p90=wait.p90, max=wait.max, relative_error=wait.relative_error)


@strawberry.type(
    description="What still waited at the end of the period, by how long it had waited in "
    "calendar days of the store's time zone (0: it began to wait that day; 1: the day "
    "before): units and value by the day those units began to wait, orders by the day the "
    "order became backordered (a product's: its line)."
)
class AgeBucket:
    label: str = strawberry.field(
        description='"0-2 days", "3-7 days", "8-14 days" or "over 14 days".'
    )
    min_days: int = strawberry.field(description="The shortest wait in the bucket, in days.")
    max_days: int | None = strawberry.field(
        description="The longest wait in the bucket, in days (included); null for the last."
    )
    tally: OrderTally = strawberry.field(description="Orders, units and value waiting.")


@strawberry.type(description="Units cancelled while they waited for stock, for one reason.")
class CancelledTally:
    reason: CancelReason = strawberry.field(description="The cancellation's reason.")
    tally: OrderTally = strawberry.field(
        description="Units and value cancelled while backordered; orders: the orders "
        "whose wait a cancellation ended (no unit left waiting; a product's: its lines)."
    )


@strawberry.type(
    description="What waiting cost over a period [from, to): backorders started, filled "
    "and cancelled, how long the filled units waited, the lost revenue, the backorder rate "
    "and what still waited at the end. Counts, units and values are exact. A store's "
    "orders count order episodes (an order is backordered from its first waiting unit to "
    "its last); a product's count its order lines' episodes."
)
class BackorderOutcomes:
    from_: dt.datetime = strawberry.field(name="from", description="The period's start.")
    to: dt.datetime = strawberry.field(
        description="The period's end (excluded): `to` as asked, or now if that was later."
    )
    started: OrderTally = strawberry.field(
        description="Became backordered in the period (at placement, or when an adjustment "
        "took stock back): units and value; orders: episodes that began."
    )
    filled: OrderTally = strawberry.field(
        description="Backordered units that got stock in the period and their value; "
        "orders: episodes that ended with a fill (the last waiting unit allocated)."
    )
    wait: WaitQuantiles = strawberry.field(description="How long the units filled waited.")
    cancelled_while_waiting: list[CancelledTally] = strawberry.field(
        description="Units cancelled while waiting, per reason (only the reasons that occurred)."
    )
    lost_revenue: Money = strawberry.field(
        description="The value cancelled while waiting with CUSTOMER_DECLINED_BACKORDER: "
        "customers who would not wait."
    )
    orders_placed: int = strawberry.field(
        description="Orders placed in the period (a product's: with a line of it)."
    )
    backorder_rate: float = strawberry.field(
        description="The share of the orders placed in the period that were placed short "
        "(a unit backordered at placement); 0 when none was placed."
    )
    overdue_share: float = strawberry.field(
        description="Of the episodes that began in the period, the share whose order's "
        "requested ship date ended (before `to`) while they still waited; 0 when none began."
    )
    still_waiting: list[AgeBucket] = strawberry.field(
        description="What waited at `to` (after every change before it), by age."
    )

    @classmethod
    def of(cls, found: Outcomes, currency: str) -> BackorderOutcomes:
        return cls(
            from_=found.start,
            to=found.end,
            started=_tally(found.started, currency),
            filled=_tally(found.filled, currency),
            wait=WaitQuantiles.of(found.wait),
            cancelled_while_waiting=[
                CancelledTally(reason=reason, tally=_tally(tally, currency))
                for reason, tally in found.cancelled.items()
            ],
            lost_revenue=money(found.lost_revenue, currency),
            orders_placed=found.orders_placed,
            backorder_rate=found.backorder_rate,
            overdue_share=found.overdue_share,
            still_waiting=[
                AgeBucket(
                    label=bucket.label,
                    min_days=bucket.min_days,
                    max_days=bucket.max_days,
                    tally=_tally(tally, currency),
                )
                for bucket, tally in zip(AGE_BUCKETS, found.still_waiting, strict=True)
            ],
        )


@strawberry.type(description="One period of a backorder outcomes trend.")
class BackorderOutcomesPoint:
    at: dt.datetime = strawberry.field(description="The period's start (in UTC).")
    outcomes: BackorderOutcomes = strawberry.field(description="Its outcomes.")

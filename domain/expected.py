"""When waiting lines get stock: the product's queue walked against its open receipts.

`plan_fills` is the rule behind `OrderLine.expectedFillDate`, `Product.unitsToReorder`
and `Order.expectedShipDate`:

- the waiting lines are taken in fill order, exactly as `receiveStock` fills them
  (placedAt, order number, line id: `OrderLine.queue_key`), and the open receipts in
  expected date order (ties: the earlier scheduled first);
- each receipt covers as many waiting units as it still expects, from the head of the
  queue on; a line's units may be covered by several receipts, and the line's date is
  the date of the receipt that covers its last unit (the latest of them);
- the product's `restock_date` is a receipt of unknown quantity: it covers every unit
  no quantified receipt does, from that date (a line partly covered by receipts gets
  the later of the two dates);
- a line with units nobody covers (no quantified receipt left and no restock date) has
  no date (None);
- `units_to_reorder` is the waiting units no open quantified receipt covers: what to
  order to drive the product's backorders to zero. A restock date does not lower it
  (its quantity is unknown).

The same walk gives each waiting line its 1-based position in the queue and cuts the
queue into runs (`FillRun`): consecutive lines whose last units come from the same
source (one receipt, the restock date, or nothing) and so share a date. A product's
runs are at most its open receipts plus two, so the whole queue's dates fit in a
short list however long the queue is.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ordergraph.domain.model import Order, Receipt


@dataclass(frozen=True)
class FillRun:
    """Consecutive waiting lines (fill order) whose last units come from one source:
    the receipt `receipt_id`, or (None) the restock date or nothing (`date` None)."""

    date: dt.date | None
    receipt_id: int | None
    first_position: int  # 1-based, in the product's queue
    first_line_id: int
    last_line_id: int
    lines: int
    units: int


@dataclass(frozen=True)
class FillPlan:
    """One product's expected fill dates: per waiting line id, its date (None:
    uncovered); the units no open receipt covers; each waiting line's 1-based position
    in the queue; and the queue's runs of one date, in fill order."""

    dates: dict[int, dt.date | None]  # in fill order
    units_to_reorder: int
    runs: tuple[FillRun, ...] = ()

    def date_of(self, line_id: int) -> dt.date | None:
        return self.dates.get(line_id)

    @cached_property
    def positions(self) -> dict[int, int]:
        """Each waiting line's 1-based position in the queue (worked out when asked)."""
        return {line_id: index for index, line_id in enumerate(self.dates, start=1)}

    def position_of(self, line_id: int) -> int | None:
        return self.positions.get(line_id)


NO_PLAN = FillPlan(dates={}, units_to_reorder=0)


def plan_fills(
    queue: Iterable[tuple[int, int]],
    receipts: Iterable[Receipt],
    restock_date: dt.date | None = None,
) -> FillPlan:
    """`queue`: (line id, backordered units) of the product's waiting lines in fill
    order; `receipts`: its open receipts (any order)."""
    incoming = sorted(
        (r for r in receipts if r.is_open and r.quantity > 0),
        key=lambda r: (r.expected_at, r.id),
    )
    dates: dict[int, dt.date | None] = {}
    runs: list[list[Any]] = []  # FillRun's fields, the last one still growing
    run: list[Any] = [None, None]
    uncovered = 0
    at = 0  # the receipt covering the next unit
    left = incoming[0].quantity if incoming else 0  # units it still has for the queue
    # (left is 0 only once every receipt is used up)
    last: dt.date | None
    for line_id, waiting in queue:
        if waiting <= 0:
            continue
        if waiting < left:  # the usual case: the receipt covers the whole line, and more
            left -= waiting
            last, source = incoming[at].expected_at, incoming[at].id
        elif not left:  # past every receipt
            uncovered += waiting
            last, source = restock_date, None
        else:
            need, last, source = waiting, None, None
            while need > 0 and at < len(incoming):
                take = min(need, left)
                need -= take
                left -= take
                last, source = incoming[at].expected_at, incoming[at].id
                if left == 0:
                    at += 1
                    left = incoming[at].quantity if at < len(incoming) else 0
            if need > 0:
                uncovered += need
                source = None
                last = None if restock_date is None else max(last or restock_date, restock_date)
        dates[line_id] = last
        if run[1] == source and run[0] == last and runs:
            run[4] = line_id
            run[5] += 1
            run[6] += waiting
        else:
            run = [last, source, len(dates), line_id, line_id, 1, waiting]
            runs.append(run)
    return FillPlan(
        dates=dates,
        units_to_reorder=uncovered,
        runs=tuple(FillRun(*found) for found in runs),
    )


def ship_date(waiting_dates: Sequence[dt.date | None]) -> dt.date | None:
    """An order's expected ship date from its waiting lines' dates: the latest; None
    when nothing waits or any waiting line has no date."""
    if not waiting_dates or any(d is None for d in waiting_dates):
        return None
    return max(d for d in waiting_dates if d is not None)


@dataclass
class FillInputs:
    """What one product's walk reads: its restock date, its waiting lines as (line id,
    order id, backordered units) in fill order, and its open receipts."""

    restock_date: dt.date | None = None
    queue: list[tuple[int, int, int]] = field(default_factory=list)
    receipts: list[Receipt] = field(default_factory=list)

    def plan(self) -> FillPlan:
        return plan_fills(
            ((line, units) for line, _, units in self.queue), self.receipts, self.restock_date
        )


def order_ship_date(order: Order, plans: Mapping[int, FillPlan]) -> dt.date | None:
    """The order's expected ship date under these plans (one per product it waits for):
    a line waits when its plan dates it (or leaves it undated)."""
    waiting = []
    for line in order.lines:
        plan = plans.get(line.product_id)
        if plan is not None and line.id in plan.dates:
            waiting.append(plan.dates[line.id])
    return ship_date(waiting)


def redated_lines(before: FillPlan, after: FillPlan) -> set[int]:
    """The lines whose date changed, or that started or stopped waiting."""
    lines = before.dates.keys() | after.dates.keys()
    return {
        line
        for line in lines
        if (line in before.dates) != (line in after.dates)
        or before.dates.get(line) != after.dates.get(line)
    }

"""The figures benchmark's world: the catalogue, the order lives drawn at random, and the
backlog figures computed straight from those lives (what the API must answer)."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import NamedTuple
from zoneinfo import ZoneInfo

from ordergraph.domain.model import BackorderPolicy, CancelReason, overdue_instant
from ordergraph.storage.tables import MONEY_SCALE

TIMEZONE = "America/New_York"
TZ = ZoneInfo(TIMEZONE)
HISTORY = dt.timedelta(days=365)
PAST = dt.timedelta(days=182)  # the past instant measured: about half a year back
TREND_POINTS = 30
SWEEP_DELAY = dt.timedelta(seconds=17)  # the overdue sweep runs within a minute
INITIAL_STOCK = 1_000_000  # per stocked product: never runs out
NO_END = 2**62  # "never stops waiting" in seq terms
TABLES = (
    "products",
    "orders",
    "order_lines",
    "events",
    "tally_points",
    "overdue_points",
    "overdue_totals",
    "overdue_crossings",
    "backorder_facts",
    "backorder_days",
    "backorder_ages",
)
BULK_TABLES = TABLES[1:]  # their keys and indexes are dropped during the load

# -- the catalogue ------------------------------------------------------------


@dataclass(frozen=True)
class ProductSpec:
    id: int
    sku: str
    title: str
    price: Decimal
    policy: BackorderPolicy
    stocked: bool
    lead_time: dt.timedelta  # zero-stock products: receipt after placement

    @property
    def price_units(self) -> int:
        return int(self.price * MONEY_SCALE)

    @property
    def price_text(self) -> str:
        """The unit price as an event payload shows it (a Decimal read back from the table)."""
        return str(Decimal(self.price_units) / MONEY_SCALE)


def catalogue() -> list[ProductSpec]:
    """50 products: 1-10 DENY and 11-25 ALLOW with ample stock; 26-50 ALLOW at zero stock."""
    specs = []
    for k in range(1, 51):
        cents = 499 + (k * 7919) % 9000
        lead_days = (2, 3, 5, 8, 13, 21)[k % 6]
        specs.append(
            ProductSpec(
                id=k,
                sku=f"BENCH-{k:03d}",
                title=f"Bench item {k}",
                price=Decimal(cents) / 100,
                policy=BackorderPolicy.DENY if k <= 10 else BackorderPolicy.ALLOW,
                stocked=k <= 25,
                lead_time=dt.timedelta(days=lead_days, minutes=k),
            )
        )
    return specs


PRODUCTS = catalogue()
BY_ID = {p.id: p for p in PRODUCTS}
STOCKED = [p for p in PRODUCTS if p.stocked]
ZERO_STOCK = [p for p in PRODUCTS if not p.stocked]
QUEUE_PRODUCT = ZERO_STOCK[0].id  # the product of the queue store's orders
FIRST_ORDER_ID = len(PRODUCTS) + 1  # products take ids 1..50, then order id, line id, ...


# -- order lives ----------------------------------------------------------------


class Life(NamedTuple):
    """One order's history; a time is None when that step has not happened by the end."""

    number: int
    product: int
    qty: int
    placed_at: dt.datetime
    rsd: dt.date | None
    overdue_at: dt.datetime | None
    fill_at: dt.datetime | None
    cancel_at: dt.datetime | None
    cancel_reason: str | None
    ship_at: dt.datetime | None
    sweep_at: dt.datetime | None

    @property
    def order_id(self) -> int:
        return FIRST_ORDER_ID + 2 * (self.number - 1001)

    @property
    def line_id(self) -> int:
        return self.order_id + 1


@dataclass(frozen=True)
class Timeline:
    """A store's setup before its first order, and the span of its orders."""

    start: dt.datetime
    end: dt.datetime

    @property
    def created_at(self) -> dt.datetime:
        return self.start - dt.timedelta(days=2)

    def product_created_at(self, spec: ProductSpec) -> dt.datetime:
        return self.created_at + dt.timedelta(seconds=spec.id)

    def received_at(self, spec: ProductSpec) -> dt.datetime:
        return self.start - dt.timedelta(days=1) + dt.timedelta(seconds=spec.id)


_Fate = tuple[dt.datetime | None, dt.datetime | None, dt.datetime | None, str | None]


def _fate(rng: random.Random, placed: dt.datetime, spec: ProductSpec, zero_stock: bool) -> _Fate:
    """When an order is filled, cancelled (and why) and shipped, if ever: (fill, cancel,
    ship, reason)."""
    fill = cancel = ship = None
    reason = None
    if zero_stock:
        if rng.random() < 0.12:
            cancel = placed + spec.lead_time * rng.uniform(0.05, 0.95)
            reason = CancelReason.CUSTOMER_DECLINED_BACKORDER.value
        else:
            fill = placed + spec.lead_time
            if rng.random() < 0.97:
                ship = fill + dt.timedelta(hours=rng.uniform(2, 72))
    else:
        fate = rng.random()
        if fate < 0.06:
            cancel = placed + dt.timedelta(minutes=rng.uniform(10, 2 * 24 * 60))
            reason = CancelReason.CUSTOMER_REQUEST.value
        elif fate < 0.98:
            ship = placed + dt.timedelta(hours=rng.uniform(1, 9 * 24))
    return fill, cancel, ship, reason


def _sweep_at(
    overdue_at: dt.datetime | None, closed: dt.datetime | None, end: dt.datetime
) -> dt.datetime | None:
    """When the overdue sweep notes the order, if it is still open then and that is
    before the end."""
    if overdue_at is None or overdue_at + SWEEP_DELAY > end:
        return None
    if closed is None or closed > overdue_at + SWEEP_DELAY:
        return overdue_at + SWEEP_DELAY
    return None


def make_lives(n: int, timeline: Timeline, seed: int) -> list[Life]:
    rng = random.Random(seed)
    start, end = timeline.start, timeline.end
    step_us = (end - start) / dt.timedelta(microseconds=1) / n
    lives = []
    for i in range(n):
        placed = start + dt.timedelta(microseconds=int((i + rng.random()) * step_us))
        qty = 1 + int(rng.random() ** 2 * 6)
        zero_stock = rng.random() < 0.3
        spec = rng.choice(ZERO_STOCK if zero_stock else STOCKED)
        rsd = overdue_at = None
        if rng.random() < 0.5:
            rsd = placed.astimezone(TZ).date() + dt.timedelta(days=rng.randint(2, 7))
            overdue_at = overdue_instant(rsd, TZ)
        fill, cancel, ship, reason = _fate(rng, placed, spec, zero_stock)
        fill, cancel, ship = (
            t if t is not None and t <= end else None for t in (fill, cancel, ship)
        )
        if cancel is None:
            reason = None
        sweep = _sweep_at(overdue_at, ship or cancel, end)
        lives.append(
            Life(1001 + i, spec.id, qty, placed, rsd, overdue_at, fill, cancel, reason, ship, sweep)
        )
    return lives


def make_queue_lives(n: int, timeline: Timeline, seed: int) -> list[Life]:
    """A product's long queue: n orders on one zero-stock product (QUEUE_PRODUCT), placed
    over the history and all still waiting at its end (no ship date, no receipt yet)."""
    rng = random.Random(seed)
    start, end = timeline.start, timeline.end
    step_us = (end - start) / dt.timedelta(microseconds=1) / n
    lives = []
    for i in range(n):
        placed = start + dt.timedelta(microseconds=int((i + rng.random()) * step_us))
        qty = 1 + int(rng.random() ** 2 * 6)
        lives.append(
            Life(1001 + i, QUEUE_PRODUCT, qty, placed, None, None, None, None, None, None, None)
        )
    return lives


# Changes in the order the application applies them; ties in time go by this rank.
PLACE, FILL, CANCEL, SHIP, SWEEP = range(5)


def changes(lives: Iterable[Life]) -> list[tuple[dt.datetime, int, int]]:
    """(time, kind, order number) of every change, in application order."""
    found = []
    for life in lives:
        for kind, at in (
            (PLACE, life.placed_at),
            (FILL, life.fill_at),
            (CANCEL, life.cancel_at),
            (SHIP, life.ship_at),
            (SWEEP, life.sweep_at),
        ):
            if at is not None:
                found.append((at, kind, life.number))
    found.sort()
    return found


# -- the figures, straight from the lives -------------------------------------------


@dataclass
class Tally:
    orders: int = 0
    units: int = 0
    value: Decimal = Decimal(0)

    def add(self, units: int, value: Decimal) -> None:
        self.orders += 1
        self.units += units
        self.value += value

    def as_tuple(self) -> tuple[int, int, Decimal]:
        return (self.orders, self.units, self.value)


@dataclass
class Expected:
    backlog: Tally = field(default_factory=Tally)
    backorders: Tally = field(default_factory=Tally)
    overdue: Tally = field(default_factory=Tally)
    overdue_backorders: Tally = field(default_factory=Tally)
    oldest_backorder: dt.datetime | None = None


def expected_at(lives: list[Life], at: dt.datetime) -> Expected:
    """The figures at `at` by their definition: the open orders and their state then."""
    fig = Expected()
    for life in lives:
        if life.placed_at > at:
            break
        if (life.ship_at is not None and life.ship_at <= at) or (
            life.cancel_at is not None and life.cancel_at <= at
        ):
            continue
        value = life.qty * BY_ID[life.product].price
        waiting = not BY_ID[life.product].stocked and not (
            life.fill_at is not None and life.fill_at <= at
        )
        overdue = life.overdue_at is not None and life.overdue_at <= at
        fig.backlog.add(life.qty, value)
        if waiting:
            fig.backorders.add(life.qty, value)
            if fig.oldest_backorder is None:
                fig.oldest_backorder = life.placed_at
        if overdue:
            fig.overdue.add(life.qty, value)
            if waiting:
                fig.overdue_backorders.add(life.qty, value)
    return fig

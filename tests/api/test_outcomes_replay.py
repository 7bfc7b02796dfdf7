"""What waiting costs against a replay of the event log, on generated histories.

The reference here is written from the rules (the docstring of domain/outcomes.py, the
field descriptions of schema/outcomes.py) and shares no code with the facts or the
queries that read them: it reads the raw `events` table, where each order event carries
the order's lines as they stood after the change, and walks it in order. Between one
event of an order and its next, a line's backordered units went up (they began to wait:
at placement, or taken back by an adjustment) or down (filled, or cancelled with the
CANCELLED event's reason). The replay keeps each line's waiting units as chunks by when
they began to wait, fills the oldest first and cancels the newest first; so it knows of
every unit when it began and stopped waiting and why, and of every line and order when
its episodes opened and closed and how (by the event that took its last waiting unit).
From that alone it computes every figure of `backorderOutcomes` over a period [from, to),
for the store (orders' episodes) and for each product (its lines' episodes), and of each
point of a DAY or WEEK trend, whose points must also add up to the whole period. Orders
filled or cancelled are the episodes a fill or a cancellation ended. What waits "at `to`"
is what waits after every change before it, aged in the store's calendar days (from the
day it began to `to`'s day); an episode is overdue when its order's ship date ended
before `to` and the episode had not closed at or before that instant. Only constants are
shared (the age buckets, the histogram's relative error and its one-second floor): the
API's p50 and p90 must be within that error of the exact lower quantiles over the units
filled, the longest wait exact.

Hypothesis writes the histories (with the helpers of tests/api/test_figures_replay.py):
stores in several zones (some crossing a daylight-saving change), several products,
multi-line orders with and without a requested ship date, receipts smaller than the
queue, counts set below the allocation (take-backs), partial shipments, cancellations of
partly filled lines for every reason, and a clock moved by nothing, minutes, hours, days,
a week or two, or to just around a local midnight.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from hypothesis import event as label
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from ordergraph.app import create_app
from ordergraph.clock import Clock
from ordergraph.domain.outcomes import AGE_BUCKETS, MIN_WAIT_SECONDS, RELATIVE_ERROR
from ordergraph.settings import Settings
from ordergraph.storage import tables
from ordergraph.storage.db import Database
from tests.api.test_figures_replay import (
    PRICES,
    REPLAY_SETTINGS,
    SHIP_BY,
    ZONES,
    History,
    LoggedEvent,
    date_ends,
    order_log,
    run_example,
    store_id_of,
)
from tests.client import Api, StoreHandle
from tests.conftest import ADMIN_TOKEN

REASONS = ("CUSTOMER_REQUEST", "CUSTOMER_DECLINED_BACKORDER", "OUT_OF_STOCK", "FRAUD", "OTHER")
LOST = "CUSTOMER_DECLINED_BACKORDER"
ACTIONS = (
    *("place",) * 6,
    *("receive",) * 3,
    *("adjust",) * 3,
    *("ship",) * 2,
    *("cancel",) * 3,
)
# Days a few before daylight-saving changes (US, EU, New Zealand; the histories run for
# days to weeks) and a quiet one.
BASE_DAYS = (
    dt.date(2028, 3, 9),
    dt.date(2028, 3, 23),
    dt.date(2028, 3, 30),
    dt.date(2028, 6, 14),
    dt.date(2028, 9, 21),
    dt.date(2028, 10, 26),
    dt.date(2028, 11, 2),
)
MOVES = ("still", "minutes", "hours", "hours", "days", "days", "weeks", "midnight")
MICRO = dt.timedelta(microseconds=1)
PERIODS = 6  # random periods checked per history, each for the store and every product

Tally = tuple[int, int, Decimal]
NO_TALLY: Tally = (0, 0, Decimal(0))


def add(a: Tally, b: Tally) -> Tally:
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2])


# -- the reference: a replay of the raw event log ------------------------------------


@dataclass
class Piece:
    """Units of one line that waited from `since` until `until` (None: they still wait at
    the end of the log), left by a FILL or a CANCEL (with its reason)."""

    order_id: int
    line_id: int
    product_id: int
    since: dt.datetime
    units: int
    price: Decimal
    until: dt.datetime | None = None
    how: str | None = None
    reason: str | None = None

    @property
    def value(self) -> Decimal:
        return self.units * self.price

    def waits_at(self, t: dt.datetime) -> bool:
        """Waiting at t: after every change before t."""
        return self.since < t and (self.until is None or self.until >= t)


@dataclass
class Episode:
    """A line's (product_id set) or an order's time with units waiting."""

    order_id: int
    product_id: int | None
    opened: dt.datetime
    overdue_at: dt.datetime | None
    closed: dt.datetime | None = None
    how: str | None = None
    reason: str | None = None

    def open_at(self, t: dt.datetime) -> bool:
        return self.opened < t and (self.closed is None or self.closed >= t)


@dataclass(frozen=True)
class Start:
    at: dt.datetime
    order_id: int
    product_id: int
    units: int
    price: Decimal


@dataclass(frozen=True)
class Placement:
    at: dt.datetime
    order_id: int
    short: bool
    lines: dict[int, bool]  # product id: whether its line was placed short


@dataclass
class Replayed:
    tz: ZoneInfo  # the store's
    starts: list[Start] = field(default_factory=list)
    pieces: list[Piece] = field(default_factory=list)
    episodes: list[Episode] = field(default_factory=list)
    placements: list[Placement] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)  # what the history did, for the statistics


def take(
    chunks: list[Piece], units: int, newest: bool, at: dt.datetime, pieces: list[Piece]
) -> list[Piece]:
    """Take `units` from a line's waiting chunks, oldest first or newest first: the pieces
    that stopped waiting at `at`. A chunk taken in part is split: the part taken is a
    new piece (added to `pieces`), the rest waits on."""
    taken = []
    while units > 0:
        index = -1 if newest else 0
        chunk = chunks[index]
        part = min(units, chunk.units)
        if part == chunk.units:
            gone = chunks.pop(index)
        else:
            chunk.units -= part
            gone = Piece(
                chunk.order_id, chunk.line_id, chunk.product_id, chunk.since, part, chunk.price
            )
            pieces.append(gone)
        gone.until = at
        taken.append(gone)
        units -= part
    return taken


@dataclass(frozen=True)
class Change:
    """One order event, as the replay reads it."""

    at: dt.datetime
    order_id: int
    type: str
    reason: str | None  # CANCELLED's
    overdue_at: dt.datetime | None

    @property
    def cancelling(self) -> bool:
        return self.type == "CANCELLED"

    @property
    def how(self) -> str:
        return "CANCEL" if self.cancelling else "FILL"


class Replay:
    """Walks the order events in order, comparing each order's lines with their state at
    the order's previous event."""

    def __init__(self, tz: ZoneInfo) -> None:
        self.found = Replayed(tz)
        self.lines_before: dict[int, dict[int, dict[str, Any]]] = {}  # order: line id: line
        self.chunks: dict[int, list[Piece]] = {}  # line id: its waiting units, oldest first
        self.episodes: dict[tuple[int, int | None], Episode] = {}  # the open ones

    def event(self, event: LoggedEvent, tz: ZoneInfo) -> None:
        state = event.data
        ship_by = state["requestedShipDate"]
        overdue_at = date_ends(dt.date.fromisoformat(ship_by), tz) if ship_by else None
        recorded = state["overdueAt"]
        assert (dt.datetime.fromisoformat(recorded) if recorded else None) == overdue_at
        lines = state["lines"]
        before = self.lines_before.get(event.order_id)
        if before is None:
            assert event.type == "PLACED", event
            assert dt.datetime.fromisoformat(state["placedAt"]) == event.at
            short = {line["productId"]: line["backordered"] > 0 for line in lines}
            self.found.placements.append(
                Placement(event.at, event.order_id, any(short.values()), short)
            )
            before = {}
        change = Change(
            event.at,
            event.order_id,
            event.type,
            state["reason"] if event.type == "CANCELLED" else None,
            overdue_at,
        )
        for line in lines:
            self.line(change, line, before.get(line["id"]))
        if len(lines) > 1:
            self.found.seen.add("multi-line order")
        was = sum(line["backordered"] for line in before.values())
        self.episode(change, (event.order_id, None), was, sum(x["backordered"] for x in lines))
        self.lines_before[event.order_id] = {line["id"]: line for line in lines}

    def line(self, change: Change, line: dict[str, Any], prior: dict[str, Any] | None) -> None:
        """One line's change."""
        line_id, product_id = line["id"], line["productId"]
        was: int = prior["backordered"] if prior else 0
        now: int = line["backordered"]
        waiting = self.chunks.setdefault(line_id, [])
        if now > was:
            assert change.type in ("PLACED", "BACKORDERED"), change
            if change.type == "BACKORDERED":
                self.found.seen.add("take-back")
            price = Decimal(line["unitPrice"])
            piece = Piece(change.order_id, line_id, product_id, change.at, now - was, price)
            waiting.append(piece)
            self.found.pieces.append(piece)
            self.found.starts.append(
                Start(change.at, change.order_id, product_id, now - was, price)
            )
        elif now < was:
            assert prior is not None
            assert change.type in ("BACKORDER_FILLED", "CANCELLED"), change
            assert (line["cancelled"] > prior["cancelled"]) == change.cancelling, change
            # a fill takes the oldest waiting units, a cancellation the newest
            for piece in take(waiting, was - now, change.cancelling, change.at, self.found.pieces):
                piece.how, piece.reason = change.how, change.reason
            if now > 0:
                self.found.seen.add(f"{change.how} of part of a line's wait")
            if change.cancelling and line["allocated"] + line["shipped"] > 0:
                self.found.seen.add("waiting units of a partly filled line cancelled")
            if change.cancelling:
                self.found.seen.add(f"{change.reason} while waiting")
        assert sum(c.units for c in waiting) == now
        self.episode(change, (line_id, product_id), was, now)

    def episode(self, change: Change, key: tuple[int, int | None], was: int, now: int) -> None:
        """Opens or closes the episode of a line (key: line id, product id) or of an order
        (order id, None): from no waiting unit to some, and back."""
        if was == 0 and now > 0:
            opened = Episode(change.order_id, key[1], change.at, change.overdue_at)
            self.episodes[key] = opened
            self.found.episodes.append(opened)
        elif was > 0 and now == 0:
            closing = self.episodes.pop(key)
            closing.closed, closing.how, closing.reason = change.at, change.how, change.reason


def replay(log: list[LoggedEvent], tz: ZoneInfo) -> Replayed:
    walk = Replay(tz)
    for event in log:
        walk.event(event, tz)
    return walk.found


@dataclass(frozen=True)
class Expected:
    """The exact figures of a period, compared whole; the wait apart (`waits`)."""

    started: Tally
    filled: Tally
    cancelled: list[tuple[str, Tally]]  # the reasons that occurred, in the enum's order
    lost_revenue: Decimal
    orders_placed: int
    backorder_rate: float
    overdue_share: float
    still_waiting: list[Tally]  # by AGE_BUCKETS
    wait_max: float | None  # hours


def age_index(since: dt.datetime, at: dt.datetime, tz: ZoneInfo) -> int:
    """Calendar days in the store's zone: 0 when it began on at's day, 1 the day before..."""
    days = (at.astimezone(tz).date() - since.astimezone(tz).date()).days
    for index, bucket in enumerate(AGE_BUCKETS):
        if bucket.max_days is None or days <= bucket.max_days:
            return index
    raise AssertionError(days)


class View:
    """The replay as the store's figures see it (product_id None: orders' episodes) or
    one product's (its lines' episodes)."""

    def __init__(self, found: Replayed, product_id: int | None) -> None:
        self.found = found
        self.product_id = product_id
        self.episodes = [
            e
            for e in found.episodes
            if (e.product_id is None) == (product_id is None) and self.ours(e.product_id)
        ]

    def ours(self, product_id: int | None) -> bool:
        return self.product_id is None or product_id == self.product_id

    def started(self, lo: dt.datetime, hi: dt.datetime) -> Tally:
        units = [s for s in self.found.starts if self.ours(s.product_id) and lo <= s.at < hi]
        return (
            sum(lo <= e.opened < hi for e in self.episodes),
            sum(s.units for s in units),
            sum((s.units * s.price for s in units), Decimal(0)),
        )

    def ended(
        self, lo: dt.datetime, hi: dt.datetime
    ) -> tuple[Tally, dict[str, Tally], list[tuple[float, int]]]:
        """Filled; cancelled by reason; the waits of the units filled (seconds, units)."""
        filled = NO_TALLY
        cancelled: dict[str, Tally] = {}
        waits: list[tuple[float, int]] = []
        for p in self.found.pieces:
            if p.until is None or not lo <= p.until < hi or not self.ours(p.product_id):
                continue
            if p.how == "FILL":
                filled = add(filled, (0, p.units, p.value))
                waits.append(((p.until - p.since).total_seconds(), p.units))
            else:
                assert p.reason is not None
                cancelled[p.reason] = add(cancelled.get(p.reason, NO_TALLY), (0, p.units, p.value))
        # orders: the episodes a fill or a cancellation (by its reason) ended
        for e in self.episodes:
            if e.closed is None or not lo <= e.closed < hi:
                continue
            if e.how == "FILL":
                filled = add(filled, (1, 0, Decimal(0)))
            else:
                assert e.reason is not None
                cancelled[e.reason] = add(cancelled.get(e.reason, NO_TALLY), (1, 0, Decimal(0)))
        return filled, cancelled, waits

    def placed(self, lo: dt.datetime, hi: dt.datetime) -> tuple[int, int]:
        """Orders placed (with a line of the product), and of them placed short."""
        placed = [
            p
            for p in self.found.placements
            if lo <= p.at < hi and (self.product_id is None or self.product_id in p.lines)
        ]
        short = [p.short if self.product_id is None else p.lines[self.product_id] for p in placed]
        return len(placed), sum(short)

    def overdue_share(self, lo: dt.datetime, hi: dt.datetime) -> float:
        opened = [e for e in self.episodes if lo <= e.opened < hi]
        overdue = [
            e
            for e in opened
            if e.overdue_at is not None
            and e.overdue_at < hi
            and (e.closed is None or e.closed > e.overdue_at)
        ]
        return len(overdue) / len(opened) if opened else 0.0

    def still_waiting(self, hi: dt.datetime) -> list[Tally]:
        """At hi by age: units and value by their own start, episodes by their opening."""
        still = [NO_TALLY] * len(AGE_BUCKETS)
        for p in self.found.pieces:
            if self.ours(p.product_id) and p.waits_at(hi):
                i = age_index(p.since, hi, self.found.tz)
                still[i] = add(still[i], (0, p.units, p.value))
        for e in self.episodes:
            if e.open_at(hi):
                i = age_index(e.opened, hi, self.found.tz)
                still[i] = add(still[i], (1, 0, Decimal(0)))
        return still


def expect(
    found: Replayed, lo: dt.datetime, hi: dt.datetime, product_id: int | None
) -> tuple[Expected, list[tuple[float, int]]]:
    """The figures of [lo, hi) for the store (product_id None) or one product, and the
    waits of the units filled in it (seconds, units)."""
    view = View(found, product_id)
    filled, cancelled, waits = view.ended(lo, hi)
    placed, short = view.placed(lo, hi)
    return (
        Expected(
            started=view.started(lo, hi),
            filled=filled,
            cancelled=[(r, cancelled[r]) for r in REASONS if r in cancelled],
            lost_revenue=cancelled.get(LOST, NO_TALLY)[2],
            orders_placed=placed,
            backorder_rate=short / placed if placed else 0.0,
            overdue_share=view.overdue_share(lo, hi),
            still_waiting=view.still_waiting(hi),
            wait_max=max(w for w, _ in waits) / 3600 if waits else None,
        ),
        waits,
    )


def lower_quantile(waits: list[tuple[float, int]], q: float) -> float:
    """The wait of the unit at rank ceil(q * n), the units sorted by their wait; a wait
    under a second counts as one (domain/outcomes.py MIN_WAIT_SECONDS)."""
    n = sum(units for _, units in waits)
    rank = max(1, math.ceil(q * n))
    seen = 0
    for seconds, units in sorted(waits):
        seen += units
        if seen >= rank:
            return max(seconds, MIN_WAIT_SECONDS)
    raise AssertionError("rank beyond the units")


# -- the API side ----------------------------------------------------------------------

TALLY = "orders units value { amount currencyCode }"
OUTCOMES = f"""fragment O on BackorderOutcomes {{ from to
  started {{ {TALLY} }} filled {{ {TALLY} }}
  wait {{ p50 p90 max relativeError }}
  cancelledWhileWaiting {{ reason tally {{ {TALLY} }} }}
  lostRevenue {{ amount currencyCode }}
  ordersPlaced backorderRate overdueShare
  stillWaiting {{ label minDays maxDays tally {{ {TALLY} }} }} }}"""


def tally(found: dict[str, Any]) -> Tally:
    assert found["value"]["currencyCode"] == "USD"
    return (found["orders"], found["units"], Decimal(found["value"]["amount"]))


def as_expected(found: dict[str, Any]) -> Expected:
    assert [(b["label"], b["minDays"], b["maxDays"]) for b in found["stillWaiting"]] == [
        (b.label, b.min_days, b.max_days) for b in AGE_BUCKETS
    ]
    assert found["lostRevenue"]["currencyCode"] == "USD"
    return Expected(
        started=tally(found["started"]),
        filled=tally(found["filled"]),
        cancelled=[(c["reason"], tally(c["tally"])) for c in found["cancelledWhileWaiting"]],
        lost_revenue=Decimal(found["lostRevenue"]["amount"]),
        orders_placed=found["ordersPlaced"],
        backorder_rate=found["backorderRate"],
        overdue_share=found["overdueShare"],
        still_waiting=[tally(b["tally"]) for b in found["stillWaiting"]],
        wait_max=found["wait"]["max"],
    )


def check_outcomes(
    found: dict[str, Any], replayed: Replayed, lo: dt.datetime, hi: dt.datetime, pid: int | None
) -> Expected:
    """The API's outcomes of [lo, hi) against the replay's; returns the replay's."""
    where = f"[{lo.isoformat()}, {hi.isoformat()}) product {pid}"
    assert dt.datetime.fromisoformat(found["from"]) == lo, where
    assert dt.datetime.fromisoformat(found["to"]) == hi, where
    expected, waits = expect(replayed, lo, hi, pid)
    assert as_expected(found) == expected, where
    wait = found["wait"]
    assert wait["relativeError"] == RELATIVE_ERROR
    for q, name in ((0.5, "p50"), (0.9, "p90")):
        if not waits:
            assert wait[name] is None, where
            continue
        exact = lower_quantile(waits, q)
        assert abs(wait[name] * 3600 - exact) <= RELATIVE_ERROR * exact * (1 + 1e-9), (
            where,
            name,
            wait[name] * 3600,
            exact,
        )
    return expected


async def outcomes_of(
    api: Api,
    store: StoreHandle,
    skus: list[str],
    periods: list[tuple[dt.datetime, dt.datetime]],
    tz: ZoneInfo,
) -> list[dict[str | None, Any]]:
    """Each period's outcomes, the store's (key None) and each product's, in one request."""
    params = ", ".join(f"$f{i}: DateTime!, $t{i}: DateTime!" for i in range(len(periods)))
    fields = []
    for i in range(len(periods)):
        span = f"(from: $f{i}, to: $t{i})"
        fields.append(f"s{i}: backorderOutcomes{span} {{ ...O }}")
        fields.extend(
            f'p{i}_{sku}: product(sku: "{sku}") {{ backorderOutcomes{span} {{ ...O }} }}'
            for sku in skus
        )
    values: dict[str, str] = {}
    for i, (lo, hi) in enumerate(periods):
        # the store's local offset for some, UTC for the others
        values[f"f{i}"] = (lo.astimezone(tz) if i % 2 else lo).isoformat()
        values[f"t{i}"] = (hi if i % 2 else hi.astimezone(tz)).isoformat()
    data = await api.gql(
        f"query($h: String!, {params}) {{ store(handle: $h) {{ {' '.join(fields)} }} }} {OUTCOMES}",
        {"h": store.handle, **values},
        token=store.token,
    )
    found = data["store"]
    return [
        {
            None: found[f"s{i}"],
            **{sku: found[f"p{i}_{sku}"]["backorderOutcomes"] for sku in skus},
        }
        for i in range(len(periods))
    ]


async def trend_of(
    api: Api, store: StoreHandle, lo: dt.datetime, hi: dt.datetime, interval: str
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The trend's points, and the outcomes of the whole period."""
    data = await api.gql(
        f"""query($h: String!, $from: DateTime!, $to: DateTime!, $i: OutcomeInterval!) {{
              store(handle: $h) {{
                backorderOutcomesTrend(from: $from, to: $to, interval: $i) {{
                  at outcomes {{ ...O }} }}
                whole: backorderOutcomes(from: $from, to: $to) {{ ...O }} }} }} {OUTCOMES}""",
        {"h": store.handle, "from": lo.isoformat(), "to": hi.isoformat(), "i": interval},
        token=store.token,
    )
    return data["store"]["backorderOutcomesTrend"], data["store"]["whole"]


def trend_bounds(lo: dt.datetime, hi: dt.datetime, tz: ZoneInfo, interval: str) -> list[Any]:
    """lo, every local midnight (WEEK: of a Monday) strictly between lo and hi, then hi;
    none for an empty period."""
    if hi <= lo:
        return []
    found = [lo]
    day = lo.astimezone(tz).date()
    while True:
        day += dt.timedelta(days=1)
        at = dt.datetime.combine(day, dt.time(0), tzinfo=tz).astimezone(dt.UTC)
        if at >= hi:
            break
        if at > lo and (interval == "DAY" or day.weekday() == 0):
            found.append(at)
    return [*found, hi]


# -- the generated histories --------------------------------------------------------


class OutcomeHistory(History):
    """A history for the outcomes: mostly products that take backorders, small receipts,
    counts set below what is allocated, and cancellations of waiting lines."""

    def move_clock(self) -> None:
        kind = self.pick(st.sampled_from(MOVES), "move")
        if kind == "weeks":
            self.clock.advance(
                dt.timedelta(seconds=self.pick(st.integers(5 * 86400, 16 * 86400), "s"))
            )
        elif kind == "days":
            self.clock.advance(dt.timedelta(seconds=self.pick(st.integers(86400, 4 * 86400), "s")))
        else:
            super().move_clock()  # still, minutes, hours, or around a local midnight

    async def open(self) -> None:
        api = self.api
        zone = self.pick(st.sampled_from(ZONES), "zone")
        self.tz = ZoneInfo(zone)
        day = self.pick(st.sampled_from(BASE_DAYS), "base day")
        offset = self.pick(st.integers(0, 48 * 60), "minutes after base")
        self.clock.freeze(
            dt.datetime.combine(day, dt.time(0), tzinfo=dt.UTC) + dt.timedelta(minutes=offset)
        )
        self.store = await api.create_store(policy="ALLOW", timezone=zone)
        for sku in ("A", "B", "C")[: self.pick(st.sampled_from((1, 2, 3, 3)), "products")]:
            fields: dict[str, Any] = {
                "backorderPolicy": "ALLOW",
                "price": self.pick(st.sampled_from(PRICES), "price"),
            }
            assert (await api.upsert(self.store, sku, **fields))["userErrors"] == []
            stock = self.pick(st.sampled_from((0, 0, 2, 5)), "stock")
            if stock:
                await api.receive(self.store, sku, stock)
            self.skus.append(sku)

    async def step(self) -> None:
        self.move_clock()
        action = self.pick(st.sampled_from(ACTIONS), "action")
        if action in ("ship", "cancel") and not self.numbers:
            action = "place"
        await getattr(self, action)()

    async def place(self) -> None:
        skus = self.pick(st.lists(st.sampled_from(self.skus), min_size=1, unique=True), "skus")
        lines = [(sku, self.pick(st.integers(1, 5), "quantity")) for sku in skus]
        ship_by = self.pick(st.sampled_from(SHIP_BY), "ship by (days from today)")
        fields = {}
        if ship_by is not None:
            fields["requestedShipDate"] = (self.local_today() + dt.timedelta(ship_by)).isoformat()
        placed = await self.api.place(self.store, lines, **fields)
        assert placed["userErrors"] == []
        self.numbers.append(placed["order"]["number"])

    async def receive(self) -> None:
        sku = self.pick(st.sampled_from(self.skus), "sku")
        await self.api.receive(self.store, sku, self.pick(st.integers(1, 4), "quantity"))

    async def adjust(self) -> None:
        sku = self.pick(st.sampled_from(self.skus), "sku")
        if self.pick(st.booleans(), "set on hand"):
            await self.api.adjust(self.store, sku, setOnHand=self.pick(st.integers(0, 3), "count"))
        else:
            delta = self.pick(st.sampled_from([d for d in range(-4, 5) if d]), "delta")
            await self.api.adjust(self.store, sku, delta=delta)

    async def cancel(self) -> None:
        order = await self._chosen_order()
        reason = self.pick(st.sampled_from(REASONS), "reason")
        left = [line for line in order["lines"] if line["allocated"] + line["backordered"] > 0]
        if not left:
            return
        if self.pick(st.integers(0, 3), "cancel all") == 0:
            await self.api.cancel(self.store, order["id"], reason)
            return
        # a partly filled line if there is one, else a waiting one
        waiting = [line for line in left if line["backordered"] > 0]
        partly = [line for line in waiting if line["allocated"] > 0]
        line = self.pick(st.sampled_from(partly or waiting or left), "cancel line")
        quantity = self.pick(st.integers(1, line["allocated"] + line["backordered"]), "qty")
        cancelled = await self.api.cancel(self.store, order["id"], reason, [(line["id"], quantity)])
        assert cancelled["userErrors"] == []


def instants(
    history: OutcomeHistory, found: Replayed, first: dt.datetime, now: dt.datetime
) -> list[dt.datetime]:
    """Instants to bound periods with: the changes and just before them, the ends of the
    requested ship dates, the edges of the age buckets, and some at random."""
    changes = sorted({s.at for s in found.starts} | {p.until for p in found.pieces if p.until})
    # the local midnights that start the days on which a wait moves to the next bucket
    began = {p.since for p in found.pieces} | {e.opened for e in found.episodes}
    edges = sorted(
        {
            date_ends(
                since.astimezone(history.tz).date() + dt.timedelta(b.min_days - 1), history.tz
            )
            + nudge
            for since in began
            for b in AGE_BUCKETS[1:]
            for nudge in (-MICRO, dt.timedelta(0))
        }
        | {e.overdue_at for e in found.episodes if e.overdue_at}
    )
    wanted = {first - dt.timedelta(hours=1), first, now}
    if changes:
        wanted |= history.pick(st.sets(st.sampled_from(changes), max_size=6), "changes")
        wanted |= {
            t - MICRO
            for t in history.pick(st.sets(st.sampled_from(changes), max_size=4), "just before")
        }
    if edges:
        wanted |= history.pick(st.sets(st.sampled_from(edges), max_size=6), "edges")
    fractions = history.pick(st.lists(st.floats(0, 1), min_size=2, max_size=4), "random instants")
    wanted |= {first + (now - first) * f for f in fractions}
    return sorted(t for t in wanted if first - dt.timedelta(hours=1) <= t <= now)


async def product_ids(store: StoreHandle, db: Database) -> dict[str, int]:
    p = tables.products
    store_id = await store_id_of(db, store)
    async with db.read() as conn:
        rows = await conn.execute(select(p.c.sku, p.c.id).where(p.c.store_id == store_id))
        return {sku: int(pid) for sku, pid in rows}


def label_history(found: Replayed, tz: ZoneInfo, first: dt.datetime, now: dt.datetime) -> None:
    """For --hypothesis-show-statistics: what the histories did."""
    store = View(found, None)
    if store.overdue_share(first, now) > 0:
        found.seen.add("overdue episode")
    if store.still_waiting(now)[-1][1] > 0:
        found.seen.add("waiting over 14 days")
    if first.astimezone(tz).utcoffset() != now.astimezone(tz).utcoffset():
        found.seen.add("across a daylight-saving change")
    for what in sorted(found.seen):
        label(what)


def additive(outcomes: Expected) -> dict[str, Any]:
    """The figures of a period that add up over consecutive periods."""
    return {
        "started": outcomes.started,
        "filled": outcomes.filled,
        **dict(outcomes.cancelled),
        "lostRevenue": outcomes.lost_revenue,
        "ordersPlaced": outcomes.orders_placed,
    }


def summed(parts: list[dict[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = {}
    for part in parts:
        for name, value in part.items():
            if name not in total:
                total[name] = value
            elif isinstance(value, tuple):
                total[name] = add(total[name], value)
            else:
                total[name] += value
    return total


async def check_trends(history: OutcomeHistory, found: Replayed, first: dt.datetime) -> None:
    """A DAY and a WEEK trend from before the first change to now: each point the
    replay's, and the points add up to the whole period."""
    api, store, tz, now = history.api, history.store, history.tz, history.clock()
    lo = first - dt.timedelta(seconds=history.pick(st.integers(1, 3 * 86400), "trend start"))
    for interval in ("DAY", "WEEK"):
        trend, whole = await trend_of(api, store, lo, now, interval)
        bounds = trend_bounds(lo, now, tz, interval)
        assert [dt.datetime.fromisoformat(p["at"]) for p in trend] == bounds[:-1], interval
        for point, start, end in zip(trend, bounds[:-1], bounds[1:], strict=True):
            check_outcomes(point["outcomes"], found, start, end, None)
        check_outcomes(whole, found, lo, now, None)
        parts = [additive(as_expected(point["outcomes"])) for point in trend]
        assert summed(parts) == additive(as_expected(whole)), interval


async def check_agreement(history: OutcomeHistory, db: Database, first: dt.datetime) -> None:
    api, store, tz = history.api, history.store, history.tz
    now = history.clock()
    found = replay(await order_log(db, await store_id_of(db, store)), tz)
    label_history(found, tz, first, now)
    ids = await product_ids(store, db)
    points = instants(history, found, first, now)
    periods = [(first - dt.timedelta(hours=1), now)]
    for _ in range(PERIODS):
        lo, hi = history.pick(
            st.lists(st.sampled_from(points), min_size=2, max_size=2, unique=True).map(sorted),
            "period",
        )
        periods.append((lo, hi))
    for (lo, hi), answers in zip(
        periods, await outcomes_of(api, store, history.skus, periods, tz), strict=True
    ):
        check_outcomes(answers[None], found, lo, hi, None)
        for sku in history.skus:
            check_outcomes(answers[sku], found, lo, hi, ids[sku])
    await check_trends(history, found, first)


async def run_history(url: str, draw: st.DataObject) -> None:
    clock = Clock()
    db = Database(url, pool_size=2)
    # Many periods and points a request: this test checks figures, not cost limits.
    settings = Settings(
        database_url=db.url,
        admin_token=ADMIN_TOKEN,
        max_cost=10**9,
        rate_limit_capacity=10**9,
        max_aliases=100,
        max_tokens=50_000,
    )
    app = create_app(settings, clock=clock, db=db)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            api = Api(http, ADMIN_TOKEN, db)
            history = OutcomeHistory(api, clock, draw)
            await history.open()
            first = clock()
            for _ in range(history.pick(st.integers(6, 18), "steps")):
                await history.step()
            history.move_clock()
            await check_agreement(history, db, first)
    finally:
        await db.dispose()


@pytest.mark.exhaustive
@REPLAY_SETTINGS
@given(draw=st.data())
def test_outcomes_agree_with_a_replay_of_the_events_on_sqlite(
    own_sqlite_url: str, draw: st.DataObject
) -> None:
    run_example(own_sqlite_url, draw, run_history)


@pytest.mark.postgres
@REPLAY_SETTINGS
@given(draw=st.data())
def test_outcomes_agree_with_a_replay_of_the_events_on_postgresql(
    own_pg_url: str, draw: st.DataObject
) -> None:
    run_example(own_pg_url, draw, run_history)

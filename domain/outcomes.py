"""What waiting costs: the facts of backorders, and the outcomes over a period.

Every change that moves a line's backordered units leaves **facts** (written in the same
transaction as the change, storage/outcomes.py), one per line and kind:

- START: units of the line became backordered — at placement (`at_placement`), or when
  an adjustment took allocated stock back. `since` is the instant itself.
- FILL: waiting units got stock. `since` is when those units became backordered: a
  line's waiting units are filled oldest first, so a line that waits for units taken
  back after it was placed gives its placement's units first.
- CANCEL: waiting units were cancelled, with the order's reason. The newest waiting
  units go first (a cancellation takes backordered units before allocated ones).

A line's waiting units are kept as chunks (`Chunk`: when they began to wait, how many)
in `order_lines.waiting_since`, null when they all began at placement (the usual case).

Each fact also says whether it opened or closed an **episode**: the line's (for the
product's figures) and the order's (for the store's). An episode opens when the first
unit begins to wait and closes when the last waiting unit is filled or cancelled.

The outcomes over a period [from, to) (`Outcomes`):

- `started`: episodes opened (orders), units and value that became backordered;
- `filled`: units and value that got stock, and episodes closed by a fill (orders);
- `wait`: over the units filled, the time from becoming backordered to being filled,
  p50 and p90 from a log-bucket histogram (`WaitSketch`, relative error at most
  RELATIVE_ERROR), the max exact;
- `cancelled` by reason: units and value cancelled while waiting, and episodes closed by
  a cancellation (orders); CUSTOMER_DECLINED_BACKORDER is the lost revenue;
- `orders_placed` and the backorder rate: the share of them placed short (with a unit
  backordered at placement);
- the overdue share: of the episodes opened in the period, those whose order's requested
  ship date ended (its overdue instant, before `to`) while they were still open (not
  closed at or before that instant);
- still waiting at `to`, by age (`AGE_BUCKETS`, calendar days in the store's zone):
  units and value by the day those units began to wait, orders by the day their episode
  opened.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from enum import StrEnum

from ordergraph.domain.model import CancelReason, Order, OrderLine
from ordergraph.domain.tallies import ZERO, Tally

# -- the histogram ----------------------------------------------------------------------

RELATIVE_ERROR = 0.02
_GAMMA = (1 + RELATIVE_ERROR) / (1 - RELATIVE_ERROR)
_LOG_GAMMA = math.log(_GAMMA)
# Waits under a second are counted as one second (bucket 0): a wait is from one change to
# another, and two changes of a store are never closer than the clock's resolution anyway.
MIN_WAIT_SECONDS = 1.0


def wait_bucket(seconds: float) -> int:
    """The histogram bucket of a wait: i such that gamma^(i-1) < seconds <= gamma^i.
    Every value in bucket i is within RELATIVE_ERROR of `bucket_value(i)`."""
    if seconds <= MIN_WAIT_SECONDS:
        return 0
    return max(0, math.ceil(math.log(seconds) / _LOG_GAMMA - 1e-12))


def bucket_value(index: int) -> float:
    """The value a bucket stands for (seconds): the point within RELATIVE_ERROR of both
    of its ends."""
    if index <= 0:
        return MIN_WAIT_SECONDS
    return 2 * _GAMMA**index / (_GAMMA + 1)


@dataclass
class WaitSketch:
    """Units per wait bucket; merged by adding counts (mergeable over days, products)."""

    counts: dict[int, int] = field(default_factory=dict)

    def add(self, bucket: int, units: int) -> None:
        if units:
            self.counts[bucket] = self.counts.get(bucket, 0) + units

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def quantile(self, q: float) -> float | None:
        """The q-quantile in seconds (lower quantile: the value of the unit at rank
        ceil(q * n)); None when empty."""
        n = self.total
        if n == 0:
            return None
        rank = max(1, math.ceil(q * n))
        seen = 0
        for index in sorted(self.counts):
            seen += self.counts[index]
            if seen >= rank:
                return bucket_value(index)
        raise AssertionError("unreachable: rank <= total")


# -- age buckets ------------------------------------------------------------------------


@dataclass(frozen=True)
class AgeBucket:
    label: str
    min_days: int
    max_days: int | None  # inclusive; None: no end


AGE_BUCKETS = (
    AgeBucket("0-2 days", 0, 2),
    AgeBucket("3-7 days", 3, 7),
    AgeBucket("8-14 days", 8, 14),
    AgeBucket("over 14 days", 15, None),
)
# The days the bounded buckets reach back: a start this many days before, or more, is in
# the last bucket.
RECENT_DAYS = 15


def local_day(at: dt.datetime, tz: dt.tzinfo) -> dt.date:
    """The calendar day of an instant in the store's zone."""
    return at.astimezone(tz).date()


def bucket_of_days(days: int) -> int:
    """The index in AGE_BUCKETS of a wait of `days` calendar days."""
    for index, bucket in enumerate(AGE_BUCKETS):
        if bucket.max_days is None or days <= bucket.max_days:
            return index
    raise AssertionError("unreachable: the last bucket has no end")


def age_bucket(since: dt.datetime, at: dt.datetime, tz: dt.tzinfo) -> int:
    """The index in AGE_BUCKETS of something waiting since `since`, at `at`: calendar
    days in the store's zone (0: it began that day; 1: the day before; ...)."""
    return bucket_of_days((local_day(at, tz) - local_day(since, tz)).days)


# -- facts ------------------------------------------------------------------------------


class FactKind(StrEnum):
    START = "START"
    FILL = "FILL"
    CANCEL = "CANCEL"


@dataclass(frozen=True)
class Chunk:
    """Units of a line that began to wait at the same instant."""

    since: dt.datetime
    units: int


@dataclass(frozen=True)
class Waiting:
    """A line's waiting units: when its open episode began, and its chunks oldest first."""

    episode: dt.datetime
    chunks: tuple[Chunk, ...]


@dataclass(frozen=True)
class Fact:
    kind: FactKind
    order_id: int
    line_id: int
    product_id: int
    at: dt.datetime
    since: dt.datetime  # when these units began to wait
    units: int
    value: Decimal
    reason: CancelReason | None = None
    # Whether the fact opened (START) or closed (FILL, CANCEL) the line's episode, and
    # the order's; a closing fact carries when that episode opened.
    line_episode: dt.datetime | None = None
    order_episode: dt.datetime | None = None
    at_placement: bool = False  # START: the order was placed short
    overdue_at: dt.datetime | None = None  # the order's overdue instant

    @property
    def wait_seconds(self) -> float:
        return (self.at - self.since).total_seconds()


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _micros(at: dt.datetime) -> int:
    return (at - _EPOCH) // dt.timedelta(microseconds=1)


def _from_micros(micros: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=micros)


def encode_waiting(waiting: Waiting | None, placed_at: dt.datetime) -> str | None:
    """A line's waiting units as kept on the line (`order_lines.waiting_since`): None when
    none wait or when all began at placement (the usual case), else
    `episode;since:units,...` (instants in microseconds since the epoch)."""
    if waiting is None or not waiting.chunks:
        return None
    only = waiting.chunks[0]
    if len(waiting.chunks) == 1 and waiting.episode == placed_at == only.since:
        return None
    chunks = ",".join(f"{_micros(c.since)}:{c.units}" for c in waiting.chunks)
    return f"{_micros(waiting.episode)};{chunks}"


def decode_waiting(text: str | None, placed_at: dt.datetime, backordered: int) -> Waiting | None:
    if backordered <= 0:
        return None
    if not text:
        return Waiting(placed_at, (Chunk(placed_at, backordered),))
    episode, _, rest = text.partition(";")
    chunks = []
    for part in rest.split(","):
        micros, units = part.split(":")
        chunks.append(Chunk(_from_micros(int(micros)), int(units)))
    return Waiting(_from_micros(int(episode)), tuple(chunks))


def _take(chunks: list[Chunk], units: int, newest: bool) -> tuple[list[Chunk], list[Chunk]]:
    """(the chunks taken, up to `units`, oldest first or newest first; what is left, in
    order)."""
    left = list(reversed(chunks)) if newest else list(chunks)
    taken = []
    while units > 0:
        first = left[0]
        part = min(units, first.units)
        taken.append(Chunk(first.since, part))
        units -= part
        if part == first.units:
            left.pop(0)
        else:
            left[0] = Chunk(first.since, first.units - part)
    return taken, (list(reversed(left)) if newest else left)


@dataclass(frozen=True)
class LineBefore:
    """What the facts need of a line as it stood before the change."""

    backordered: int
    cancelled: int
    waiting_since: str | None


def line_facts(
    line: OrderLine, before: LineBefore | None, at: dt.datetime, reason: CancelReason | None
) -> tuple[list[Fact], str | None]:
    """The facts of one line's change (`before` None: the change placed it), and the
    line's `waiting_since` after it."""
    was = before.backordered if before else 0
    waiting = decode_waiting(before.waiting_since if before else None, line.placed_at, was)
    chunks = list(waiting.chunks) if waiting else []
    episode = waiting.episode if waiting else at
    now = line.backordered

    def fact(
        kind: FactKind, chunk: Chunk, reason: CancelReason | None = None, placing: bool = False
    ) -> Fact:
        value = chunk.units * line.unit_price
        return Fact(
            kind,
            line.order_id,
            line.id,
            line.product_id,
            at,
            chunk.since,
            chunk.units,
            value,
            reason=reason,
            at_placement=placing,
        )

    facts: list[Fact] = []
    if now > was:
        chunk = Chunk(at, now - was)
        chunks.append(chunk)
        facts.append(fact(FactKind.START, chunk, placing=before is None))
    elif now < was:
        assert before is not None
        # Units leave the wait by a fill or a cancellation, never both in one change: a
        # cancellation takes waiting units before allocated ones, so a line it leaves
        # waiting got no stock back to fill it with.
        cancelling = line.cancelled > before.cancelled
        taken, chunks = _take(chunks, was - now, newest=cancelling)
        kind = FactKind.CANCEL if cancelling else FactKind.FILL
        facts.extend(fact(kind, c, reason if cancelling else None) for c in taken)
    if facts and was == 0:
        facts[0] = replace(facts[0], line_episode=at)
    elif facts and now == 0:
        facts[-1] = replace(facts[-1], line_episode=episode)
    after = Waiting(episode, tuple(chunks)) if chunks else None
    return facts, encode_waiting(after, line.placed_at)


def order_facts(
    order: Order,
    before: Mapping[int, LineBefore],
    was_backordered: bool,
    at: dt.datetime,
    reason: CancelReason | None,
) -> tuple[list[Fact], dict[int, str | None], dt.datetime | None]:
    """The facts of one order's change, its lines' in line order, with the order's
    episode marked on the first START that opens it or the last fact that closes it;
    the `waiting_since` of each line whose backordered units moved; and the order's
    `backordered_since` after the change. `before`: the lines as they stood (a line
    missing was placed by the change); the order's `backordered_since` is read from it."""
    facts: list[Fact] = []
    waiting: dict[int, str | None] = {}
    for line in order.lines:
        prior = before.get(line.id)
        if prior is not None and prior.backordered == line.backordered:
            continue
        found, text = line_facts(line, prior, at, reason)
        facts.extend(found)
        waiting[line.id] = text
    if order.overdue_at is not None:  # the overdue share is read from the facts
        facts = [replace(x, overdue_at=order.overdue_at) for x in facts]
    since = order.backordered_since
    if facts and not was_backordered and order.is_backordered:
        first = next(i for i, f in enumerate(facts) if f.kind is FactKind.START)
        facts[first] = replace(facts[first], order_episode=at, overdue_at=order.overdue_at)
        since = at
    elif facts and was_backordered and not order.is_backordered:
        facts[-1] = replace(facts[-1], order_episode=since)
        since = None
    return facts, waiting, since


# -- outcomes ---------------------------------------------------------------------------


class OutcomeRanking(StrEnum):
    LOST_REVENUE = "LOST_REVENUE"
    WAIT_P90 = "WAIT_P90"
    UNITS_WAITING = "UNITS_WAITING"


class OutcomeInterval(StrEnum):
    DAY = "DAY"
    WEEK = "WEEK"
    MONTH = "MONTH"


@dataclass(frozen=True)
class Want:
    """What to work out beyond a period's sums: the overdue share and what still waits
    cost reads of their own (storage/queries/outcomes.py), done only when asked for."""

    overdue: bool = True
    waiting: bool = True


EVERYTHING = Want()
MAX_OUTCOME_POINTS = 1000


def period_bounds(
    start: dt.datetime, end: dt.datetime, interval: OutcomeInterval, tz: dt.tzinfo
) -> list[dt.datetime]:
    """A trend's periods: `start`, each interval boundary in the store's zone after it and
    before `end` (local midnights; WEEK: Mondays; MONTH: the 1st), then `end`. At most
    MAX_OUTCOME_POINTS + 1 bounds are made (more means too many points)."""
    if end <= start:
        return []
    local = start.astimezone(tz)
    day = local.date()
    if interval is OutcomeInterval.WEEK:
        day -= dt.timedelta(days=day.weekday())
    elif interval is OutcomeInterval.MONTH:
        day = day.replace(day=1)
    bounds = [start]
    while len(bounds) <= MAX_OUTCOME_POINTS:
        if interval is OutcomeInterval.DAY:
            day += dt.timedelta(days=1)
        elif interval is OutcomeInterval.WEEK:
            day += dt.timedelta(days=7)
        else:
            day = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
        instant = dt.datetime.combine(day, dt.time(0), tzinfo=tz).astimezone(dt.UTC)
        if instant >= end:
            break
        if instant > start:
            bounds.append(instant)
    bounds.append(end)
    return bounds


@dataclass(frozen=True)
class Wait:
    """Hours from becoming backordered to being filled, over the units filled."""

    p50: float | None
    p90: float | None
    max: float | None
    relative_error: float = RELATIVE_ERROR

    @classmethod
    def of(cls, sketch: WaitSketch, max_seconds: float | None) -> Wait:
        def hours(seconds: float | None) -> float | None:
            return None if seconds is None else seconds / 3600

        return cls(
            hours(sketch.quantile(0.5)),
            hours(sketch.quantile(0.9)),
            hours(max_seconds) if sketch.total else None,
        )


@dataclass(frozen=True)
class Outcomes:
    start: dt.datetime
    end: dt.datetime
    started: Tally
    filled: Tally
    wait: Wait
    cancelled: dict[CancelReason, Tally]  # only reasons that occurred, in enum order
    orders_placed: int
    orders_placed_short: int
    episodes_started: int
    episodes_overdue: int
    still_waiting: tuple[Tally, ...]  # per AGE_BUCKETS

    @property
    def lost_revenue(self) -> Decimal:
        found = self.cancelled.get(CancelReason.CUSTOMER_DECLINED_BACKORDER)
        return found.value if found else ZERO

    @property
    def backorder_rate(self) -> float:
        return self.orders_placed_short / self.orders_placed if self.orders_placed else 0.0

    @property
    def overdue_share(self) -> float:
        return self.episodes_overdue / self.episodes_started if self.episodes_started else 0.0

    @property
    def units_waiting(self) -> int:
        return sum(t.units for t in self.still_waiting)


__all__ = [
    "AGE_BUCKETS",
    "EVERYTHING",
    "MAX_OUTCOME_POINTS",
    "RECENT_DAYS",
    "RELATIVE_ERROR",
    "AgeBucket",
    "Chunk",
    "Fact",
    "FactKind",
    "LineBefore",
    "OutcomeInterval",
    "OutcomeRanking",
    "Outcomes",
    "Wait",
    "WaitSketch",
    "Waiting",
    "Want",
    "age_bucket",
    "bucket_of_days",
    "bucket_value",
    "decode_waiting",
    "encode_waiting",
    "line_facts",
    "local_day",
    "order_facts",
    "period_bounds",
    "wait_bucket",
]

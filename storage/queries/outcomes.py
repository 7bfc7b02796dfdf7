"""What waiting costs, read from the backorder facts (domain/outcomes.py).

`outcomes_over` gives the outcomes of consecutive periods [b0, b1), [b1, b2), ... (one
period, or a trend's points) in a fixed few statements whatever their number: the
periods are a `VALUES` list joined to the facts, and the database sums per period.

1. the facts of each period by kind and reason: units, value, episodes opened or closed,
   placed short, the longest wait (and so each period's net change of what waits);
2. the wait histogram of each period's fills (their buckets, summed);
3. the orders placed in each period (`orders`, or the product's `order_lines`);
4. the overdue share's numerator: the episodes opened in the period whose order's
   overdue instant came, by the period's end, while they were still open;
5. what waited at each period's end for less than RECENT (15 days), by age bucket: the
   facts before the end whose units (episodes) began in the 15 days before it;
6. what waits now and the net of the facts from the last end on: with the periods' net
   changes, what waited at each end in all, of which the part not in 5 waited 15 days
   or more.

What "waited at `end`" means: after every change before `end`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import pairwise
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    and_,
    case,
    column,
    func,
    select,
    type_coerce,
    values,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from ordergraph.domain.model import CancelReason
from ordergraph.domain.outcomes import (
    AGE_BUCKETS,
    RECENT,
    FactKind,
    OutcomeRanking,
    Outcomes,
    Wait,
    WaitSketch,
)
from ordergraph.domain.tallies import ZERO, Tally
from ordergraph.storage import tables as t

f = t.backorder_facts
_START, _FILL, _CANCEL = FactKind.START.value, FactKind.FILL.value, FactKind.CANCEL.value
_DAY = 86400.0


@dataclass(frozen=True)
class Scope:
    """A store's figures, or (product_id) one product's."""

    store_id: int
    product_id: int | None = None

    def episode(self, table: Any = f) -> Any:
        """The order's episodes for a store, the line's for a product."""
        return table.c.line_episode if self.product_id is not None else table.c.order_episode

    def facts(self) -> list[ColumnElement[bool]]:
        found = [f.c.store_id == self.store_id]
        if self.product_id is not None:
            found.append(f.c.product_id == self.product_id)
        return found


def _money(raw: Any) -> Decimal:
    return Decimal(int(raw or 0)) / t.MONEY_SCALE


def _sum_money(column_: Any) -> Any:
    return func.coalesce(func.sum(type_coerce(column_, BigInteger)), 0)


def _sqlite_micros(stamp: Any) -> Any:
    """Microseconds since the epoch of a datetime SQLite keeps as text ("YYYY-MM-DD
    HH:MM:SS.ffffff"), as an integer: exact where julianday's days in a double are not
    (their step is some 40 microseconds)."""
    whole = func.strftime("%s", func.substr(stamp, 1, 19))  # (it rounds a fraction)
    return whole * 1_000_000 + func.substr(stamp, 21, 6).cast(Integer)


def _seconds(conn: AsyncConnection, later: Any, earlier: Any) -> Any:
    """Seconds from `earlier` to `later`, exact to the microsecond on both databases."""
    if conn.dialect.name == "postgresql":
        return func.extract("epoch", later - earlier)
    return (_sqlite_micros(later) - _sqlite_micros(earlier)) / 1_000_000.0


def _periods(bounds: Sequence[dt.datetime]) -> Any:
    """The periods as a common table b(i, lo, hi, recent): recent is RECENT before hi
    (computed here: SQLite has no arithmetic on its datetime text)."""
    stamp = t.UtcDateTime
    return (
        values(
            column("i", Integer),
            column("lo", stamp),
            column("hi", stamp),
            column("recent", stamp),
            name="b",
        )
        .data([(i, lo, hi, hi - RECENT) for i, (lo, hi) in enumerate(pairwise(bounds))])
        .cte("b")
    )


@dataclass
class _Period:
    started: Tally = field(default_factory=Tally)
    filled: Tally = field(default_factory=Tally)
    cancelled: dict[CancelReason, Tally] = field(default_factory=dict)
    placed_short: int = 0
    longest: float | None = None
    sketch: WaitSketch = field(default_factory=WaitSketch)
    placed: int = 0
    overdue: int = 0
    net: Tally = field(default_factory=Tally)  # what waits: the change over the period
    recent: list[Tally] = field(default_factory=lambda: [Tally()] * (len(AGE_BUCKETS) - 1))


async def outcomes_over(
    conn: AsyncConnection, scope: Scope, bounds: Sequence[dt.datetime], now: dt.datetime
) -> list[Outcomes]:
    """The outcomes of each period between consecutive `bounds` (ascending, the last at
    most `now`)."""
    if len(bounds) < 2:
        return []
    b = _periods(bounds)
    periods = [_Period() for _ in bounds[1:]]
    in_period = and_(f.c.at >= b.c.lo, f.c.at < b.c.hi)
    await _by_kind(conn, scope, b, in_period, periods)
    if any(p.filled.units for p in periods):
        await _wait_buckets(conn, scope, b, in_period, periods)
    await _placed(conn, scope, b, periods)
    if any(p.started.orders for p in periods):
        for i, n in await conn.execute(_overdue_episodes(scope, b, in_period)):
            periods[i].overdue = int(n)
    await _recent_at_ends(conn, scope, b, periods)
    totals = await _waiting_at_ends(conn, scope, bounds, periods, now)
    return [
        _outcomes(lo, hi, p, total)
        for (lo, hi), p, total in zip(pairwise(bounds), periods, totals, strict=True)
    ]


async def _by_kind(
    conn: AsyncConnection, scope: Scope, b: Any, in_period: Any, periods: list[_Period]
) -> None:
    """Statement 1: each period's facts by kind and reason."""
    episode = scope.episode()
    rows = await conn.execute(
        select(
            b.c.i,
            f.c.kind,
            f.c.reason,
            func.sum(f.c.units),
            _sum_money(f.c.value),
            func.count(episode),
            func.sum(case((and_(f.c.at_placement, episode.is_not(None)), 1), else_=0)),
            func.max(_seconds(conn, f.c.at, f.c.since)),
        )
        .select_from(b.join(f, in_period))
        .where(*scope.facts())
        .group_by(b.c.i, f.c.kind, f.c.reason)
    )
    for i, kind, reason, units, value, episodes, short, wait in rows:
        p = periods[i]
        tally = Tally(int(episodes), int(units), _money(value))
        if kind == _START:
            p.started = p.started + tally
            p.placed_short += int(short or 0)
            p.net = p.net + tally
            continue
        p.net = p.net - tally
        if kind == _FILL:
            p.filled = p.filled + tally
            p.longest = float(wait) if wait is not None else p.longest
        else:
            found = CancelReason(reason)
            p.cancelled[found] = p.cancelled.get(found, Tally()) + tally


async def _wait_buckets(
    conn: AsyncConnection, scope: Scope, b: Any, in_period: Any, periods: list[_Period]
) -> None:
    """Statement 2: each period's wait histogram."""
    rows = await conn.execute(
        select(b.c.i, f.c.wait_bucket, func.sum(f.c.units))
        .select_from(b.join(f, in_period))
        .where(*scope.facts(), f.c.kind == _FILL)
        .group_by(b.c.i, f.c.wait_bucket)
    )
    for i, bucket, units in rows:
        periods[i].sketch.add(int(bucket), int(units))


async def _placed(conn: AsyncConnection, scope: Scope, b: Any, periods: list[_Period]) -> None:
    """Statement 3: the orders placed in each period (with a line of the product)."""
    if scope.product_id is None:
        o = t.orders
        placed = (
            select(b.c.i, func.count())
            .select_from(b.join(o, and_(o.c.placed_at >= b.c.lo, o.c.placed_at < b.c.hi)))
            .where(o.c.store_id == scope.store_id)
        )
    else:
        ol = t.order_lines
        placed = (
            select(b.c.i, func.count())
            .select_from(b.join(ol, and_(ol.c.placed_at >= b.c.lo, ol.c.placed_at < b.c.hi)))
            .where(ol.c.store_id == scope.store_id, ol.c.product_id == scope.product_id)
        )
    for i, n in await conn.execute(placed.group_by(b.c.i)):
        periods[i].placed = int(n)


def _outcomes(lo: dt.datetime, hi: dt.datetime, p: _Period, total: Tally) -> Outcomes:
    over = total - sum(p.recent, Tally())
    return Outcomes(
        start=lo,
        end=hi,
        started=p.started,
        filled=p.filled,
        wait=Wait.of(p.sketch, p.longest),
        cancelled={r: p.cancelled[r] for r in CancelReason if r in p.cancelled},
        orders_placed=p.placed,
        orders_placed_short=p.placed_short,
        episodes_started=p.started.orders,
        episodes_overdue=p.overdue,
        still_waiting=(*p.recent, over),
    )


def _overdue_episodes(scope: Scope, b: Any, in_period: Any) -> Any:
    o, closing = t.orders, f.alias("closing")
    closed_in_time = (
        select(closing.c.seq)
        .where(
            closing.c.store_id == f.c.store_id,
            closing.c.order_id == f.c.order_id,
            closing.c.kind != _START,
            scope.episode(closing) == f.c.at,
            closing.c.at <= o.c.overdue_at,
        )
        .correlate(f, o)
    )
    if scope.product_id is not None:
        closed_in_time = closed_in_time.where(closing.c.line_id == f.c.line_id)
    return (
        select(b.c.i, func.count())
        .select_from(
            b.join(f, in_period).join(o, and_(o.c.store_id == f.c.store_id, o.c.id == f.c.order_id))
        )
        .where(
            *scope.facts(),
            f.c.kind == _START,
            scope.episode().is_not(None),
            o.c.overdue_at.is_not(None),
            o.c.overdue_at < b.c.hi,
            ~closed_in_time.exists(),
        )
        .group_by(b.c.i)
    )


async def _recent_at_ends(
    conn: AsyncConnection, scope: Scope, b: Any, periods: list[_Period]
) -> None:
    """Statement 5: per period, what waited at its end for under 15 days, by age bucket
    (units and value by their own start, episodes by their opening)."""
    is_start = f.c.kind == _START
    recent = and_(f.c.since > b.c.recent, f.c.at < b.c.hi)
    age = _seconds(conn, b.c.hi, f.c.since)
    bucket_of = case(
        *(
            (age < (bucket.max_days + 1) * _DAY, index)
            for index, bucket in enumerate(AGE_BUCKETS[:-1])
            if bucket.max_days is not None
        ),
        else_=len(AGE_BUCKETS) - 1,
    )
    episode = scope.episode()
    episode_age = _seconds(conn, b.c.hi, episode)
    episode_bucket = case(
        *(
            (episode_age < (bucket.max_days + 1) * _DAY, index)
            for index, bucket in enumerate(AGE_BUCKETS[:-1])
            if bucket.max_days is not None
        ),
        else_=len(AGE_BUCKETS) - 1,
    )
    signed_units = case((is_start, f.c.units), else_=-f.c.units)
    signed_value = case(
        (is_start, type_coerce(f.c.value, BigInteger)),
        else_=-type_coerce(f.c.value, BigInteger),
    )
    units_rows = await conn.execute(
        select(b.c.i, bucket_of, func.sum(signed_units), func.sum(signed_value))
        .select_from(b.join(f, recent))
        .where(*scope.facts())
        .group_by(b.c.i, bucket_of)
    )
    found: dict[tuple[int, int], list[Any]] = {}
    for i, bucket, units, value in units_rows:
        found[(i, int(bucket))] = [0, int(units), _money(value)]
    episode_rows = await conn.execute(
        select(b.c.i, episode_bucket, func.sum(case((is_start, 1), else_=-1)))
        .select_from(b.join(f, and_(recent, episode > b.c.recent)))
        .where(*scope.facts(), episode.is_not(None))
        .group_by(b.c.i, episode_bucket)
    )
    for i, bucket, n in episode_rows:
        found.setdefault((i, int(bucket)), [0, 0, ZERO])[0] = int(n)
    for (i, bucket), (orders, units, value) in found.items():
        if bucket < len(periods[i].recent):
            periods[i].recent[bucket] = Tally(orders, units, value)


async def _waiting_at_ends(
    conn: AsyncConnection,
    scope: Scope,
    bounds: Sequence[dt.datetime],
    periods: list[_Period],
    now: dt.datetime,
) -> list[Tally]:
    """Statement 6: what waited at each period's end in all: what waits now, less the
    facts from the last end on, less each later period's net change."""
    ol = t.order_lines
    waiting = [ol.c.store_id == scope.store_id, ol.c.backordered > 0]
    if scope.product_id is not None:
        waiting.append(ol.c.product_id == scope.product_id)
    counted = func.count(func.distinct(ol.c.order_id)) if scope.product_id is None else func.count()
    row = (
        await conn.execute(
            select(
                func.coalesce(func.sum(ol.c.backordered), 0),
                _sum_money(ol.c.backordered * type_coerce(ol.c.unit_price, BigInteger)),
                counted,
            ).where(*waiting)
        )
    ).one()
    total = Tally(int(row[2]), int(row[0]), _money(row[1]))
    last = bounds[-1]
    if last <= now:  # changes at `now` itself came after what waited "at" it
        is_start = f.c.kind == _START
        episode = scope.episode()
        after = (
            await conn.execute(
                select(
                    func.coalesce(func.sum(case((is_start, f.c.units), else_=-f.c.units)), 0),
                    func.coalesce(
                        func.sum(
                            case(
                                (is_start, type_coerce(f.c.value, BigInteger)),
                                else_=-type_coerce(f.c.value, BigInteger),
                            )
                        ),
                        0,
                    ),
                    func.coalesce(
                        func.sum(case((episode.is_(None), 0), (is_start, 1), else_=-1)), 0
                    ),
                ).where(*scope.facts(), f.c.at >= last)
            )
        ).one()
        total = total - Tally(int(after[2]), int(after[0]), _money(after[1]))
    ends = []
    for p in reversed(periods):
        ends.append(total)
        total = total - p.net
    return list(reversed(ends))


async def outcomes(
    conn: AsyncConnection, scope: Scope, start: dt.datetime, end: dt.datetime, now: dt.datetime
) -> Outcomes:
    """The outcomes of [start, end)."""
    [found] = await outcomes_over(conn, scope, [start, end], now)
    return found


# -- leaders ---------------------------------------------------------------------------


async def leading_products(
    conn: AsyncConnection,
    store_id: int,
    by: OutcomeRanking,
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
    first: int,
) -> list[int]:
    """The ids of the `first` products that lead by `by` over [start, end) (lost revenue,
    the wait's p90) or at `end` (units waiting); only products with something to rank,
    ties by product id."""
    period = [f.c.store_id == store_id, f.c.at >= start, f.c.at < end]
    if by is OutcomeRanking.LOST_REVENUE:
        lost = _sum_money(f.c.value)
        rows = await conn.execute(
            select(f.c.product_id)
            .where(
                *period,
                f.c.kind == _CANCEL,
                f.c.reason == CancelReason.CUSTOMER_DECLINED_BACKORDER.value,
            )
            .group_by(f.c.product_id)
            .having(lost > 0)
            .order_by(lost.desc(), f.c.product_id)
            .limit(first)
        )
        return [int(r[0]) for r in rows]
    if by is OutcomeRanking.WAIT_P90:
        sketches: dict[int, WaitSketch] = {}
        rows = await conn.execute(
            select(f.c.product_id, f.c.wait_bucket, func.sum(f.c.units))
            .where(*period, f.c.kind == _FILL)
            .group_by(f.c.product_id, f.c.wait_bucket)
        )
        for product_id, bucket, units in rows:
            sketches.setdefault(int(product_id), WaitSketch()).add(int(bucket), int(units))
        ranked = sorted(
            ((sketch.quantile(0.9) or 0.0, pid) for pid, sketch in sketches.items()),
            key=lambda entry: (-entry[0], entry[1]),
        )
        return [pid for _, pid in ranked[:first]]
    # UNITS_WAITING at `end`: what waits now, less the net of the facts from `end` on
    p = t.products
    waiting: dict[int, int] = {
        int(pid): int(n)
        for pid, n in await conn.execute(
            select(p.c.id, p.c.backordered).where(p.c.store_id == store_id, p.c.backordered > 0)
        )
    }
    if end <= now:
        is_start = f.c.kind == _START
        rows = await conn.execute(
            select(f.c.product_id, func.sum(case((is_start, f.c.units), else_=-f.c.units)))
            .where(f.c.store_id == store_id, f.c.at >= end)
            .group_by(f.c.product_id)
        )
        for pid, n in rows:
            waiting[int(pid)] = waiting.get(int(pid), 0) - int(n)
    ranked = sorted(((n, pid) for pid, n in waiting.items() if n > 0), key=lambda e: (-e[0], e[1]))
    return [pid for _, pid in ranked[:first]]


__all__ = ["Scope", "leading_products", "outcomes", "outcomes_over"]

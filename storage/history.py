"""The figures' history: running totals written with each change, read back at any instant.

With every committed change that moves the tallies, one `tally_points` row keeps
the store's backlog and backorder totals right after it, and one
`overdue_points` row per overdue instant touched keeps the totals of the orders
due at that instant (current values in `overdue_totals`). Both are derived from
the same order changes as the events, in the same transaction.

The overdue totals at t are the sum, over every overdue instant d <= t, of the
changes to d's orders made at or before t. Split each change by whether it was
made before d or at/after it ("late"):

- before d: summed per d, that is d's totals as they stood just before d. The
  store's first change at or after d writes d's `overdue_crossings` row, from
  `overdue_totals` before that change moves it (nothing changed d since the
  previous point, which came before d), as a running sum over the store's
  instants: the newest row at or before t holds every instant up to t, as long as
  some change came after t. The instants passed since the store's newest point
  have no row yet; their current totals are theirs at t (nothing changed since).
- late: each point's `late_*` columns sum the late changes up to it, so the
  newest point at or before t holds them.

So the figures at an instant are one statement of a few index probes (`figures_now`,
`figures_at`), and a trend one statement with one probe of each sum per point
(`figures_over`, `points_over`), whatever the number of overdue instants or of
orders. Time within a store never runs backwards (the unit of work clamps it), so
"last by time" and "last by position" agree. Migration 0012 filled the two sums from
the points; docs/figures-benchmark.md has the measurements.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    DateTime,
    Select,
    String,
    Subquery,
    bindparam,
    cast,
    exists,
    func,
    insert,
    literal_column,
    or_,
    select,
    true,
    type_coerce,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.expression import FromClause

from ordergraph.domain.model import Order
from ordergraph.domain.tallies import NOTHING, Contribution, Figures, Tally, contribution, figures
from ordergraph.storage import tables as t
from ordergraph.storage.driver_reads import fetch, fetch_values
from ordergraph.storage.jsonrows import to_json

_Found = TypeVar("_Found")

_COLUMNS = (
    "backlog_orders",
    "backlog_units",
    "backlog_value",
    "backorder_orders",
    "backorder_units",
    "backorder_value",
)


def _values(c: Contribution) -> dict[str, Any]:
    return {
        "backlog_orders": c.backlog.orders,
        "backlog_units": c.backlog.units,
        "backlog_value": c.backlog.value,
        "backorder_orders": c.backorders.orders,
        "backorder_units": c.backorders.units,
        "backorder_value": c.backorders.value,
    }


def _contribution(row: Any, prefix: str = "") -> Contribution:
    if row is None:
        return NOTHING
    b, o = f"{prefix}backlog_", f"{prefix}backorder_"
    return Contribution(
        Tally(row[b + "orders"], row[b + "units"], row[b + "value"]),
        Tally(row[o + "orders"], row[o + "units"], row[o + "value"]),
    )


def _late_values(c: Contribution) -> dict[str, Any]:
    return {f"late_{name}": value for name, value in _values(c).items()}


# The statements a change's running totals run, made once: building them is most of the
# cost of a small statement (SQLAlchemy caches the compiled form, not the construct).
_NONZERO = or_(*(t.overdue_totals.c[name] != 0 for name in _COLUMNS))


def _passed(since: Any) -> Select[Any]:
    """The overdue instants with orders after `since` up to `at`."""
    ot = t.overdue_totals
    return select(ot).where(
        ot.c.store_id == bindparam("store_id"),
        ot.c.overdue_at > since,
        ot.c.overdue_at <= bindparam("at"),
        _NONZERO,
    )


_PASSED = _passed(bindparam("since")).order_by(t.overdue_totals.c.overdue_at)
# The store's newest point, and whether an overdue instant with orders passed after it up
# to `at` (then the change at `at` crosses it): one statement in the usual case.
_LATEST_POINT = (
    select(t.tally_points, exists(_passed(t.tally_points.c.at)).label("passed"))
    .where(t.tally_points.c.store_id == bindparam("store_id"))
    .order_by(t.tally_points.c.at.desc(), t.tally_points.c.seq.desc())
    .limit(1)
)
_OLDEST_BACKORDER = select(func.min(t.orders.c.placed_at)).where(
    t.orders.c.store_id == bindparam("store_id"), t.orders.c.is_backordered.is_(True)
)
_OVERDUE_TOTAL = select(t.overdue_totals).where(
    t.overdue_totals.c.store_id == bindparam("store_id"),
    t.overdue_totals.c.overdue_at == bindparam("instant"),
)
# An UPDATE takes its SET values from the parameters named as columns: the WHERE's
# parameters are named otherwise.
_UPDATE_OVERDUE_TOTAL = update(t.overdue_totals).where(
    t.overdue_totals.c.store_id == bindparam("where_store_id"),
    t.overdue_totals.c.overdue_at == bindparam("where_instant"),
)


_NEWEST_CROSSING = (
    select(t.overdue_crossings)
    .where(t.overdue_crossings.c.store_id == bindparam("store_id"))
    .order_by(t.overdue_crossings.c.overdue_at.desc())
    .limit(1)
)
_INSERT_CROSSING = insert(t.overdue_crossings)


async def _latest_point(conn: AsyncConnection, store_id: int, at: dt.datetime) -> Any:
    result = await conn.execute(_LATEST_POINT, {"store_id": store_id, "at": at})
    return result.mappings().first()


def _changes(
    orders: Iterable[tuple[Order, Contribution]],
) -> tuple[Contribution, dict[dt.datetime, Contribution], bool]:
    """What a change moves: the store's totals, the totals per overdue instant, and whether
    an order joined or left the backorders."""
    total = NOTHING
    by_instant: dict[dt.datetime, Contribution] = defaultdict(Contribution)
    backorder_set_changed = False
    for order, before in orders:
        after = contribution(order)
        delta = after - before
        if delta:
            total = total + delta
            if order.overdue_at is not None:
                by_instant[order.overdue_at] = by_instant[order.overdue_at] + delta
        if bool(before.backorders) != bool(after.backorders):
            backorder_set_changed = True
    return total, by_instant, backorder_set_changed


async def _oldest_backorder(conn: AsyncConnection, store_id: int) -> dt.datetime | None:
    found = await conn.execute(_OLDEST_BACKORDER, {"store_id": store_id})
    oldest: dt.datetime | str | None = found.scalar()
    if isinstance(oldest, str):  # SQLite returns aggregates untyped
        oldest = dt.datetime.fromisoformat(oldest).replace(tzinfo=dt.UTC)
    return oldest


# Built once (SQLAlchemy builds a statement written as an expression anew at every call).
_INSERT_TOTAL = insert(t.overdue_totals)
_INSERT_OVERDUE_POINT = insert(t.overdue_points)
_INSERT_POINT = insert(t.tally_points)


async def _record_overdue(
    conn: AsyncConnection,
    store_id: int,
    seq: int,
    at: dt.datetime,
    instant: dt.datetime,
    delta: Contribution,
) -> None:
    """Move the running totals of one overdue instant by `delta` and keep a point of them."""
    found = await conn.execute(_OVERDUE_TOTAL, {"store_id": store_id, "instant": instant})
    current = found.mappings().first()
    after = _values(_contribution(current) + delta)
    if current is None:
        await conn.execute(_INSERT_TOTAL, {"store_id": store_id, "overdue_at": instant, **after})
    else:
        await conn.execute(
            _UPDATE_OVERDUE_TOTAL, {"where_store_id": store_id, "where_instant": instant, **after}
        )
    await conn.execute(
        _INSERT_OVERDUE_POINT,
        {"store_id": store_id, "overdue_at": instant, "seq": seq, "at": at, **after},
    )


@dataclass(frozen=True)
class TallyChange:
    """How a change moves the running totals: the store's, each overdue instant's (only
    those that move, in time order), and whether the oldest backorder must be found again."""

    total: Contribution
    by_instant: dict[dt.datetime, Contribution]
    recount_oldest: bool


def change_of(orders: Iterable[tuple[Order, Contribution]]) -> TallyChange | None:
    """The change to the totals of these touched orders (each with its contribution before
    the change); None when nothing moves."""
    total, by_instant, backorder_set_changed = _changes(orders)
    if not total and not any(by_instant.values()) and not backorder_set_changed:
        return None
    moved = {instant: delta for instant, delta in sorted(by_instant.items()) if delta}
    return TallyChange(total, moved, backorder_set_changed)


def change_json(change: TallyChange, seq: int, at: dt.datetime) -> dict[str, Any]:
    """The change as storage/pg_unit.py sends it to og_apply (migration 0003), which
    writes what `write` writes."""
    doc: dict[str, Any] = {
        "seq": seq,
        "at": at.isoformat(),
        "recount_oldest": change.recount_oldest,
        "delta": to_json(t.tally_points, _values(change.total)),
    }
    late = late_of(change, at)
    if late:
        doc["late"] = to_json(t.tally_points, _values(late))
    if change.by_instant:
        doc["overdue"] = [
            to_json(t.overdue_totals, {"overdue_at": instant, **_values(delta)})
            for instant, delta in change.by_instant.items()
        ]
    return doc


def late_of(change: TallyChange, at: dt.datetime) -> Contribution:
    """What a change made at `at` moves of orders already overdue (due at or before `at`)."""
    late = NOTHING
    for instant, delta in change.by_instant.items():
        if instant <= at:
            late = late + delta
    return late


async def _cross(conn: AsyncConnection, store_id: int, since: dt.datetime, at: dt.datetime) -> None:
    """Write the crossing rows of the overdue instants passed after `since` (the previous
    point's time) up to `at`, from their totals before the change at `at` moves them."""
    found = await conn.execute(_PASSED, {"store_id": store_id, "at": at, "since": since})
    passed = found.mappings().all()
    newest = await conn.execute(_NEWEST_CROSSING, {"store_id": store_id})
    running = _contribution(newest.mappings().first())
    crossed = []
    for row in passed:
        running = running + _contribution(row)
        crossed.append({"store_id": store_id, "overdue_at": row["overdue_at"], **_values(running)})
    if crossed:  # (found by the newest point's EXISTS, under the same lock)
        await conn.execute(_INSERT_CROSSING, crossed)


async def write(
    conn: AsyncConnection, store_id: int, seq: int, at: dt.datetime, change: TallyChange
) -> None:
    """Write the running totals after a change, statement by statement, as og_apply does
    (migrations 0003 and 0012)."""
    previous = await _latest_point(conn, store_id, at)
    oldest = previous["oldest_backorder_placed_at"] if previous else None
    if change.recount_oldest:
        oldest = await _oldest_backorder(conn, store_id)
    if previous is not None and previous["passed"]:  # (no point yet: no instant has orders)
        await _cross(conn, store_id, previous["at"], at)
    await conn.execute(
        _INSERT_POINT,
        {
            "store_id": store_id,
            "seq": seq,
            "at": at,
            "oldest_backorder_placed_at": oldest,
            **_values(_contribution(previous) + change.total),
            **_late_values(_contribution(previous, "late_") + late_of(change, at)),
        },
    )
    for instant, delta in change.by_instant.items():
        await _record_overdue(conn, store_id, seq, at, instant, delta)


def _sum(column: Any, name: str) -> Any:
    raw = type_coerce(column, BigInteger)  # money as its integer units, summed exactly
    return func.coalesce(func.sum(raw), 0).label(name)


def _typed(row: Any) -> dict[str, Any]:
    """Sums come back as plain numbers: money columns are in 1/10,000 units."""
    values = dict(row)
    for name in ("backlog_value", "backorder_value"):
        values[name] = Decimal(int(values[name])) / t.MONEY_SCALE
    for name in ("backlog_orders", "backlog_units", "backorder_orders", "backorder_units"):
        values[name] = int(values[name])
    return values


def _newest_point_at() -> Any:
    """The time of the store's newest tally point (parameter store_id): the overdue
    instants after it have no crossing row yet."""
    p = t.tally_points
    return (
        select(p.c.at)
        .where(p.c.store_id == bindparam("store_id", type_=BigInteger))
        .order_by(p.c.at.desc(), p.c.seq.desc())
        .limit(1)
        .scalar_subquery()
    )


@cache
def _figures_query(*, past: bool) -> Select[Any]:
    """The figures at one instant (parameters store_id and at) in one statement: the newest
    tally point at or before it (or the newest, if not `past`), the newest crossing row at
    or before it, and the totals of the overdue instants up to it passed since the store's
    newest point. The overdue totals are the last three added (`_overdue_of`). Built once:
    building it took most of a `backlog` read's own work."""
    p, ot, c = t.tally_points, t.overdue_totals, t.overdue_crossings
    store_id = bindparam("store_id", type_=BigInteger)
    at = bindparam("at", type_=t.UtcDateTime)
    point = select(p).where(p.c.store_id == store_id)
    if past:
        point = point.where(p.c.at <= at)
    newest = point.order_by(p.c.at.desc(), p.c.seq.desc()).limit(1).subquery("point")
    crossed = (
        select(*(_integer(c.c[name]).label(f"crossed_{name}") for name in _COLUMNS))
        .where(c.c.store_id == store_id, c.c.overdue_at <= at)
        .order_by(c.c.overdue_at.desc())
        .limit(1)
        .subquery("crossed")
    )
    since_newest = (
        select(*(_sum(ot.c[name], f"passed_{name}") for name in _COLUMNS))
        .where(
            ot.c.store_id == store_id, ot.c.overdue_at <= at, ot.c.overdue_at > _newest_point_at()
        )
        .subquery("passed")
    )
    return select(since_newest, newest, crossed).select_from(
        since_newest.outerjoin(newest, true()).outerjoin(crossed, true())
    )


def _overdue_of(row: Any) -> Contribution:
    """The overdue totals of `_figures_query`'s row: crossed + passed since (integer sums)
    + the point's late sums (typed as the point's columns; none before the first point)."""
    summed = {
        name: int(row[f"passed_{name}"]) + int(row[f"crossed_{name}"] or 0) for name in _COLUMNS
    }
    late = _contribution(row, "late_") if row["seq"] is not None else NOTHING
    return _contribution(_typed(summed)) + late


async def _figures(conn: AsyncConnection, store_id: int, at: dt.datetime, *, past: bool) -> Figures:
    (row,) = await fetch(conn, _figures_query(past=past), {"store_id": store_id, "at": at})
    point = row if row["seq"] is not None else None
    oldest = row["oldest_backorder_placed_at"] if point is not None else None
    return figures(at, _contribution(point), _overdue_of(row), oldest)


async def figures_now(conn: AsyncConnection, store_id: int, now: dt.datetime) -> Figures:
    """Current figures: the latest running totals and the overdue totals at `now`, in one
    statement of three index probes and a range (usually empty) of `overdue_totals`."""
    return await _figures(conn, store_id, now, past=False)


async def next_overdue_instant(
    conn: AsyncConnection, store_id: int, now: dt.datetime
) -> dt.datetime | None:
    """The next instant after `now` at which open orders become overdue (when the current
    figures change with no event), or None."""
    ot = t.overdue_totals
    nonzero = or_(*(ot.c[name] != 0 for name in _COLUMNS))
    query = select(func.min(ot.c.overdue_at)).where(
        ot.c.store_id == store_id, ot.c.overdue_at > now, nonzero
    )
    found: dt.datetime | None = (await conn.execute(query)).scalar()
    return found


async def figures_at(conn: AsyncConnection, store_id: int, at: dt.datetime) -> Figures:
    """The figures exactly as they stood at a past instant, read as `figures_now` reads
    the present."""
    return await _figures(conn, store_id, at, past=True)


# -- a trend: the figures at many instants in one statement ------------------------------


async def figures_over(
    conn: AsyncConnection, store_id: int, instants: Sequence[dt.datetime]
) -> list[Figures]:
    """The figures exactly as they stood at each of `instants`, as `figures_at` gives them,
    in one statement whatever the number of instants."""
    ordered, rows = await _trend_rows(conn, store_id, instants, full=True)
    found = []
    for at, row in zip(ordered, rows, strict=True):
        orders, units, value, b_orders, b_units, b_value, oldest, *overdue = row
        o_orders, o_units, o_value, ob_orders, ob_units, ob_value = overdue
        if orders is None:
            orders = units = value = b_orders = b_units = b_value = 0
        found.append(
            Figures(
                as_of=at,
                backlog=Tally(orders, units, _money(value)),
                backorders=Tally(b_orders, b_units, _money(b_value)),
                overdue=Tally(o_orders, o_units, _money(o_value)),
                overdue_backorders=Tally(ob_orders, ob_units, _money(ob_value)),
                oldest_backorder_placed_at=oldest,
            )
        )
    return _as_asked(ordered, found, instants)


class TrendPoint:
    """A trend's point: `figures_over`'s figures without the overdue backorders and the
    oldest backorder, which a point does not show. Its three tallies are kept as the
    row's numbers, `(orders, units, value)` three times, money as Decimal (a trend has
    up to 1,000 points: making three Tally per point cost more than reading the row)."""

    __slots__ = ("as_of", "numbers")

    def __init__(self, as_of: dt.datetime, numbers: tuple[Any, ...]) -> None:
        self.as_of = as_of
        self.numbers = numbers

    @classmethod
    def of(cls, as_of: dt.datetime, *tallies: Tally) -> TrendPoint:
        """The point of these tallies: the backlog, the backorders, the overdue orders."""
        return cls(as_of, tuple(n for tally in tallies for n in _numbers(tally)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TrendPoint):
            return NotImplemented
        return self.as_of == other.as_of and self.numbers == other.numbers

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"TrendPoint({self.as_of!r}, {self.numbers!r})"


def _numbers(tally: Tally) -> tuple[int, int, Decimal]:
    return (tally.orders, tally.units, tally.value)


class _Amounts(dict[int, Decimal]):
    """Money by its integer units, each converted once."""

    def __missing__(self, units: int) -> Decimal:
        amount = self[units] = _money(units)
        return amount


async def points_over(
    conn: AsyncConnection, store_id: int, instants: Sequence[dt.datetime]
) -> list[TrendPoint]:
    """`figures_over`, reading only what a trend's point shows: the same statement with
    half the overdue sums."""
    ordered, rows = await _trend_rows(conn, store_id, instants, full=False)
    found = []
    m = _Amounts()  # (points repeat amounts)
    for at, row in zip(ordered, rows, strict=True):
        orders, units, value, b_orders, b_units, b_value, o_orders, o_units, o_value = row
        if orders is None:
            orders = units = value = b_orders = b_units = b_value = 0
        numbers = (orders, units, m[value], b_orders, b_units, m[b_value], o_orders, o_units)
        found.append(TrendPoint(at, (*numbers, m[o_value])))
    return _as_asked(ordered, found, instants)


async def _trend_rows(
    conn: AsyncConnection, store_id: int, instants: Sequence[dt.datetime], full: bool
) -> tuple[list[dt.datetime], Sequence[Any]]:
    """The distinct instants in order, and `_trend_query`'s row for each."""
    if not instants:
        return [], []
    ordered = sorted(set(instants))
    postgres = conn.dialect.name == "postgresql"
    params = _trend_params(conn, store_id, ordered)
    rows = await fetch_values(conn, _trend_query(postgres, full), params)
    if len(rows) != len(ordered):
        raise RuntimeError(f"trend: {len(rows)} rows for {len(ordered)} instants")
    return ordered, rows


def _trend_params(
    conn: AsyncConnection, store_id: int, ordered: list[dt.datetime]
) -> dict[str, Any]:
    """`_trend_query`'s parameters for these distinct instants, in order."""
    if conn.dialect.name == "postgresql":
        asked: Any = ordered
    else:  # a JSON array of the instants as SQLite stores them, to compare as they do
        process = t.UtcDateTime().dialect_impl(conn.dialect).bind_processor(conn.dialect)
        asked = json.dumps([process(at) if process else at for at in ordered])
    return {"store_id": store_id, "last": ordered[-1], "instants": asked}


def _as_asked(
    ordered: list[dt.datetime], found: list[_Found], instants: Sequence[dt.datetime]
) -> list[_Found]:
    """Values found for the distinct instants in order, given back for `instants` as asked
    (in their order, with their repeats)."""
    if ordered == list(instants):  # the usual case: a trend's boundaries, in order
        return found
    by_instant = dict(zip(ordered, found, strict=True))
    return [by_instant[at] for at in instants]


def _money(units: Any) -> Decimal:
    return Decimal(units) / t.MONEY_SCALE  # as _typed and tables.Money make it


@cache
def _trend_query(postgres: bool, full: bool) -> Select[Any]:
    """One row per instant asked, in order: the newest tally point's columns (null before
    the first point; money as its integer units), its oldest backorder if `full`, and the
    overdue sums (plain integers): of the backlog, and of the backorders if `full`.
    Parameters: store_id, last (the last instant) and instants (PostgreSQL: an array;
    SQLite: a JSON array of the instants as stored).

    Per instant, as `figures_at` reads one: the newest tally point at or before it (its
    late sums), the newest crossing row at or before it, and the totals of the overdue
    instants up to it passed since the store's newest point, as one running sum over
    those instants (rarely more than a few) merged with the instants asked."""
    store_id = bindparam("store_id", type_=BigInteger)
    last = bindparam("last", type_=t.UtcDateTime)
    if postgres:
        array = ARRAY(DateTime(timezone=True))
        asked = func.unnest(cast(bindparam("instants", type_=array), array))
        instants: FromClause = asked.table_valued("at").render_derived(name="asked")
    else:
        instants = func.json_each(bindparam("instants", type_=String)).table_valued("value")
    columns = _COLUMNS if full else _COLUMNS[:3]  # the backlog's: orders, units, value
    running = _passed_running(store_id, last, instants, columns)
    p, c = t.tally_points, t.overdue_crossings
    names = (*_COLUMNS, "oldest_backorder_placed_at") if full else _COLUMNS
    late = tuple(f"late_{name}" for name in columns)
    newest = (
        select(*(p.c[name] for name in (*names, *late)) if postgres else (p.c.seq,))
        .where(p.c.store_id == store_id, p.c.at <= running.c.key)
        .order_by(p.c.at.desc(), p.c.seq.desc())
        .limit(1)
    )
    crossing = (
        select(*(c.c[name] for name in columns) if postgres else (c.c.overdue_at,))
        .where(c.c.store_id == store_id, c.c.overdue_at <= running.c.key)
        .order_by(c.c.overdue_at.desc())
        .limit(1)
    )
    if postgres:  # one backward probe per instant of each, as in _figures_query
        point: Any = newest.lateral("latest")
        crossed: Any = crossing.lateral("crossed")
        joined = running.outerjoin(point, true()).outerjoin(crossed, true())
    else:  # SQLite has no LATERAL: the rows whose keys are the newest's
        point, crossed = p, c
        newest_seq = newest.correlate(running).scalar_subquery()
        newest_crossing = crossing.correlate(running).scalar_subquery()
        joined = running.outerjoin(
            p, (p.c.store_id == store_id) & (p.c.seq == newest_seq)
        ).outerjoin(c, (c.c.store_id == store_id) & (c.c.overdue_at == newest_crossing))
    tally = [_raw(point.c[name]) for name in names]
    overdue = [
        (
            running.c[name]
            + func.coalesce(_integer(point.c[f"late_{name}"]), 0)
            + func.coalesce(_integer(crossed.c[name]), 0)
        ).label(f"overdue_{name}")
        for name in columns
    ]
    return (
        select(*tally, *overdue)
        .select_from(joined)
        .where(running.c.probe == 1)
        .order_by(running.c.key)
    )


def _passed_running(
    store_id: Any, last: Any, instants: FromClause, columns: tuple[str, ...]
) -> Subquery:
    """The overdue instants up to `last` passed since the store's newest point (not yet
    crossed: their totals have not changed since) and one row per instant asked (probe =
    1), with the running sums of those instants' totals up to each row in order of key;
    an overdue instant comes before an instant asked of the same key (which includes it)."""
    ot = t.overdue_totals
    passed = select(
        ot.c.overdue_at.label("key"),
        literal_column("0").label("probe"),
        *(_integer(ot.c[name]).label(name) for name in columns),
    ).where(
        ot.c.store_id == store_id, ot.c.overdue_at <= last, ot.c.overdue_at > _newest_point_at()
    )
    probes = select(
        next(iter(instants.c)).label("key"),
        literal_column("1").label("probe"),
        *(literal_column("0").label(name) for name in columns),
    )
    stream = union_all(passed, probes).subquery("stream")
    order = (stream.c.key, stream.c.probe)
    return select(
        stream.c.key,
        stream.c.probe,
        *(
            # bigint (a store's sums fit), not numeric: it converts faster
            cast(func.sum(stream.c[name]).over(order_by=order, rows=(None, 0)), BigInteger).label(
                name
            )
            for name in columns
        ),
    ).subquery("running")


def _raw(column: Any) -> Any:
    """A money column as its integer units (no conversion per row); others as they are."""
    return _integer(column).label(column.name) if column.name.endswith("_value") else column


def _integer(column: Any) -> ColumnElement[Any]:
    return type_coerce(column, BigInteger)  # money as its integer units

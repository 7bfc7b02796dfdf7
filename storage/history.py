"""The figures' history: running totals written with each change, read back at any instant.

With every committed change that moves the tallies, one `tally_points` row keeps
the store's backlog and backorder totals right after it, and one
`overdue_points` row per overdue instant touched keeps the totals of the orders
due at that instant. Both are derived from the same order changes as the
events, in the same transaction. Reading an instant t is then:

- backlog, backorders and the oldest backorder: the last `tally_points` row at
  or before t (one index probe);
- overdue: for each overdue instant d <= t, the last `overdue_points` row of d
  at or before t, summed (one probe per distinct requested ship date, not per
  order).

Time within a store never runs backwards (the unit of work clamps it), so
"last by time" and "last by position" agree.

A trend reads all its instants in one statement (`figures_over`; `points_over`, what a
trend's point shows, without the overdue backorders and the oldest backorder): each instant's
last `tally_points` row is one probe as above; the overdue totals come from one
running sum. Order each overdue instant d's points by (at, seq) and call a point's
delta its values minus those of the point before it (LAG): the last point of d at or
before t is the sum of the deltas of d's points at or before t. So overdue(t) is the
sum of the deltas of all points p with max(d, p.at) <= t, and one running sum of the
deltas ordered by that key, read at each instant, gives every instant's overdue
totals. Only the points that can matter are read: per overdue instant d up to the
last instant asked, with since = max(d, first instant asked), its last point at or
before `since` (whose delta is its whole value: the sum of all earlier deltas, which
no instant asked separates) and its points after `since` up to the last instant: the
changes to orders already overdue. docs/figures-benchmark.md has the measurements.
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
    case,
    cast,
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


def _contribution(row: Any) -> Contribution:
    if row is None:
        return NOTHING
    return Contribution(
        Tally(row["backlog_orders"], row["backlog_units"], row["backlog_value"]),
        Tally(row["backorder_orders"], row["backorder_units"], row["backorder_value"]),
    )


def _latest_point_query(*, at_or_before: bool) -> Select[Any]:
    p = t.tally_points
    query = select(p).where(p.c.store_id == bindparam("store_id"))
    if at_or_before:
        query = query.where(p.c.at <= bindparam("at"))
    return query.order_by(p.c.at.desc(), p.c.seq.desc()).limit(1)


# The statements a change's running totals run, made once: building them is most of the
# cost of a small statement (SQLAlchemy caches the compiled form, not the construct).
_LATEST_POINT = _latest_point_query(at_or_before=False)
_LATEST_POINT_AT = _latest_point_query(at_or_before=True)
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


async def _latest_point(conn: AsyncConnection, store_id: int, at: dt.datetime | None) -> Any:
    if at is None:
        result = await conn.execute(_LATEST_POINT, {"store_id": store_id})
    else:
        result = await conn.execute(_LATEST_POINT_AT, {"store_id": store_id, "at": at})
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
        await conn.execute(
            insert(t.overdue_totals), {"store_id": store_id, "overdue_at": instant, **after}
        )
    else:
        await conn.execute(
            _UPDATE_OVERDUE_TOTAL, {"where_store_id": store_id, "where_instant": instant, **after}
        )
    await conn.execute(
        insert(t.overdue_points),
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
    if change.by_instant:
        doc["overdue"] = [
            to_json(t.overdue_totals, {"overdue_at": instant, **_values(delta)})
            for instant, delta in change.by_instant.items()
        ]
    return doc


async def write(
    conn: AsyncConnection, store_id: int, seq: int, at: dt.datetime, change: TallyChange
) -> None:
    """Write the running totals after a change, statement by statement."""
    previous = await _latest_point(conn, store_id, None)
    oldest = previous["oldest_backorder_placed_at"] if previous else None
    if change.recount_oldest:
        oldest = await _oldest_backorder(conn, store_id)
    await conn.execute(
        insert(t.tally_points),
        {
            "store_id": store_id,
            "seq": seq,
            "at": at,
            "oldest_backorder_placed_at": oldest,
            **_values(_contribution(previous) + change.total),
        },
    )
    for instant, delta in change.by_instant.items():
        await _record_overdue(conn, store_id, seq, at, instant, delta)


async def _overdue_at(conn: AsyncConnection, store_id: int, at: dt.datetime) -> Contribution:
    """The overdue totals at `at`: for each overdue instant passed by then, its newest
    point at or before `at`, summed."""
    if conn.dialect.name == "postgresql":
        query = _overdue_at_lateral(store_id, at)
    else:  # SQLite has no LATERAL
        query = _overdue_at_correlated(store_id, at)
    row = (await conn.execute(query)).mappings().one()
    return _contribution(_typed(row))


def _newest_point_by(store_id: Any, at: Any, *names: str) -> Select[Any]:
    """The named columns of the store's newest point at or before `at` of the overdue
    instant in the enclosing query's overdue_totals row: one row at most. (The store is
    named, not correlated, so that every table of the query is restricted to it: a
    sharded database sends the query to that store's shard alone.)"""
    ot, latest = t.overdue_totals, t.overdue_points.alias("latest")
    return (
        select(*(latest.c[name] for name in names))
        .where(
            latest.c.store_id == store_id,
            latest.c.overdue_at == ot.c.overdue_at,
            latest.c.at <= at,
        )
        .order_by(latest.c.at.desc(), latest.c.seq.desc())
        .limit(1)
    )


def _overdue_at_lateral(store_id: int, at: dt.datetime) -> Select[Any]:
    """One backward index probe per overdue instant, returning the point itself. (With
    the portable form, PostgreSQL memoizes the join on the subquery's value and runs the
    subquery again for the index lookup: two probes per instant, plus one.)"""
    ot = t.overdue_totals
    point = _newest_point_by(store_id, at, *_COLUMNS).lateral("point")
    return (
        select(*(_sum(point.c[name], name) for name in _COLUMNS))
        .select_from(ot.join(point, true()))
        .where(ot.c.store_id == store_id, ot.c.overdue_at <= at)
    )


def _overdue_at_correlated(store_id: int, at: dt.datetime) -> Select[Any]:
    """The portable form: each instant joined to its point whose seq is the newest's."""
    ot, op = t.overdue_totals, t.overdue_points
    last_seq = _newest_point_by(store_id, at, "seq").correlate(ot).scalar_subquery()
    return (
        select(*(_sum(op.c[name], name) for name in _COLUMNS))
        .select_from(ot)
        .join(
            op,
            (op.c.store_id == ot.c.store_id)
            & (op.c.overdue_at == ot.c.overdue_at)
            & (op.c.seq == last_seq),
        )
        .where(ot.c.store_id == store_id, ot.c.overdue_at <= at)
    )


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


async def figures_now(conn: AsyncConnection, store_id: int, now: dt.datetime) -> Figures:
    """Current figures: the latest running totals plus the overdue instants passed by now,
    in one statement (the overdue sums, always one row, joined to the latest point, if
    any)."""
    found = await conn.execute(_figures_now_query(), {"store_id": store_id, "now": now})
    row = found.mappings().one()
    summed = _typed({name: row[f"overdue_{name}"] for name in _COLUMNS})
    latest = row if row["seq"] is not None else None
    oldest = row["oldest_backorder_placed_at"] if latest is not None else None
    return figures(now, _contribution(latest), _contribution(summed), oldest)


@cache
def _figures_now_query() -> Select[Any]:
    """`figures_now`'s statement, built once (parameters store_id and now): building it
    took most of a `backlog` read's own work."""
    p, ot = t.tally_points, t.overdue_totals
    store_id = bindparam("store_id", type_=BigInteger)
    point = (
        select(p)
        .where(p.c.store_id == store_id)
        .order_by(p.c.at.desc(), p.c.seq.desc())
        .limit(1)
        .subquery("point")
    )
    overdue = (
        select(*(_sum(ot.c[name], f"overdue_{name}") for name in _COLUMNS))
        .where(ot.c.store_id == store_id, ot.c.overdue_at <= bindparam("now", type_=t.UtcDateTime))
        .subquery("overdue")
    )
    return select(overdue, point).select_from(overdue.outerjoin(point, true()))


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
    """The figures exactly as they stood at a past instant."""
    point = await _latest_point(conn, store_id, at)
    overdue = await _overdue_at(conn, store_id, at)
    oldest = point["oldest_backorder_placed_at"] if point else None
    return figures(at, _contribution(point), overdue, oldest)


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


@dataclass(frozen=True)
class TrendPoint:
    """A trend's point: `figures_over`'s figures without the overdue backorders and the
    oldest backorder, which a point does not show."""

    as_of: dt.datetime
    backlog: Tally
    backorders: Tally
    overdue: Tally


async def points_over(
    conn: AsyncConnection, store_id: int, instants: Sequence[dt.datetime]
) -> list[TrendPoint]:
    """`figures_over`, reading only what a trend's point shows: the same statement with
    half the overdue sums."""
    ordered, rows = await _trend_rows(conn, store_id, instants, full=False)
    found = []
    for at, row in zip(ordered, rows, strict=True):
        orders, units, value, b_orders, b_units, b_value, o_orders, o_units, o_value = row
        if orders is None:
            orders = units = value = b_orders = b_units = b_value = 0
        found.append(
            TrendPoint(
                as_of=at,
                backlog=Tally(orders, units, _money(value)),
                backorders=Tally(b_orders, b_units, _money(b_value)),
                overdue=Tally(o_orders, o_units, _money(o_value)),
            )
        )
    return _as_asked(ordered, found, instants)


async def _trend_rows(
    conn: AsyncConnection, store_id: int, instants: Sequence[dt.datetime], full: bool
) -> tuple[list[dt.datetime], Sequence[Any]]:
    """The distinct instants in order, and `_trend_query`'s row for each."""
    if not instants:
        return [], []
    ordered = sorted(set(instants))
    postgres = conn.dialect.name == "postgresql"
    if postgres:
        asked: Any = ordered
    else:  # a JSON array of the instants as SQLite stores them, to compare as they do
        process = t.UtcDateTime().dialect_impl(conn.dialect).bind_processor(conn.dialect)
        asked = json.dumps([process(at) if process else at for at in ordered])
    params = {"store_id": store_id, "first": ordered[0], "last": ordered[-1], "instants": asked}
    rows = (await conn.execute(_trend_query(postgres, full), params)).all()
    if len(rows) != len(ordered):
        raise RuntimeError(f"trend: {len(rows)} rows for {len(ordered)} instants")
    return ordered, rows


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
    Parameters: store_id, first and last (the first and last instants) and instants
    (PostgreSQL: an array; SQLite: a JSON array of the instants as stored)."""
    store_id = bindparam("store_id", type_=BigInteger)
    first = bindparam("first", type_=t.UtcDateTime)
    last = bindparam("last", type_=t.UtcDateTime)
    if postgres:
        array = ARRAY(DateTime(timezone=True))
        asked = func.unnest(cast(bindparam("instants", type_=array), array))
        instants: FromClause = asked.table_valued("at").render_derived(name="asked")
    else:
        instants = func.json_each(bindparam("instants", type_=String)).table_valued("value")
    columns = _COLUMNS if full else _COLUMNS[:3]  # the backlog's: orders, units, value
    running = _overdue_running(store_id, first, last, instants, postgres, columns)
    overdue = [running.c[name].label("overdue_" + name) for name in columns]
    p = t.tally_points
    names = (*_COLUMNS, "oldest_backorder_placed_at") if full else _COLUMNS
    newest = (
        select(*(p.c[name] for name in names) if postgres else (p.c.seq,))
        .where(p.c.store_id == store_id, p.c.at <= running.c.key)
        .order_by(p.c.at.desc(), p.c.seq.desc())
        .limit(1)
    )
    if postgres:  # one backward probe per instant, as in _latest_point
        latest = newest.lateral("latest")
        joined = running.outerjoin(latest, true())
        tally = [_raw(latest.c[name]) for name in names]
    else:  # SQLite has no LATERAL: the point whose seq is the newest's
        newest_seq = newest.correlate(running).scalar_subquery()
        joined = running.outerjoin(p, (p.c.store_id == store_id) & (p.c.seq == newest_seq))
        tally = [_raw(p.c[name]) for name in names]
    return (
        select(*tally, *overdue)
        .select_from(joined)
        .where(running.c.probe == 1)
        .order_by(running.c.key)
    )


def _overdue_running(
    store_id: Any,
    first: Any,
    last: Any,
    instants: FromClause,
    postgres: bool,
    columns: tuple[str, ...],
) -> Subquery:
    """The deltas of the overdue points that matter and one row per instant asked
    (probe = 1), with the running sums of the deltas up to each row in order of key;
    a point comes before an instant of the same key (the instant includes it)."""
    points = _points_that_matter(store_id, first, last, postgres, columns).subquery("points")
    key = case((points.c.at > points.c.overdue_at, points.c.at), else_=points.c.overdue_at)
    in_instant = {"partition_by": points.c.overdue_at, "order_by": (points.c.at, points.c.seq)}
    deltas = select(
        key.label("key"),
        literal_column("0").label("probe"),
        *(
            (
                _integer(points.c[name])
                - func.coalesce(func.lag(_integer(points.c[name])).over(**in_instant), 0)
            ).label(name)
            for name in columns
        ),
    )
    probes = select(
        next(iter(instants.c)).label("key"),
        literal_column("1").label("probe"),
        *(literal_column("0").label(name) for name in columns),
    )
    stream = union_all(deltas, probes).subquery("stream")
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


def _points_that_matter(
    store_id: Any, first: Any, last: Any, postgres: bool, columns: tuple[str, ...]
) -> Any:
    """Per overdue instant d up to `last`, from the index on (store_id, overdue_at, at,
    seq): its newest point at or before `since` = max(d, first), and its points after
    `since` up to `last`. Before `since` only the sum of d's deltas matters (no instant
    asked lies between them and `since`), and that sum is the newest point's value; so
    the rows read are one per overdue instant plus the changes to orders already
    overdue, not every change in the span of the trend."""
    ot, op = t.overdue_totals, t.overdue_points
    names = ("overdue_at", "at", "seq", *columns)
    since = case((ot.c.overdue_at > first, ot.c.overdue_at), else_=first)
    if postgres:
        newest = _newest_point_by(store_id, since, *names).lateral("newest")
        before: Select[Any] = select(*(newest.c[name] for name in names)).select_from(
            ot.join(newest, true())
        )
    else:
        newest_seq = _newest_point_by(store_id, since, "seq").correlate(ot).scalar_subquery()
        before = select(*(op.c[name] for name in names)).select_from(
            ot.join(
                op,
                (op.c.store_id == ot.c.store_id)
                & (op.c.overdue_at == ot.c.overdue_at)
                & (op.c.seq == newest_seq),
            )
        )
    before = before.where(ot.c.store_id == store_id, ot.c.overdue_at <= last)
    later = t.overdue_points.alias("later")
    changes = select(*(later.c[name] for name in names)).where(
        later.c.store_id == store_id,
        later.c.overdue_at == ot.c.overdue_at,
        later.c.at > since,
        later.c.at <= last,
    )
    if postgres:
        # A range of the index per overdue instant. OFFSET 0 keeps the planner from
        # flattening the subquery into a hash join over all of the store's points (it
        # cannot estimate `at > since` and guesses a third of them).
        joined = changes.offset(0).lateral("later_points")
        after = select(*(joined.c[name] for name in names)).select_from(ot.join(joined, true()))
    else:  # SQLite joins by nested loops: the same ranges
        after = changes
    after = after.where(ot.c.store_id == store_id, ot.c.overdue_at <= last)
    return union_all(before, after)


def _raw(column: Any) -> Any:
    """A money column as its integer units (no conversion per row); others as they are."""
    return _integer(column).label(column.name) if column.name.endswith("_value") else column


def _integer(column: Any) -> ColumnElement[Any]:
    return type_coerce(column, BigInteger)  # money as its integer units

"""What waiting costs, read from the backorder facts (domain/outcomes.py).

`outcomes_over` gives the outcomes of consecutive periods [b0, b1), [b1, b2), ... (one
period, or a trend's points) in a fixed few statements whatever their number: the
periods are a table joined to the facts, and the database sums per period.

1. the facts of each period by kind and reason: units, value, episodes opened or closed,
   placed short, the longest wait (and so each period's net change of what waits);
2. the wait histogram of each period's fills (their buckets, summed);
3. the orders placed in each period (`orders`, or the product's `order_lines`);
4. the overdue share's numerator: the episodes opened in the period whose order's
   overdue instant came, by the period's end, while they were still open;
5. what waited at each period's end that began on one of the 15 days up to it (the
   store's calendar), by age bucket: the age sums of those days (`backorder_ages`) that
   moved before the end's day, and the facts of the end's day before the end; for a
   period that ends now, the waiting lines instead;
6. what waits now and the net of the facts from the last end on: with the periods' net
   changes, what waited at each end in all, of which the part not in 5 waited 15 days
   or more.

What "waited at `end`" means: after every change before `end`.

The same statements read several products' outcomes side by side (`Scope.products`, the
leaders'): each product is a lane, the periods of all lanes are one table whose rows name
their lane's product (`pid`), and the statements without a periods table read the lanes'
products as a list and answer per product. Ten leaders cost the statements of one.

Each statement is built once per shape (`_once`: the dialect, store or product, and on
SQLite the number of rows of its periods table) with its values as parameters, the
periods among them (`rows_table`), so SQLAlchemy neither builds nor compiles it again:
building and compiling them per call had been most of an outcomes read's CPU.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import pairwise
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Date,
    DateTime,
    Integer,
    and_,
    bindparam,
    case,
    column,
    func,
    literal,
    or_,
    select,
    true,
    type_coerce,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from ordergraph.domain.model import CancelReason
from ordergraph.domain.outcomes import (
    AGE_BUCKETS,
    EVERYTHING,
    RECENT_DAYS,
    FactKind,
    OutcomeRanking,
    Outcomes,
    Wait,
    WaitSketch,
    Want,
    age_bucket,
    bucket_of_days,
    decode_waiting,
    local_day,
)
from ordergraph.domain.tallies import ZERO, Tally
from ordergraph.storage import tables as t

f = t.backorder_facts
_START, _FILL, _CANCEL = FactKind.START.value, FactKind.FILL.value, FactKind.CANCEL.value
_PLACED = "PLACED"  # the day sums' count of orders (a product's: lines) placed
_DAY = 86400.0


@dataclass(frozen=True)
class Scope:
    """A store's figures, or (product_id) one product's, or (products) several products'
    side by side, each in a lane of its own (the leaders); days are the store's (`tz`)."""

    store_id: int
    product_id: int | None = None
    tz: dt.tzinfo = dt.UTC
    products: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.product_id is not None and self.products:
            raise ValueError("a scope is one product's or several products', not both")

    @property
    def of_products(self) -> bool:
        return self.product_id is not None or bool(self.products)

    def lanes(self) -> list[int]:
        """The products read side by side, in lane order; a store's one lane is product
        0, as the day and age sums keep the store's own rows."""
        if self.products:
            return list(self.products)
        return [self.product_id or 0]

    def episode(self, table: Any = f) -> Any:
        """The order's episodes for a store, the line's for a product."""
        return table.c.line_episode if self.of_products else table.c.order_episode

    def facts(self, rows: Any) -> list[ColumnElement[bool]]:
        """The scope's facts for a row of the table `rows` (its lane's product: `pid`)."""
        found = [f.c.store_id == _STORE]
        if self.of_products:
            found.append(f.c.product_id == rows.c.pid)
        return found

    def params(self) -> dict[str, Any]:
        """The values of the scope's parameters: the store's, and the lanes' products
        (`in_lanes`)."""
        found: dict[str, Any] = {"scope_store": self.store_id}
        if self.of_products:
            found["scope_products"] = self.lanes()
        return found

    def in_lanes(self, product_id: Any) -> list[ColumnElement[bool]]:
        """Rows of the lanes' products (none asked of a store's scope)."""
        return [product_id.in_(_PRODUCTS)] if self.of_products else []

    def lane_of(self, product_id: Any) -> Any:
        """The column naming a row's product in a statement read by lane (`in_lanes`)."""
        return product_id if self.of_products else literal(0, BigInteger)

    def shape(self, conn: AsyncConnection) -> tuple[str, bool]:
        """What the statements of this scope are built for: the dialect, and whether they
        read products' figures."""
        return conn.dialect.name, self.of_products


# A statement is built once per shape (`_once`), its values sent as parameters: building
# one (and SQLAlchemy's cache key of it) cost more than running it.
_STORE = bindparam("scope_store", type_=BigInteger)
_PRODUCTS = bindparam("scope_products", expanding=True, type_=BigInteger)
_BUILT: dict[tuple[Any, ...], Any] = {}


def _once(key: tuple[Any, ...], build: Callable[[], Any]) -> Any:
    """The statement of this shape (`key`: the builder's name, the dialect, and whatever
    else decides its text), built by `build` the first time it is asked for. The shapes
    are few: on SQLite they include the number of rows of a periods table, at most a
    trend's points (or parts of them), or the leaders' lanes times two parts."""
    found = _BUILT.get(key)
    if found is None:
        found = _BUILT[key] = build()
    return found


def _canonical(product: bool) -> Scope:
    """A scope to build statements with: only whether it is a product's matters."""
    return Scope(0, 0 if product else None)


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


def _seconds(dialect: str, later: Any, earlier: Any) -> Any:
    """Seconds from `earlier` to `later`, exact to the microsecond on both databases."""
    if dialect == "postgresql":
        return func.extract("epoch", later - earlier)
    return (_sqlite_micros(later) - _sqlite_micros(earlier)) / 1_000_000.0


Row = tuple[int, dt.datetime, dt.datetime]
# A period (or part of one) of a lane: its index among all lanes' periods, and the lane's
# product (`Scope.lanes`).
LaneRow = tuple[int, dt.datetime, dt.datetime, int]


def rows_table(dialect: str, name: str, columns: Sequence[tuple[str, Any]], n: int) -> Any:
    """A common table `name` of `columns` (name, type) whose rows are parameters
    (`rows_params`), so that SQLAlchemy caches the statement around it (a VALUES list
    with its data is not cached: the statement was compiled anew at every call). On
    PostgreSQL one array parameter per column, `unnest`ed, whatever the number of rows;
    on SQLite a SELECT of parameters per row (UNION ALL) for `n` rows."""
    if dialect == "postgresql":
        arrays = [
            bindparam(f"{name}_{label}", type_=ARRAY(_ELEMENT[kind])) for label, kind in columns
        ]
        unnested = func.unnest(*arrays).table_valued(
            *(column(label, kind) for label, kind in columns)
        )
        derived = unnested.render_derived(name=f"{name}_rows")
        return select(*derived.c).cte(name)
    selects = [
        select(*(bindparam(f"{name}_{c}_{r}", type_=kind).label(c) for c, kind in columns))
        for r in range(n)
    ]
    return (selects[0] if len(selects) == 1 else union_all(*selects)).cte(name)


def rows_params(
    dialect: str, name: str, columns: Sequence[tuple[str, Any]], rows: Sequence[Sequence[Any]]
) -> dict[str, Any]:
    """The parameters of `rows_table`'s table holding `rows`."""
    if dialect == "postgresql":
        return {f"{name}_{label}": [row[k] for row in rows] for k, (label, _) in enumerate(columns)}
    return {
        f"{name}_{label}_{r}": row[k]
        for r, row in enumerate(rows)
        for k, (label, _) in enumerate(columns)
    }


def _rows(dialect: str, rows: Sequence[Any]) -> int:
    """The number of rows that shapes a statement over a rows table: none on PostgreSQL."""
    return 0 if dialect == "postgresql" else len(rows)


# The arrays' element types on PostgreSQL (UtcDateTime is timestamptz there).
_ELEMENT: dict[Any, Any] = {
    Integer: Integer,
    BigInteger: BigInteger,
    Date: Date,
    t.UtcDateTime: DateTime(timezone=True),
}
# Every rows table names the product of its row's lane (`pid`; a store's is 0).
_PID = ("pid", BigInteger)
_PERIOD = (
    ("i", Integer),
    ("lo", t.UtcDateTime),
    ("hi", t.UtcDateTime),
    ("since", t.UtcDateTime),
    _PID,
)
_DAYS = (("i", Integer), ("a", Date), ("z", Date), _PID)
_ENDS = (("i", Integer), ("lo", Date), ("day", Date), _PID)


PeriodsStatement = Callable[[str, "Scope", Any], Any]


async def _per_period(
    conn: AsyncConnection,
    scope: Scope,
    build: PeriodsStatement,
    rows: Sequence[LaneRow],
    starts: Sequence[Any] = (),
    **values: Any,
) -> Any:
    """Run the statement `build(dialect, scope to build with, periods)` makes over the
    periods (or parts of them) `rows` of every lane, a common table `b` (i, lo, hi,
    since, pid): `since` bounds the start of what a row reads (`starts`, else each row's
    lo). The statement is built once per builder, dialect, store or products, and on
    SQLite number of rows; the scope's, the periods' and `values` are its parameters."""
    dialect, product = scope.shape(conn)
    n = _rows(dialect, rows)
    statement = _once(
        (build, dialect, product, n),
        lambda: build(dialect, _canonical(product), rows_table(dialect, "b", _PERIOD, n)),
    )
    since = list(starts) or [row[1] for row in rows]
    found = [(i, lo, hi, first, pid) for (i, lo, hi, pid), first in zip(rows, since, strict=True)]
    params = {**scope.params(), **rows_params(dialect, "b", _PERIOD, found), **values}
    return await conn.execute(statement, params)


def _midnight(day: dt.date, tz: dt.tzinfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), tzinfo=tz).astimezone(dt.UTC)


def split(
    bounds: Sequence[dt.datetime], tz: dt.tzinfo
) -> tuple[list[Row], list[tuple[int, dt.date, dt.date]]]:
    """Each period as the whole days (the store's calendar) inside it, read from the day
    sums, and the parts before and after them, read from the facts: (parts, days), each
    tagged with its period's index."""
    parts: list[Row] = []
    days: list[tuple[int, dt.date, dt.date]] = []
    for i, (lo, hi) in enumerate(pairwise(bounds)):
        first_day = local_day(lo, tz)
        if _midnight(first_day, tz) < lo:
            first_day += dt.timedelta(days=1)
        last_day = local_day(hi, tz)
        first, last = _midnight(first_day, tz), _midnight(last_day, tz)
        if first >= last:
            parts.append((i, lo, hi))
            continue
        days.append((i, first_day, last_day))
        if lo < first:
            parts.append((i, lo, first))
        if last < hi:
            parts.append((i, last, hi))
    return parts, days


def _spread(rows: Sequence[tuple[Any, ...]], lanes: Sequence[int], n: int) -> list[Any]:
    """`rows`, each tagged with its period's index (0 to n - 1), for every lane: the index
    becomes that of the lane's period among all lanes' (lane k's are k*n to k*n + n - 1),
    and the lane's product is added last."""
    return [(k * n + row[0], *row[1:], pid) for k, pid in enumerate(lanes) for row in rows]


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
    # the whole days' episodes with an overdue instant, less those closed in time
    dated_not_early: int = 0
    recent: list[Tally] = field(default_factory=lambda: [Tally()] * (len(AGE_BUCKETS) - 1))


def _each(dialect: str, p: Any, scope: Scope, where: Sequence[Any], **columns: Any) -> Any:
    """The facts of each row of the periods table `p` that meet `where` (which refers to
    p's columns), as a subquery of `i` and the named columns. On PostgreSQL a LATERAL
    join: one index range scan per period, whatever the planner thinks of a join on two
    inequalities; SQLite's planner does that of itself (a nested loop, the periods
    outside)."""
    picked = [value.label(name) for name, value in columns.items()]
    if dialect == "postgresql":
        # OFFSET 0 keeps the planner from pulling the subquery up into a plain join
        inner = select(*picked).where(*scope.facts(p), *where).offset(0).lateral("x")
        return select(p.c.i, *inner.c).select_from(p.join(inner, true())).subquery("each")
    return (
        select(p.c.i, *picked)
        .select_from(p.join(f, and_(*where)))
        .where(*scope.facts(p))
        .subquery("each")
    )


async def outcomes_over(
    conn: AsyncConnection,
    scope: Scope,
    bounds: Sequence[dt.datetime],
    now: dt.datetime,
    want: Want = EVERYTHING,
) -> list[Outcomes]:
    """The outcomes of each period between consecutive `bounds` (ascending, the last at
    most `now`); with `want`, only what is wanted beyond the sums (the rest left 0). For
    several products (`Scope.products`), each product's periods in turn, in lane order."""
    if len(bounds) < 2:
        return []
    lanes, n = scope.lanes(), len(bounds) - 1
    periods = [_Period() for _ in range(len(lanes) * n)]
    one_parts, one_days = split(bounds, scope.tz)
    parts: list[LaneRow] = _spread(one_parts, lanes, n)
    days = _spread(one_days, lanes, n)
    if days:
        await _by_day(conn, scope, days, periods)
    if parts:
        await _by_kind(conn, scope, parts, periods)
        if any(p.filled.units for p in periods):
            await _wait_buckets(conn, scope, parts, periods)
        await _placed(conn, scope, parts, periods)
    if want.overdue and any(p.started.orders for p in periods):
        if n == 1 and days:
            await _overdue_by_days(conn, scope, bounds[-1], parts, one_days[0], periods)
        else:
            whole = [(i, lo, hi) for i, (lo, hi) in enumerate(pairwise(bounds))]
            for i, count in await _overdue_episodes(conn, scope, _spread(whole, lanes, n)):
                periods[i].overdue = int(count)
    if want.waiting:
        await _recent_at_ends(conn, scope, bounds, periods, now)
        totals = await _waiting_at_ends(conn, scope, bounds, periods, now)
    else:
        totals = [sum(p.recent, Tally()) for p in periods]
    spans = list(pairwise(bounds)) * len(lanes)
    return [
        _outcomes(lo, hi, p, total)
        for (lo, hi), p, total in zip(spans, periods, totals, strict=True)
    ]


async def _by_day(
    conn: AsyncConnection,
    scope: Scope,
    days: Sequence[tuple[int, dt.date, dt.date, int]],
    periods: list[_Period],
) -> None:
    """Statements 1 to 3 for the whole days of the periods, from the day sums."""
    dialect = conn.dialect.name
    n = _rows(dialect, days)

    def build() -> Any:
        d, bd = rows_table(dialect, "d", _DAYS, n), t.backorder_days
        return (
            select(
                d.c.i,
                bd.c.kind,
                bd.c.reason,
                bd.c.wait_bucket,
                func.sum(bd.c.units),
                _sum_money(bd.c.value),
                func.sum(bd.c.episodes),
                func.sum(bd.c.short),
                func.max(bd.c.max_wait),
                func.sum(bd.c.due - bd.c.early),
            )
            .select_from(d.join(bd, and_(bd.c.day >= d.c.a, bd.c.day < d.c.z)))
            .where(bd.c.store_id == _STORE, bd.c.product_id == d.c.pid)
            .group_by(d.c.i, bd.c.kind, bd.c.reason, bd.c.wait_bucket)
        )

    params = {**scope.params(), **rows_params(dialect, "d", _DAYS, days)}
    rows = await conn.execute(_once(("by_day", dialect, n), build), params)
    for i, kind, reason, bucket, units, value, episodes, short, wait, late in rows:
        p = periods[i]
        tally = Tally(int(episodes), int(units), _money(value))
        if kind == _PLACED:
            p.placed += int(episodes)
        elif kind == _START:
            p.started = p.started + tally
            p.placed_short += int(short)
            p.net = p.net + tally
            p.dated_not_early += int(late)
        else:
            p.net = p.net - tally
            if kind == _FILL:
                p.filled = p.filled + tally
                p.sketch.add(int(bucket), int(units))
                if wait is not None and (p.longest is None or float(wait) > p.longest):
                    p.longest = float(wait)
            else:
                found = CancelReason(reason)
                p.cancelled[found] = p.cancelled.get(found, Tally()) + tally


def _by_kind_statement(dialect: str, scope: Scope, e: Any) -> Any:
    episode = scope.episode()
    x = _each(
        dialect,
        e,
        scope,
        [f.c.at >= e.c.lo, f.c.at < e.c.hi],
        kind=f.c.kind,
        reason=f.c.reason,
        units=f.c.units,
        value=type_coerce(f.c.value, BigInteger),
        opened=case((episode.is_not(None), 1), else_=0),
        short=case((and_(f.c.at_placement, episode.is_not(None)), 1), else_=0),
        wait=_seconds(dialect, f.c.at, f.c.since),
    )
    return select(
        x.c.i,
        x.c.kind,
        x.c.reason,
        func.sum(x.c.units),
        func.sum(x.c.value),
        func.sum(x.c.opened),
        func.sum(x.c.short),
        func.max(x.c.wait),
    ).group_by(x.c.i, x.c.kind, x.c.reason)


async def _by_kind(
    conn: AsyncConnection, scope: Scope, parts: Sequence[LaneRow], periods: list[_Period]
) -> None:
    """Statement 1: the facts of each period's parts by kind and reason."""
    rows = await _per_period(conn, scope, _by_kind_statement, parts)
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
            if wait is not None and (p.longest is None or float(wait) > p.longest):
                p.longest = float(wait)
        else:
            found = CancelReason(reason)
            p.cancelled[found] = p.cancelled.get(found, Tally()) + tally


def _wait_buckets_statement(dialect: str, scope: Scope, e: Any) -> Any:
    x = _each(
        dialect,
        e,
        scope,
        [f.c.at >= e.c.lo, f.c.at < e.c.hi, f.c.kind == _FILL],
        bucket=f.c.wait_bucket,
        units=f.c.units,
    )
    return select(x.c.i, x.c.bucket, func.sum(x.c.units)).group_by(x.c.i, x.c.bucket)


async def _wait_buckets(
    conn: AsyncConnection, scope: Scope, parts: Sequence[LaneRow], periods: list[_Period]
) -> None:
    """Statement 2: the wait histogram of each period's parts."""
    rows = await _per_period(conn, scope, _wait_buckets_statement, parts)
    for i, bucket, units in rows:
        periods[i].sketch.add(int(bucket), int(units))


def _placed_statement(_dialect: str, scope: Scope, b: Any) -> Any:
    if not scope.of_products:
        o = t.orders
        placed = (
            select(b.c.i, func.count())
            .select_from(b.join(o, and_(o.c.placed_at >= b.c.lo, o.c.placed_at < b.c.hi)))
            .where(o.c.store_id == _STORE)
        )
    else:
        ol = t.order_lines
        placed = (
            select(b.c.i, func.count())
            .select_from(b.join(ol, and_(ol.c.placed_at >= b.c.lo, ol.c.placed_at < b.c.hi)))
            .where(ol.c.store_id == _STORE, ol.c.product_id == b.c.pid)
        )
    return placed.group_by(b.c.i)


async def _placed(
    conn: AsyncConnection, scope: Scope, parts: Sequence[LaneRow], periods: list[_Period]
) -> None:
    """Statement 3: the orders placed in each period (with a line of the product)."""
    for i, count in await _per_period(conn, scope, _placed_statement, parts):
        periods[i].placed += int(count)


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


def _not_in_time(scope: Scope) -> Any:
    """An episode's START whose episode was not closed by its order's overdue instant."""
    closed = f.c.line_closed_at if scope.of_products else f.c.closed_at
    return or_(closed.is_(None), closed > f.c.overdue_at)


_DUE_BEFORE = bindparam("due_before", type_=t.UtcDateTime)
_FROM = bindparam("at", type_=t.UtcDateTime)  # facts at or after this instant


def _overdue_statement(dialect: str, scope: Scope, b: Any, due_before: Any) -> Any:
    x = _each(
        dialect,
        b,
        scope,
        [
            f.c.kind == _START,
            f.c.overdue_at.is_not(None),
            f.c.at >= b.c.lo,
            f.c.at < b.c.hi,
            scope.episode().is_not(None),
            f.c.overdue_at < due_before,
            _not_in_time(scope),
        ],
        one=literal(1),
    )
    return select(x.c.i, func.count()).group_by(x.c.i)


def _overdue_by_end(dialect: str, scope: Scope, b: Any) -> Any:
    return _overdue_statement(dialect, scope, b, b.c.hi)


def _overdue_by_instant(dialect: str, scope: Scope, b: Any) -> Any:
    return _overdue_statement(dialect, scope, b, _DUE_BEFORE)


async def _overdue_episodes(
    conn: AsyncConnection,
    scope: Scope,
    rows: Sequence[LaneRow],
    due_before: dt.datetime | None = None,
) -> Any:
    """Statement 4: per period (or part of one), the episodes opened in it whose order's
    overdue instant came before the period's end (`due_before`, else the row's hi) while
    they were still open (not closed by then: their START's closed_at). Only STARTs with
    an overdue instant are read (a partial index holds them)."""
    if due_before is None:
        return await _per_period(conn, scope, _overdue_by_end, rows)
    return await _per_period(conn, scope, _overdue_by_instant, rows, due_before=due_before)


def _lane_index(scope: Scope) -> dict[int, int]:
    """Each lane's product: its lane's index."""
    return {pid: k for k, pid in enumerate(scope.lanes())}


def _by_lane(shaped: Scope, query: Any, product_id: Any) -> Any:
    """`query` (whose first column is `Scope.lane_of`) grouped by lane: by product for
    products, one row for a store."""
    return query.group_by(product_id) if shaped.of_products else query


async def _overdue_by_days(
    conn: AsyncConnection,
    scope: Scope,
    end: dt.datetime,
    parts: Sequence[LaneRow],
    days: tuple[int, dt.date, dt.date],
    periods: list[_Period],
) -> None:
    """Statement 4 for one period (of each lane), without reading its whole days' facts:
    of the episodes opened on its whole days, those with an overdue instant less those
    closed in time (the day sums), less those whose instant is not before the end and
    were not closed in time (STARTs read by overdue instant, from the end on: for a
    period that ends now, the orders still due); plus the parts' episodes, read as for a
    trend."""
    _, first_day, last_day = days
    first, last = _midnight(first_day, scope.tz), _midnight(last_day, scope.tz)
    dialect, product = scope.shape(conn)

    def build() -> Any:
        shaped = _canonical(product)
        query = select(shaped.lane_of(f.c.product_id), func.count()).where(
            f.c.store_id == _STORE,
            *shaped.in_lanes(f.c.product_id),
            f.c.kind == _START,
            f.c.overdue_at >= bindparam("end", type_=t.UtcDateTime),
            f.c.at >= bindparam("first", type_=t.UtcDateTime),
            f.c.at < bindparam("last", type_=t.UtcDateTime),
            shaped.episode().is_not(None),
            _not_in_time(shaped),
        )
        return _by_lane(shaped, query, f.c.product_id)

    params = {**scope.params(), "end": end, "first": first, "last": last}
    lane = _lane_index(scope)
    for k, _ in enumerate(scope.lanes()):
        periods[k].overdue = periods[k].dated_not_early
    for pid, count in await conn.execute(_once(("overdue_later", dialect, product), build), params):
        periods[lane[int(pid)]].overdue -= int(count)
    if parts:
        for i, count in await _overdue_episodes(conn, scope, parts, end):
            periods[i].overdue += int(count)


async def _recent_at_ends(
    conn: AsyncConnection,
    scope: Scope,
    bounds: Sequence[dt.datetime],
    periods: list[_Period],
    now: dt.datetime,
) -> None:
    """Statement 5: per period, what waited at its end that began to wait (or whose
    episode opened) on one of the 15 days up to the end's day (the store's calendar), by
    age bucket. A period that ends now reads what waits now (the waiting lines, less the
    changes at now itself); the others read the age sums of those 15 days that moved
    before the end's day, and the facts of the end's day before the end (none when it
    ends at a midnight)."""
    lanes, n = scope.lanes(), len(bounds) - 1
    ends = list(enumerate(bounds[1:]))
    if bounds[-1] >= now:
        await _recent_now(
            conn, scope, bounds[-1], [periods[k * n + n - 1] for k in range(len(lanes))]
        )
        ends = ends[:-1]
    if not ends:
        return
    tz, last = scope.tz, len(AGE_BUCKETS) - 1
    reach = dt.timedelta(days=RECENT_DAYS - 1)
    lane_ends: list[tuple[int, dt.datetime, int]] = _spread(ends, lanes, n)
    found: dict[int, list[list[Any]]] = {
        i: [[0, 0, ZERO] for _ in range(last)] for i, _, _ in lane_ends
    }

    def add(i: int, days: int, units: int, value: Decimal, episodes: int) -> None:
        bucket = bucket_of_days(days)
        if bucket < last:
            row = found[i][bucket]
            row[0] += episodes
            row[1] += units
            row[2] += value

    dialect = conn.dialect.name
    n_rows = _rows(dialect, lane_ends)

    def build() -> Any:
        r, a = rows_table(dialect, "r", _ENDS, n_rows), t.backorder_ages
        of_scope = [
            a.c.store_id == _STORE,
            a.c.product_id == r.c.pid,
            a.c.kind.in_(("U", "E")),
            a.c.start_day >= r.c.lo,
            a.c.start_day <= r.c.day,
            a.c.at_day < r.c.day,
        ]
        picked = (a.c.kind, a.c.start_day, a.c.units, a.c.value, a.c.episodes)
        if dialect == "postgresql":  # one index range scan per end, as in `_each`
            inner = select(*picked).where(*of_scope).offset(0).lateral("x")
            source = select(r.c.i, r.c.day, *inner.c).select_from(r.join(inner, true()))
        else:
            source = select(r.c.i, r.c.day, *picked).select_from(r.join(a, and_(*of_scope[1:])))
            source = source.where(*of_scope[:1])
        x = source.subquery("ages")
        return select(
            x.c.i,
            x.c.day,
            x.c.kind,
            x.c.start_day,
            func.sum(x.c.units),
            _sum_money(x.c.value),
            func.sum(x.c.episodes),
        ).group_by(x.c.i, x.c.day, x.c.kind, x.c.start_day)

    days = [(i, local_day(end, tz) - reach, local_day(end, tz), pid) for i, end, pid in lane_ends]
    params = {**scope.params(), **rows_params(dialect, "r", _ENDS, days)}
    rows = await conn.execute(_once(("recent_ages", dialect, n_rows), build), params)
    for i, day, kind, start_day, units, value, episodes in rows:
        days_ago = (day - start_day).days
        if kind == "U":
            add(i, days_ago, int(units), _money(value), 0)
        else:
            add(i, days_ago, 0, ZERO, int(episodes))
    await _recent_partial(conn, scope, lane_ends, add)
    for i, tallies in found.items():
        periods[i].recent = [Tally(o, u, v) for o, u, v in tallies]


def _recent_partial_statement(dialect: str, scope: Scope, e: Any) -> Any:
    is_start = f.c.kind == _START
    x = _each(
        dialect,
        e,
        scope,
        [f.c.at >= e.c.lo, f.c.at < e.c.hi, f.c.since >= e.c.since],
        since=f.c.since,
        episode=scope.episode(),
        units=case((is_start, f.c.units), else_=-f.c.units),
        value=case(
            (is_start, type_coerce(f.c.value, BigInteger)),
            else_=-type_coerce(f.c.value, BigInteger),
        ),
        sign=case((is_start, 1), else_=-1),
    )
    return select(x)


async def _recent_partial(
    conn: AsyncConnection,
    scope: Scope,
    ends: Sequence[tuple[int, dt.datetime, int]],
    add: Callable[[int, int, int, Decimal, int], None],
) -> None:
    """Statement 5's facts: those of each end's own day before the end that began to wait
    (or whose episode opened) on one of the 15 days up to it (`ends`: each lane's)."""
    tz, reach = scope.tz, dt.timedelta(days=RECENT_DAYS - 1)
    partial = [(i, _midnight(local_day(end, tz), tz), end, pid) for i, end, pid in ends]
    partial = [row for row in partial if row[1] < row[2]]
    if not partial:
        return
    first = [_midnight(local_day(end, tz) - reach, tz) for _, _, end, _ in partial]
    ending = {i: local_day(end, tz) for i, end, _ in ends}
    found = await _per_period(conn, scope, _recent_partial_statement, partial, first)
    for i, since, episode, units, value, sign in found:
        day = ending[i]
        add(i, (day - local_day(since, tz)).days, int(units), _money(value), 0)
        if episode is not None and local_day(episode, tz) >= day - reach:
            add(i, (day - local_day(episode, tz)).days, 0, ZERO, int(sign))


async def _recent_now(
    conn: AsyncConnection, scope: Scope, end: dt.datetime, lasts: Sequence[_Period]
) -> None:
    """What waits now for under 15 days (at `end`, now), from the waiting lines: units and
    value by the chunks of `waiting_since`, orders by when their episode opened (the
    order's `backordered_since`, a product's line's episode); `lasts`: each lane's
    period that ends now."""
    dialect, product = scope.shape(conn)

    def build() -> Any:
        shaped = _canonical(product)
        ol, o = t.order_lines, t.orders
        return (
            select(
                shaped.lane_of(ol.c.product_id),
                ol.c.order_id,
                ol.c.backordered,
                ol.c.unit_price,
                ol.c.waiting_since,
                ol.c.placed_at,
                o.c.backordered_since,
            )
            .select_from(ol.join(o, and_(o.c.store_id == ol.c.store_id, o.c.id == ol.c.order_id)))
            .where(ol.c.store_id == _STORE, ol.c.backordered > 0, *shaped.in_lanes(ol.c.product_id))
        )

    last, lane = len(AGE_BUCKETS) - 1, _lane_index(scope)
    units = [[0] * last for _ in lasts]
    value = [[ZERO] * last for _ in lasts]
    orders = [[0] * last for _ in lasts]
    seen: set[int] = set()
    lines = await conn.execute(_once(("waiting_lines", dialect, product), build), scope.params())
    for pid, order_id, backordered, price, text, placed_at, order_since in lines:
        k = lane[int(pid)]
        waiting = decode_waiting(text, placed_at, int(backordered))
        assert waiting is not None
        for chunk in waiting.chunks:
            at = age_bucket(chunk.since, end, scope.tz)
            if at < last:
                units[k][at] += chunk.units
                value[k][at] += chunk.units * price
        if product:
            opened: dt.datetime | None = waiting.episode
        elif order_id not in seen:
            seen.add(order_id)
            opened = order_since
        else:
            continue
        if opened is not None and (at := age_bucket(opened, end, scope.tz)) < last:
            orders[k][at] += 1
    await _undo_changes_at(conn, scope, end, units, value, orders)
    for k, period in enumerate(lasts):
        period.recent = [Tally(orders[k][i], units[k][i], value[k][i]) for i in range(last)]


async def _undo_changes_at(
    conn: AsyncConnection,
    scope: Scope,
    end: dt.datetime,
    units: list[list[int]],
    value: list[list[Decimal]],
    orders: list[list[int]],
) -> None:
    """What waited at `end` is after every change before it: undo, in each lane's recent
    buckets read from the waiting lines, the changes at `end` itself (now) that they
    show."""
    last, lane = len(AGE_BUCKETS) - 1, _lane_index(scope)
    dialect, product = scope.shape(conn)

    def build() -> Any:
        shaped = _canonical(product)
        return select(
            shaped.lane_of(f.c.product_id),
            f.c.kind,
            f.c.since,
            f.c.units,
            f.c.value,
            shaped.episode(),
        ).where(f.c.store_id == _STORE, *shaped.in_lanes(f.c.product_id), f.c.at >= _FROM)

    undo = _once(("undo_at", dialect, product), build)
    found = await conn.execute(undo, {**scope.params(), "at": end})
    for pid, kind, since, n, worth, opened in found:
        k = lane[int(pid)]
        sign = -1 if kind == _START else 1
        if (at := age_bucket(since, end, scope.tz)) < last:
            units[k][at] += sign * int(n)
            value[k][at] += sign * worth
        if opened is not None and (at := age_bucket(opened, end, scope.tz)) < last:
            orders[k][at] += sign


async def _waiting_at_ends(
    conn: AsyncConnection,
    scope: Scope,
    bounds: Sequence[dt.datetime],
    periods: list[_Period],
    now: dt.datetime,
) -> list[Tally]:
    """Statement 6: what waited at each period's end in all: what waits now, less the
    facts from the last end on, less each later period's net change (each lane's)."""
    dialect, product = scope.shape(conn)

    def build_waiting() -> Any:
        shaped = _canonical(product)
        ol = t.order_lines
        counted = func.count() if product else func.count(func.distinct(ol.c.order_id))
        query = select(
            shaped.lane_of(ol.c.product_id),
            func.coalesce(func.sum(ol.c.backordered), 0),
            _sum_money(ol.c.backordered * type_coerce(ol.c.unit_price, BigInteger)),
            counted,
        ).where(ol.c.store_id == _STORE, ol.c.backordered > 0, *shaped.in_lanes(ol.c.product_id))
        return _by_lane(shaped, query, ol.c.product_id)

    def build_after() -> Any:
        shaped = _canonical(product)
        is_start = f.c.kind == _START
        episode = shaped.episode()
        query = select(
            shaped.lane_of(f.c.product_id),
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
            func.coalesce(func.sum(case((episode.is_(None), 0), (is_start, 1), else_=-1)), 0),
        ).where(f.c.store_id == _STORE, *shaped.in_lanes(f.c.product_id), f.c.at >= _FROM)
        return _by_lane(shaped, query, f.c.product_id)

    lanes, lane, n = scope.lanes(), _lane_index(scope), len(bounds) - 1
    totals = [Tally() for _ in lanes]
    waiting = _once(("waiting_now", dialect, product), build_waiting)
    for pid, units, value, count in await conn.execute(waiting, scope.params()):
        totals[lane[int(pid)]] = Tally(int(count), int(units), _money(value))
    last = bounds[-1]
    if last <= now:  # changes at `now` itself came after what waited "at" it
        after_last = _once(("changes_after", dialect, product), build_after)
        for pid, units, value, count in await conn.execute(
            after_last, {**scope.params(), "at": last}
        ):
            k = lane[int(pid)]
            totals[k] = totals[k] - Tally(int(count), int(units), _money(value))
    ends: list[Tally] = []
    for k in range(len(lanes)):
        total, mine = totals[k], []
        for p in reversed(periods[k * n : (k + 1) * n]):
            mine.append(total)
            total = total - p.net
        ends.extend(reversed(mine))
    return ends


async def outcomes(
    conn: AsyncConnection,
    scope: Scope,
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
    want: Want = EVERYTHING,
) -> Outcomes:
    """The outcomes of [start, end)."""
    [found] = await outcomes_over(conn, scope, [start, end], now, want)
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
    dialect = conn.dialect.name
    params = {"scope_store": store_id, "start": start, "end": end, "first": first}
    if by is OutcomeRanking.LOST_REVENUE:
        ranked = _once(("lead_lost", dialect), _lead_by_lost_revenue)
        return [int(r[0]) for r in await conn.execute(ranked, params)]
    if by is OutcomeRanking.WAIT_P90:
        sketches: dict[int, WaitSketch] = {}
        buckets = _once(("lead_wait", dialect), _lead_by_wait)
        for product_id, bucket, units in await conn.execute(buckets, params):
            sketches.setdefault(int(product_id), WaitSketch()).add(int(bucket), int(units))
        ranked_wait = sorted(
            ((sketch.quantile(0.9) or 0.0, pid) for pid, sketch in sketches.items()),
            key=lambda entry: (-entry[0], entry[1]),
        )
        return [pid for _, pid in ranked_wait[:first]]
    # UNITS_WAITING at `end`: what waits now, less the net of the facts from `end` on
    waiting: dict[int, int] = {
        int(pid): int(n)
        for pid, n in await conn.execute(_once(("lead_waiting", dialect), _waiting_now), params)
    }
    if end <= now:
        changes = _once(("lead_changes", dialect), _changes_from_end)
        for pid, n in await conn.execute(changes, params):
            waiting[int(pid)] = waiting.get(int(pid), 0) - int(n)
    ranked = sorted(((n, pid) for pid, n in waiting.items() if n > 0), key=lambda e: (-e[0], e[1]))
    return [pid for _, pid in ranked[:first]]


_START_AT = bindparam("start", type_=t.UtcDateTime)
_END_AT = bindparam("end", type_=t.UtcDateTime)


def _in_period() -> list[ColumnElement[bool]]:
    return [f.c.store_id == _STORE, f.c.at >= _START_AT, f.c.at < _END_AT]


def _lead_by_lost_revenue() -> Any:
    lost = _sum_money(f.c.value)
    return (
        select(f.c.product_id)
        .where(
            *_in_period(),
            f.c.kind == _CANCEL,
            f.c.reason == CancelReason.CUSTOMER_DECLINED_BACKORDER.value,
        )
        .group_by(f.c.product_id)
        .having(lost > 0)
        .order_by(lost.desc(), f.c.product_id)
        .limit(bindparam("first", type_=Integer))
    )


def _lead_by_wait() -> Any:
    return (
        select(f.c.product_id, f.c.wait_bucket, func.sum(f.c.units))
        .where(*_in_period(), f.c.kind == _FILL)
        .group_by(f.c.product_id, f.c.wait_bucket)
    )


def _waiting_now() -> Any:
    p = t.products
    return select(p.c.id, p.c.backordered).where(p.c.store_id == _STORE, p.c.backordered > 0)


def _changes_from_end() -> Any:
    is_start = f.c.kind == _START
    return (
        select(f.c.product_id, func.sum(case((is_start, f.c.units), else_=-f.c.units)))
        .where(f.c.store_id == _STORE, f.c.at >= _END_AT)
        .group_by(f.c.product_id)
    )


__all__ = ["Scope", "leading_products", "outcomes", "outcomes_over"]

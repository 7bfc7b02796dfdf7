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
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Select, func, insert, select, true, type_coerce, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ordergraph.domain.model import Order
from ordergraph.domain.tallies import NOTHING, Contribution, Figures, Tally, contribution, figures
from ordergraph.storage import tables as t
from ordergraph.storage.jsonrows import to_json

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


async def _latest_point(conn: AsyncConnection, store_id: int, at: dt.datetime | None) -> Any:
    p = t.tally_points
    query = select(p).where(p.c.store_id == store_id)
    if at is not None:
        query = query.where(p.c.at <= at)
    query = query.order_by(p.c.at.desc(), p.c.seq.desc()).limit(1)
    return (await conn.execute(query)).mappings().first()


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
    o = t.orders
    oldest: dt.datetime | str | None = (
        await conn.execute(
            select(func.min(o.c.placed_at)).where(
                o.c.store_id == store_id, o.c.is_backordered.is_(True)
            )
        )
    ).scalar()
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
    ot = t.overdue_totals
    current = (
        (
            await conn.execute(
                select(ot).where(ot.c.store_id == store_id, ot.c.overdue_at == instant)
            )
        )
        .mappings()
        .first()
    )
    after = _contribution(current) + delta
    if current is None:
        await conn.execute(
            insert(ot).values(store_id=store_id, overdue_at=instant, **_values(after))
        )
    else:
        await conn.execute(
            update(ot)
            .where(ot.c.store_id == store_id, ot.c.overdue_at == instant)
            .values(**_values(after))
        )
    await conn.execute(
        insert(t.overdue_points).values(
            store_id=store_id, overdue_at=instant, seq=seq, at=at, **_values(after)
        )
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
        insert(t.tally_points).values(
            store_id=store_id,
            seq=seq,
            at=at,
            oldest_backorder_placed_at=oldest,
            **_values(_contribution(previous) + change.total),
        )
    )
    for instant, delta in change.by_instant.items():
        await _record_overdue(conn, store_id, seq, at, instant, delta)


async def _overdue_now(conn: AsyncConnection, store_id: int, now: dt.datetime) -> Contribution:
    ot = t.overdue_totals
    row = (
        (
            await conn.execute(
                select(*(_sum(ot.c[name], name) for name in _COLUMNS)).where(
                    ot.c.store_id == store_id, ot.c.overdue_at <= now
                )
            )
        )
        .mappings()
        .one()
    )
    return _contribution(_typed(row))


async def _overdue_at(conn: AsyncConnection, store_id: int, at: dt.datetime) -> Contribution:
    """The overdue totals at `at`: for each overdue instant passed by then, its newest
    point at or before `at`, summed."""
    if conn.dialect.name == "postgresql":
        query = _overdue_at_lateral(store_id, at)
    else:  # SQLite has no LATERAL
        query = _overdue_at_correlated(store_id, at)
    row = (await conn.execute(query)).mappings().one()
    return _contribution(_typed(row))


def _newest_point_by(at: dt.datetime, *names: str) -> Select[Any]:
    """The named columns of the newest point at or before `at` of the overdue instant
    in the enclosing query's overdue_totals row: one row at most."""
    ot, latest = t.overdue_totals, t.overdue_points.alias("latest")
    return (
        select(*(latest.c[name] for name in names))
        .where(
            latest.c.store_id == ot.c.store_id,
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
    point = _newest_point_by(at, *_COLUMNS).lateral("point")
    return (
        select(*(_sum(point.c[name], name) for name in _COLUMNS))
        .select_from(ot.join(point, true()))
        .where(ot.c.store_id == store_id, ot.c.overdue_at <= at)
    )


def _overdue_at_correlated(store_id: int, at: dt.datetime) -> Select[Any]:
    """The portable form: each instant joined to its point whose seq is the newest's."""
    ot, op = t.overdue_totals, t.overdue_points
    last_seq = _newest_point_by(at, "seq").correlate(ot).scalar_subquery()
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
    """Current figures: the latest running totals plus the overdue instants passed by now."""
    point = await _latest_point(conn, store_id, None)
    overdue = await _overdue_now(conn, store_id, now)
    oldest = point["oldest_backorder_placed_at"] if point else None
    return figures(now, _contribution(point), overdue, oldest)


async def figures_at(conn: AsyncConnection, store_id: int, at: dt.datetime) -> Figures:
    """The figures exactly as they stood at a past instant."""
    point = await _latest_point(conn, store_id, at)
    overdue = await _overdue_at(conn, store_id, at)
    oldest = point["oldest_backorder_placed_at"] if point else None
    return figures(at, _contribution(point), overdue, oldest)

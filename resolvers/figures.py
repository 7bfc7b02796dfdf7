"""The backlog figures: now, at a past instant, and over time."""

from __future__ import annotations

import datetime as dt

from ordergraph.domain import validation as check
from ordergraph.domain.errors import DomainError
from ordergraph.domain.model import Store
from ordergraph.domain.tallies import MAX_TREND_POINTS, Figures, trend_instants
from ordergraph.resolvers.context import ApiError, Context
from ordergraph.resolvers.queries import refused
from ordergraph.storage import history

_STEP = {
    "HOUR": dt.timedelta(hours=1),
    "DAY": dt.timedelta(hours=25),
    "WEEK": dt.timedelta(days=7, hours=1),
}


def _aware(value: dt.datetime, name: str) -> dt.datetime:
    """The instant in UTC, if it has an offset and lies in the accepted range."""
    try:
        return check.instant(value, name)
    except DomainError as err:
        raise refused(err) from None


async def backlog(ctx: Context, store: Store, as_of: dt.datetime | None) -> Figures:
    now = ctx.clock()
    if as_of is None:
        async with ctx.db.read() as conn:
            return await history.figures_now(conn, store.id, now)
    at = _aware(as_of, "asOf")
    if at > now:
        raise ApiError(
            "asOf is in the future; the figures are known up to now", "INVALID", field=["asOf"]
        )
    async with ctx.db.read() as conn:
        return await history.figures_at(conn, store.id, at)


async def backlog_trend(
    ctx: Context, store: Store, start: dt.datetime, end: dt.datetime, interval: str
) -> list[history.TrendPoint]:
    """One point per interval boundary in the store's zone from `start` to `end`.

    Boundaries after now are left out: the figures are known up to now.
    """
    start, end = _aware(start, "from"), _aware(end, "to")
    if end < start:
        raise ApiError("to is before from", "INVALID", field=["to"])
    end = min(end, ctx.clock())
    # Refuse a span that is far too long before walking it (a day is 23 to 25 hours).
    if end - start > _STEP[interval] * (MAX_TREND_POINTS + 2) or (
        len(instants := trend_instants(start, end, interval, store.tz)) > MAX_TREND_POINTS
    ):
        raise ApiError(
            f"at most {MAX_TREND_POINTS} points; use a longer interval",
            "INVALID",
            field=["interval"],
        )
    async with ctx.db.read() as conn:
        return await history.points_over(conn, store.id, instants)

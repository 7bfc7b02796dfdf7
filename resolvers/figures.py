"""The backlog figures: now, at a past instant, and over time."""

from __future__ import annotations

import datetime as dt

from domain.model import Store
from domain.tallies import MAX_TREND_POINTS, Figures, trend_instants
from resolvers.context import Context, bad_input
from storage import history


def _aware(value: dt.datetime, name: str) -> dt.datetime:
    if value.tzinfo is None:
        raise bad_input(f"{name} needs a UTC offset, e.g. 2027-01-24T09:30:00+00:00")
    return value.astimezone(dt.UTC)


async def backlog(ctx: Context, store: Store, as_of: dt.datetime | None) -> Figures:
    now = ctx.clock()
    async with ctx.db.read() as conn:
        if as_of is None:
            return await history.figures_now(conn, store.id, now)
        at = _aware(as_of, "asOf")
        if at > now:
            raise bad_input("asOf is in the future; the figures are known up to now")
        return await history.figures_at(conn, store.id, at)


async def backlog_trend(
    ctx: Context, store: Store, start: dt.datetime, end: dt.datetime, interval: str
) -> list[Figures]:
    """One point per interval boundary in the store's zone from `start` to `end`.

    Boundaries after now are left out: the figures are known up to now.
    """
    start, end = _aware(start, "from"), _aware(end, "to")
    if end < start:
        raise bad_input("to is before from")
    instants = trend_instants(start, min(end, ctx.clock()), interval, store.tz)
    if len(instants) > MAX_TREND_POINTS:
        raise bad_input(f"at most {MAX_TREND_POINTS} points; use a longer interval")
    async with ctx.db.read() as conn:
        return [await history.figures_at(conn, store.id, at) for at in instants]

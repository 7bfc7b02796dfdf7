"""What waiting costs: a store's or a product's backorder outcomes over a period, their
trend, and the products that lead (domain/outcomes.py, storage/queries/outcomes.py)."""

from __future__ import annotations

import datetime as dt

from ordergraph.domain import validation as check
from ordergraph.domain.errors import DomainError
from ordergraph.domain.model import Product, Store
from ordergraph.domain.outcomes import (
    MAX_OUTCOME_POINTS,
    OutcomeInterval,
    OutcomeRanking,
    Outcomes,
    Want,
    period_bounds,
)
from ordergraph.resolvers.context import ApiError, Context
from ordergraph.resolvers.queries import refused
from ordergraph.storage.queries import outcomes as q

MAX_LEADERS = 100


def _aware(value: dt.datetime, name: str) -> dt.datetime:
    try:
        return check.instant(value, name)
    except DomainError as err:
        raise refused(err) from None


def _span(ctx: Context, start: dt.datetime, end: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The period in UTC, `to` cut off at now; INVALID unless `from` is before `to` and
    not after now."""
    start, end = _aware(start, "from"), _aware(end, "to")
    if end <= start:
        raise ApiError("to must be after from", "INVALID", field=["to"])
    now = ctx.clock()
    if start > now:
        raise ApiError(
            "from is in the future; outcomes are known up to now", "INVALID", field=["from"]
        )
    return start, min(end, now)


async def store_outcomes(
    ctx: Context, store: Store, start: dt.datetime, end: dt.datetime, want: Want
) -> Outcomes:
    start, end = _span(ctx, start, end)
    async with ctx.db.read() as conn:
        scope = q.Scope(store.id, None, store.tz)
        return await q.outcomes(conn, scope, start, end, ctx.clock(), want)


async def product_outcomes(
    ctx: Context, store: Store, product: Product, start: dt.datetime, end: dt.datetime, want: Want
) -> Outcomes:
    start, end = _span(ctx, start, end)
    scope = q.Scope(product.store_id, product.id, store.tz)
    async with ctx.db.read() as conn:
        return await q.outcomes(conn, scope, start, end, ctx.clock(), want)


async def outcomes_trend(
    ctx: Context,
    store: Store,
    start: dt.datetime,
    end: dt.datetime,
    interval: str,
    want: Want,
) -> list[Outcomes]:
    """One point per interval of the store's calendar from `from` to `to` (the first and
    last may be partial): their figures add up to the whole period's."""
    start, end = _span(ctx, start, end)
    bounds = period_bounds(start, end, OutcomeInterval(interval), store.tz)
    if len(bounds) - 1 > MAX_OUTCOME_POINTS:
        raise ApiError(
            f"at most {MAX_OUTCOME_POINTS} points; use a longer interval",
            "INVALID",
            field=["interval"],
        )
    async with ctx.db.read() as conn:
        scope = q.Scope(store.id, None, store.tz)
        return await q.outcomes_over(conn, scope, bounds, ctx.clock(), want)


async def leaders(
    ctx: Context,
    store: Store,
    by: str,
    start: dt.datetime,
    end: dt.datetime,
    first: int,
    want: Want,
) -> list[tuple[int, Outcomes]]:
    """The leading products' ids with their outcomes, best first."""
    if not 1 <= first <= MAX_LEADERS:
        raise ApiError(f"first must be 1 to {MAX_LEADERS}", "INVALID", field=["first"])
    start, end = _span(ctx, start, end)
    now = ctx.clock()
    async with ctx.db.read() as conn:
        ranked = await q.leading_products(
            conn, store.id, OutcomeRanking(by), start, end, now, first
        )
        if not ranked:
            return []
        # all of them at once, each product in a lane of the same statements
        scope = q.Scope(store.id, tz=store.tz, products=tuple(ranked))
        found = await q.outcomes_over(conn, scope, [start, end], now, want)
        return list(zip(ranked, found, strict=True))

"""Webhook reads: a store's subscriptions and a subscription's delivery log."""

from __future__ import annotations

from ordergraph.domain.paging import BadPageRequest, Page, PageRequest, decode_cursor, encode_cursor
from ordergraph.domain.webhooks import WebhookPort, WebhookRecord
from ordergraph.resolvers.context import ApiError, Context

MAX_DELIVERIES_PAGE = 100
DEFAULT_DELIVERIES_PAGE = 20
_TAG = "webhook-delivery"


def port(ctx: Context) -> WebhookPort:
    if ctx.webhooks is None:
        raise ApiError("webhooks are not available on this server", "UNAVAILABLE")
    return ctx.webhooks


async def subscriptions(ctx: Context, store_id: int) -> list[WebhookRecord]:
    """The store's subscriptions: WEBHOOKS scope, and a key that may use the store."""
    who = await ctx.require("WEBHOOKS")
    if not who.can_see(store_id):
        return []
    return await port(ctx).of_store(store_id)


async def subscription(ctx: Context, store_id: int, webhook_id: int) -> WebhookRecord | None:
    """One subscription by its ids, if the key has WEBHOOKS and may use its store."""
    who = await ctx.require("WEBHOOKS")
    if not who.can_see(store_id):
        return None
    return await port(ctx).get(store_id, webhook_id)


async def deliveries_page(ctx: Context, record: WebhookRecord, request: PageRequest) -> Page:
    """Attempts newest first, keyset-paged by their number."""
    who = await ctx.require("WEBHOOKS")
    if not who.can_see(record.store_id):
        return Page(rows=[], cursors=[], has_next=False, has_previous=False)
    first = DEFAULT_DELIVERIES_PAGE if request.first is None else request.first
    if not 0 <= first <= MAX_DELIVERIES_PAGE:
        raise ApiError(f"first must be between 0 and {MAX_DELIVERIES_PAGE}", "INVALID")
    before: int | None = None
    if request.after is not None:
        try:
            before = int(decode_cursor(request.after, 1, _TAG, [int])[0])
        except BadPageRequest as err:
            raise ApiError(str(err), "INVALID", field=[err.field]) from None
    rows = await port(ctx).deliveries(record.store_id, record.id, first + 1, before)
    shown = rows[:first]
    return Page(
        rows=shown,
        cursors=[encode_cursor([a.id], _TAG) for a in shown],
        has_next=len(rows) > first,
        has_previous=request.after is not None,
    )

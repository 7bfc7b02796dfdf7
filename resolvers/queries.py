"""Read resolvers: check visibility, then load through DataLoaders or one paged query."""

from __future__ import annotations

import dataclasses
from typing import Any

from ordergraph.domain import validation as check
from ordergraph.domain.errors import DomainError
from ordergraph.domain.feed import EventSelection, FeedPage, feed_position
from ordergraph.domain.model import Order, OrderLine, Product, Receipt, Store
from ordergraph.domain.paging import BadPageRequest, Page, PageRequest
from ordergraph.domain.reads import KeyRecord, OrderFilter, OrderSort
from ordergraph.domain.webhooks import WebhookRecord
from ordergraph.resolvers import ids, webhook_reads
from ordergraph.resolvers.context import ApiError, Context
from ordergraph.storage import queries


async def paged(coro: Any) -> Page:
    try:
        page: Page = await coro
    except BadPageRequest as err:
        raise ApiError(str(err), "INVALID", field=[err.field]) from None
    return page


def refused(err: DomainError) -> ApiError:
    """A domain refusal of an argument, as a GraphQL error with the argument path."""
    problem = err.problems[0]
    return ApiError(problem.message, problem.code.value, field=list(problem.field or ()))


def checked_filter(flt: OrderFilter) -> OrderFilter:
    """The filter with its instants in UTC and in range; INVALID (filter.<name>) if not."""
    after, before = flt.placed_after, flt.placed_before
    try:
        if after is not None:
            after = check.instant(after, "filter", "placedAfter")
        if before is not None:
            before = check.instant(before, "filter", "placedBefore")
    except DomainError as err:
        raise refused(err) from None
    return dataclasses.replace(flt, placed_after=after, placed_before=before)


async def store_by_handle(ctx: Context, handle: str) -> Store | None:
    who = await ctx.require("READ")
    if who.key is None:
        return None
    async with ctx.db.connection() as conn:
        store = await queries.store_by_handle(conn, handle, who.key.store_ids)
    if store is None or not who.can_see(store.id):
        return None
    ctx.loaders.store.prime(store.id, store)  # its fields' prices need its currency
    return store


async def stores(ctx: Context, request: PageRequest) -> Page:
    who = await ctx.require("READ")
    assert who.key is not None
    async with ctx.db.connection() as conn:
        page = await paged(queries.stores_page(conn, who.key.store_ids, request))
    for store in page.rows:  # later lookups of these stores (a price's currency) are free
        ctx.loaders.store.prime(store.id, store)
    return page


async def node(
    ctx: Context, gid: str
) -> Store | Product | Order | OrderLine | Receipt | KeyRecord | WebhookRecord | None:
    found = ids.decode(gid)
    if found is None:
        await ctx.require("READ")
        return None
    kind, numbers = found
    if kind == "ApiKey":
        await ctx.require_admin()
        async with ctx.db.read() as conn:
            return (await queries.api_keys_by_id(conn, [numbers[0]])).get(numbers[0])
    if kind == "WebhookSubscription":  # WEBHOOKS scope, like the store's list of them
        return await webhook_reads.subscription(ctx, numbers[0], numbers[1])
    if await ctx.visible_store(numbers[0], "READ") is None:
        return None
    if kind == "Store":
        return await ctx.loaders.store.load(numbers[0])
    key = (numbers[0], numbers[1])
    if kind == "Product":
        return await ctx.loaders.product.load(key)
    if kind == "Order":
        return await ctx.loaders.order.load(key)
    if kind == "IncomingReceipt":
        return await ctx.loaders.receipt.load(key)
    return await ctx.loaders.line.load(key)


async def product(ctx: Context, store: Store, sku: str) -> Product | None:
    async with ctx.db.connection() as conn:
        return await queries.product_by_sku(conn, store.id, sku)


async def products(ctx: Context, store: Store, text: str | None, request: PageRequest) -> Page:
    async with ctx.db.connection() as conn:
        return await paged(queries.products_page(conn, store.id, text, request))


async def products_count(ctx: Context, store: Store, text: str | None) -> int:
    async with ctx.db.connection() as conn:
        return await queries.products_count(conn, store.id, text)


BACKORDERED_PRODUCTS_MAX = 100


async def backordered_products(ctx: Context, store: Store, first: int) -> list[Product]:
    if not 0 <= first <= BACKORDERED_PRODUCTS_MAX:
        raise ApiError(
            f"first must be between 0 and {BACKORDERED_PRODUCTS_MAX}", "INVALID", field=["first"]
        )
    async with ctx.db.connection() as conn:
        return await queries.backordered_products(conn, store.id, first)


async def order(ctx: Context, store: Store, number: int) -> Order | None:
    async with ctx.db.read() as conn:
        return await queries.order_by_number(conn, store.id, number)


async def orders(
    ctx: Context, store: Store, flt: OrderFilter, sort: OrderSort, request: PageRequest
) -> Page:
    async with ctx.db.read() as conn:
        return await paged(
            queries.orders_page(conn, store.id, checked_filter(flt), sort, request, ctx.clock())
        )


async def orders_count(ctx: Context, store: Store, flt: OrderFilter) -> int:
    flt = checked_filter(flt)
    async with ctx.db.connection() as conn:
        return await queries.orders_count(conn, store.id, flt, ctx.clock())


async def backorder_queue(ctx: Context, product: Product, request: PageRequest) -> Page:
    async with ctx.db.connection() as conn:
        return await paged(
            queries.backorder_queue_page(conn, product.store_id, product.id, request)
        )


async def backorder_queue_count(ctx: Context, product: Product) -> int:
    async with ctx.db.connection() as conn:
        return await queries.backorder_queue_count(conn, product.store_id, product.id)


async def order_events(ctx: Context, order: Order, request: PageRequest) -> Page:
    async with ctx.db.connection() as conn:
        return await paged(queries.order_events_page(conn, order.store_id, order.id, request))


async def store_events(
    ctx: Context, store: Store, request: PageRequest, selection: EventSelection
) -> FeedPage:
    """A page of the store's event feed (domain/feed.py); `first` and `after` are checked
    as every connection's are (INVALID, with the argument's name)."""
    try:
        first, _ = request.size()
        after = feed_position(request.after)
    except BadPageRequest as err:
        raise ApiError(str(err), "INVALID", field=[err.field]) from None
    async with ctx.db.connection() as conn:
        return await queries.store_events_page(conn, store.id, after, first, selection)

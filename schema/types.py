"""GraphQL object types. Each wraps a domain object (`domain()`): a field is either its
attribute of the same name (`attribute(T)`) or a resolver (guarded, loaded or computed).
Store, Product, Order, OrderLine and OrderEvent refer to each other, so they live together.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Annotated, Any

import strawberry

from ordergraph.domain.model import Order, OrderLine, Product, Store
from ordergraph.domain.paging import PageRequest, encode_cursor
from ordergraph.domain.reads import EventRecord, KeyRecord, OrderFilter, OrderSort
from ordergraph.resolvers import figures as fig
from ordergraph.resolvers import ids, webhook_reads
from ordergraph.resolvers import queries as q
from ordergraph.schema.connections import Connection, CountedConnection
from ordergraph.schema.enums import (
    ApiScope,
    BackorderPolicy,
    ErrorCode,
    OrderEventType,
    OrderSortKey,
    OrderStatus,
    StockStatus,
)
from ordergraph.schema.figures import BacklogPoint, BacklogSummary, TrendInterval
from ordergraph.schema.filters import OrderFilterInput
from ordergraph.schema.money import Money
from ordergraph.schema.nodes import (
    Ctx,
    Node,
    attribute,
    plain,
    priced,
    selects,
    store_detail,
    traverse,
)

if TYPE_CHECKING:
    from ordergraph.schema.webhooks import WebhookSubscriptionType

# Ctx is re-exported: the mutation and subscription modules take it from here.
__all__ = ["ApiKeyType", "Ctx", "Node", "OrderEventType_", "OrderLineType", "OrderType"]
__all__ += ["ProductType", "StoreType", "UserError"]


@strawberry.type
class UserError:
    field: list[str] | None
    message: str
    code: ErrorCode


# -- stores -------------------------------------------------------------------


@strawberry.type(name="Store")
class StoreType(Node):
    _store: strawberry.Private[Store]

    def domain(self) -> Store:
        return self._store

    id = plain(strawberry.ID, lambda s: ids.encode("Store", s._store.id))

    handle = attribute(str)

    name = attribute(str, guard=store_detail)
    currency_code = attribute(str, guard=store_detail)
    timezone = attribute(str, guard=store_detail)
    default_backorder_policy = attribute(BackorderPolicy, guard=store_detail)
    created_at = attribute(dt.datetime, guard=store_detail)

    @strawberry.field
    async def product(self, info: Ctx, sku: str) -> ProductType | None:
        await traverse(info)
        found = await q.product(info.context, self._store, sku)
        return ProductType(_product=found) if found else None

    @strawberry.field
    async def products(
        self,
        info: Ctx,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        query: str | None = None,
    ) -> CountedConnection[ProductType]:
        await traverse(info)
        store = self._store
        request = PageRequest(first=first, after=after, last=last, before=before)
        page = await q.products(info.context, store, query, request)
        return CountedConnection[ProductType].of(
            page,
            lambda p: ProductType(_product=p),
            _count=lambda ctx: q.products_count(ctx, store, query),
        )

    @strawberry.field(
        description="Products with units awaiting stock, most backordered units first "
        "(ties: sku); `first` is at most 100."
    )
    async def backordered_products(self, info: Ctx, first: int = 10) -> list[ProductType]:
        await traverse(info)
        found = await q.backordered_products(info.context, self._store, first)
        return [ProductType(_product=p) for p in found]

    @strawberry.field
    async def order(self, info: Ctx, number: int) -> OrderType | None:
        await traverse(info)
        found = await q.order(info.context, self._store, number)
        return OrderType(_order=found) if found else None

    @strawberry.field
    async def orders(
        self,
        info: Ctx,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        filter: OrderFilterInput | None = None,
        sort_key: OrderSortKey | None = OrderSortKey.PLACED_AT,
        reverse: bool | None = False,
    ) -> CountedConnection[OrderType]:
        await traverse(info)
        store = self._store
        request = PageRequest(
            first=first, after=after, last=last, before=before, reverse=bool(reverse)
        )
        flt = filter.to_filter() if filter else OrderFilter()
        sort = OrderSort((sort_key or OrderSortKey.PLACED_AT).value)
        page = await q.orders(info.context, store, flt, sort, request)
        if selects(info.selected_fields, ("lines", "product")):
            # The page's products in one batch, before its lines ask one by one: each
            # line's product then resolves without waiting (see OrderLineType.product).
            await info.context.loaders.product.load_many(
                {(line.store_id, line.product_id) for o in page.rows for line in o.lines}
            )
        return CountedConnection[OrderType].of(
            page,
            lambda o: OrderType(_order=o),
            _count=lambda ctx: q.orders_count(ctx, store, flt),
        )

    @strawberry.field(
        description="The figures at an instant: asOf null is now; a past instant gives "
        "them exactly as they stood then."
    )
    async def backlog(self, info: Ctx, as_of: dt.datetime | None = None) -> BacklogSummary:
        await traverse(info)
        found = await fig.backlog(info.context, self._store, as_of)
        return BacklogSummary.of(found, self._store.currency_code)

    @strawberry.field(
        description="The figures at each interval boundary (in the store's time zone) "
        "from `from` to `to`; at most 1,000 points, none after now."
    )
    async def backlog_trend(
        self,
        info: Ctx,
        from_: Annotated[dt.datetime, strawberry.argument(name="from")],
        to: dt.datetime,
        interval: TrendInterval,
    ) -> list[BacklogPoint]:
        await traverse(info)
        found = await fig.backlog_trend(info.context, self._store, from_, to, interval.value)
        return [BacklogPoint.of(f, self._store.currency_code) for f in found]

    @strawberry.field(
        description="The store's webhook subscriptions, oldest first (WEBHOOKS scope)."
    )
    async def webhook_subscriptions(
        self, info: Ctx
    ) -> list[Annotated[WebhookSubscriptionType, strawberry.lazy("ordergraph.schema.webhooks")]]:
        from ordergraph.schema.webhooks import WebhookSubscriptionType

        found = await webhook_reads.subscriptions(info.context, self._store.id)
        return [WebhookSubscriptionType(_record=r) for r in found]


# -- products -----------------------------------------------------------------


@strawberry.type(name="Product")
class ProductType(Node):
    _product: strawberry.Private[Product]

    def domain(self) -> Product:
        return self._product

    id = plain(strawberry.ID, lambda s: ids.encode("Product", s._product.store_id, s._product.id))

    @strawberry.field
    async def store(self, info: Ctx) -> StoreType:
        await traverse(info)
        store = await info.context.loaders.store.load(self._product.store_id)
        assert store is not None
        return StoreType(_store=store)

    sku = attribute(str)
    title = attribute(str)

    @strawberry.field(graphql_type=Money)
    def price(self, info: Ctx) -> Money | Awaitable[Money]:
        return priced(info, self._product.price, self._product.store_id)

    backorder_policy = attribute(BackorderPolicy)
    backorder_limit = attribute(int | None)
    restock_date = attribute(dt.date | None)
    on_hand = attribute(int)
    allocated = attribute(int)
    available = attribute(int)
    backordered = attribute(int)
    available_to_sell = attribute(int | None)

    @strawberry.field
    async def backorder_queue(
        self, info: Ctx, first: int | None = None, after: str | None = None
    ) -> CountedConnection[OrderLineType]:
        await traverse(info)
        product = self._product
        page = await q.backorder_queue(info.context, product, PageRequest(first=first, after=after))
        return CountedConnection[OrderLineType].of(
            page,
            lambda line: OrderLineType(_line=line),
            _count=lambda ctx: q.backorder_queue_count(ctx, product),
        )


# -- orders -------------------------------------------------------------------


@strawberry.type(name="OrderLine")
class OrderLineType(Node):
    _line: strawberry.Private[OrderLine]

    def domain(self) -> OrderLine:
        return self._line

    id = plain(strawberry.ID, lambda s: ids.encode("OrderLine", s._line.store_id, s._line.id))

    @strawberry.field
    async def order(self, info: Ctx) -> OrderType:
        await traverse(info)
        found = await info.context.loaders.order.load((self._line.store_id, self._line.order_id))
        assert found is not None
        return OrderType(_order=found)

    @strawberry.field(graphql_type=ProductType)
    def product(self, info: Ctx) -> ProductType | Awaitable[ProductType]:
        # At once when the request has the product and knows the caller (a page of
        # orders fetched its products first); else awaited.
        ctx, key = info.context, (self._line.store_id, self._line.product_id)
        found = ctx.loaders.known(ctx.loaders.product, key)
        if found is None or ctx.known_principal is None:
            return self._product_later(info)
        ctx.require_now("READ")
        return ProductType(_product=found)

    async def _product_later(self, info: Ctx) -> ProductType:
        await traverse(info)
        found = await info.context.loaders.product.load(
            (self._line.store_id, self._line.product_id)
        )
        assert found is not None
        return ProductType(_product=found)

    sku = attribute(str)
    quantity = attribute(int)

    @strawberry.field(graphql_type=Money)
    def unit_price(self, info: Ctx) -> Money | Awaitable[Money]:
        return priced(info, self._line.unit_price, self._line.store_id)

    allocated = attribute(int)
    backordered = attribute(int)
    shipped = attribute(int)
    cancelled = attribute(int)


@strawberry.type(name="Order")
class OrderType(Node):
    _order: strawberry.Private[Order]

    def domain(self) -> Order:
        return self._order

    id = plain(strawberry.ID, lambda s: ids.encode("Order", s._order.store_id, s._order.id))

    @strawberry.field
    async def store(self, info: Ctx) -> StoreType:
        await traverse(info)
        store = await info.context.loaders.store.load(self._order.store_id)
        assert store is not None
        return StoreType(_store=store)

    number = attribute(int)
    external_id = attribute(str | None)
    customer_ref = attribute(str | None)
    placed_at = attribute(dt.datetime)
    requested_ship_date = attribute(dt.date | None)
    status = attribute(OrderStatus)
    stock_status = attribute(StockStatus | None)
    in_backlog = attribute(bool)
    is_backordered = attribute(bool)

    @strawberry.field
    def is_overdue(self, info: Ctx) -> bool:
        return self._order.is_overdue(info.context.clock())

    @strawberry.field(
        description="When the order can ship if it waits for stock: the latest restock "
        "date of the products it awaits; null when one of them has none."
    )
    async def expected_ship_date(self, info: Ctx) -> dt.date | None:
        waiting = [line for line in self._order.lines if line.backordered]
        if not waiting:
            return None
        products = await info.context.loaders.product.load_many(
            [(line.store_id, line.product_id) for line in waiting]
        )
        dates = [p.restock_date if p else None for p in products]
        if any(d is None for d in dates):
            return None
        return max(d for d in dates if d is not None)

    lines = plain(
        list[OrderLineType], lambda s: [OrderLineType(_line=line) for line in s._order.lines]
    )

    @strawberry.field(graphql_type=Money)
    def total(self, info: Ctx) -> Money | Awaitable[Money]:
        return priced(info, self._order.total, self._order.store_id)

    @strawberry.field(graphql_type=Money)
    def backordered_value(self, info: Ctx) -> Money | Awaitable[Money]:
        return priced(info, self._order.backordered_value, self._order.store_id)

    @strawberry.field
    async def events(
        self, info: Ctx, first: int | None = None, after: str | None = None
    ) -> Connection[OrderEventType_]:
        await traverse(info)
        page = await q.order_events(
            info.context, self._order, PageRequest(first=first, after=after)
        )
        return Connection[OrderEventType_].of(page, OrderEventType_.of)


# -- events -------------------------------------------------------------------


def event_cursor(seq: int) -> str:
    """An event's cursor: the same as its cursor in Order.events and in subscriptions."""
    return encode_cursor([seq])


@strawberry.type(name="OrderEvent")
class OrderEventType_:
    cursor: str
    type: OrderEventType
    occurred_at: dt.datetime
    status: OrderStatus
    stock_status: StockStatus | None
    _record: strawberry.Private[EventRecord]
    _preloaded: strawberry.Private[OrderType | None] = None
    # Set on live events: results shared by identical subscriptions (schema.subscriptions).
    _shared: strawberry.Private[dict[Any, Any] | None] = None

    @classmethod
    def of(cls, record: EventRecord) -> OrderEventType_:
        data: dict[str, Any] = record.data
        stock = data.get("stockStatus")
        return cls(
            cursor=event_cursor(record.seq),
            type=OrderEventType(record.type),
            occurred_at=record.occurred_at,
            status=OrderStatus(data["status"]),
            stock_status=StockStatus(stock) if stock else None,
            _record=record,
        )

    @strawberry.field
    async def order(self, info: Ctx) -> OrderType:
        if self._preloaded is not None:
            return self._preloaded
        assert self._record.order_id is not None
        found = await info.context.loaders.order.load(
            (self._record.store_id, self._record.order_id)
        )
        assert found is not None
        return OrderType(_order=found)


# -- api keys -----------------------------------------------------------------


@strawberry.type(name="ApiKey")
class ApiKeyType(Node):
    _key: strawberry.Private[KeyRecord]

    def domain(self) -> KeyRecord:
        return self._key

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(ids.encode("ApiKey", self._key.id))

    name = attribute(str)

    @strawberry.field
    def scopes(self) -> list[ApiScope]:
        return [ApiScope(s) for s in sorted(self._key.scopes)]

    @strawberry.field
    async def stores(self, info: Ctx) -> list[StoreType]:
        found = await info.context.loaders.store.load_many(sorted(self._key.store_ids))
        return [StoreType(_store=s) for s in found if s is not None]

    created_at = attribute(dt.datetime)
    revoked_at = attribute(dt.datetime | None)

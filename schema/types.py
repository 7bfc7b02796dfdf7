"""GraphQL object types. Each wraps a domain object; fields read it or ask a resolver."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import strawberry
from strawberry.types import Info

from ordergraph.domain.model import Order, OrderLine, Product, Store
from ordergraph.resolvers import figures as fig
from ordergraph.resolvers import ids
from ordergraph.resolvers import queries as q
from ordergraph.resolvers.context import Context
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
from ordergraph.schema.money import Money, money
from ordergraph.storage.paging import Page, PageRequest, encode_cursor
from ordergraph.storage.queries import EventRecord, KeyRecord, OrderFilter, OrderSort

Ctx = Info[Context, None]


async def _currency(info: Ctx, store_id: int) -> str:
    store = await info.context.loaders.store.load(store_id)
    assert store is not None
    return store.currency_code


async def _traverse(info: Ctx) -> None:
    """Fields that lead past the object a mutation returned, or to store-wide data (the
    store, connections, figures, queues) need the READ scope: a key with only ORDERS or
    INVENTORY sees what its own mutation returned, with its own fields, and no more; the
    admin token sees no store data (docs/security.md, "What each token sees")."""
    await info.context.require("READ")


def _store_detail(info: Ctx) -> None:
    """A store's fields other than id and handle: READ (the admin token sees those two)."""
    info.context.require_now("READ")


@strawberry.interface
class Node:
    @strawberry.field
    def id(self) -> strawberry.ID:
        raise NotImplementedError


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None

    @classmethod
    def of(cls, page: Page) -> PageInfo:
        return cls(
            has_next_page=page.has_next,
            has_previous_page=page.has_previous,
            start_cursor=page.cursors[0] if page.cursors else None,
            end_cursor=page.cursors[-1] if page.cursors else None,
        )


@strawberry.type
class UserError:
    field: list[str] | None
    message: str
    code: ErrorCode


# -- stores -------------------------------------------------------------------


@strawberry.input(name="OrderFilter")
class OrderFilterInput:
    status: list[OrderStatus] | None = None
    stock_status: list[StockStatus] | None = None
    in_backlog: bool | None = None
    is_backordered: bool | None = None
    is_overdue: bool | None = None
    sku: str | None = None
    placed_after: dt.datetime | None = None
    placed_before: dt.datetime | None = None
    external_id: str | None = None

    def to_filter(self) -> OrderFilter:
        return OrderFilter(
            status=[s.value for s in self.status] if self.status else None,
            stock_status=[s.value for s in self.stock_status] if self.stock_status else None,
            in_backlog=self.in_backlog,
            is_backordered=self.is_backordered,
            is_overdue=self.is_overdue,
            sku=self.sku,
            placed_after=self.placed_after,
            placed_before=self.placed_before,
            external_id=self.external_id,
        )


@strawberry.type(name="Store")
class StoreType(Node):
    _store: strawberry.Private[Store]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(ids.encode("Store", self._store.id))

    @strawberry.field
    def handle(self) -> str:
        return self._store.handle

    @strawberry.field
    def name(self, info: Ctx) -> str:
        _store_detail(info)
        return self._store.name

    @strawberry.field
    def currency_code(self, info: Ctx) -> str:
        _store_detail(info)
        return self._store.currency_code

    @strawberry.field
    def timezone(self, info: Ctx) -> str:
        _store_detail(info)
        return self._store.timezone

    @strawberry.field
    def default_backorder_policy(self, info: Ctx) -> BackorderPolicy:
        _store_detail(info)
        return self._store.default_backorder_policy

    @strawberry.field
    def created_at(self, info: Ctx) -> dt.datetime:
        _store_detail(info)
        return self._store.created_at

    @strawberry.field
    async def product(self, info: Ctx, sku: str) -> ProductType | None:
        await _traverse(info)
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
    ) -> ProductConnection:
        await _traverse(info)
        request = PageRequest(first=first, after=after, last=last, before=before)
        page = await q.products(info.context, self._store, query, request)
        return ProductConnection(
            edges=[
                ProductEdge(cursor=c, node=ProductType(_product=p))
                for c, p in zip(page.cursors, page.rows, strict=True)
            ],
            page_info=PageInfo.of(page),
            _store=self._store,
            _query=query,
        )

    @strawberry.field(
        description="Products with units awaiting stock, most backordered units first "
        "(ties: sku); `first` is at most 100."
    )
    async def backordered_products(self, info: Ctx, first: int = 10) -> list[ProductType]:
        await _traverse(info)
        found = await q.backordered_products(info.context, self._store, first)
        return [ProductType(_product=p) for p in found]

    @strawberry.field
    async def order(self, info: Ctx, number: int) -> OrderType | None:
        await _traverse(info)
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
    ) -> OrderConnection:
        await _traverse(info)
        request = PageRequest(
            first=first, after=after, last=last, before=before, reverse=bool(reverse)
        )
        flt = filter.to_filter() if filter else OrderFilter()
        sort = OrderSort((sort_key or OrderSortKey.PLACED_AT).value)
        page = await q.orders(info.context, self._store, flt, sort, request)
        return OrderConnection(
            edges=[
                OrderEdge(cursor=c, node=OrderType(_order=o))
                for c, o in zip(page.cursors, page.rows, strict=True)
            ],
            page_info=PageInfo.of(page),
            _store=self._store,
            _filter=flt,
        )

    @strawberry.field(
        description="The figures at an instant: asOf null is now; a past instant gives "
        "them exactly as they stood then."
    )
    async def backlog(self, info: Ctx, as_of: dt.datetime | None = None) -> BacklogSummary:
        await _traverse(info)
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
        await _traverse(info)
        found = await fig.backlog_trend(info.context, self._store, from_, to, interval.value)
        return [BacklogPoint.of(f, self._store.currency_code) for f in found]


@strawberry.type
class StoreEdge:
    cursor: str
    node: StoreType


@strawberry.type
class StoreConnection:
    edges: list[StoreEdge]
    page_info: PageInfo

    @strawberry.field
    def nodes(self) -> list[StoreType]:
        return [edge.node for edge in self.edges]


# -- products -----------------------------------------------------------------


@strawberry.type(name="Product")
class ProductType(Node):
    _product: strawberry.Private[Product]

    @strawberry.field
    def id(self) -> strawberry.ID:
        p = self._product
        return strawberry.ID(ids.encode("Product", p.store_id, p.id))

    @strawberry.field
    async def store(self, info: Ctx) -> StoreType:
        await _traverse(info)
        store = await info.context.loaders.store.load(self._product.store_id)
        assert store is not None
        return StoreType(_store=store)

    @strawberry.field
    def sku(self) -> str:
        return self._product.sku

    @strawberry.field
    def title(self) -> str:
        return self._product.title

    @strawberry.field
    async def price(self, info: Ctx) -> Money:
        return money(self._product.price, await _currency(info, self._product.store_id))

    @strawberry.field
    def backorder_policy(self) -> BackorderPolicy:
        return self._product.backorder_policy

    @strawberry.field
    def backorder_limit(self) -> int | None:
        return self._product.backorder_limit

    @strawberry.field
    def restock_date(self) -> dt.date | None:
        return self._product.restock_date

    @strawberry.field
    def on_hand(self) -> int:
        return self._product.on_hand

    @strawberry.field
    def allocated(self) -> int:
        return self._product.allocated

    @strawberry.field
    def available(self) -> int:
        return self._product.available

    @strawberry.field
    def backordered(self) -> int:
        return self._product.backordered

    @strawberry.field
    def available_to_sell(self) -> int | None:
        return self._product.available_to_sell

    @strawberry.field
    async def backorder_queue(
        self, info: Ctx, first: int | None = None, after: str | None = None
    ) -> OrderLineConnection:
        await _traverse(info)
        page = await q.backorder_queue(
            info.context, self._product, PageRequest(first=first, after=after)
        )
        return OrderLineConnection(
            edges=[
                OrderLineEdge(cursor=c, node=OrderLineType(_line=line))
                for c, line in zip(page.cursors, page.rows, strict=True)
            ],
            page_info=PageInfo.of(page),
            _product=self._product,
        )


@strawberry.type
class ProductEdge:
    cursor: str
    node: ProductType


@strawberry.type
class ProductConnection:
    edges: list[ProductEdge]
    page_info: PageInfo
    _store: strawberry.Private[Store]
    _query: strawberry.Private[str | None]

    @strawberry.field
    def nodes(self) -> list[ProductType]:
        return [edge.node for edge in self.edges]

    @strawberry.field
    async def total_count(self, info: Ctx) -> int:
        return await q.products_count(info.context, self._store, self._query)


# -- orders -------------------------------------------------------------------


@strawberry.type(name="OrderLine")
class OrderLineType(Node):
    _line: strawberry.Private[OrderLine]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(ids.encode("OrderLine", self._line.store_id, self._line.id))

    @strawberry.field
    async def order(self, info: Ctx) -> OrderType:
        await _traverse(info)
        found = await info.context.loaders.order.load((self._line.store_id, self._line.order_id))
        assert found is not None
        return OrderType(_order=found)

    @strawberry.field
    async def product(self, info: Ctx) -> ProductType:
        await _traverse(info)
        found = await info.context.loaders.product.load(
            (self._line.store_id, self._line.product_id)
        )
        assert found is not None
        return ProductType(_product=found)

    @strawberry.field
    def sku(self) -> str:
        return self._line.sku

    @strawberry.field
    def quantity(self) -> int:
        return self._line.quantity

    @strawberry.field
    async def unit_price(self, info: Ctx) -> Money:
        return money(self._line.unit_price, await _currency(info, self._line.store_id))

    @strawberry.field
    def allocated(self) -> int:
        return self._line.allocated

    @strawberry.field
    def backordered(self) -> int:
        return self._line.backordered

    @strawberry.field
    def shipped(self) -> int:
        return self._line.shipped

    @strawberry.field
    def cancelled(self) -> int:
        return self._line.cancelled


@strawberry.type
class OrderLineEdge:
    cursor: str
    node: OrderLineType


@strawberry.type
class OrderLineConnection:
    edges: list[OrderLineEdge]
    page_info: PageInfo
    _product: strawberry.Private[Product]

    @strawberry.field
    def nodes(self) -> list[OrderLineType]:
        return [edge.node for edge in self.edges]

    @strawberry.field
    async def total_count(self, info: Ctx) -> int:
        return await q.backorder_queue_count(info.context, self._product)


@strawberry.type(name="Order")
class OrderType(Node):
    _order: strawberry.Private[Order]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(ids.encode("Order", self._order.store_id, self._order.id))

    @strawberry.field
    async def store(self, info: Ctx) -> StoreType:
        await _traverse(info)
        store = await info.context.loaders.store.load(self._order.store_id)
        assert store is not None
        return StoreType(_store=store)

    @strawberry.field
    def number(self) -> int:
        return self._order.number

    @strawberry.field
    def external_id(self) -> str | None:
        return self._order.external_id

    @strawberry.field
    def customer_ref(self) -> str | None:
        return self._order.customer_ref

    @strawberry.field
    def placed_at(self) -> dt.datetime:
        return self._order.placed_at

    @strawberry.field
    def requested_ship_date(self) -> dt.date | None:
        return self._order.requested_ship_date

    @strawberry.field
    def status(self) -> OrderStatus:
        return self._order.status

    @strawberry.field
    def stock_status(self) -> StockStatus | None:
        return self._order.stock_status

    @strawberry.field
    def in_backlog(self) -> bool:
        return self._order.in_backlog

    @strawberry.field
    def is_backordered(self) -> bool:
        return self._order.is_backordered

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

    @strawberry.field
    def lines(self) -> list[OrderLineType]:
        return [OrderLineType(_line=line) for line in self._order.lines]

    @strawberry.field
    async def total(self, info: Ctx) -> Money:
        return money(self._order.total, await _currency(info, self._order.store_id))

    @strawberry.field
    async def backordered_value(self, info: Ctx) -> Money:
        return money(self._order.backordered_value, await _currency(info, self._order.store_id))

    @strawberry.field
    async def events(
        self, info: Ctx, first: int | None = None, after: str | None = None
    ) -> OrderEventConnection:
        await _traverse(info)
        page = await q.order_events(
            info.context, self._order, PageRequest(first=first, after=after)
        )
        edges = []
        for record in page.rows:
            event = OrderEventType_.of(record)
            edges.append(OrderEventEdge(cursor=event.cursor, node=event))
        return OrderEventConnection(edges=edges, page_info=PageInfo.of(page))


@strawberry.type
class OrderEdge:
    cursor: str
    node: OrderType


@strawberry.type
class OrderConnection:
    edges: list[OrderEdge]
    page_info: PageInfo
    _store: strawberry.Private[Store]
    _filter: strawberry.Private[OrderFilter]

    @strawberry.field
    def nodes(self) -> list[OrderType]:
        return [edge.node for edge in self.edges]

    @strawberry.field
    async def total_count(self, info: Ctx) -> int:
        return await q.orders_count(info.context, self._store, self._filter)


# -- events -------------------------------------------------------------------


def event_cursor(seq: int) -> str:
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


@strawberry.type
class OrderEventEdge:
    cursor: str
    node: OrderEventType_


@strawberry.type
class OrderEventConnection:
    edges: list[OrderEventEdge]
    page_info: PageInfo

    @strawberry.field
    def nodes(self) -> list[OrderEventType_]:
        return [edge.node for edge in self.edges]


# -- api keys -----------------------------------------------------------------


@strawberry.type(name="ApiKey")
class ApiKeyType(Node):
    _key: strawberry.Private[KeyRecord]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(ids.encode("ApiKey", self._key.id))

    @strawberry.field
    def name(self) -> str:
        return self._key.name

    @strawberry.field
    def scopes(self) -> list[ApiScope]:
        return [ApiScope(s) for s in sorted(self._key.scopes)]

    @strawberry.field
    async def stores(self, info: Ctx) -> list[StoreType]:
        found = await info.context.loaders.store.load_many(sorted(self._key.store_ids))
        return [StoreType(_store=s) for s in found if s is not None]

    @strawberry.field
    def created_at(self) -> dt.datetime:
        return self._key.created_at

    @strawberry.field
    def revoked_at(self) -> dt.datetime | None:
        return self._key.revoked_at


NodeResult = Annotated[Node, strawberry.lazy("ordergraph.schema.types")]


def wrap_node(found: object) -> Node | None:
    if isinstance(found, Store):
        return StoreType(_store=found)
    if isinstance(found, Product):
        return ProductType(_product=found)
    if isinstance(found, Order):
        return OrderType(_order=found)
    if isinstance(found, OrderLine):
        return OrderLineType(_line=found)
    if isinstance(found, KeyRecord):
        return ApiKeyType(_key=found)
    return None

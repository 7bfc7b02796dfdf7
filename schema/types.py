"""GraphQL object types. Each wraps a domain object (`domain()`): a field is either its
attribute of the same name (`attribute(T)`) or a resolver (guarded, loaded or computed).
Store, Product, Order, OrderLine and OrderEvent refer to each other, so they live together.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Annotated, Any

import strawberry

from ordergraph.domain.expected import FillRun, ship_date
from ordergraph.domain.feed import FEED_SCAN
from ordergraph.domain.model import Order, OrderLine, Product, Receipt, Store
from ordergraph.domain.paging import PageRequest, encode_cursor
from ordergraph.domain.reads import EventRecord, KeyRecord, OrderFilter, OrderSort
from ordergraph.domain.services.receipts import MAX_REFERENCE
from ordergraph.domain.validation import MAX_LINE_QUANTITY, MAX_STOCK_CHANGE, MAX_TEXT
from ordergraph.resolvers import figures as fig
from ordergraph.resolvers import ids, webhook_reads
from ordergraph.resolvers import outcomes as oc
from ordergraph.resolvers import queries as q
from ordergraph.resolvers.context import Context
from ordergraph.resolvers.queries import BACKORDERED_PRODUCTS_MAX
from ordergraph.schema.connections import (
    After,
    Before,
    Connection,
    CountedConnection,
    First,
    Last,
)
from ordergraph.schema.enums import (
    ApiScope,
    BackorderPolicy,
    ErrorCode,
    InventoryEventType,
    OrderEventType,
    OrderSortKey,
    OrderStatus,
    OutcomeInterval,
    OutcomeRanking,
    ReceiptStatus,
    StockStatus,
)
from ordergraph.schema.figures import BacklogPoint, BacklogSummary, TrendInterval
from ordergraph.schema.filters import OrderFilterInput
from ordergraph.schema.money import Money
from ordergraph.schema.nodes import (
    ID_DESCRIPTION,
    Ctx,
    Node,
    attribute,
    contextual,
    plain,
    priced,
    selects,
    store_detail,
    traverse,
)
from ordergraph.schema.outcomes import BackorderOutcomes, BackorderOutcomesPoint, wanted

if TYPE_CHECKING:
    from ordergraph.schema.feed import StoreEventConnection
    from ordergraph.schema.webhooks import WebhookSubscriptionType

# Ctx is re-exported: the mutation and subscription modules take it from here.
__all__ = ["ApiKeyType", "Ctx", "Node", "OrderEventType_", "OrderLineType", "OrderType"]
__all__ += ["IncomingReceiptType", "ProductType", "StoreType", "UserError"]


@strawberry.type(
    description="Why a mutation was refused (a refused mutation changes nothing). Several "
    "may come at once, e.g. one per bad order line."
)
class UserError:
    field: list[str] | None = strawberry.field(
        description='The path to the input value at fault, e.g. ["input", "lines", "1", '
        '"quantity"] (list positions as strings, from 0); null when no single value is.'
    )
    message: str = strawberry.field(
        description="What is wrong, in English, for people; match on `code`, not on this."
    )
    code: ErrorCode = strawberry.field(description="The kind of refusal, stable for programs.")


# -- stores -------------------------------------------------------------------


From = Annotated[
    dt.datetime,
    strawberry.argument(name="from", description="The period's first instant (included)."),
]
To = Annotated[
    dt.datetime,
    strawberry.argument(description="The period's end (excluded; after `from`). After now: now."),
]


@strawberry.type(
    name="Store",
    description="A shop whose products, stock and orders ordergraph keeps. An API key sees "
    "only its own stores; the admin token sees only `id` and `handle`.",
)
class StoreType(Node):
    _store: strawberry.Private[Store]

    def domain(self) -> Store:
        return self._store

    id = plain(strawberry.ID, lambda s: ids.encode("Store", s._store.id), ID_DESCRIPTION)

    handle = attribute(
        str,
        "The store's unique short name, fixed at creation: 2 to 40 characters of a-z, 0-9 "
        "and '-', starting and ending with a letter or digit.",
    )

    name = attribute(
        str, f"The store's display name (one line, at most {MAX_TEXT} characters).", store_detail
    )
    currency_code = attribute(
        str,
        "The ISO 4217 code of the currency of all the store's prices and values, e.g. USD.",
        store_detail,
    )
    timezone = attribute(
        str,
        "The store's IANA time zone, e.g. Europe/Berlin: requested ship dates end, and trend "
        "days and weeks begin, at midnight there.",
        store_detail,
    )
    default_backorder_policy = attribute(
        BackorderPolicy, "The backorder policy new products of this store start with.", store_detail
    )
    created_at = attribute(dt.datetime, "When the store was created.", store_detail)

    @strawberry.field(
        description="The store's product with exactly this SKU (case-sensitive); null when "
        "there is none."
    )
    async def product(
        self, info: Ctx, sku: Annotated[str, strawberry.argument(description="The SKU.")]
    ) -> ProductType | None:
        await traverse(info)
        found = await q.product(info.context, self._store, sku)
        return ProductType(_product=found) if found else None

    @strawberry.field(description="The store's products, ordered by SKU.")
    async def products(
        self,
        info: Ctx,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
        query: Annotated[
            str | None,
            strawberry.argument(
                description="Only products whose SKU or title contains this text, ignoring "
                "case; null or empty: all products."
            ),
        ] = None,
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
        f"(ties: sku); `first` is at most {BACKORDERED_PRODUCTS_MAX}."
    )
    async def backordered_products(
        self,
        info: Ctx,
        first: Annotated[
            int,
            strawberry.argument(
                description=f"How many products: 0 to {BACKORDERED_PRODUCTS_MAX} (INVALID "
                "otherwise)."
            ),
        ] = 10,
    ) -> list[ProductType]:
        await traverse(info)
        found = await q.backordered_products(info.context, self._store, first)
        return [ProductType(_product=p) for p in found]

    @strawberry.field(description="The store's order with this number; null when there is none.")
    async def order(
        self,
        info: Ctx,
        number: Annotated[
            int, strawberry.argument(description="The order's number (`Order.number`).")
        ],
    ) -> OrderType | None:
        await traverse(info)
        found = await q.order(info.context, self._store, number)
        return OrderType(_order=found) if found else None

    @strawberry.field(
        description="The store's orders that match `filter`, in the order `sortKey` and "
        "`reverse` give."
    )
    async def orders(
        self,
        info: Ctx,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
        filter: Annotated[
            OrderFilterInput | None,
            strawberry.argument(description="Only the orders that match; null: all orders."),
        ] = None,
        sort_key: Annotated[
            OrderSortKey | None,
            strawberry.argument(description="What the orders are sorted by; null: PLACED_AT."),
        ] = OrderSortKey.PLACED_AT,
        reverse: Annotated[
            bool | None,
            strawberry.argument(
                description="true: descending (latest or highest first); false or null: ascending."
            ),
        ] = False,
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
    async def backlog(
        self,
        info: Ctx,
        as_of: Annotated[
            dt.datetime | None,
            strawberry.argument(description="The instant (not in the future: INVALID); null: now."),
        ] = None,
    ) -> BacklogSummary:
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
        from_: Annotated[
            dt.datetime,
            strawberry.argument(
                name="from", description="The first instant of the span (included)."
            ),
        ],
        to: Annotated[
            dt.datetime,
            strawberry.argument(
                description="The last instant of the span (included; not before `from`). "
                "Instants after now are cut off."
            ),
        ],
        interval: Annotated[
            TrendInterval,
            strawberry.argument(description="The step between points."),
        ],
    ) -> list[BacklogPoint]:
        await traverse(info)
        found = await fig.backlog_trend(info.context, self._store, from_, to, interval.value)
        return BacklogPoint.series(found, self._store.currency_code)

    @strawberry.field(
        description="What waiting cost over the period [from, to): backorders started, "
        "filled and cancelled, the waits, the lost revenue, the backorder rate and what "
        "still waited at `to`. `to` after now is taken as now. Needs READ."
    )
    async def backorder_outcomes(self, info: Ctx, from_: From, to: To) -> BackorderOutcomes:
        await traverse(info)
        found = await oc.store_outcomes(info.context, self._store, from_, to, wanted(info))
        return BackorderOutcomes.of(found, self._store.currency_code)

    @strawberry.field(
        description="The outcomes per interval of the store's calendar from `from` to `to` "
        "(the first and last periods may be partial: they add up to the whole period); at "
        "most 1,000 points. Needs READ."
    )
    async def backorder_outcomes_trend(
        self,
        info: Ctx,
        from_: From,
        to: To,
        interval: Annotated[
            OutcomeInterval, strawberry.argument(description="The length of each period.")
        ],
    ) -> list[BackorderOutcomesPoint]:
        await traverse(info)
        found = await oc.outcomes_trend(
            info.context, self._store, from_, to, interval.value, wanted(info)
        )
        currency = self._store.currency_code
        return [
            BackorderOutcomesPoint(at=point.start, outcomes=BackorderOutcomes.of(point, currency))
            for point in found
        ]

    @strawberry.field(
        description="The products that lead by `by` over the period, with their outcomes: "
        "only products with something to rank (e.g. some lost revenue), ties by age of the "
        f"product. `first` 1 to {oc.MAX_LEADERS}. Needs READ."
    )
    async def backorder_leaders(
        self,
        info: Ctx,
        by: Annotated[OutcomeRanking, strawberry.argument(description="What ranks them.")],
        from_: From,
        to: To,
        first: Annotated[
            int | None,
            strawberry.argument(description="How many products, at most (null: 10)."),
        ] = 10,
    ) -> list[ProductOutcome]:
        await traverse(info)
        count = 10 if first is None else first
        want = wanted(info)
        found = await oc.leaders(info.context, self._store, by.value, from_, to, count, want)
        loaded = await info.context.loaders.product.load_many(
            [(self._store.id, pid) for pid, _ in found]
        )
        currency = self._store.currency_code
        return [
            ProductOutcome(_product=product, outcomes=BackorderOutcomes.of(outcomes, currency))
            for product, (_, outcomes) in zip(loaded, found, strict=True)
            if product is not None
        ]

    @strawberry.field(
        description="The store's event log after `after`, oldest first: its order and "
        "inventory events in one sequence. The cursors are those of the `orderEvents` and "
        "`inventoryEvents` subscriptions (and `Order.events`): pass the last cursor you "
        "have as `after`, here or to a subscription, to carry on with no gap and no "
        "duplicate. Filters: with neither `orderTypes` nor `inventoryTypes`, every event; "
        "a list keeps its stream's events of the types it names and leaves out the other "
        "stream unless that one's list is given too. With filters a page looks at no more "
        f"than {FEED_SCAN:,} events after `after`, so it may hold fewer than `first` events "
        "(even none) while `hasNextPage` is true: carry on from `pageInfo.endCursor`, "
        "which moves past the events the page looked at. Needs the READ scope."
    )
    async def events(
        self,
        info: Ctx,
        after: Annotated[
            str | None,
            strawberry.argument(
                description="Start after this event's cursor (exclusive); null: from the "
                "beginning of the log. Any event cursor of this store: from this feed, "
                "`orderEvents`, `inventoryEvents` or `Order.events`."
            ),
        ] = None,
        first: Annotated[
            int | None,
            strawberry.argument(description="How many events at most: 0 to 250; null: 50."),
        ] = None,
        order_types: Annotated[
            list[OrderEventType] | None,
            strawberry.argument(
                description="Only order events of these types (an empty list: no order "
                "events); null: every order event when `inventoryTypes` is null too, else "
                "none."
            ),
        ] = None,
        inventory_types: Annotated[
            list[InventoryEventType] | None,
            strawberry.argument(
                description="Only inventory events of these types (an empty list: no "
                "inventory events); null: every inventory event when `orderTypes` is null "
                "too, else none."
            ),
        ] = None,
    ) -> Annotated[StoreEventConnection, strawberry.lazy("ordergraph.schema.feed")]:
        await traverse(info)
        # Imported here: the feed's types refer to OrderEvent, defined in this module.
        from ordergraph.schema import feed

        return await feed.store_events(
            info, self._store, after, first, order_types, inventory_types
        )

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


@strawberry.type(
    name="Product",
    description="Something a store sells, identified by its SKU, with its stock and "
    "backorder terms. Counts are in units.",
)
class ProductType(Node):
    _product: strawberry.Private[Product]

    def domain(self) -> Product:
        return self._product

    id = plain(
        strawberry.ID,
        lambda s: ids.encode("Product", s._product.store_id, s._product.id),
        ID_DESCRIPTION,
    )

    @strawberry.field(description="The store the product belongs to (needs READ).")
    async def store(self, info: Ctx) -> StoreType:
        await traverse(info)
        store = await info.context.loaders.store.load(self._product.store_id)
        assert store is not None
        return StoreType(_store=store)

    sku = attribute(
        str,
        "The stock-keeping unit, unique in the store and fixed: 1 to 64 characters of A-Z, "
        "a-z, 0-9, '-', '_' and '.', starting with a letter or digit.",
    )
    title = attribute(str, f"The product's name (one line, at most {MAX_TEXT} characters).")

    price = contextual(
        Money,
        lambda s, ctx: priced(ctx, s._product.price, s._product.store_id),
        "The unit price new orders pay; lines already placed keep theirs.",
    )

    backorder_policy = attribute(
        BackorderPolicy, "Whether orders may take more units than are available."
    )
    backorder_limit = attribute(
        int | None,
        "Under the LIMIT policy, how many units may await stock at once (all orders "
        "together); null under DENY and ALLOW.",
    )
    restock_date = attribute(
        dt.date | None,
        "When the merchant expects new stock (as they set it); null when not known. It "
        "counts as a receipt of unknown quantity: it dates the waiting units that no open "
        "receipt (`incoming`) covers.",
    )
    on_hand = attribute(int, "Units in stock and not yet shipped (allocated ones included).")
    allocated = attribute(int, "Units of `onHand` reserved for order lines not yet shipped.")
    available = attribute(
        int, "Units in stock and free for new orders: `onHand` minus `allocated`."
    )
    backordered = attribute(
        int,
        "Units ordered and awaiting stock, over all lines; never above 0 while `available` "
        "is above 0.",
    )
    available_to_sell = attribute(
        int | None,
        "How many units a new order may still take: `available` under DENY, plus the "
        "remaining backorder allowance under LIMIT; null (no limit) under ALLOW.",
    )

    @strawberry.field(
        description="The order lines awaiting this product, in fill order: arriving stock "
        "goes to the first (oldest placed, then order number, then line). Needs READ."
    )
    async def backorder_queue(
        self, info: Ctx, first: First = None, after: After = None
    ) -> CountedConnection[OrderLineType]:
        await traverse(info)
        product = self._product
        page = await q.backorder_queue(info.context, product, PageRequest(first=first, after=after))
        return CountedConnection[OrderLineType].of(
            page,
            lambda line: OrderLineType(_line=line),
            _count=lambda ctx: q.backorder_queue_count(ctx, product),
        )

    @strawberry.field(
        description="The product's open receipts (stock on its way), earliest expected "
        "first (ties: the earlier scheduled). Needs READ."
    )
    async def incoming(self, info: Ctx) -> list[IncomingReceiptType]:
        await traverse(info)
        product = self._product
        found = await info.context.loaders.incoming.load((product.store_id, product.id))
        return [IncomingReceiptType(_receipt=r) for r in found]

    @strawberry.field(
        description="Units awaiting stock that no open receipt covers: walking the "
        "backorder queue in fill order against `incoming` in date order, the units left "
        "over. What to order to drive this product's backorders to zero; `restockDate` "
        "does not lower it (its quantity is unknown). Needs READ."
    )
    async def units_to_reorder(self, info: Ctx) -> int:
        await traverse(info)
        product = self._product
        if product.backordered == 0:
            return 0
        plan = await info.context.loaders.fill_plan.load((product.store_id, product.id))
        return plan.units_to_reorder

    @strawberry.field(
        description="The whole backorder queue's expected fill dates in one short list: "
        "the queue (fill order, as `backorderQueue`) cut into runs of consecutive lines "
        "that get their last units from the same open receipt (or from `restockDate`, or "
        "from nothing: undated), so each line's `expectedFillDate` is its run's. A "
        "product has at most its open receipts plus two runs, however long its queue; "
        "`OrderLine.queuePosition` places a line in them. Empty when nothing waits. "
        "Needs READ."
    )
    async def expected_fills(self, info: Ctx) -> list[ExpectedFillRunType]:
        await traverse(info)
        product = self._product
        if product.backordered == 0:
            return []
        plan = await info.context.loaders.fill_plan.load((product.store_id, product.id))
        return [ExpectedFillRunType(_run=run, _store_id=product.store_id) for run in plan.runs]

    @strawberry.field(
        description="What waiting cost for this product over the period [from, to) "
        "(Store.backorderOutcomes, counted over its order lines). Needs READ."
    )
    async def backorder_outcomes(self, info: Ctx, from_: From, to: To) -> BackorderOutcomes:
        await traverse(info)
        store = await info.context.loaders.store.load(self._product.store_id)
        assert store is not None
        found = await oc.product_outcomes(
            info.context, store, self._product, from_, to, wanted(info)
        )
        return BackorderOutcomes.of(found, store.currency_code)


@strawberry.type(description="A product's outcomes in backorderLeaders.")
class ProductOutcome:
    _product: strawberry.Private[Product]
    outcomes: BackorderOutcomes = strawberry.field(description="Its outcomes over the period.")

    @strawberry.field(description="The product.")
    def product(self) -> ProductType:
        return ProductType(_product=self._product)

    @strawberry.field(
        description="Its backordered units that no open receipt covers, now "
        "(Product.unitsToReorder)."
    )
    async def units_to_reorder(self, info: Ctx) -> int:
        product = self._product
        if product.backordered == 0:
            return 0
        plan = await info.context.loaders.fill_plan.load((product.store_id, product.id))
        return plan.units_to_reorder


@strawberry.type(
    name="IncomingReceipt",
    description="Stock on its way (scheduleReceipt): units of a product expected on a "
    "date. Open receipts date the waiting order lines (`OrderLine.expectedFillDate`); "
    "receiveStock naming it lowers what it still expects.",
)
class IncomingReceiptType(Node):
    _receipt: strawberry.Private[Receipt]

    def domain(self) -> Receipt:
        return self._receipt

    id = plain(
        strawberry.ID,
        lambda s: ids.encode("IncomingReceipt", s._receipt.store_id, s._receipt.id),
        ID_DESCRIPTION,
    )

    @strawberry.field(description="The product expected (needs READ).")
    async def product(self, info: Ctx) -> ProductType:
        await traverse(info)
        found = await info.context.loaders.product.load(
            (self._receipt.store_id, self._receipt.product_id)
        )
        assert found is not None
        return ProductType(_product=found)

    quantity = attribute(
        int,
        f"Units still expected: 0 to {MAX_STOCK_CHANGE:,} (0 once closed). Receiving "
        "against the receipt lowers it.",
    )
    received = attribute(int, "Units already received against this receipt.")
    expected_at = attribute(
        dt.date, "The day the units are expected (the merchant's word; it may have passed)."
    )
    reference = attribute(
        str | None,
        f"The merchant's purchase order or shipment reference (one line, at most "
        f"{MAX_REFERENCE} characters); null when none was given.",
    )
    status = attribute(
        ReceiptStatus, "Whether units are still expected (OPEN), or it is closed or cancelled."
    )
    created_at = attribute(dt.datetime, "When the receipt was scheduled.")


# -- orders -------------------------------------------------------------------


@strawberry.type(
    name="ExpectedFillRun",
    description="Consecutive lines of a product's backorder queue (fill order) whose last "
    "units come from the same source, so they share one expected fill date "
    "(Product.expectedFills).",
)
class ExpectedFillRunType:
    _run: strawberry.Private[FillRun]
    _store_id: strawberry.Private[int]

    @strawberry.field(
        description="The run's lines' `expectedFillDate`: its receipt's date, or the "
        "product's `restockDate`; null when no receipt covers their units and there is no "
        "restock date (they count in `unitsToReorder`)."
    )
    def expected_fill_date(self) -> dt.date | None:
        return self._run.date

    @strawberry.field(
        description="The open receipt whose units complete the run's lines (a line's "
        "first units may come from the receipt before); null when the restock date or "
        "nothing does."
    )
    async def receipt(self, info: Ctx) -> IncomingReceiptType | None:
        if self._run.receipt_id is None:
            return None
        found = await info.context.loaders.receipt.load((self._store_id, self._run.receipt_id))
        return IncomingReceiptType(_receipt=found) if found is not None else None

    @strawberry.field(
        description="The 1-based position of the run's first line in the queue "
        "(`OrderLine.queuePosition`); its lines are that one and the next `lines - 1`."
    )
    def first_position(self) -> int:
        return self._run.first_position

    @strawberry.field(description="How many waiting lines the run holds.")
    def lines(self) -> int:
        return self._run.lines

    @strawberry.field(
        description="The backordered units of the run's lines (all of them, including "
        "first units that an earlier receipt covers)."
    )
    def units(self) -> int:
        return self._run.units

    @strawberry.field(description="The run's first line in fill order.")
    async def first_line(self, info: Ctx) -> OrderLineType:
        return await self._line(info, self._run.first_line_id)

    @strawberry.field(description="The run's last line in fill order.")
    async def last_line(self, info: Ctx) -> OrderLineType:
        return await self._line(info, self._run.last_line_id)

    async def _line(self, info: Ctx, line_id: int) -> OrderLineType:
        found = await info.context.loaders.line.load((self._store_id, line_id))
        assert found is not None
        return OrderLineType(_line=found)


@strawberry.type(
    name="OrderLine",
    description="One product of an order. Its units are always split four ways: `quantity` "
    "= `allocated` + `backordered` + `shipped` + `cancelled`.",
)
class OrderLineType(Node):
    _line: strawberry.Private[OrderLine]

    def domain(self) -> OrderLine:
        return self._line

    id = plain(
        strawberry.ID,
        lambda s: ids.encode("OrderLine", s._line.store_id, s._line.id),
        ID_DESCRIPTION,
    )

    @strawberry.field(description="The order this line belongs to (needs READ).")
    async def order(self, info: Ctx) -> OrderType:
        await traverse(info)
        found = await info.context.loaders.order.load((self._line.store_id, self._line.order_id))
        assert found is not None
        return OrderType(_order=found)

    def _product(self, ctx: Context) -> ProductType | Awaitable[ProductType]:
        # At once when the request has the product and knows the caller (a page of
        # orders fetched its products first); else awaited.
        key = (self._line.store_id, self._line.product_id)
        found = ctx.loaders.known(ctx.loaders.product, key)
        if found is None or ctx.known_principal is None:
            return self._product_later(ctx)
        ctx.require_now("READ")
        return ProductType(_product=found)

    product = contextual(
        ProductType,
        lambda s, ctx: s._product(ctx),
        "The product ordered, as it is now (needs READ).",
    )

    async def _product_later(self, ctx: Context) -> ProductType:
        await ctx.require("READ")
        found = await ctx.loaders.product.load((self._line.store_id, self._line.product_id))
        assert found is not None
        return ProductType(_product=found)

    sku = attribute(str, "The product's SKU.")
    quantity = attribute(
        int, f"Units ordered: 1 to {MAX_LINE_QUANTITY:,} (lines of one SKU are merged)."
    )

    unit_price = contextual(
        Money,
        lambda s, ctx: priced(ctx, s._line.unit_price, s._line.store_id),
        "The product's price when the order was placed; later price changes do not touch it.",
    )

    allocated = attribute(int, "Units reserved from stock for this line, ready to ship.")
    backordered = attribute(int, "Units awaiting stock.")
    shipped = attribute(int, "Units shipped.")
    cancelled = attribute(int, "Units cancelled.")

    @strawberry.field(
        description="When this line's backordered units are expected to get stock: the "
        "product's backorder queue walked in fill order against its open receipts in date "
        "order, this line's date being that of the receipt covering its last unit (units "
        "beyond every receipt take the product's `restockDate`). Null when nothing waits "
        "on the line, or some of its units are covered by no receipt and there is no "
        "restock date."
    )
    async def expected_fill_date(self, info: Ctx) -> dt.date | None:
        line = self._line
        if line.backordered == 0:
            return None
        plan = await info.context.loaders.fill_plan.load((line.store_id, line.product_id))
        return plan.date_of(line.id)

    @strawberry.field(
        description="This line's 1-based position in its product's backorder queue (fill "
        "order, as `Product.backorderQueue`): 1 gets the next stock. Null when nothing "
        "waits on the line."
    )
    async def queue_position(self, info: Ctx) -> int | None:
        line = self._line
        if line.backordered == 0:
            return None
        plan = await info.context.loaders.fill_plan.load((line.store_id, line.product_id))
        return plan.position_of(line.id)


@strawberry.type(
    name="Order",
    description="A customer's order. Its status and flags are derived from its lines, never "
    "set by hand.",
)
class OrderType(Node):
    _order: strawberry.Private[Order]

    def domain(self) -> Order:
        return self._order

    id = plain(
        strawberry.ID,
        lambda s: ids.encode("Order", s._order.store_id, s._order.id),
        ID_DESCRIPTION,
    )

    @strawberry.field(description="The store the order belongs to (needs READ).")
    async def store(self, info: Ctx) -> StoreType:
        await traverse(info)
        store = await info.context.loaders.store.load(self._order.store_id)
        assert store is not None
        return StoreType(_store=store)

    number = attribute(
        int, "The order's number in its store, given in sequence from 1001; never reused."
    )
    external_id = attribute(
        str | None, "The caller's own reference, as given to placeOrder; null when none was."
    )
    customer_ref = attribute(
        str | None, "The customer reference given to placeOrder; null when none was."
    )
    placed_at = attribute(dt.datetime, "When the order was placed.")
    requested_ship_date = attribute(
        dt.date | None,
        "The day by which the order should ship; once it has ended in the store's time "
        "zone, an unshipped order is overdue. Null when none was given.",
    )
    status = attribute(OrderStatus, "Where the order stands, from its lines.")
    stock_status = attribute(
        StockStatus | None,
        "Whether the units left to ship have stock; null when none are left (shipped or "
        "cancelled).",
    )
    in_backlog = attribute(bool, "Whether units are left to ship (allocated or backordered).")
    is_backordered = attribute(bool, "Whether at least one unit awaits stock.")

    @strawberry.field(
        description="Whether the order is in the backlog and its requested ship date has "
        "ended in the store's time zone (as of this request)."
    )
    def is_overdue(self, info: Ctx) -> bool:
        return self._order.is_overdue(info.context.clock())

    @strawberry.field(
        description="When the order can ship if it waits for stock: the latest "
        "`expectedFillDate` of its waiting lines (open receipts first, then the products' "
        "`restockDate`); null when nothing waits or a waiting line has no date."
    )
    async def expected_ship_date(self, info: Ctx) -> dt.date | None:
        waiting = [line for line in self._order.lines if line.backordered]
        if not waiting:
            return None
        plans = await info.context.loaders.fill_plan.load_many(
            [(line.store_id, line.product_id) for line in waiting]
        )
        return ship_date([plan.date_of(line.id) for plan, line in zip(plans, waiting, strict=True)])

    lines = plain(
        list[OrderLineType],
        lambda s: [OrderLineType(_line=line) for line in s._order.lines],
        "The order's lines (at most 100, one per SKU), in the order they were given.",
    )

    total = contextual(
        Money,
        lambda s, ctx: priced(ctx, s._order.total, s._order.store_id),
        "The value of the units not cancelled (shipped ones included), at their line prices.",
    )
    backordered_value = contextual(
        Money,
        lambda s, ctx: priced(ctx, s._order.backordered_value, s._order.store_id),
        "The value of the units awaiting stock, at their line prices.",
    )

    @strawberry.field(
        description="The order's events, oldest first; their cursors are those of the "
        "`orderEvents` subscription. Needs READ."
    )
    async def events(
        self, info: Ctx, first: First = None, after: After = None
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


@strawberry.type(
    name="OrderEvent",
    description="Something that happened to an order, from the store's event log.",
)
class OrderEventType_:
    cursor: str = strawberry.field(
        description="The event's position in the store's log: resume `orderEvents` (or page "
        "`Order.events`) after it with `after`."
    )
    type: OrderEventType = strawberry.field(description="What happened.")
    occurred_at: dt.datetime = strawberry.field(description="When it happened.")
    status: OrderStatus = strawberry.field(description="The order's status right after it.")
    stock_status: StockStatus | None = strawberry.field(
        description="The order's stock status right after it; null when no units were left to ship."
    )
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

    @strawberry.field(
        description="The order, as it is when the event is read (it may have changed "
        "since the event)."
    )
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


@strawberry.type(
    name="ApiKey",
    description="A credential for some stores with some scopes; only the admin token sees "
    "keys. Its token is shown once, when it is created, and stored only as a hash.",
)
class ApiKeyType(Node):
    _key: strawberry.Private[KeyRecord]

    def domain(self) -> KeyRecord:
        return self._key

    @strawberry.field(description=ID_DESCRIPTION)
    def id(self) -> strawberry.ID:
        return strawberry.ID(ids.encode("ApiKey", self._key.id))

    name = attribute(str, f"The key's name, for people (one line, at most {MAX_TEXT} characters).")

    @strawberry.field(description="What the key may do, in alphabetical order.")
    def scopes(self) -> list[ApiScope]:
        return [ApiScope(s) for s in sorted(self._key.scopes)]

    @strawberry.field(description="The stores the key may use.")
    async def stores(self, info: Ctx) -> list[StoreType]:
        found = await info.context.loaders.store.load_many(sorted(self._key.store_ids))
        return [StoreType(_store=s) for s in found if s is not None]

    created_at = attribute(dt.datetime, "When the key was created.")
    revoked_at = attribute(
        dt.datetime | None,
        "When the key was revoked (it no longer works); null while it is active.",
    )

"""The Subscription root: order and inventory events from the log, and the live figures."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncGenerator
from typing import Annotated, Any

import strawberry

from ordergraph.domain.events import InventoryEventType, OrderEventType
from ordergraph.domain.model import Store
from ordergraph.domain.paging import encode_cursor
from ordergraph.domain.reads import LiveEvent
from ordergraph.resolvers import ids
from ordergraph.resolvers.context import ApiError, Context, Live
from ordergraph.schema.figures import BacklogSummary
from ordergraph.schema.sharing import shared_results
from ordergraph.schema.types import Ctx, OrderEventType_, OrderType, ProductType

STORE_ID = Annotated[
    strawberry.ID,
    strawberry.argument(
        description="The store's global ID (`Store.id`); NOT_FOUND when the token may not read it."
    ),
]
AFTER = Annotated[
    str | None,
    strawberry.argument(
        description="Replay the events after this cursor (an event's `cursor` from this "
        "store, e.g. the last one received), then go on live; null: only events from now on."
    ),
]


@strawberry.type(
    name="InventoryEvent",
    description="Something that happened to a product's stock, from the store's event log.",
)
class InventoryEventObject:
    cursor: str = strawberry.field(
        description="The event's position in the store's log: resume `inventoryEvents` "
        "after it with `after`."
    )
    type: InventoryEventType = strawberry.field(description="What happened.")
    occurred_at: dt.datetime = strawberry.field(description="When it happened.")
    on_hand: int = strawberry.field(description="The product's units on hand right after it.")
    available: int = strawberry.field(description="The product's available units right after it.")
    backordered: int = strawberry.field(
        description="The product's units awaiting stock right after it."
    )
    _event: strawberry.Private[LiveEvent]
    _shared: strawberry.Private[dict[Any, Any] | None] = None

    @classmethod
    def of(cls, event: LiveEvent) -> InventoryEventObject:
        data: dict[str, Any] = event.record.data
        return cls(
            cursor=encode_cursor([event.record.seq]),
            type=InventoryEventType(event.record.type),
            occurred_at=event.record.occurred_at,
            on_hand=int(data["onHand"]),
            available=int(data["available"]),
            backordered=int(data["backordered"]),
            _event=event,
            _shared=shared_results(event),
        )

    @strawberry.field(
        description="The product, as it is when the event is delivered (it may have changed "
        "since the event)."
    )
    async def product(self, info: Ctx) -> ProductType:
        found = self._event.product
        if found is None:
            record = self._event.record
            assert record.product_id is not None
            found = await info.context.loaders.product.load((record.store_id, record.product_id))
        assert found is not None
        return ProductType(_product=found)


def _live(ctx: Context) -> Live:
    if ctx.live is None:
        raise ApiError("subscriptions are not available on this server", "UNAVAILABLE")
    return ctx.live


async def _store(ctx: Context, store_gid: str) -> Store:
    store = await ctx.visible_store(ids.store_id(store_gid), "READ")
    if store is None:
        raise ApiError("store not found", "NOT_FOUND")
    return store


def _order_event(event: LiveEvent) -> OrderEventType_:
    """The event as a GraphQL object, made once for all the subscribers it reaches."""
    found: OrderEventType_ | None = event.memo.get(OrderEventType_)
    if found is None:
        found = OrderEventType_.of(event.record)
        if event.order is not None:
            found._preloaded = OrderType(_order=event.order)
        found._shared = shared_results(event)
        event.memo[OrderEventType_] = found
    return found


def _inventory_event(event: LiveEvent) -> InventoryEventObject:
    found: InventoryEventObject | None = event.memo.get(InventoryEventObject)
    if found is None:
        found = event.memo[InventoryEventObject] = InventoryEventObject.of(event)
    return found


@strawberry.type(
    description="Live feeds over a websocket (graphql-transport-ws or graphql-ws) or "
    "Server-Sent Events (/graphql/stream); each needs a key with READ on the store."
)
class Subscription:
    @strawberry.subscription(
        description="Every order event of the store from `after` on (null: from now), then "
        "live. Resuming with the cursor of the last event received delivers each later "
        "event exactly once, in order."
    )
    async def order_events(
        self,
        info: Ctx,
        store_id: STORE_ID,
        after: AFTER = None,
        types: Annotated[
            list[OrderEventType] | None,
            strawberry.argument(description="Only events of these types; null: all types."),
        ] = None,
        order_id: Annotated[
            strawberry.ID | None,
            strawberry.argument(
                description="Only the events of this order (`Order.id`, of this store); "
                "null: every order."
            ),
        ] = None,
    ) -> AsyncGenerator[OrderEventType_, None]:
        ctx = info.context
        store = await _store(ctx, str(store_id))
        wanted_order: int | None = None
        if order_id is not None:
            ref = ids.scoped_id(str(order_id), "Order")
            if ref is None or ref[0] != store.id:
                raise ApiError("order not found", "NOT_FOUND")
            wanted_order = ref[1]
        wanted_types = {t.value for t in types} if types else None

        def wanted(event: LiveEvent) -> bool:
            record = event.record
            return (
                record.stream == "order"
                and (wanted_types is None or record.type in wanted_types)
                and (wanted_order is None or record.order_id == wanted_order)
            )

        with ctx.subscription_slot():
            live = _live(ctx)
            async for item in live.follow(
                ctx, store, after, "order", wanted, _order_event, OrderEventType_
            ):
                yield item

    @strawberry.subscription(
        description="Every inventory event of the store from `after` on (null: from now), "
        "then live, each exactly once and in order, as `orderEvents` does."
    )
    async def inventory_events(
        self,
        info: Ctx,
        store_id: STORE_ID,
        after: AFTER = None,
        sku: Annotated[
            str | None,
            strawberry.argument(
                description="Only the events of the product with exactly this SKU; null: "
                "every product."
            ),
        ] = None,
    ) -> AsyncGenerator[InventoryEventObject, None]:
        ctx = info.context
        store = await _store(ctx, str(store_id))

        def wanted(event: LiveEvent) -> bool:
            record = event.record
            return record.stream == "inventory" and (sku is None or record.data.get("sku") == sku)

        with ctx.subscription_slot():
            live = _live(ctx)
            async for item in live.follow(
                ctx, store, after, "inventory", wanted, _inventory_event, InventoryEventObject
            ):
                yield item

    @strawberry.subscription(
        description="The store's current summary at once, then again whenever it changes "
        "(at most a few pushes a second)."
    )
    async def backlog_changed(
        self, info: Ctx, store_id: STORE_ID
    ) -> AsyncGenerator[BacklogSummary, None]:
        ctx = info.context
        store = await _store(ctx, str(store_id))
        live = _live(ctx)
        with ctx.subscription_slot():
            async for figures in live.figures(store):
                yield BacklogSummary.of(figures, store.currency_code)

"""The Subscription root: order and inventory events from the log, and the live figures."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import strawberry

from domain.events import InventoryEventType, OrderEventType
from domain.model import Store
from resolvers import figures as fig
from resolvers import ids
from resolvers.context import ApiError, Context, Loaders
from schema.figures import BacklogSummary
from schema.types import Ctx, OrderEventType_, OrderType, ProductType
from storage.hub import LiveEvent, SubscriberOverflow
from storage.paging import BadPageRequest, decode_cursor, encode_cursor

OVERFLOW_CLOSE_CODE = 4503  # documented: the subscriber stopped reading and fell behind
COALESCE_SECONDS = 0.25


@strawberry.type(name="InventoryEvent")
class InventoryEventObject:
    cursor: str
    type: InventoryEventType
    occurred_at: dt.datetime
    on_hand: int = strawberry.field(description="Right after this event.")
    available: int
    backordered: int
    _event: strawberry.Private[LiveEvent]

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
        )

    @strawberry.field
    async def product(self, info: Ctx) -> ProductType:
        found = self._event.product
        if found is None:
            record = self._event.record
            assert record.product_id is not None
            found = await info.context.loaders.product.load((record.store_id, record.product_id))
        assert found is not None
        return ProductType(_product=found)


async def _store(ctx: Context, store_gid: str) -> Store:
    store = await ctx.visible_store(ids.store_id(store_gid), "READ")
    if store is None:
        raise ApiError("store not found", "NOT_FOUND")
    return store


def _position(after: str | None) -> int | None:
    if after is None:
        return None
    try:
        value = decode_cursor(after, 1)[0]
    except BadPageRequest:
        raise ApiError("invalid cursor", "INVALID") from None
    if not isinstance(value, int) or value < 0:
        raise ApiError("invalid cursor", "INVALID")
    return value


async def _live(ctx: Context, store: Store, after: str | None) -> AsyncIterator[LiveEvent]:
    hub = ctx.hub
    if hub is None:
        raise ApiError("subscriptions are not available on this server", "UNAVAILABLE")
    try:
        async for event in hub.stream(store.id, _position(after)):
            ctx.loaders = Loaders(ctx.db)  # each event is resolved against fresh data
            yield event
    except SubscriberOverflow:
        raise _slow_consumer(ctx) from None


def _slow_consumer(ctx: Context) -> ApiError:
    """Close the connection of a subscriber that stopped reading; others go on unaffected."""
    websocket = ctx.request
    if websocket is not None and hasattr(websocket, "close"):
        task = asyncio.get_running_loop().create_task(
            websocket.close(code=OVERFLOW_CLOSE_CODE, reason="subscriber too slow")
        )
        _closing.add(task)
        task.add_done_callback(_closing.discard)
    return ApiError("this subscriber fell too far behind", "SLOW_CONSUMER")


_closing: set[asyncio.Task[None]] = set()


def _order_event(event: LiveEvent) -> OrderEventType_:
    result = OrderEventType_.of(event.record)
    if event.order is not None:
        result._preloaded = OrderType(_order=event.order)
    return result


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Every order event of the store from `after` on (null: from now), then "
        "live. Resuming with the cursor of the last event received delivers each later "
        "event exactly once, in order."
    )
    async def order_events(
        self,
        info: Ctx,
        store_id: strawberry.ID,
        after: str | None = None,
        types: list[OrderEventType] | None = None,
        order_id: strawberry.ID | None = None,
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
        async for event in _live(ctx, store, after):
            record = event.record
            if record.stream != "order":
                continue
            if wanted_types is not None and record.type not in wanted_types:
                continue
            if wanted_order is not None and record.order_id != wanted_order:
                continue
            yield _order_event(event)

    @strawberry.subscription(
        description="Every inventory event of the store from `after` on, then live."
    )
    async def inventory_events(
        self, info: Ctx, store_id: strawberry.ID, after: str | None = None, sku: str | None = None
    ) -> AsyncGenerator[InventoryEventObject, None]:
        ctx = info.context
        store = await _store(ctx, str(store_id))
        async for event in _live(ctx, store, after):
            record = event.record
            if record.stream != "inventory":
                continue
            if sku is not None and record.data.get("sku") != sku:
                continue
            yield InventoryEventObject.of(event)

    @strawberry.subscription(
        description="The store's current summary at once, then again whenever it changes "
        "(at most a few pushes a second)."
    )
    async def backlog_changed(
        self, info: Ctx, store_id: strawberry.ID
    ) -> AsyncGenerator[BacklogSummary, None]:
        ctx = info.context
        store = await _store(ctx, str(store_id))
        hub = ctx.hub
        if hub is None:
            raise ApiError("subscriptions are not available on this server", "UNAVAILABLE")
        subscriber = await hub.subscribe(store.id)
        try:
            yield BacklogSummary.of(await fig.backlog(ctx, store, None), store.currency_code)
            while True:
                changed = [await subscriber.queue.get()]
                await asyncio.sleep(COALESCE_SECONDS)  # let a burst of changes settle
                while not subscriber.queue.empty():
                    changed.append(subscriber.queue.get_nowait())
                if None in changed:
                    raise _slow_consumer(ctx)
                yield BacklogSummary.of(await fig.backlog(ctx, store, None), store.currency_code)
        finally:
            hub.unsubscribe(subscriber)

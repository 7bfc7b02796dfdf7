"""The store's event feed as GraphQL (`Store.events`): StoreEvent, its edge and its
connection. Each entry carries the same OrderEvent or InventoryEvent object that the
subscriptions send, with the same cursor (domain/feed.py says how a page is cut)."""

from __future__ import annotations

import datetime as dt

import strawberry

from ordergraph.domain.feed import EventSelection, FeedPage
from ordergraph.domain.model import Store
from ordergraph.domain.paging import PageRequest, encode_cursor
from ordergraph.domain.reads import EventRecord, LiveEvent
from ordergraph.resolvers import ids
from ordergraph.resolvers import queries as q
from ordergraph.schema.connections import PageInfo
from ordergraph.schema.enums import InventoryEventType, OrderEventType
from ordergraph.schema.nodes import Ctx
from ordergraph.schema.subscriptions import InventoryEventObject
from ordergraph.schema.types import OrderEventType_


@strawberry.type(
    name="StoreEvent",
    description="One entry of a store's event log, order or inventory, as the event feed "
    "(`Store.events`) gives it. Exactly one of `orderEvent` and `inventoryEvent` is set.",
)
class StoreEventObject:
    id: strawberry.ID = strawberry.field(
        description="The event's ID: opaque, stable, unique across stores. Use it to "
        "recognise an event seen twice."
    )
    cursor: str = strawberry.field(
        description="The event's position in the store's log: the same cursor as the "
        "event's `cursor` in `orderEvents`, `inventoryEvents` and `Order.events`. Pass it "
        "as `after` to carry on after this event."
    )
    occurred_at: dt.datetime = strawberry.field(
        description="When the event happened (UTC): the business time of the change."
    )
    order_event: OrderEventType_ | None = strawberry.field(
        description="The order event, as the `orderEvents` subscription sends it; null "
        "for an inventory event."
    )
    inventory_event: InventoryEventObject | None = strawberry.field(
        description="The inventory event, as the `inventoryEvents` subscription sends it; "
        "null for an order event."
    )

    @classmethod
    def of(cls, record: EventRecord) -> StoreEventObject:
        cursor = encode_cursor([record.seq])
        is_order = record.stream == "order"
        return cls(
            id=strawberry.ID(ids.event_id(record.store_id, record.seq)),
            cursor=cursor,
            occurred_at=record.occurred_at,
            order_event=OrderEventType_.of(record) if is_order else None,
            inventory_event=None if is_order else InventoryEventObject.of(LiveEvent(record)),
        )


@strawberry.type(name="StoreEventEdge", description="An event of the feed with its cursor.")
class StoreEventEdge:
    cursor: str = strawberry.field(description="The event's cursor (the same as `node.cursor`).")
    node: StoreEventObject = strawberry.field(description="The event.")


@strawberry.type(
    name="StoreEventConnection",
    description="A page of a store's event log, oldest first.",
)
class StoreEventConnection:
    edges: list[StoreEventEdge] = strawberry.field(
        description="The page's events with their cursors, oldest first."
    )
    page_info: PageInfo = strawberry.field(
        description="Where the page ends. `endCursor` is the cursor to pass as `after` "
        "for the next page (or to a subscription): the last event on the page when the "
        "page is full, else the last event the page looked at, which with filters may be "
        "an event the filters skipped; null only when the page looked at no event and "
        "started at the beginning. `hasNextPage`: the log holds events after `endCursor` "
        "(with filters, perhaps none that match). `startCursor` is the first edge's."
    )

    @strawberry.field(description="The page's events, oldest first (the edges' nodes).")
    def nodes(self) -> list[StoreEventObject]:
        return [edge.node for edge in self.edges]

    @classmethod
    def of(cls, page: FeedPage) -> StoreEventConnection:
        events = [StoreEventObject.of(record) for record in page.records]
        return cls(
            edges=[StoreEventEdge(cursor=event.cursor, node=event) for event in events],
            page_info=PageInfo(
                has_next_page=page.has_next,
                has_previous_page=page.after > 0,
                start_cursor=events[0].cursor if events else None,
                end_cursor=encode_cursor([page.through]) if page.through > 0 else None,
            ),
        )


async def store_events(
    info: Ctx,
    store: Store,
    after: str | None,
    first: int | None,
    order_types: list[OrderEventType] | None,
    inventory_types: list[InventoryEventType] | None,
) -> StoreEventConnection:
    """`Store.events`: the page, wrapped (the caller has checked READ)."""
    selection = EventSelection(
        order_types=None if order_types is None else frozenset(t.value for t in order_types),
        inventory_types=(
            None if inventory_types is None else frozenset(t.value for t in inventory_types)
        ),
    )
    request = PageRequest(first=first, after=after)
    page = await q.store_events(info.context, store, request, selection)
    return StoreEventConnection.of(page)

"""The Query root."""

from __future__ import annotations

import asyncio
from typing import Annotated

import strawberry

from ordergraph.domain.model import Order, OrderLine, Product, Receipt, Store
from ordergraph.domain.paging import PageRequest
from ordergraph.domain.reads import KeyRecord
from ordergraph.domain.webhooks import WebhookRecord
from ordergraph.resolvers import queries as q
from ordergraph.resolvers.context import bad_input
from ordergraph.schema.connections import After, Connection, First
from ordergraph.schema.nodes import Ctx, Node
from ordergraph.schema.types import (
    ApiKeyType,
    IncomingReceiptType,
    OrderLineType,
    OrderType,
    ProductType,
    StoreType,
)
from ordergraph.schema.webhooks import WebhookSubscriptionType


def wrap_node(found: object) -> Node | None:
    """A domain object (or an API key) as its GraphQL type; None for anything else."""
    if isinstance(found, Store):
        return StoreType(_store=found)
    if isinstance(found, Product):
        return ProductType(_product=found)
    if isinstance(found, Order):
        return OrderType(_order=found)
    if isinstance(found, OrderLine):
        return OrderLineType(_line=found)
    if isinstance(found, Receipt):
        return IncomingReceiptType(_receipt=found)
    if isinstance(found, KeyRecord):
        return ApiKeyType(_key=found)
    if isinstance(found, WebhookRecord):
        return WebhookSubscriptionType(_record=found)
    return None


MAX_NODES = 250


@strawberry.type(description="What can be read. Needs a key with READ, except where noted.")
class Query:
    @strawberry.field(
        description="Any object by its global ID; null when unknown or not visible. An "
        "ApiKey's ID needs the admin token."
    )
    async def node(
        self,
        info: Ctx,
        id: Annotated[strawberry.ID, strawberry.argument(description="A global ID (`id`).")],
    ) -> Node | None:
        return wrap_node(await q.node(info.context, str(id)))

    @strawberry.field(
        description="Objects by their global IDs, in the order given; each null when unknown "
        "or not visible."
    )
    async def nodes(
        self,
        info: Ctx,
        ids: Annotated[
            list[strawberry.ID],
            strawberry.argument(description=f"Global IDs: at most {MAX_NODES} (INVALID above)."),
        ],
    ) -> list[Node | None]:
        if len(ids) > MAX_NODES:
            raise bad_input(f"at most {MAX_NODES} ids at once")
        found = await asyncio.gather(*(q.node(info.context, str(i)) for i in ids))
        return [wrap_node(f) for f in found]

    @strawberry.field(description="The stores this token may see, in the order they were created.")
    async def stores(
        self, info: Ctx, first: First = None, after: After = None
    ) -> Connection[StoreType]:
        page = await q.stores(info.context, PageRequest(first=first, after=after))
        return Connection[StoreType].of(page, lambda s: StoreType(_store=s))

    @strawberry.field(
        description="The store with this handle; null when there is none or the token may "
        "not see it."
    )
    async def store(
        self,
        info: Ctx,
        handle: Annotated[str, strawberry.argument(description="The store's `handle`.")],
    ) -> StoreType | None:
        found = await q.store_by_handle(info.context, handle)
        return StoreType(_store=found) if found else None

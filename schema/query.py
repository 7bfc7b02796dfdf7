"""The Query root."""

from __future__ import annotations

import asyncio

import strawberry

from ordergraph.domain.model import Order, OrderLine, Product, Store
from ordergraph.domain.paging import PageRequest
from ordergraph.domain.reads import KeyRecord
from ordergraph.domain.webhooks import WebhookRecord
from ordergraph.resolvers import queries as q
from ordergraph.resolvers.context import bad_input
from ordergraph.schema.connections import Connection
from ordergraph.schema.nodes import Ctx, Node
from ordergraph.schema.types import ApiKeyType, OrderLineType, OrderType, ProductType, StoreType
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
    if isinstance(found, KeyRecord):
        return ApiKeyType(_key=found)
    if isinstance(found, WebhookRecord):
        return WebhookSubscriptionType(_record=found)
    return None


@strawberry.type
class Query:
    @strawberry.field(description="Any object by its global ID; null when unknown or not visible.")
    async def node(self, info: Ctx, id: strawberry.ID) -> Node | None:
        return wrap_node(await q.node(info.context, str(id)))

    @strawberry.field
    async def nodes(self, info: Ctx, ids: list[strawberry.ID]) -> list[Node | None]:
        if len(ids) > 250:
            raise bad_input("at most 250 ids at once")
        found = await asyncio.gather(*(q.node(info.context, str(i)) for i in ids))
        return [wrap_node(f) for f in found]

    @strawberry.field(description="The stores this token may see.")
    async def stores(
        self, info: Ctx, first: int | None = None, after: str | None = None
    ) -> Connection[StoreType]:
        page = await q.stores(info.context, PageRequest(first=first, after=after))
        return Connection[StoreType].of(page, lambda s: StoreType(_store=s))

    @strawberry.field
    async def store(self, info: Ctx, handle: str) -> StoreType | None:
        found = await q.store_by_handle(info.context, handle)
        return StoreType(_store=found) if found else None

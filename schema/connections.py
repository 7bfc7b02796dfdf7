"""Relay-style connections: one generic `Connection[T]` (edges, pageInfo, nodes) and
`CountedConnection[T]`, which adds totalCount. Strawberry names a specialised generic
after its argument's GraphQL name: `Connection[StoreType]` is `StoreConnection`,
`Edge[StoreType]` is `StoreEdge`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Generic, Self, TypeVar

import strawberry

from ordergraph.domain.paging import Page
from ordergraph.resolvers.context import Context
from ordergraph.schema.nodes import Ctx

T = TypeVar("T")


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
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo

    @strawberry.field
    def nodes(self) -> list[T]:
        return [edge.node for edge in self.edges]

    @classmethod
    def of(cls, page: Page, wrap: Callable[[Any], T], **private: Any) -> Self:
        """The page's rows, each wrapped as a node, with the page's cursors."""
        return cls(
            edges=[
                Edge(cursor=cursor, node=wrap(row))
                for cursor, row in zip(page.cursors, page.rows, strict=True)
            ],
            page_info=PageInfo.of(page),
            **private,
        )


# Named "Connection" too, so that CountedConnection[ProductType] is served as
# ProductConnection: a connection's name does not say whether it counts.
@strawberry.type(name="Connection")
class CountedConnection(Connection[T]):
    """A connection with totalCount: `_count` counts every matching row (one COUNT)."""

    _count: strawberry.Private[Callable[[Context], Awaitable[int]]]

    @strawberry.field
    async def total_count(self, info: Ctx) -> int:
        return await self._count(info.context)

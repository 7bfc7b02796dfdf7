"""Relay-style connections: one generic `Connection[T]` (edges, pageInfo, nodes) and
`CountedConnection[T]`, which adds totalCount. Strawberry names a specialised generic
after its argument's GraphQL name: `Connection[StoreType]` is `StoreConnection`,
`Edge[StoreType]` is `StoreEdge`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Generic, Self, TypeVar

import strawberry

from ordergraph.domain.paging import DEFAULT_PAGE, MAX_PAGE, Page
from ordergraph.resolvers.context import Context
from ordergraph.schema.nodes import Ctx

T = TypeVar("T")

# The paging arguments, the same on every connection.
First = Annotated[
    int | None,
    strawberry.argument(
        description=f"How many items to return from the start (after `after`): 0 to "
        f"{MAX_PAGE}; {DEFAULT_PAGE} when no page size is given."
    ),
]
After = Annotated[
    str | None,
    strawberry.argument(
        description="Return the items after this cursor (an edge's `cursor` or "
        "`pageInfo.endCursor` from this same list); null: from the beginning. Another "
        "list's cursor is refused with INVALID."
    ),
]
Last = Annotated[
    int | None,
    strawberry.argument(
        description=f"How many items to return from the end (before `before`): 0 to "
        f"{MAX_PAGE}. Not together with `first`."
    ),
]
Before = Annotated[
    str | None,
    strawberry.argument(
        description="Return the items before this cursor (from this same list); null: up "
        "to the end."
    ),
]


@strawberry.type(description="Where a page of a list sits in the whole list.")
class PageInfo:
    has_next_page: bool = strawberry.field(
        description="Paging forward (`first`): whether more items follow this page. Paging "
        "backward (`last`): whether `before` was given."
    )
    has_previous_page: bool = strawberry.field(
        description="Paging backward (`last`): whether more items precede this page. Paging "
        "forward (`first`): whether `after` was given."
    )
    start_cursor: str | None = strawberry.field(
        description="The cursor of the page's first item; null when the page is empty."
    )
    end_cursor: str | None = strawberry.field(
        description="The cursor of the page's last item (pass it as `after` for the next "
        "page); null when the page is empty."
    )

    @classmethod
    def of(cls, page: Page) -> PageInfo:
        return cls(
            has_next_page=page.has_next,
            has_previous_page=page.has_previous,
            start_cursor=page.cursors[0] if page.cursors else None,
            end_cursor=page.cursors[-1] if page.cursors else None,
        )


@strawberry.type(description="One item of a page, with its cursor.")
class Edge(Generic[T]):
    cursor: str = strawberry.field(
        description="This item's position in its list (opaque), for `after` or `before`."
    )
    node: T = strawberry.field(description="The item.")


@strawberry.type(description="A page of a list, in the list's order (Relay connection).")
class Connection(Generic[T]):
    edges: list[Edge[T]] = strawberry.field(description="The page's items with their cursors.")
    page_info: PageInfo = strawberry.field(description="Where this page sits in the list.")

    @strawberry.field(description="The page's items, without cursors (the same as `edges`).")
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
@strawberry.type(
    name="Connection",
    description="A page of a list, in the list's order (Relay connection), with the size of "
    "the whole list.",
)
class CountedConnection(Connection[T]):
    """A connection with totalCount: `_count` counts every matching row (one COUNT)."""

    _count: strawberry.Private[Callable[[Context], Awaitable[int]]]

    @strawberry.field(
        description="How many items the whole list holds (all pages, with the same "
        "arguments); counted when asked for, so it costs one more query."
    )
    async def total_count(self, info: Ctx) -> int:
        return await self._count(info.context)

"""Arguments that narrow a list: the orders' filter."""

from __future__ import annotations

import datetime as dt

import strawberry

from ordergraph.domain.reads import OrderFilter
from ordergraph.schema.enums import OrderStatus, StockStatus


@strawberry.input(
    name="OrderFilter",
    description="Which orders to list: an order must meet every condition given; a null "
    "(or omitted) condition is not applied.",
)
class OrderFilterInput:
    status: list[OrderStatus] | None = strawberry.field(
        default=None, description="Orders with any of these statuses (empty: any)."
    )
    stock_status: list[StockStatus] | None = strawberry.field(
        default=None,
        description="Orders with any of these stock statuses (empty: any); orders with no "
        "units left to ship never match.",
    )
    in_backlog: bool | None = strawberry.field(
        default=None, description="Orders in the backlog (true) or out of it (false)."
    )
    is_backordered: bool | None = strawberry.field(
        default=None, description="Orders with units awaiting stock (true) or without (false)."
    )
    is_overdue: bool | None = strawberry.field(
        default=None, description="Orders that are overdue now (true) or not (false)."
    )
    sku: str | None = strawberry.field(
        default=None, description="Orders with a line of exactly this SKU."
    )
    placed_after: dt.datetime | None = strawberry.field(
        default=None, description="Orders placed strictly after this instant."
    )
    placed_before: dt.datetime | None = strawberry.field(
        default=None, description="Orders placed strictly before this instant."
    )
    external_id: str | None = strawberry.field(
        default=None, description="Orders with exactly this `externalId`."
    )

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

"""Arguments that narrow a list: the orders' filter."""

from __future__ import annotations

import datetime as dt

import strawberry

from ordergraph.domain.reads import OrderFilter
from ordergraph.schema.enums import OrderStatus, StockStatus


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

"""GraphQL enums. The domain's enums are exposed as they are."""

from __future__ import annotations

from enum import Enum

import strawberry

from ordergraph.domain.errors import ErrorCode
from ordergraph.domain.events import InventoryEventType, OrderEventType
from ordergraph.domain.model import BackorderPolicy, CancelReason, OrderStatus, StockStatus

for _enum in (
    BackorderPolicy,
    OrderStatus,
    StockStatus,
    CancelReason,
    ErrorCode,
    OrderEventType,
    InventoryEventType,
):
    strawberry.enum(_enum)


@strawberry.enum
class ApiScope(Enum):
    READ = "READ"
    ORDERS = "ORDERS"
    INVENTORY = "INVENTORY"
    WEBHOOKS = strawberry.enum_value(
        "WEBHOOKS",
        description="Create, update, pause and delete webhook subscriptions, see them "
        "and their delivery log, rotate their secrets and redeliver.",
    )


@strawberry.enum
class OrderSortKey(Enum):
    PLACED_AT = "PLACED_AT"
    NUMBER = "NUMBER"
    REQUESTED_SHIP_DATE = "REQUESTED_SHIP_DATE"


__all__ = [
    "ApiScope",
    "BackorderPolicy",
    "CancelReason",
    "ErrorCode",
    "InventoryEventType",
    "OrderEventType",
    "OrderSortKey",
    "OrderStatus",
    "StockStatus",
]

"""GraphQL enums. The domain's enums are exposed as they are."""

from __future__ import annotations

from enum import Enum

import strawberry

from domain import errors, events, model

BackorderPolicy = strawberry.enum(model.BackorderPolicy)
OrderStatus = strawberry.enum(model.OrderStatus)
StockStatus = strawberry.enum(model.StockStatus)
CancelReason = strawberry.enum(model.CancelReason)
ErrorCode = strawberry.enum(errors.ErrorCode)
OrderEventType = strawberry.enum(events.OrderEventType)
InventoryEventType = strawberry.enum(events.InventoryEventType)


@strawberry.enum
class ApiScope(Enum):
    READ = "READ"
    ORDERS = "ORDERS"
    INVENTORY = "INVENTORY"


@strawberry.enum
class OrderSortKey(Enum):
    PLACED_AT = "PLACED_AT"
    NUMBER = "NUMBER"
    REQUESTED_SHIP_DATE = "REQUESTED_SHIP_DATE"

"""Events: what happened, in the past tense, with the state right after it."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from ordergraph.domain.model import Order, Product


class OrderEventType(StrEnum):
    PLACED = "PLACED"
    BACKORDERED = "BACKORDERED"
    BACKORDER_FILLED = "BACKORDER_FILLED"
    PARTIALLY_SHIPPED = "PARTIALLY_SHIPPED"
    SHIPPED = "SHIPPED"
    CANCELLED = "CANCELLED"
    OVERDUE = "OVERDUE"
    EXPECTED_SHIP_DATE_CHANGED = "EXPECTED_SHIP_DATE_CHANGED"


class InventoryEventType(StrEnum):
    RECEIVED = "RECEIVED"
    ADJUSTED = "ADJUSTED"
    ALLOCATED = "ALLOCATED"
    RELEASED = "RELEASED"
    SHIPPED = "SHIPPED"
    OUT_OF_STOCK = "OUT_OF_STOCK"
    BACK_IN_STOCK = "BACK_IN_STOCK"


@dataclass(frozen=True)
class OrderEvent:
    type: OrderEventType
    order_id: int
    data: dict[str, object]

    @classmethod
    def of(cls, type: OrderEventType, order: Order, **extra: object) -> OrderEvent:
        return cls(type, order.id, {**order.snapshot(), **extra})


@dataclass(frozen=True)
class InventoryEvent:
    type: InventoryEventType
    product_id: int
    data: dict[str, object] = field(default_factory=dict)

    @classmethod
    def of(cls, type: InventoryEventType, product: Product, **extra: object) -> InventoryEvent:
        state = {
            "sku": product.sku,
            "onHand": product.on_hand,
            "allocated": product.allocated,
            "available": product.available,
            "backordered": product.backordered,
        }
        return cls(type, product.id, {**state, **extra})


Event = OrderEvent | InventoryEvent

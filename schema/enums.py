"""GraphQL enums. The domain's enums are exposed as they are, with the descriptions
given here (the domain stays free of the framework)."""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any

import strawberry

from ordergraph.domain.errors import ErrorCode
from ordergraph.domain.events import InventoryEventType, OrderEventType
from ordergraph.domain.model import (
    BackorderPolicy,
    CancelReason,
    OrderStatus,
    ReceiptStatus,
    StockStatus,
)
from ordergraph.domain.outcomes import OutcomeInterval, OutcomeRanking


def described(
    cls: type[Enum],
    description: str,
    values: Mapping[str, str],
    deprecated: Mapping[str, str] | None = None,
) -> None:
    """Expose the enum `cls` with its description and its values' (set on Strawberry's
    definition, so that `.value` stays the plain value for mypy). A value missing
    here is served without one (tests/unit/test_schema_descriptions.py fails on it); a
    name that is not a value is a mistake, refused at once. `deprecated` gives the values
    being phased out their reason (served as `@deprecated(reason:)`)."""
    deprecated = deprecated or {}
    unknown = (set(values) | set(deprecated)) - set(cls.__members__)
    if unknown:
        raise ValueError(f"{cls.__name__} has no value {', '.join(sorted(unknown))}")
    strawberry.enum(cls, description=description)
    definition: Any = cls.__strawberry_definition__  # type: ignore[attr-defined]
    for value in definition.values:
        value.description = values.get(value.name)
        value.deprecation_reason = deprecated.get(value.name)


described(
    BackorderPolicy,
    "Whether a product may be sold beyond its available stock.",
    {
        "DENY": "Never: an order for more than is available is refused (INSUFFICIENT_STOCK).",
        "ALLOW": "Without limit: the units beyond stock wait for it (backordered).",
        "LIMIT": "Up to `backorderLimit` units awaiting stock at once "
        "(BACKORDER_LIMIT_EXCEEDED past it).",
    },
)
described(
    ReceiptStatus,
    "Where an incoming receipt stands.",
    {
        "OPEN": "Units are still expected; they count in the waiting lines' expected dates.",
        "CLOSED": "Nothing more is expected: received in full (or more), or its quantity "
        "was set to 0.",
        "CANCELLED": "Cancelled by the merchant: nothing more is coming on it.",
    },
)
described(
    OrderStatus,
    "Where an order stands, derived from its lines.",
    {
        "OPEN": "Nothing shipped yet; units are left to ship.",
        "PARTIALLY_SHIPPED": "Some units shipped; others are left to ship.",
        "SHIPPED": "Nothing left to ship, and at least one unit shipped.",
        "CANCELLED": "Nothing left to ship, and nothing shipped: every unit was cancelled.",
    },
)
described(
    StockStatus,
    "Whether an order's units left to ship have stock.",
    {
        "ALLOCATED": "All of them are allocated: the order can ship in full.",
        "PARTIALLY_BACKORDERED": "Some are allocated, others await stock.",
        "BACKORDERED": "All of them await stock.",
    },
)
described(
    CancelReason,
    "Why units were cancelled.",
    {
        "CUSTOMER_REQUEST": "The customer asked.",
        "CUSTOMER_DECLINED_BACKORDER": "The customer would not wait for stock.",
        "OUT_OF_STOCK": "The merchant could not supply the item.",
        "FRAUD": "The order was judged fraudulent.",
        "OTHER": "Any other reason.",
    },
)
described(
    OutcomeRanking,
    "What ranks products in backorderLeaders.",
    {
        "LOST_REVENUE": "The value cancelled while waiting with CUSTOMER_DECLINED_BACKORDER "
        "in the period, most first.",
        "WAIT_P90": "The 90th percentile of the waits of the units filled in the period, "
        "longest first.",
        "UNITS_WAITING": "The units still waiting at the end of the period, most first.",
    },
)
described(
    OutcomeInterval,
    "The step of a backorder outcomes trend, in the store's time zone.",
    {
        "DAY": "Each day, from local midnight (23 to 25 hours around a clock change).",
        "WEEK": "Each week, from Monday at local midnight.",
        "MONTH": "Each calendar month, from the 1st at local midnight.",
    },
)
described(
    ErrorCode,
    "The kind of a user error.",
    {
        "INVALID": "A value breaks a rule (format, range, length, a missing or extra field).",
        "NOT_FOUND": "The store, product, order, line, receipt or key does not exist, or the "
        "token may not use it.",
        "INSUFFICIENT_STOCK": "A DENY product has fewer units available than ordered.",
        "BACKORDER_LIMIT_EXCEEDED": "A LIMIT product would have more units awaiting stock "
        "than its `backorderLimit`.",
        "IDEMPOTENCY_KEY_REUSED": "The idempotency key was used before with another input.",
        "NOT_SHIPPABLE": "The units to ship are not allocated.",
        "ALREADY_CLOSED": "The order has nothing left to ship (shipped or cancelled), or the "
        "incoming receipt is closed or cancelled.",
        "DUPLICATE": "The value must be unique and is taken (a store handle).",
        "UNSAFE_TARGET": "A webhook URL that is plain http, or whose host resolves to a "
        "refused address (loopback, private, link-local, metadata, reserved).",
    },
)
described(
    OrderEventType,
    "What happened to an order.",
    {
        "PLACED": "The order was placed.",
        "BACKORDERED": "Units of the order came to await stock: at placing, or when a "
        "count correction took back their allocation.",
        "BACKORDER_FILLED": "Stock arrived or was freed and went to units of the order that "
        "awaited it.",
        "PARTIALLY_SHIPPED": "Units shipped, and others are left to ship.",
        "SHIPPED": "The last units left to ship shipped.",
        "CANCELLED": "Units were cancelled.",
        "OVERDUE": "The requested ship date ended with units left to ship (once per order).",
        "EXPECTED_SHIP_DATE_CHANGED": "A receipt was scheduled, changed, cancelled or "
        "received against, and the order, still waiting for stock, has another "
        "`expectedShipDate` (its new value, null when unknown, is in the order).",
    },
)
described(
    InventoryEventType,
    "What happened to a product's stock.",
    {
        "RECEIVED": "Units were received (receiveStock).",
        "ADJUSTED": "The count on hand was corrected (adjustStock).",
        "ALLOCATED": "Units were reserved for order lines (an order placed, or backorders filled).",
        "RELEASED": "Allocated units were freed: cancelled, or taken back by a count correction.",
        "SHIPPED": "Units shipped and left the stock.",
        "OUT_OF_STOCK": "Available units fell to 0.",
        "BACK_IN_STOCK": "Available units rose above 0.",
    },
)


class ApiScope(Enum):
    READ = "READ"
    ORDERS = "ORDERS"
    INVENTORY = "INVENTORY"
    WEBHOOKS = "WEBHOOKS"


described(
    ApiScope,
    "What an API key may do.",
    {
        "READ": "Queries and subscriptions on the key's stores.",
        "ORDERS": "placeOrder, shipOrder and cancelOrder.",
        "INVENTORY": "upsertProduct, receiveStock and adjustStock.",
        "WEBHOOKS": "Create, update, pause and delete webhook subscriptions, see them and "
        "their delivery log, rotate their secrets and redeliver.",
    },
)


class OrderSortKey(Enum):
    PLACED_AT = "PLACED_AT"
    NUMBER = "NUMBER"
    REQUESTED_SHIP_DATE = "REQUESTED_SHIP_DATE"


described(
    OrderSortKey,
    "What a list of orders is sorted by.",
    {
        "PLACED_AT": "When the order was placed, then its number.",
        "NUMBER": "The order's number.",
        "REQUESTED_SHIP_DATE": "The requested ship date (orders without one last), then "
        "the number.",
    },
)


__all__ = [
    "ApiScope",
    "BackorderPolicy",
    "CancelReason",
    "ErrorCode",
    "InventoryEventType",
    "OrderEventType",
    "OrderSortKey",
    "OrderStatus",
    "OutcomeInterval",
    "OutcomeRanking",
    "ReceiptStatus",
    "StockStatus",
]

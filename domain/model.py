"""The order and stock model: plain dataclasses with the rules inside."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from zoneinfo import ZoneInfo


class BackorderPolicy(StrEnum):
    DENY = "DENY"
    ALLOW = "ALLOW"
    LIMIT = "LIMIT"


class OrderStatus(StrEnum):
    OPEN = "OPEN"
    PARTIALLY_SHIPPED = "PARTIALLY_SHIPPED"
    SHIPPED = "SHIPPED"
    CANCELLED = "CANCELLED"


class StockStatus(StrEnum):
    ALLOCATED = "ALLOCATED"
    PARTIALLY_BACKORDERED = "PARTIALLY_BACKORDERED"
    BACKORDERED = "BACKORDERED"


class CancelReason(StrEnum):
    CUSTOMER_REQUEST = "CUSTOMER_REQUEST"
    CUSTOMER_DECLINED_BACKORDER = "CUSTOMER_DECLINED_BACKORDER"
    OUT_OF_STOCK = "OUT_OF_STOCK"
    FRAUD = "FRAUD"
    OTHER = "OTHER"


class ReceiptStatus(StrEnum):
    OPEN = "OPEN"  # units still expected
    CLOSED = "CLOSED"  # nothing more expected: received in full, or cut to 0
    CANCELLED = "CANCELLED"


@dataclass
class Store:
    id: int
    handle: str
    name: str
    currency_code: str
    timezone: str
    default_backorder_policy: BackorderPolicy
    created_at: dt.datetime

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass
class Product:
    store_id: int
    id: int
    sku: str
    title: str
    price: Decimal
    backorder_policy: BackorderPolicy
    backorder_limit: int | None = None
    restock_date: dt.date | None = None
    on_hand: int = 0
    allocated: int = 0
    backordered: int = 0

    @property
    def available(self) -> int:
        return self.on_hand - self.allocated

    @property
    def available_to_sell(self) -> int | None:
        """Units a new order may still take: free stock plus backorder allowance."""
        if self.backorder_policy is BackorderPolicy.ALLOW:
            return None
        if self.backorder_policy is BackorderPolicy.LIMIT:
            allowance = max(0, (self.backorder_limit or 0) - self.backordered)
            return self.available + allowance
        return self.available

    def check_invariants(self) -> None:
        assert self.on_hand >= 0, self
        assert 0 <= self.allocated <= self.on_hand, self
        assert self.backordered >= 0, self
        assert not (self.available > 0 and self.backordered > 0), self


@dataclass
class OrderLine:
    store_id: int
    id: int
    order_id: int
    product_id: int
    sku: str
    quantity: int
    unit_price: Decimal
    placed_at: dt.datetime
    order_number: int
    allocated: int = 0
    backordered: int = 0
    shipped: int = 0
    cancelled: int = 0
    # When its waiting units began to wait (domain/outcomes.py encode_waiting); None
    # when none wait or all began at placement.
    waiting_since: str | None = None

    @property
    def open_units(self) -> int:
        """Units left to ship: allocated or awaiting stock."""
        return self.allocated + self.backordered

    @property
    def queue_key(self) -> tuple[dt.datetime, int, int]:
        """Fill order: oldest placed first, then order number, then line id."""
        return (self.placed_at, self.order_number, self.id)

    def snapshot(self) -> dict[str, object]:
        return {
            "id": self.id,
            "productId": self.product_id,
            "sku": self.sku,
            "quantity": self.quantity,
            "unitPrice": str(self.unit_price),
            "allocated": self.allocated,
            "backordered": self.backordered,
            "shipped": self.shipped,
            "cancelled": self.cancelled,
        }


@dataclass
class Order:
    store_id: int
    id: int
    number: int
    placed_at: dt.datetime
    requested_ship_date: dt.date | None = None
    external_id: str | None = None
    customer_ref: str | None = None
    overdue_at: dt.datetime | None = None
    overdue_notified: bool = False
    lines: list[OrderLine] = field(default_factory=list)
    # When it last became backordered, while it is (domain/outcomes.py).
    backordered_since: dt.datetime | None = None

    @property
    def open_units(self) -> int:
        return sum(line.open_units for line in self.lines)

    @property
    def backordered_units(self) -> int:
        return sum(line.backordered for line in self.lines)

    @property
    def status(self) -> OrderStatus:
        shipped = sum(line.shipped for line in self.lines)
        if self.open_units > 0:
            return OrderStatus.PARTIALLY_SHIPPED if shipped else OrderStatus.OPEN
        return OrderStatus.SHIPPED if shipped else OrderStatus.CANCELLED

    @property
    def stock_status(self) -> StockStatus | None:
        return stock_status_of(sum(line.allocated for line in self.lines), self.backordered_units)

    @property
    def in_backlog(self) -> bool:
        return self.open_units > 0

    @property
    def is_backordered(self) -> bool:
        return self.backordered_units > 0

    def is_overdue(self, now: dt.datetime) -> bool:
        return self.in_backlog and self.overdue_at is not None and now >= self.overdue_at

    @property
    def total(self) -> Decimal:
        """Value of the units not cancelled, at their line prices."""
        return sum(
            ((line.quantity - line.cancelled) * line.unit_price for line in self.lines),
            Decimal(0),
        )

    @property
    def backordered_value(self) -> Decimal:
        return sum((line.backordered * line.unit_price for line in self.lines), Decimal(0))

    def line(self, line_id: int) -> OrderLine | None:
        for line in self.lines:
            if line.id == line_id:
                return line
        return None

    def snapshot(self) -> dict[str, object]:
        """The order's state as stored with each of its events."""
        stock = self.stock_status
        return {
            "number": self.number,
            "placedAt": self.placed_at.isoformat(),
            "requestedShipDate": (
                self.requested_ship_date.isoformat() if self.requested_ship_date else None
            ),
            "overdueAt": self.overdue_at.isoformat() if self.overdue_at else None,
            "status": self.status.value,
            "stockStatus": stock.value if stock else None,
            "lines": [line.snapshot() for line in self.lines],
        }


@dataclass
class Receipt:
    """Stock on its way (a scheduled receipt): `quantity` units still expected on
    `expected_at`, `received` already arrived against it."""

    store_id: int
    id: int
    product_id: int
    quantity: int
    expected_at: dt.date
    created_at: dt.datetime
    reference: str | None = None
    received: int = 0
    status: ReceiptStatus = ReceiptStatus.OPEN

    @property
    def is_open(self) -> bool:
        return self.status is ReceiptStatus.OPEN

    def receive(self, units: int) -> None:
        """Units arrived against it: less is expected; once nothing is, it closes.
        More than expected is allowed (the rest is plain stock) and closes it too."""
        self.received += units
        self.quantity = max(0, self.quantity - units)
        if self.quantity == 0:
            self.status = ReceiptStatus.CLOSED


def stock_status_of(allocated: int, backordered: int) -> StockStatus | None:
    if allocated + backordered == 0:
        return None
    if backordered == 0:
        return StockStatus.ALLOCATED
    if allocated == 0:
        return StockStatus.BACKORDERED
    return StockStatus.PARTIALLY_BACKORDERED


def overdue_instant(requested_ship_date: dt.date | None, tz: ZoneInfo) -> dt.datetime | None:
    """The UTC instant at which the requested ship date has ended in the store's zone."""
    if requested_ship_date is None:
        return None
    next_day = requested_ship_date + dt.timedelta(days=1)
    local_midnight = dt.datetime.combine(next_day, dt.time(0), tzinfo=tz)
    return local_midnight.astimezone(dt.UTC)

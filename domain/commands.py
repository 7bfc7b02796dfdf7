"""What a mutation asks of the domain (commands) and what it changed (results).

A command is plain data checked by the service that runs it. A store command also
knows its idempotency fingerprint (`request`): the input that a retry with the same
key must repeat. A result names what changed by id: the payload loads the objects
after commit, and an idempotent retry gets the same result back from its record.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar

from ordergraph.domain import validation as check
from ordergraph.domain.errors import DomainError, ErrorCode
from ordergraph.domain.model import BackorderPolicy, CancelReason

#: The receipt id of a receiptId that names no receipt of the store (unknown, malformed or
#: another store's): the service answers NOT_FOUND, as for a receipt that does not exist.
UNKNOWN_RECEIPT = -1

#: The line id of a requested line that names no line of the order (unknown, malformed
#: or another store's): no order holds it, so the service answers NOT_FOUND at its index.
UNKNOWN_LINE = -1


# -- store commands ------------------------------------------------------------


@dataclass(frozen=True)
class LineRequest:
    sku: str
    quantity: int


@dataclass(frozen=True)
class PlaceOrder:
    operation: ClassVar[str] = "placeOrder"
    lines: list[LineRequest]
    external_id: str | None = None
    customer_ref: str | None = None
    requested_ship_date: dt.date | None = None

    def request(self) -> dict[str, Any]:
        return {
            "lines": [[line.sku, line.quantity] for line in self.lines],
            "externalId": self.external_id,
            "customerRef": self.customer_ref,
            "requestedShipDate": self.requested_ship_date,
        }


@dataclass(frozen=True)
class UpsertProduct:
    operation: ClassVar[str] = "upsertProduct"
    sku: str
    title: str | None = None
    price: Decimal | str | None = None
    backorder_policy: BackorderPolicy | None = None
    backorder_limit: int | None = None
    backorder_limit_given: bool = False
    restock_date: dt.date | None = None
    restock_date_given: bool = False

    def request(self) -> dict[str, Any]:
        return {}  # upsertProduct takes no idempotency key: it is idempotent by itself


@dataclass(frozen=True)
class ReceiveStock:
    operation: ClassVar[str] = "receiveStock"
    sku: str
    quantity: int
    note: str | None = None
    receipt_id: int | None = None  # the scheduled receipt this delivery fulfils

    def request(self) -> dict[str, Any]:
        request: dict[str, Any] = {"sku": self.sku, "quantity": self.quantity, "note": self.note}
        if self.receipt_id is not None:  # absent otherwise: earlier records keep matching
            request["receiptId"] = self.receipt_id
        return request


@dataclass(frozen=True)
class ScheduleReceipt:
    """Record stock on its way: `quantity` units of `sku` expected on `expected_at`."""

    operation: ClassVar[str] = "scheduleReceipt"
    sku: str
    quantity: int
    expected_at: dt.date
    reference: str | None = None

    def request(self) -> dict[str, Any]:
        return {
            "sku": self.sku,
            "quantity": self.quantity,
            "expectedAt": self.expected_at,
            "reference": self.reference,
        }


@dataclass(frozen=True)
class UpdateReceipt:
    """Change what is still expected, when, or the reference (None: unchanged; a
    reference given as null clears it)."""

    operation: ClassVar[str] = "updateReceipt"
    receipt_id: int
    quantity: int | None = None
    expected_at: dt.date | None = None
    reference: str | None = None
    reference_given: bool = False

    def request(self) -> dict[str, Any]:
        return {}  # updateReceipt takes no idempotency key: it is idempotent by itself


@dataclass(frozen=True)
class CancelReceipt:
    """Nothing more is coming on this receipt."""

    operation: ClassVar[str] = "cancelReceipt"
    receipt_id: int

    def request(self) -> dict[str, Any]:
        return {}  # cancelReceipt takes no idempotency key: cancelling again changes nothing


@dataclass(frozen=True)
class AdjustStock:
    operation: ClassVar[str] = "adjustStock"
    sku: str
    reason: str
    delta: int | None = None
    set_on_hand: int | None = None

    def request(self) -> dict[str, Any]:
        return {
            "sku": self.sku,
            "delta": self.delta,
            "setOnHand": self.set_on_hand,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class LineQuantity:
    line_id: int
    quantity: int


def _pairs(lines: list[LineQuantity] | None) -> list[list[int | None]] | None:
    if lines is None:
        return None
    return [[None if q.line_id == UNKNOWN_LINE else q.line_id, q.quantity] for q in lines]


@dataclass(frozen=True)
class ShipOrder:
    """Ship allocated units: all of them (lines=None) or the given quantities."""

    operation: ClassVar[str] = "shipOrder"
    order_id: int | None
    lines: list[LineQuantity] | None = None
    tracking_number: str | None = None

    def request(self) -> dict[str, Any]:
        return {
            "orderId": self.order_id,
            "lines": _pairs(self.lines),
            "trackingNumber": self.tracking_number,
        }


@dataclass(frozen=True)
class CancelOrder:
    """Cancel unshipped units: all of them (lines=None) or the given quantities."""

    operation: ClassVar[str] = "cancelOrder"
    order_id: int | None
    reason: CancelReason
    lines: list[LineQuantity] | None = None

    def request(self) -> dict[str, Any]:
        return {"orderId": self.order_id, "reason": self.reason.value, "lines": _pairs(self.lines)}


StoreCommand = (
    PlaceOrder
    | UpsertProduct
    | ReceiveStock
    | AdjustStock
    | ShipOrder
    | CancelOrder
    | ScheduleReceipt
    | UpdateReceipt
    | CancelReceipt
)


@dataclass(frozen=True)
class Reads:
    """What a unit of work will read first: storage may fetch it with the store's lock,
    in one round trip. Anything not named is still read on demand; this only saves trips.
    """

    skus: tuple[str, ...] = ()
    product_ids: tuple[int, ...] = ()
    order_ids: tuple[int, ...] = ()
    idempotency: tuple[str, str] | None = None  # (operation, key)
    # More idempotency records, when one unit runs several keyed changes.
    more_keys: tuple[tuple[str, str], ...] = ()


NO_READS = Reads()


def reads_of(cmd: StoreCommand, key: str | None) -> Reads:
    """What running `cmd` (with this idempotency key) reads first."""
    recall = (cmd.operation, key) if key is not None else None
    if isinstance(cmd, PlaceOrder):
        skus = tuple(dict.fromkeys(line.sku for line in cmd.lines if isinstance(line.sku, str)))
        return Reads(skus=skus, idempotency=recall)
    if isinstance(cmd, ShipOrder | CancelOrder):
        orders = (cmd.order_id,) if cmd.order_id is not None else ()
        return Reads(order_ids=orders, idempotency=recall)
    if isinstance(cmd, UpdateReceipt | CancelReceipt):
        return Reads(idempotency=recall)  # the receipt, then its product, are read by id
    return Reads(skus=(cmd.sku,) if isinstance(cmd.sku, str) else (), idempotency=recall)


@dataclass(frozen=True)
class Changed:
    """What a store command changed, by id (kept as the idempotency record)."""

    product_id: int | None = None
    order_id: int | None = None
    filled_line_ids: tuple[int, ...] | None = None
    receipt_id: int | None = None

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {}
        if self.receipt_id is not None:
            record["receiptId"] = self.receipt_id
        if self.product_id is not None:
            record["productId"] = self.product_id
        if self.filled_line_ids is not None:
            record["filledLineIds"] = list(self.filled_line_ids)
        if self.order_id is not None:
            record["orderId"] = self.order_id
        return record

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Changed:
        filled = record.get("filledLineIds")
        return cls(
            product_id=record.get("productId"),
            order_id=record.get("orderId"),
            filled_line_ids=tuple(filled) if filled is not None else None,
            receipt_id=record.get("receiptId"),
        )


# -- admin commands ------------------------------------------------------------

#: What an API key may be allowed to do.
API_SCOPES = ("READ", "ORDERS", "INVENTORY", "WEBHOOKS")


@dataclass(frozen=True)
class CreateStore:
    handle: str
    name: str
    currency_code: str
    timezone: str
    default_policy: BackorderPolicy = BackorderPolicy.DENY

    @property
    def key_name(self) -> str:
        """The name of the first key, made with the store."""
        return f"{self.handle} (created with the store)"

    def checked(self) -> CreateStore:
        """The command with its fields checked (the first bad one raises DomainError)."""
        return CreateStore(
            handle=check.handle(self.handle),
            name=check.text(self.name, "name"),
            currency_code=check.currency(self.currency_code),
            timezone=check.timezone(self.timezone),
            default_policy=self.default_policy,
        )

    def first_key(self, store_id: int) -> CreateApiKey:
        """The key made with the store: every scope, on that store only."""
        return CreateApiKey(name=self.key_name, store_ids=[store_id], scopes=list(API_SCOPES))


@dataclass(frozen=True)
class CreateApiKey:
    name: str
    store_ids: list[int] = field(default_factory=list)
    scopes: list[str] = field(default_factory=list)

    def checked(self) -> CreateApiKey:
        """The command checked, scopes and stores sorted without repeats; whether the
        stores exist is for storage to say (NOT_FOUND at storeIds)."""
        name = check.text(self.name, "name")
        scopes = sorted(set(self.scopes))
        if not scopes or any(s not in API_SCOPES for s in scopes):
            raise DomainError.one(ErrorCode.INVALID, "give at least one scope", ["scopes"])
        if not self.store_ids:
            raise DomainError.one(ErrorCode.INVALID, "give at least one store", ["storeIds"])
        return CreateApiKey(name=name, store_ids=sorted(set(self.store_ids)), scopes=scopes)


@dataclass(frozen=True)
class StoreCreated:
    store_id: int
    api_key_id: int
    token: str


@dataclass(frozen=True)
class KeyCreated:
    api_key_id: int
    token: str

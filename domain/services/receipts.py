"""Incoming stock: scheduling, changing and cancelling receipts (stock on its way).

A receipt says `quantity` units of a product are expected on a date. Receiving stock
may name the receipt it fulfils (stock.py `receive_stock`): what arrives lowers what
is still expected, and a receipt with nothing more expected closes. The expected fill
dates of waiting lines are worked out from the open receipts (domain/expected.py).
"""

from __future__ import annotations

import datetime as dt

from ordergraph.domain import validation as check
from ordergraph.domain.commands import CancelReceipt, ScheduleReceipt, UpdateReceipt
from ordergraph.domain.errors import DomainError, ErrorCode
from ordergraph.domain.model import Product, Receipt, ReceiptStatus
from ordergraph.domain.ports import StoreSession

#: The longest reference (the merchant's purchase order or shipment number).
MAX_REFERENCE = check.MAX_TEXT


def checked_reference(reference: str | None) -> str | None:
    """The reference trimmed (one line, at most MAX_REFERENCE characters); blank: None."""
    if reference is None:
        return None
    return check.text(reference, "reference", required=False, max_len=MAX_REFERENCE) or None


def checked_quantity(quantity: int, *, minimum: int) -> int:
    if not minimum <= quantity <= check.MAX_STOCK_CHANGE:
        raise DomainError.one(
            ErrorCode.INVALID,
            f"quantity must be {minimum} to {check.MAX_STOCK_CHANGE}",
            ["quantity"],
        )
    return quantity


async def receipt_to_change(
    session: StoreSession, receipt_id: int, field: str = "id"
) -> tuple[Receipt, Product]:
    """The store's open receipt and its product; NOT_FOUND for no receipt (another
    store's included), ALREADY_CLOSED for a cancelled or fully received one."""
    receipt = await session.receipt(receipt_id)
    if receipt is None:
        raise DomainError.one(ErrorCode.NOT_FOUND, "receipt not found", [field])
    if not receipt.is_open:
        state = "cancelled" if receipt.status is ReceiptStatus.CANCELLED else "closed"
        raise DomainError.one(ErrorCode.ALREADY_CLOSED, f"the receipt is {state}", [field])
    product = (await session.products_by_id([receipt.product_id]))[receipt.product_id]
    return receipt, product


async def schedule_receipt(session: StoreSession, cmd: ScheduleReceipt) -> Receipt:
    quantity = checked_quantity(cmd.quantity, minimum=1)
    expected_at = check.day(cmd.expected_at, "expectedAt")
    reference = checked_reference(cmd.reference)
    product = (await session.products_by_sku([cmd.sku])).get(cmd.sku)
    if product is None:
        raise DomainError.one(ErrorCode.NOT_FOUND, f"no product with sku {cmd.sku!r}", ["sku"])
    receipt = Receipt(
        store_id=session.store.id,
        id=session.next_id(),
        product_id=product.id,
        quantity=quantity,
        expected_at=expected_at,
        reference=reference,
        created_at=session.now,
    )
    session.add_receipt(receipt)
    return receipt


async def update_receipt(session: StoreSession, cmd: UpdateReceipt) -> Receipt:
    """Change an open receipt; a quantity of 0 (nothing more expected) closes it."""
    quantity = None if cmd.quantity is None else checked_quantity(cmd.quantity, minimum=0)
    expected_at: dt.date | None = None
    if cmd.expected_at is not None:
        expected_at = check.day(cmd.expected_at, "expectedAt")
    reference = checked_reference(cmd.reference)
    receipt, _ = await receipt_to_change(session, cmd.receipt_id)
    if quantity is not None:
        receipt.quantity = quantity
        if quantity == 0:
            receipt.status = ReceiptStatus.CLOSED
    if expected_at is not None:
        receipt.expected_at = expected_at
    if cmd.reference_given:
        receipt.reference = reference
    return receipt


async def cancel_receipt(session: StoreSession, cmd: CancelReceipt) -> Receipt:
    """Nothing more is coming: the receipt stops covering waiting lines. Cancelling a
    cancelled receipt again changes nothing; a closed one is ALREADY_CLOSED."""
    receipt = await session.receipt(cmd.receipt_id)
    if receipt is not None and receipt.status is ReceiptStatus.CANCELLED:
        return receipt
    receipt, _ = await receipt_to_change(session, cmd.receipt_id)
    receipt.status = ReceiptStatus.CANCELLED
    return receipt

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
from ordergraph.domain.events import OrderEvent, OrderEventType
from ordergraph.domain.expected import FillPlan, order_ship_date, redated_lines
from ordergraph.domain.model import Product, Receipt, ReceiptStatus
from ordergraph.domain.ports import StoreSession

#: The longest reference (the merchant's purchase order or shipment number).
MAX_REFERENCE = check.MAX_TEXT
#: Open receipts one product may have at once: it bounds `Product.incoming` and
#: `Product.expectedFills` (at most this plus two runs).
MAX_OPEN_RECEIPTS = 100


class ShipDateWatch:
    """Emits EXPECTED_SHIP_DATE_CHANGED for the orders whose expected ship date a change
    to one product's receipts (or its queue, when they are received against) moves.

    `start` before the change, `flush` after: the product's fill-date walk before and
    after (its waiting lines and open receipts only, never the store's orders) names the
    lines re-dated; their orders' dates are worked out with the walks of the other
    products they wait for (which the change does not touch), and each order still
    waiting whose date moved gets the event, with its new date as `expectedShipDate`.
    An order that stops waiting gets BACKORDER_FILLED instead.
    """

    def __init__(self, product: Product) -> None:
        self.product = product
        self.before: FillPlan | None = None
        self.open_receipts = 0

    async def start(self, session: StoreSession) -> None:
        inputs = await session.fill_inputs([self.product.id])
        self.before = inputs[self.product.id].plan()
        self.open_receipts = len(inputs[self.product.id].receipts)
        self._order_of = {line: order for line, order, _ in inputs[self.product.id].queue}

    async def flush(self, session: StoreSession) -> None:
        assert self.before is not None, "start the watch before the change"
        inputs = (await session.fill_inputs([self.product.id]))[self.product.id]
        after = inputs.plan()
        order_of = self._order_of | {line: order for line, order, _ in inputs.queue}
        candidates = {order_of[line] for line in redated_lines(self.before, after)}
        if not candidates:
            return
        orders = await session.orders_by_id(candidates)
        others = {
            line.product_id
            for order in orders.values()
            for line in order.lines
            if line.backordered > 0 and line.product_id != self.product.id
        }
        plans = {pid: found.plan() for pid, found in (await session.fill_inputs(others)).items()}
        for order_id in sorted(candidates, key=lambda i: orders[i].number):
            order = orders[order_id]
            was = order_ship_date(order, plans | {self.product.id: self.before})
            now = order_ship_date(order, plans | {self.product.id: after})
            if now != was and order.is_backordered:
                date = now.isoformat() if now is not None else None
                session.emit(
                    OrderEvent.of(
                        OrderEventType.EXPECTED_SHIP_DATE_CHANGED, order, expectedShipDate=date
                    )
                )


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
    watch = ShipDateWatch(product)
    await watch.start(session)
    if watch.open_receipts >= MAX_OPEN_RECEIPTS:
        raise DomainError.one(
            ErrorCode.INVALID,
            f"{cmd.sku} has {MAX_OPEN_RECEIPTS} open receipts, the most a product may have:"
            " receive, merge or cancel one first",
            ["sku"],
        )
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
    await watch.flush(session)
    return receipt


async def update_receipt(session: StoreSession, cmd: UpdateReceipt) -> Receipt:
    """Change an open receipt; a quantity of 0 (nothing more expected) closes it."""
    quantity = None if cmd.quantity is None else checked_quantity(cmd.quantity, minimum=0)
    expected_at: dt.date | None = None
    if cmd.expected_at is not None:
        expected_at = check.day(cmd.expected_at, "expectedAt")
    reference = checked_reference(cmd.reference)
    receipt, product = await receipt_to_change(session, cmd.receipt_id)
    watch = ShipDateWatch(product)
    await watch.start(session)
    if quantity is not None:
        receipt.quantity = quantity
        if quantity == 0:
            receipt.status = ReceiptStatus.CLOSED
    if expected_at is not None:
        receipt.expected_at = expected_at
    if cmd.reference_given:
        receipt.reference = reference
    await watch.flush(session)
    return receipt


async def cancel_receipt(session: StoreSession, cmd: CancelReceipt) -> Receipt:
    """Nothing more is coming: the receipt stops covering waiting lines. Cancelling a
    cancelled receipt again changes nothing; a closed one is ALREADY_CLOSED."""
    receipt = await session.receipt(cmd.receipt_id)
    if receipt is not None and receipt.status is ReceiptStatus.CANCELLED:
        return receipt
    receipt, product = await receipt_to_change(session, cmd.receipt_id)
    watch = ShipDateWatch(product)
    await watch.start(session)
    receipt.status = ReceiptStatus.CANCELLED
    await watch.flush(session)
    return receipt

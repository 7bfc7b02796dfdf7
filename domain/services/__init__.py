"""The use cases: each takes a locked store session, applies the rules, emits events.

`execute` runs a mutation's command (domain.commands) and names what it changed;
the use cases and the commands they take are importable from here
(`from ordergraph.domain import services; services.place_order(session, cmd)`).

A service either completes or raises DomainError before changing anything, so
the caller can roll back without looking at what was touched.

By concern:

- catalog.py: `upsert_product`, creating a product or changing its terms;
- stock.py: `receive_stock`, `adjust_stock`, `fill_backorders` and the stock
  watch (OUT_OF_STOCK / BACK_IN_STOCK), which the order use cases share;
- placing.py: `place_order`;
- orders.py: `ship_order`, `cancel_order` and `mark_overdue`;
- receipts.py: `schedule_receipt`, `update_receipt`, `cancel_receipt` (stock on its way;
  `receive_stock` may name the receipt it fulfils).
"""

from __future__ import annotations

from ordergraph.domain.commands import (
    AdjustStock,
    CancelOrder,
    CancelReceipt,
    Changed,
    LineQuantity,
    LineRequest,
    PlaceOrder,
    ReceiveStock,
    ScheduleReceipt,
    ShipOrder,
    StoreCommand,
    UpdateReceipt,
    UpsertProduct,
)
from ordergraph.domain.ports import StoreSession
from ordergraph.domain.services.catalog import upsert_product
from ordergraph.domain.services.orders import cancel_order, mark_overdue, ship_order
from ordergraph.domain.services.placing import place_order
from ordergraph.domain.services.receipts import cancel_receipt, schedule_receipt, update_receipt
from ordergraph.domain.services.stock import adjust_stock, fill_backorders, receive_stock

__all__ = [
    "LineQuantity",
    "LineRequest",
    "PlaceOrder",
    "UpsertProduct",
    "adjust_stock",
    "cancel_order",
    "cancel_receipt",
    "execute",
    "fill_backorders",
    "mark_overdue",
    "place_order",
    "receive_stock",
    "schedule_receipt",
    "ship_order",
    "update_receipt",
    "upsert_product",
]


async def execute(session: StoreSession, cmd: StoreCommand) -> Changed:
    """Run one mutation's command on the locked store; the result names what changed."""
    match cmd:
        case UpsertProduct():
            return Changed(product_id=(await upsert_product(session, cmd)).id)
        case ReceiveStock():
            product, filled = await receive_stock(
                session, cmd.sku, cmd.quantity, cmd.note, cmd.receipt_id
            )
            return Changed(
                product_id=product.id,
                filled_line_ids=tuple(x.id for x in filled),
                receipt_id=cmd.receipt_id,
            )
        case AdjustStock():
            product = await adjust_stock(
                session, cmd.sku, delta=cmd.delta, set_on_hand=cmd.set_on_hand, reason=cmd.reason
            )
            return Changed(product_id=product.id)
        case PlaceOrder():
            return Changed(order_id=(await place_order(session, cmd)).id)
        case ShipOrder():
            order = await ship_order(session, cmd.order_id, cmd.lines, cmd.tracking_number)
            return Changed(order_id=order.id)
        case CancelOrder():
            order = await cancel_order(session, cmd.order_id, cmd.reason, cmd.lines)
            return Changed(order_id=order.id)
        case ScheduleReceipt():
            receipt = await schedule_receipt(session, cmd)
            return Changed(product_id=receipt.product_id, receipt_id=receipt.id)
        case UpdateReceipt():
            receipt = await update_receipt(session, cmd)
            return Changed(product_id=receipt.product_id, receipt_id=receipt.id)
        case CancelReceipt():
            receipt = await cancel_receipt(session, cmd)
            return Changed(product_id=receipt.product_id, receipt_id=receipt.id)

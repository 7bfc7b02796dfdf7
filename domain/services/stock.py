"""Stock: receiving and correcting counts, filling backorders from free stock, and
the watch that reports a product running out or coming back.

The order use cases (orders.py) use the watch and `fill_backorders` too.
"""

from __future__ import annotations

from ordergraph.domain import validation as check
from ordergraph.domain.errors import DomainError, ErrorCode
from ordergraph.domain.events import InventoryEvent, InventoryEventType, OrderEvent, OrderEventType
from ordergraph.domain.model import Order, OrderLine, Product, Receipt
from ordergraph.domain.ports import StoreSession
from ordergraph.domain.services.receipts import ShipDateWatch, receipt_to_change


class StockWatch:
    """Emits OUT_OF_STOCK / BACK_IN_STOCK when a product's free stock crosses zero."""

    def __init__(self) -> None:
        self.before: dict[int, int] = {}

    def watch(self, product: Product) -> None:
        self.before.setdefault(product.id, product.available)

    def flush(self, session: StoreSession, products: dict[int, Product]) -> None:
        for product_id, was in self.before.items():
            product = products[product_id]
            now = product.available
            if was > 0 and now == 0:
                session.emit(InventoryEvent.of(InventoryEventType.OUT_OF_STOCK, product))
            elif was == 0 and now > 0:
                session.emit(InventoryEvent.of(InventoryEventType.BACK_IN_STOCK, product))


async def fill_backorders(session: StoreSession, product: Product) -> list[OrderLine]:
    """Give free stock to the product's waiting lines, oldest first; returns lines that got some."""
    if product.available <= 0 or product.backordered <= 0:
        return []
    queue = await session.backorder_queue(product, limit=product.available)
    filled: list[OrderLine] = []
    touched: dict[int, Order] = {}
    given_total = 0
    for line in queue:
        if product.available <= 0:
            break
        give = min(line.backordered, product.available)
        line.backordered -= give
        line.allocated += give
        product.backordered -= give
        product.allocated += give
        given_total += give
        filled.append(line)
        order = session.order_of(line)
        touched[order.id] = order
    for order in touched.values():
        session.emit(OrderEvent.of(OrderEventType.BACKORDER_FILLED, order))
    if given_total:
        session.emit(InventoryEvent.of(InventoryEventType.ALLOCATED, product, quantity=given_total))
    return filled


async def _product(session: StoreSession, sku: str) -> Product:
    found = (await session.products_by_sku([sku])).get(sku)
    if found is None:
        raise DomainError.one(ErrorCode.NOT_FOUND, f"no product with sku {sku!r}", ["sku"])
    return found


async def receive_stock(
    session: StoreSession,
    sku: str,
    quantity: int,
    note: str | None = None,
    receipt_id: int | None = None,
) -> tuple[Product, list[OrderLine]]:
    """Add stock and fill the queue; naming a receipt lowers what it still expects
    (more than expected is allowed: the receipt closes, the rest is plain stock)."""
    check.positive(quantity, ["quantity"], maximum=check.MAX_STOCK_CHANGE)
    product = await _product(session, sku)
    receipt: Receipt | None = None
    if receipt_id is not None:
        receipt, of = await receipt_to_change(session, receipt_id, "receiptId")
        if of.id != product.id:
            raise DomainError.one(
                ErrorCode.INVALID, f"the receipt is not for sku {sku!r}", ["receiptId"]
            )
    dates: ShipDateWatch | None = None
    if receipt is not None:
        dates = ShipDateWatch(product)
        await dates.start(session)
        receipt.receive(quantity)
    watch = StockWatch()
    watch.watch(product)
    product.on_hand += quantity
    session.emit(
        InventoryEvent.of(InventoryEventType.RECEIVED, product, quantity=quantity, note=note)
    )
    filled = await fill_backorders(session, product)
    watch.flush(session, {product.id: product})
    if dates is not None:
        await dates.flush(session)
    return product, filled


def _checked_reason(delta: int | None, set_on_hand: int | None, reason: str) -> str:
    """The adjustment's reason, checked after its form: exactly one of delta and setOnHand,
    and a delta that changes something."""
    if (delta is None) == (set_on_hand is None):
        raise DomainError.one(
            ErrorCode.INVALID, "give exactly one of delta and setOnHand", ["delta"]
        )
    reason = check.text(reason, "reason")
    if delta == 0:
        raise DomainError.one(ErrorCode.INVALID, "delta must not be 0", ["delta"])
    return reason


def _target_on_hand(product: Product, delta: int | None, set_on_hand: int | None) -> int:
    """The count the product will have on hand, checked to be 0 to the largest count."""
    target = product.on_hand + delta if delta is not None else set_on_hand
    assert target is not None
    if target < 0:
        field = "delta" if delta is not None else "setOnHand"
        raise DomainError.one(
            ErrorCode.INVALID, f"on hand would be {target}; it cannot go below 0", [field]
        )
    if target > check.MAX_STOCK_CHANGE:
        raise DomainError.one(ErrorCode.INVALID, "on hand would be too large", ["delta"])
    return target


async def _take_back_allocation(session: StoreSession, product: Product) -> int:
    """Move the units allocated beyond what is on hand back to backorder, newest lines
    first; one BACKORDERED event per order touched. Returns the units taken back."""
    deficit = product.allocated - product.on_hand
    if deficit <= 0:
        return 0
    lines = await session.newest_allocated_lines(product, limit=deficit)
    touched: dict[int, Order] = {}
    taken = 0
    for line in lines:
        if deficit <= 0:
            break
        back = min(line.allocated, deficit)
        line.allocated -= back
        line.backordered += back
        product.allocated -= back
        product.backordered += back
        deficit -= back
        taken += back
        order = session.order_of(line)
        touched[order.id] = order
    assert deficit <= 0, "allocation exceeded the lines holding it"
    for order in touched.values():
        session.emit(OrderEvent.of(OrderEventType.BACKORDERED, order))
    return taken


async def adjust_stock(
    session: StoreSession,
    sku: str,
    *,
    delta: int | None,
    set_on_hand: int | None,
    reason: str,
) -> Product:
    """Correct a count: up fills like a receipt; below allocation takes back from the newest."""
    reason = _checked_reason(delta, set_on_hand, reason)
    product = await _product(session, sku)
    target = _target_on_hand(product, delta, set_on_hand)
    watch = StockWatch()
    watch.watch(product)
    change = target - product.on_hand
    product.on_hand = target
    taken = await _take_back_allocation(session, product)
    session.emit(
        InventoryEvent.of(InventoryEventType.ADJUSTED, product, quantity=change, reason=reason)
    )
    if taken:
        session.emit(InventoryEvent.of(InventoryEventType.RELEASED, product, quantity=taken))
    await fill_backorders(session, product)
    watch.flush(session, {product.id: product})
    return product

"""An order's later life: shipping and cancelling its units (the lines given, or all
of them), and flagging the orders past their requested ship date. Placing one is
placing.py."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from ordergraph.domain import validation as check
from ordergraph.domain.commands import LineQuantity
from ordergraph.domain.errors import DomainError, ErrorCode, Problem, problem
from ordergraph.domain.events import InventoryEvent, InventoryEventType, OrderEvent, OrderEventType
from ordergraph.domain.model import CancelReason, Order, OrderLine, OrderStatus, Product
from ordergraph.domain.ports import StoreSession
from ordergraph.domain.services.stock import StockWatch, fill_backorders

# -- the order and the units to change ----------------------------------------


async def _open_order(session: StoreSession, order_id: int | None) -> Order:
    order = await session.order(order_id) if order_id is not None else None
    if order is None:
        raise DomainError.one(ErrorCode.NOT_FOUND, "order not found", ["orderId"])
    if not order.in_backlog:
        raise DomainError.one(
            ErrorCode.ALREADY_CLOSED,
            f"order {order.number} is {order.status.value.lower()}",
            ["orderId"],
        )
    return order


def _merge_line_quantities(
    order: Order, requested: list[LineQuantity] | None, field: str
) -> dict[int, int]:
    merged: dict[int, int] = defaultdict(int)
    if requested is None:
        return merged
    if not requested:
        raise DomainError.one(ErrorCode.INVALID, "give at least one line, or null", [field])
    problems: list[Problem] = []
    for index, item in enumerate(requested):
        if order.line(item.line_id) is None:
            problems.append(
                problem(ErrorCode.NOT_FOUND, "no such line in this order", field, index, "lineId")
            )
        elif item.quantity < 1 or item.quantity > check.MAX_LINE_QUANTITY:
            problems.append(
                problem(
                    ErrorCode.INVALID,
                    f"quantity must be 1 to {check.MAX_LINE_QUANTITY}",
                    field,
                    index,
                    "quantity",
                )
            )
        else:
            merged[item.line_id] += item.quantity
    if problems:
        raise DomainError(problems)
    return merged


async def _units_to_change(
    session: StoreSession,
    order_id: int | None,
    lines: list[LineQuantity] | None,
    *,
    room: Callable[[OrderLine], int],
    code: ErrorCode,
    too_many: Callable[[OrderLine], str],
) -> tuple[Order, dict[int, int]]:
    """The open order and the units to take per line id: the given quantities, each
    within the line's `room`, or (lines=None) all the room of every line. Shipping
    and cancelling share this; only what counts as room differs."""
    order = await _open_order(session, order_id)
    wanted = _merge_line_quantities(order, lines, "lines")
    if lines is None:
        return order, {line.id: room(line) for line in order.lines if room(line)}
    problems = []
    for index, item in enumerate(lines):
        line = order.line(item.line_id)
        assert line is not None
        if wanted[line.id] > room(line):
            problems.append(problem(code, too_many(line), "lines", index, "quantity"))
    if problems:
        raise DomainError(problems)
    return order, wanted


async def _products_of(
    session: StoreSession, order: Order, wanted: dict[int, int]
) -> dict[int, Product]:
    return await session.products_by_id(
        {line.product_id for line in order.lines if line.id in wanted}
    )


def _emit_per_product(
    session: StoreSession,
    kind: InventoryEventType,
    order: Order,
    products: dict[int, Product],
    units: dict[int, int],
) -> None:
    """One inventory event per product whose units the order moved (none for zero)."""
    for product_id, quantity in units.items():
        if quantity:
            session.emit(
                InventoryEvent.of(kind, products[product_id], quantity=quantity, orderId=order.id)
            )


# -- shipping -----------------------------------------------------------------


def _ship_units(
    order: Order, wanted: dict[int, int], products: dict[int, Product]
) -> dict[int, int]:
    """Move the wanted units of each line from allocated to shipped, and off the
    products' shelves; returns the units shipped per product id."""
    shipped_by_product: dict[int, int] = defaultdict(int)
    for line_id, quantity in wanted.items():
        line = order.line(line_id)
        assert line is not None
        line.allocated -= quantity
        line.shipped += quantity
        product = products[line.product_id]
        product.on_hand -= quantity
        product.allocated -= quantity
        shipped_by_product[product.id] += quantity
    return shipped_by_product


def _emit_shipped(
    session: StoreSession,
    order: Order,
    wanted: dict[int, int],
    tracking: str | None,
    products: dict[int, Product],
    shipped_by_product: dict[int, int],
) -> None:
    """The order's SHIPPED or PARTIALLY_SHIPPED event, then one SHIPPED per product."""
    kind = (
        OrderEventType.SHIPPED
        if order.status is OrderStatus.SHIPPED
        else OrderEventType.PARTIALLY_SHIPPED
    )
    session.emit(
        OrderEvent.of(
            kind,
            order,
            trackingNumber=tracking,
            shipped={str(k): v for k, v in wanted.items()},
        )
    )
    _emit_per_product(session, InventoryEventType.SHIPPED, order, products, shipped_by_product)


async def ship_order(
    session: StoreSession,
    order_id: int | None,
    lines: list[LineQuantity] | None,
    tracking_number: str | None = None,
) -> Order:
    """Ship allocated units: all of them (lines=None) or the given quantities."""
    order, wanted = await _units_to_change(
        session,
        order_id,
        lines,
        room=lambda line: line.allocated,
        code=ErrorCode.NOT_SHIPPABLE,
        too_many=lambda line: f"line {line.sku!r} has {line.allocated} allocated units",
    )
    if lines is None and not wanted:
        raise DomainError.one(
            ErrorCode.NOT_SHIPPABLE, "no unit of this order is allocated yet", ["orderId"]
        )
    tracking = check.text(tracking_number, "trackingNumber") if tracking_number else None
    products = await _products_of(session, order, wanted)
    shipped_by_product = _ship_units(order, wanted, products)
    _emit_shipped(session, order, wanted, tracking, products, shipped_by_product)
    return order


# -- cancelling ---------------------------------------------------------------


def _cancel_units(
    order: Order, wanted: dict[int, int], products: dict[int, Product], watch: StockWatch
) -> dict[int, int]:
    """Cancel the wanted units of each line, backordered ones first, watching each
    product before its first change; returns the allocated units released per product id."""
    released: dict[int, int] = defaultdict(int)
    for line_id, quantity in wanted.items():
        line = order.line(line_id)
        assert line is not None
        product = products[line.product_id]
        watch.watch(product)
        from_backorder = min(quantity, line.backordered)
        from_allocation = quantity - from_backorder
        line.backordered -= from_backorder
        line.allocated -= from_allocation
        line.cancelled += quantity
        product.backordered -= from_backorder
        product.allocated -= from_allocation
        released[product.id] += from_allocation
    return released


def _emit_cancelled(
    session: StoreSession,
    order: Order,
    reason: CancelReason,
    wanted: dict[int, int],
    products: dict[int, Product],
    released: dict[int, int],
) -> None:
    """The order's CANCELLED event, then one RELEASED per product that gave back stock."""
    session.emit(
        OrderEvent.of(
            OrderEventType.CANCELLED,
            order,
            reason=reason.value,
            cancelled={str(k): v for k, v in wanted.items()},
        )
    )
    _emit_per_product(session, InventoryEventType.RELEASED, order, products, released)


async def cancel_order(
    session: StoreSession,
    order_id: int | None,
    reason: CancelReason,
    lines: list[LineQuantity] | None,
) -> Order:
    """Cancel unshipped units, backordered first; released stock fills the queue at once."""
    order, wanted = await _units_to_change(
        session,
        order_id,
        lines,
        room=lambda line: line.open_units,
        code=ErrorCode.INVALID,
        too_many=lambda line: f"line {line.sku!r} has {line.open_units} units left to cancel",
    )
    products = await _products_of(session, order, wanted)
    watch = StockWatch()
    released = _cancel_units(order, wanted, products, watch)
    _emit_cancelled(session, order, reason, wanted, products, released)
    for product in products.values():
        await fill_backorders(session, product)
    watch.flush(session, products)
    return order


# -- overdue ------------------------------------------------------------------


async def mark_overdue(session: StoreSession) -> list[Order]:
    """Flag the orders whose requested ship date has ended unshipped; one OVERDUE event each."""
    due = await session.due_orders()
    for order in due:
        if order.is_overdue(session.now) and not order.overdue_notified:
            order.overdue_notified = True
            session.emit(OrderEvent.of(OrderEventType.OVERDUE, order))
    return [order for order in due if order.overdue_notified]

"""The use cases: each takes a locked store session, applies the rules, emits events.

`execute` runs a mutation's command (domain.commands) and names what it changed;
the commands the use cases take are importable from here too.

A service either completes or raises DomainError before changing anything, so
the caller can roll back without looking at what was touched.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal

from ordergraph.domain import validation as check
from ordergraph.domain.commands import (
    AdjustStock,
    CancelOrder,
    Changed,
    ReceiveStock,
    ShipOrder,
    StoreCommand,
)
from ordergraph.domain.commands import LineQuantity as LineQuantity
from ordergraph.domain.commands import LineRequest as LineRequest
from ordergraph.domain.commands import PlaceOrder as PlaceOrder
from ordergraph.domain.commands import UpsertProduct as UpsertProduct
from ordergraph.domain.errors import DomainError, ErrorCode, Problem, problem
from ordergraph.domain.events import InventoryEvent, InventoryEventType, OrderEvent, OrderEventType
from ordergraph.domain.model import (
    BackorderPolicy,
    CancelReason,
    Order,
    OrderLine,
    OrderStatus,
    Product,
    overdue_instant,
)
from ordergraph.domain.ports import StoreSession

# -- helpers ----------------------------------------------------------------


class _StockWatch:
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


# -- use cases --------------------------------------------------------------


def _new_product(
    session: StoreSession, sku: str, title: str | None, price: Decimal | None
) -> Product:
    """A product for an sku the store does not have yet: title and price are required."""
    if title is None or price is None:
        raise DomainError(
            [
                problem(ErrorCode.INVALID, f"{name} is required for a new product", name)
                for name, value in (("title", title), ("price", price))
                if value is None
            ]
        )
    return Product(
        store_id=session.store.id,
        id=session.next_id(),
        sku=sku,
        title=title,
        price=price,
        backorder_policy=session.store.default_backorder_policy,
    )


def _backorder_limit(cmd: UpsertProduct, product: Product, policy: BackorderPolicy) -> int | None:
    """The backorder limit the product ends with under `policy`, checked."""
    limit = cmd.backorder_limit if cmd.backorder_limit_given else product.backorder_limit
    if policy is BackorderPolicy.LIMIT:
        if limit is None:
            raise DomainError.one(
                ErrorCode.INVALID,
                "backorderLimit is required with the LIMIT policy",
                ["backorderLimit"],
            )
        if limit < 0 or limit > check.MAX_STOCK_CHANGE:
            raise DomainError.one(
                ErrorCode.INVALID, "backorderLimit must be 0 or more", ["backorderLimit"]
            )
        return limit
    if cmd.backorder_limit_given and cmd.backorder_limit is not None:
        raise DomainError.one(
            ErrorCode.INVALID,
            "backorderLimit is only allowed with the LIMIT policy",
            ["backorderLimit"],
        )
    return None


async def upsert_product(session: StoreSession, cmd: UpsertProduct) -> Product:
    sku = check.sku(cmd.sku)
    product = (await session.products_by_sku([sku])).get(sku)
    title = check.text(cmd.title, "title") if cmd.title is not None else None
    price = check.price(cmd.price) if cmd.price is not None else None
    creating = product is None
    if product is None:
        product = _new_product(session, sku, title, price)
    policy = cmd.backorder_policy or product.backorder_policy
    limit = _backorder_limit(cmd, product, policy)
    if title is not None:
        product.title = title
    if price is not None:
        product.price = price
    product.backorder_policy = policy
    product.backorder_limit = limit
    if cmd.restock_date_given:
        product.restock_date = cmd.restock_date
    if creating:
        session.add_product(product)
    return product


def _validate_lines(cmd: PlaceOrder) -> dict[str, int]:
    if not cmd.lines:
        raise DomainError.one(ErrorCode.INVALID, "an order needs at least one line", ["lines"])
    if len(cmd.lines) > check.MAX_LINES:
        raise DomainError.one(
            ErrorCode.INVALID, f"an order has at most {check.MAX_LINES} lines", ["lines"]
        )
    merged: dict[str, int] = {}
    problems: list[Problem] = []
    for index, line in enumerate(cmd.lines):
        try:
            check.sku(line.sku, "lines", index, "sku")
            check.positive(
                line.quantity, ["lines", index, "quantity"], maximum=check.MAX_LINE_QUANTITY
            )
        except DomainError as err:
            problems.extend(err.problems)
            continue
        merged[line.sku] = merged.get(line.sku, 0) + line.quantity
    for sku, quantity in merged.items():
        if quantity > check.MAX_LINE_QUANTITY:
            problems.append(
                problem(
                    ErrorCode.INVALID,
                    f"lines of sku {sku!r} add up to more than {check.MAX_LINE_QUANTITY}",
                    "lines",
                )
            )
    if problems:
        raise DomainError(problems)
    return merged


_Plan = tuple[Product, int, int, int]  # product, quantity, allocated, backordered


def _stock_problem(product: Product, sku: str, index: int, take: int, rest: int) -> Problem | None:
    """Why the product's policy refuses to backorder `rest` units, if it does."""
    if rest and product.backorder_policy is BackorderPolicy.DENY:
        return problem(
            ErrorCode.INSUFFICIENT_STOCK,
            f"only {take} of {sku!r} available",
            "lines",
            index,
            "quantity",
        )
    if (
        rest
        and product.backorder_policy is BackorderPolicy.LIMIT
        and product.backordered + rest > (product.backorder_limit or 0)
    ):
        return problem(
            ErrorCode.BACKORDER_LIMIT_EXCEEDED,
            f"{sku!r} can take {product.available_to_sell} more units",
            "lines",
            index,
            "quantity",
        )
    return None


def _plan_order(
    cmd: PlaceOrder, merged: dict[str, int], products: dict[str, Product]
) -> list[_Plan]:
    """How much of each (merged) line to allocate and to backorder; all problems at once."""
    problems: list[Problem] = []
    plan: list[_Plan] = []
    for index, line in enumerate(cmd.lines):
        if line.sku not in merged:
            continue  # a later line of the same sku, merged into the first
        quantity = merged.pop(line.sku)
        product = products.get(line.sku)
        if product is None:
            problems.append(
                problem(
                    ErrorCode.NOT_FOUND, f"no product with sku {line.sku!r}", "lines", index, "sku"
                )
            )
            continue
        take = min(quantity, max(product.available, 0))
        rest = quantity - take
        refused = _stock_problem(product, line.sku, index, take, rest)
        if refused is not None:
            problems.append(refused)
        plan.append((product, quantity, take, rest))
    if problems:
        raise DomainError(problems)
    return plan


async def place_order(session: StoreSession, cmd: PlaceOrder) -> Order:
    """All or nothing: allocate what is free, backorder the rest where policy allows."""
    merged = _validate_lines(cmd)
    external_id = check.text(cmd.external_id, "externalId") if cmd.external_id else None
    customer_ref = check.text(cmd.customer_ref, "customerRef") if cmd.customer_ref else None
    products = await session.products_by_sku(merged)
    plan = _plan_order(cmd, merged, products)

    now = session.now
    order = Order(
        store_id=session.store.id,
        id=session.next_id(),
        number=session.next_order_number(),
        placed_at=now,
        requested_ship_date=cmd.requested_ship_date,
        external_id=external_id,
        customer_ref=customer_ref,
        overdue_at=overdue_instant(cmd.requested_ship_date, session.store.tz),
    )
    watch = _StockWatch()
    for product, quantity, take, rest in plan:
        watch.watch(product)
        order.lines.append(
            OrderLine(
                store_id=order.store_id,
                id=session.next_id(),
                order_id=order.id,
                product_id=product.id,
                sku=product.sku,
                quantity=quantity,
                unit_price=product.price,
                placed_at=now,
                order_number=order.number,
                allocated=take,
                backordered=rest,
            )
        )
        product.allocated += take
        product.backordered += rest
    session.add_order(order)
    session.emit(OrderEvent.of(OrderEventType.PLACED, order))
    if order.is_backordered:
        session.emit(OrderEvent.of(OrderEventType.BACKORDERED, order))
    for product, _quantity, take, _rest in plan:
        if take:
            session.emit(
                InventoryEvent.of(
                    InventoryEventType.ALLOCATED, product, quantity=take, orderId=order.id
                )
            )
    watch.flush(session, {p.id: p for p, *_ in plan})
    return order


async def receive_stock(
    session: StoreSession, sku: str, quantity: int, note: str | None = None
) -> tuple[Product, list[OrderLine]]:
    check.positive(quantity, ["quantity"], maximum=check.MAX_STOCK_CHANGE)
    product = await _product(session, sku)
    watch = _StockWatch()
    watch.watch(product)
    product.on_hand += quantity
    session.emit(
        InventoryEvent.of(InventoryEventType.RECEIVED, product, quantity=quantity, note=note)
    )
    filled = await fill_backorders(session, product)
    watch.flush(session, {product.id: product})
    return product, filled


async def adjust_stock(
    session: StoreSession,
    sku: str,
    *,
    delta: int | None,
    set_on_hand: int | None,
    reason: str,
) -> Product:
    """Correct a count: up fills like a receipt; below allocation takes back from the newest."""
    if (delta is None) == (set_on_hand is None):
        raise DomainError.one(
            ErrorCode.INVALID, "give exactly one of delta and setOnHand", ["delta"]
        )
    reason = check.text(reason, "reason")
    if delta == 0:
        raise DomainError.one(ErrorCode.INVALID, "delta must not be 0", ["delta"])
    product = await _product(session, sku)
    target = product.on_hand + delta if delta is not None else set_on_hand
    assert target is not None
    if target < 0:
        field = "delta" if delta is not None else "setOnHand"
        raise DomainError.one(
            ErrorCode.INVALID, f"on hand would be {target}; it cannot go below 0", [field]
        )
    if target > check.MAX_STOCK_CHANGE:
        raise DomainError.one(ErrorCode.INVALID, "on hand would be too large", ["delta"])
    watch = _StockWatch()
    watch.watch(product)
    change = target - product.on_hand
    product.on_hand = target
    deficit = product.allocated - product.on_hand
    taken = 0
    if deficit > 0:
        lines = await session.newest_allocated_lines(product, limit=deficit)
        touched: dict[int, Order] = {}
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
    session.emit(
        InventoryEvent.of(InventoryEventType.ADJUSTED, product, quantity=change, reason=reason)
    )
    if taken:
        session.emit(InventoryEvent.of(InventoryEventType.RELEASED, product, quantity=taken))
    await fill_backorders(session, product)
    watch.flush(session, {product.id: product})
    return product


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
    for product_id, quantity in shipped_by_product.items():
        session.emit(
            InventoryEvent.of(
                InventoryEventType.SHIPPED,
                products[product_id],
                quantity=quantity,
                orderId=order.id,
            )
        )
    return order


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
    watch = _StockWatch()
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
    session.emit(
        OrderEvent.of(
            OrderEventType.CANCELLED,
            order,
            reason=reason.value,
            cancelled={str(k): v for k, v in wanted.items()},
        )
    )
    for product_id, quantity in released.items():
        if quantity:
            session.emit(
                InventoryEvent.of(
                    InventoryEventType.RELEASED,
                    products[product_id],
                    quantity=quantity,
                    orderId=order.id,
                )
            )
    for product in products.values():
        await fill_backorders(session, product)
    watch.flush(session, products)
    return order


async def mark_overdue(session: StoreSession) -> list[Order]:
    """Flag the orders whose requested ship date has ended unshipped; one OVERDUE event each."""
    due = await session.due_orders()
    for order in due:
        if order.is_overdue(session.now) and not order.overdue_notified:
            order.overdue_notified = True
            session.emit(OrderEvent.of(OrderEventType.OVERDUE, order))
    return [order for order in due if order.overdue_notified]


async def execute(session: StoreSession, cmd: StoreCommand) -> Changed:
    """Run one mutation's command on the locked store; the result names what changed."""
    match cmd:
        case UpsertProduct():
            return Changed(product_id=(await upsert_product(session, cmd)).id)
        case ReceiveStock():
            product, filled = await receive_stock(session, cmd.sku, cmd.quantity, cmd.note)
            return Changed(product_id=product.id, filled_line_ids=tuple(x.id for x in filled))
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

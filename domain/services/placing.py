"""Placing an order: all or nothing, allocating what is free and backordering the rest
where each product's policy allows."""

from __future__ import annotations

from ordergraph.domain import validation as check
from ordergraph.domain.commands import PlaceOrder
from ordergraph.domain.errors import DomainError, ErrorCode, Problem, problem
from ordergraph.domain.events import InventoryEvent, InventoryEventType, OrderEvent, OrderEventType
from ordergraph.domain.model import BackorderPolicy, Order, OrderLine, Product, overdue_instant
from ordergraph.domain.ports import StoreSession
from ordergraph.domain.services.stock import StockWatch


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


def _new_order(
    session: StoreSession, cmd: PlaceOrder, external_id: str | None, customer_ref: str | None
) -> Order:
    """The order with no lines yet: its id, number and instants."""
    return Order(
        store_id=session.store.id,
        id=session.next_id(),
        number=session.next_order_number(),
        placed_at=session.now,
        requested_ship_date=cmd.requested_ship_date,
        external_id=external_id,
        customer_ref=customer_ref,
        overdue_at=overdue_instant(cmd.requested_ship_date, session.store.tz),
    )


def _add_line(session: StoreSession, order: Order, planned: _Plan) -> None:
    """Add a planned line to the order and hold its units on the product."""
    product, quantity, take, rest = planned
    order.lines.append(
        OrderLine(
            store_id=order.store_id,
            id=session.next_id(),
            order_id=order.id,
            product_id=product.id,
            sku=product.sku,
            quantity=quantity,
            unit_price=product.price,
            placed_at=order.placed_at,
            order_number=order.number,
            allocated=take,
            backordered=rest,
        )
    )
    product.allocated += take
    product.backordered += rest


def _emit_placed(session: StoreSession, order: Order, plan: list[_Plan]) -> None:
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


async def place_order(session: StoreSession, cmd: PlaceOrder) -> Order:
    """All or nothing: allocate what is free, backorder the rest where policy allows."""
    merged = _validate_lines(cmd)
    external_id = check.text(cmd.external_id, "externalId") if cmd.external_id else None
    customer_ref = check.text(cmd.customer_ref, "customerRef") if cmd.customer_ref else None
    products = await session.products_by_sku(merged)
    plan = _plan_order(cmd, merged, products)
    order = _new_order(session, cmd, external_id, customer_ref)
    watch = StockWatch()
    for planned in plan:
        watch.watch(planned[0])
        _add_line(session, order, planned)
    session.add_order(order)
    _emit_placed(session, order, plan)
    watch.flush(session, {p.id: p for p, *_ in plan})
    return order

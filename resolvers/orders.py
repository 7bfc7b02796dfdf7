"""Order mutations: place, ship and cancel (the ORDERS scope)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import strawberry

from ordergraph.domain import validation as check
from ordergraph.domain.commands import (
    UNKNOWN_LINE,
    CancelOrder,
    LineQuantity,
    LineRequest,
    PlaceOrder,
    ShipOrder,
)
from ordergraph.domain.errors import ErrorCode, Problem
from ordergraph.resolvers import ids
from ordergraph.resolvers.context import Context
from ordergraph.resolvers.mutations import (
    changed_order,
    checked,
    failed,
    no_store,
    run,
    store_for,
    user_errors,
)
from ordergraph.schema.inputs import CancelOrderInput, PlaceOrderInput, ShipOrderInput
from ordergraph.schema.payloads import CancelOrderPayload, PlaceOrderPayload, ShipOrderPayload
from ordergraph.schema.types import Ctx


async def place_order(info: Ctx, input: PlaceOrderInput) -> PlaceOrderPayload:
    ctx = info.context
    store_id = await store_for(ctx, str(input.store_id), "ORDERS")
    if store_id is None:
        return PlaceOrderPayload(order=None, user_errors=user_errors(no_store()))
    cmd = PlaceOrder(
        lines=[LineRequest(line.sku, line.quantity) for line in input.lines],
        external_id=input.external_id,
        customer_ref=input.customer_ref,
        requested_ship_date=input.requested_ship_date,
    )
    ship_by = cmd.requested_ship_date
    if problems := checked(
        lambda: check.list_length(cmd.lines, check.MAX_LINES, "lines"),
        lambda: ship_by is None or check.day(ship_by, "requestedShipDate"),
    ):
        return PlaceOrderPayload(order=None, user_errors=user_errors(problems))
    outcome = await run(ctx, store_id, cmd, key=input.idempotency_key)
    return PlaceOrderPayload(
        order=await changed_order(ctx, outcome), user_errors=user_errors(outcome.problems)
    )


async def ship_order(info: Ctx, input: ShipOrderInput) -> ShipOrderPayload:
    ctx = info.context
    target = await _target(ctx, input.order_id, input.lines)
    if isinstance(target, list):
        return ShipOrderPayload(order=None, user_errors=user_errors(target))
    cmd = ShipOrder(
        order_id=target.order_id, lines=target.lines, tracking_number=input.tracking_number
    )
    outcome = await run(ctx, target.store_id, cmd, key=input.idempotency_key)
    return ShipOrderPayload(
        order=await changed_order(ctx, outcome), user_errors=user_errors(outcome.problems)
    )


async def cancel_order(info: Ctx, input: CancelOrderInput) -> CancelOrderPayload:
    ctx = info.context
    target = await _target(ctx, input.order_id, input.lines)
    if isinstance(target, list):
        return CancelOrderPayload(order=None, user_errors=user_errors(target))
    cmd = CancelOrder(order_id=target.order_id, reason=input.reason, lines=target.lines)
    outcome = await run(ctx, target.store_id, cmd, key=input.idempotency_key)
    return CancelOrderPayload(
        order=await changed_order(ctx, outcome), user_errors=user_errors(outcome.problems)
    )


# -- shipping and cancelling name an order and, maybe, some of its lines ---------


class _LineInput(Protocol):
    line_id: strawberry.ID
    quantity: int


@dataclass(frozen=True)
class _Target:
    store_id: int
    order_id: int
    lines: list[LineQuantity] | None


async def _target(
    ctx: Context, order_gid: strawberry.ID, lines: Sequence[_LineInput] | None
) -> _Target | list[Problem]:
    """The order (and lines) to change, if the caller may change orders there; else
    the problems to answer with."""
    await ctx.require("ORDERS")
    ref = ids.scoped_id(str(order_gid), "Order")
    if ref is None or await ctx.usable_store_id(ref[0], "ORDERS") is None:
        return failed(ErrorCode.NOT_FOUND, "order not found", "orderId")
    store_id, order_id = ref
    if problems := checked(lambda: check.list_length(lines, check.MAX_LINES, "lines")):
        return problems
    if lines is None:
        return _Target(store_id, order_id, None)
    wanted = [LineQuantity(_line_id(store_id, line.line_id), line.quantity) for line in lines]
    return _Target(store_id, order_id, wanted)


def _line_id(store_id: int, line_gid: strawberry.ID) -> int:
    """The line's id in the store; UNKNOWN_LINE (NOT_FOUND at its index) if it names none."""
    ref = ids.scoped_id(str(line_gid), "OrderLine")
    return ref[1] if ref is not None and ref[0] == store_id else UNKNOWN_LINE

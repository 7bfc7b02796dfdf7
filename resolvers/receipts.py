"""Incoming receipt mutations: schedule, change and cancel stock on its way (INVENTORY).

receiveStock naming a receipt is in resolvers/inventory.py."""

from __future__ import annotations

import strawberry
from strawberry.types.unset import UnsetType

from ordergraph.domain.commands import (
    UNKNOWN_RECEIPT,
    CancelReceipt,
    ScheduleReceipt,
    UpdateReceipt,
)
from ordergraph.domain.errors import ErrorCode, Problem
from ordergraph.resolvers import ids
from ordergraph.resolvers.context import Context
from ordergraph.resolvers.mutations import (
    Outcome,
    failed,
    no_store,
    run,
    store_for,
    user_errors,
)
from ordergraph.schema.inputs import ScheduleReceiptInput, UpdateReceiptInput
from ordergraph.schema.payloads import (
    CancelReceiptPayload,
    ScheduleReceiptPayload,
    UpdateReceiptPayload,
)
from ordergraph.schema.types import Ctx, IncomingReceiptType, UserError


def receipt_in(store_id: int, gid: strawberry.ID | None) -> int | None:
    """The receipt id an `IncomingReceipt.id` names in the store: None when none is
    given; UNKNOWN_RECEIPT (NOT_FOUND) when it is malformed or another store's."""
    if gid is None:
        return None
    ref = ids.scoped_id(str(gid), "IncomingReceipt")
    return ref[1] if ref is not None and ref[0] == store_id else UNKNOWN_RECEIPT


async def _usable(ctx: Context, gid: strawberry.ID) -> tuple[int, int] | None:
    """(store id, receipt id) if the key may change receipts in its store; else None."""
    await ctx.require("INVENTORY")
    ref = ids.scoped_id(str(gid), "IncomingReceipt")
    if ref is None or await ctx.usable_store_id(ref[0], "INVENTORY") is None:
        return None
    return ref


def _not_found() -> list[Problem]:
    return failed(ErrorCode.NOT_FOUND, "receipt not found", "id")


async def changed_receipt(ctx: Context, outcome: Outcome) -> IncomingReceiptType | None:
    changed, store_id = outcome.changed, outcome.store_id
    if changed is None or changed.receipt_id is None or store_id is None:
        return None
    found = await ctx.loaders.receipt.load((store_id, changed.receipt_id))
    return IncomingReceiptType(_receipt=found) if found else None


async def schedule_receipt(info: Ctx, input: ScheduleReceiptInput) -> ScheduleReceiptPayload:
    ctx = info.context
    store_id = await store_for(ctx, str(input.store_id), "INVENTORY")
    if store_id is None:
        return ScheduleReceiptPayload(receipt=None, user_errors=user_errors(no_store()))
    cmd = ScheduleReceipt(
        sku=input.sku,
        quantity=input.quantity,
        expected_at=input.expected_at,
        reference=input.reference,
    )
    outcome = await run(ctx, store_id, cmd, key=input.idempotency_key)
    return ScheduleReceiptPayload(
        receipt=await changed_receipt(ctx, outcome), user_errors=user_errors(outcome.problems)
    )


async def update_receipt(info: Ctx, input: UpdateReceiptInput) -> UpdateReceiptPayload:
    ctx = info.context
    ref = await _usable(ctx, input.id)
    if ref is None:
        return UpdateReceiptPayload(receipt=None, user_errors=user_errors(_not_found()))
    reference_given = not isinstance(input.reference, UnsetType)
    cmd = UpdateReceipt(
        receipt_id=ref[1],
        quantity=None if isinstance(input.quantity, UnsetType) else input.quantity,
        expected_at=None if isinstance(input.expected_at, UnsetType) else input.expected_at,
        reference=input.reference if reference_given else None,
        reference_given=reference_given,
    )
    outcome = await run(ctx, ref[0], cmd, key=None)
    return UpdateReceiptPayload(
        receipt=await changed_receipt(ctx, outcome), user_errors=user_errors(outcome.problems)
    )


def _argument_errors(problems: list[Problem]) -> list[UserError]:
    """userErrors of a mutation whose argument is `id` (not an input object)."""
    return [
        UserError(field=list(p.field) if p.field else None, message=p.message, code=p.code)
        for p in problems
    ]


async def cancel_receipt(info: Ctx, id: strawberry.ID) -> CancelReceiptPayload:
    ctx = info.context
    ref = await _usable(ctx, id)
    if ref is None:
        return CancelReceiptPayload(receipt=None, user_errors=_argument_errors(_not_found()))
    outcome = await run(ctx, ref[0], CancelReceipt(receipt_id=ref[1]), key=None)
    return CancelReceiptPayload(
        receipt=await changed_receipt(ctx, outcome),
        user_errors=_argument_errors(outcome.problems),
    )

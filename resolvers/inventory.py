"""Inventory mutations: products and their stock (the INVENTORY scope)."""

from __future__ import annotations

from typing import TypeVar

from strawberry.types.unset import UnsetType

from ordergraph.domain import validation as check
from ordergraph.domain.commands import AdjustStock, ReceiveStock, UpsertProduct
from ordergraph.resolvers.mutations import (
    changed_product,
    checked,
    no_store,
    run,
    store_for,
    user_errors,
)
from ordergraph.resolvers.receipts import changed_receipt, receipt_in
from ordergraph.schema.inputs import AdjustStockInput, ReceiveStockInput, UpsertProductInput
from ordergraph.schema.payloads import AdjustStockPayload, ReceiveStockPayload, UpsertProductPayload
from ordergraph.schema.types import Ctx, OrderLineType


def _given(value: object) -> bool:
    return not isinstance(value, UnsetType)


T = TypeVar("T")


def _or_none(value: T | UnsetType | None) -> T | None:
    return None if isinstance(value, UnsetType) else value


async def upsert_product(info: Ctx, input: UpsertProductInput) -> UpsertProductPayload:
    ctx = info.context
    store_id = await store_for(ctx, str(input.store_id), "INVENTORY")
    if store_id is None:
        return UpsertProductPayload(product=None, user_errors=user_errors(no_store()))
    cmd = UpsertProduct(
        sku=input.sku,
        title=_or_none(input.title),
        price=_or_none(input.price),
        backorder_policy=_or_none(input.backorder_policy),
        backorder_limit=_or_none(input.backorder_limit),
        backorder_limit_given=_given(input.backorder_limit),
        restock_date=_or_none(input.restock_date),
        restock_date_given=_given(input.restock_date),
    )
    restock = cmd.restock_date
    if restock is not None and (problems := checked(lambda: check.day(restock, "restockDate"))):
        return UpsertProductPayload(product=None, user_errors=user_errors(problems))
    outcome = await run(ctx, store_id, cmd, key=None)
    return UpsertProductPayload(
        product=await changed_product(ctx, outcome), user_errors=user_errors(outcome.problems)
    )


async def receive_stock(info: Ctx, input: ReceiveStockInput) -> ReceiveStockPayload:
    ctx = info.context
    store_id = await store_for(ctx, str(input.store_id), "INVENTORY")
    if store_id is None:
        problems = no_store()
        return ReceiveStockPayload(
            product=None, filled_lines=[], receipt=None, user_errors=user_errors(problems)
        )
    note = input.note
    if note is not None and (problems := checked(lambda: check.note(note, "note"))):
        return ReceiveStockPayload(
            product=None, filled_lines=[], receipt=None, user_errors=user_errors(problems)
        )
    cmd = ReceiveStock(
        sku=input.sku,
        quantity=input.quantity,
        note=note,
        receipt_id=receipt_in(store_id, input.receipt_id),
    )
    outcome = await run(ctx, store_id, cmd, key=input.idempotency_key)
    filled_ids = outcome.changed.filled_line_ids if outcome.changed else None
    filled = await ctx.loaders.line.load_many([(store_id, i) for i in filled_ids or ()])
    return ReceiveStockPayload(
        product=await changed_product(ctx, outcome),
        filled_lines=[OrderLineType(_line=line) for line in filled if line is not None],
        receipt=await changed_receipt(ctx, outcome),
        user_errors=user_errors(outcome.problems),
    )


async def adjust_stock(info: Ctx, input: AdjustStockInput) -> AdjustStockPayload:
    ctx = info.context
    store_id = await store_for(ctx, str(input.store_id), "INVENTORY")
    if store_id is None:
        return AdjustStockPayload(product=None, user_errors=user_errors(no_store()))
    cmd = AdjustStock(
        sku=input.sku, reason=input.reason, delta=input.delta, set_on_hand=input.set_on_hand
    )
    outcome = await run(ctx, store_id, cmd, key=input.idempotency_key)
    return AdjustStockPayload(
        product=await changed_product(ctx, outcome), user_errors=user_errors(outcome.problems)
    )

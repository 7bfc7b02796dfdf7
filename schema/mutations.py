"""Mutation inputs, payloads and the Mutation root."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import strawberry
from strawberry.types.unset import UNSET, UnsetType

from ordergraph.domain import services
from ordergraph.domain.errors import Problem
from ordergraph.resolvers import mutations as m
from ordergraph.resolvers.mutations import Outcome
from ordergraph.schema.enums import ApiScope, BackorderPolicy, CancelReason, ErrorCode
from ordergraph.schema.types import (
    ApiKeyType,
    Ctx,
    OrderLineType,
    OrderType,
    ProductType,
    StoreType,
    UserError,
)


def user_errors(problems: list[Problem]) -> list[UserError]:
    return [
        UserError(
            field=["input", *p.field] if p.field else None,
            message=p.message,
            code=ErrorCode(p.code.value),
        )
        for p in problems
    ]


async def _order(info: Ctx, outcome: Outcome) -> OrderType | None:
    order_id = outcome.result.get("orderId")
    if order_id is None or outcome.store_id is None:
        return None
    found = await info.context.loaders.order.load((outcome.store_id, order_id))
    return OrderType(_order=found) if found else None


async def _product(info: Ctx, outcome: Outcome) -> ProductType | None:
    product_id = outcome.result.get("productId")
    if product_id is None or outcome.store_id is None:
        return None
    found = await info.context.loaders.product.load((outcome.store_id, product_id))
    return ProductType(_product=found) if found else None


# -- admin --------------------------------------------------------------------


@strawberry.input
class CreateStoreInput:
    handle: str
    name: str
    currency_code: str
    timezone: str
    default_backorder_policy: BackorderPolicy | None = BackorderPolicy.DENY


@strawberry.type
class CreateStorePayload:
    store: StoreType | None
    api_key: ApiKeyType | None
    token: str | None
    user_errors: list[UserError]


@strawberry.input
class CreateApiKeyInput:
    name: str
    store_ids: list[strawberry.ID]
    scopes: list[ApiScope]


@strawberry.type
class CreateApiKeyPayload:
    api_key: ApiKeyType | None
    token: str | None
    user_errors: list[UserError]


@strawberry.type
class RevokeApiKeyPayload:
    api_key: ApiKeyType | None
    user_errors: list[UserError]


# -- inventory ----------------------------------------------------------------


@strawberry.input
class UpsertProductInput:
    store_id: strawberry.ID
    sku: str
    title: str | None = UNSET
    price: Decimal | None = UNSET
    backorder_policy: BackorderPolicy | None = UNSET
    backorder_limit: int | None = UNSET
    restock_date: dt.date | None = UNSET


@strawberry.type
class UpsertProductPayload:
    product: ProductType | None
    user_errors: list[UserError]


@strawberry.input
class ReceiveStockInput:
    store_id: strawberry.ID
    sku: str
    quantity: int
    note: str | None = None
    idempotency_key: str | None = None


@strawberry.type
class ReceiveStockPayload:
    product: ProductType | None
    filled_lines: list[OrderLineType]
    user_errors: list[UserError]


@strawberry.input
class AdjustStockInput:
    store_id: strawberry.ID
    sku: str
    reason: str
    delta: int | None = None
    set_on_hand: int | None = None
    idempotency_key: str | None = None


@strawberry.type
class AdjustStockPayload:
    product: ProductType | None
    user_errors: list[UserError]


# -- orders -------------------------------------------------------------------


@strawberry.input
class OrderLineInput:
    sku: str
    quantity: int


@strawberry.input
class PlaceOrderInput:
    store_id: strawberry.ID
    lines: list[OrderLineInput]
    idempotency_key: str | None = None
    external_id: str | None = None
    customer_ref: str | None = None
    requested_ship_date: dt.date | None = None


@strawberry.type
class PlaceOrderPayload:
    order: OrderType | None
    user_errors: list[UserError]


@strawberry.input
class ShipLineInput:
    line_id: strawberry.ID
    quantity: int


@strawberry.input
class ShipOrderInput:
    order_id: strawberry.ID
    lines: list[ShipLineInput] | None = None
    tracking_number: str | None = None
    idempotency_key: str | None = None


@strawberry.type
class ShipOrderPayload:
    order: OrderType | None
    user_errors: list[UserError]


@strawberry.input
class CancelLineInput:
    line_id: strawberry.ID
    quantity: int


@strawberry.input
class CancelOrderInput:
    order_id: strawberry.ID
    reason: CancelReason
    lines: list[CancelLineInput] | None = None
    idempotency_key: str | None = None


@strawberry.type
class CancelOrderPayload:
    order: OrderType | None
    user_errors: list[UserError]


def _given(value: object) -> bool:
    return not isinstance(value, UnsetType)


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Create a store and a first API key for it (admin token).")
    async def create_store(self, info: Ctx, input: CreateStoreInput) -> CreateStorePayload:
        outcome = await m.create_store(
            info.context,
            handle=input.handle,
            name=input.name,
            currency_code=input.currency_code,
            timezone=input.timezone,
            default_policy=input.default_backorder_policy or BackorderPolicy.DENY,
        )
        if outcome.problems:
            return CreateStorePayload(
                store=None, api_key=None, token=None, user_errors=user_errors(outcome.problems)
            )
        loaders = info.context.loaders
        store = await loaders.store.load(outcome.result["storeId"])
        key = await m.load_key(info.context, outcome.result["apiKeyId"])
        return CreateStorePayload(
            store=StoreType(_store=store) if store else None,
            api_key=ApiKeyType(_key=key) if key else None,
            token=outcome.result["token"],
            user_errors=[],
        )

    @strawberry.mutation(description="Create an API key; its token is shown only here.")
    async def create_api_key(self, info: Ctx, input: CreateApiKeyInput) -> CreateApiKeyPayload:
        outcome = await m.create_api_key(
            info.context,
            name=input.name,
            store_gids=[str(s) for s in input.store_ids],
            scopes=[s.value for s in input.scopes],
        )
        if outcome.problems:
            return CreateApiKeyPayload(
                api_key=None, token=None, user_errors=user_errors(outcome.problems)
            )
        key = await m.load_key(info.context, outcome.result["apiKeyId"])
        return CreateApiKeyPayload(
            api_key=ApiKeyType(_key=key) if key else None,
            token=outcome.result["token"],
            user_errors=[],
        )

    @strawberry.mutation(description="Revoke an API key; it stops working on the next request.")
    async def revoke_api_key(self, info: Ctx, id: strawberry.ID) -> RevokeApiKeyPayload:
        outcome = await m.revoke_api_key(info.context, str(id))
        if outcome.problems:
            return RevokeApiKeyPayload(api_key=None, user_errors=user_errors(outcome.problems))
        key = await m.load_key(info.context, outcome.result["apiKeyId"])
        return RevokeApiKeyPayload(api_key=ApiKeyType(_key=key) if key else None, user_errors=[])

    @strawberry.mutation
    async def upsert_product(self, info: Ctx, input: UpsertProductInput) -> UpsertProductPayload:
        cmd = services.UpsertProduct(
            sku=input.sku,
            title=input.title if _given(input.title) else None,
            price=input.price if _given(input.price) else None,
            backorder_policy=input.backorder_policy if _given(input.backorder_policy) else None,
            backorder_limit=input.backorder_limit if _given(input.backorder_limit) else None,
            backorder_limit_given=_given(input.backorder_limit),
            restock_date=input.restock_date if _given(input.restock_date) else None,
            restock_date_given=_given(input.restock_date),
        )
        outcome = await m.upsert_product(info.context, str(input.store_id), cmd)
        return UpsertProductPayload(
            product=await _product(info, outcome),
            user_errors=user_errors(outcome.problems),
        )

    @strawberry.mutation
    async def receive_stock(self, info: Ctx, input: ReceiveStockInput) -> ReceiveStockPayload:
        outcome = await m.receive_stock(
            info.context,
            str(input.store_id),
            input.sku,
            input.quantity,
            input.note,
            input.idempotency_key,
        )
        store_id = outcome.store_id or 0
        filled = await info.context.loaders.line.load_many(
            [(store_id, i) for i in outcome.result.get("filledLineIds", [])]
        )
        return ReceiveStockPayload(
            product=await _product(info, outcome),
            filled_lines=[OrderLineType(_line=line) for line in filled if line is not None],
            user_errors=user_errors(outcome.problems),
        )

    @strawberry.mutation
    async def adjust_stock(self, info: Ctx, input: AdjustStockInput) -> AdjustStockPayload:
        outcome = await m.adjust_stock(
            info.context,
            str(input.store_id),
            input.sku,
            input.delta,
            input.set_on_hand,
            input.reason,
            input.idempotency_key,
        )
        return AdjustStockPayload(
            product=await _product(info, outcome),
            user_errors=user_errors(outcome.problems),
        )

    @strawberry.mutation
    async def place_order(self, info: Ctx, input: PlaceOrderInput) -> PlaceOrderPayload:
        cmd = services.PlaceOrder(
            lines=[services.LineRequest(line.sku, line.quantity) for line in input.lines],
            external_id=input.external_id,
            customer_ref=input.customer_ref,
            requested_ship_date=input.requested_ship_date,
        )
        outcome = await m.place_order(info.context, str(input.store_id), cmd, input.idempotency_key)
        return PlaceOrderPayload(
            order=await _order(info, outcome), user_errors=user_errors(outcome.problems)
        )

    @strawberry.mutation
    async def ship_order(self, info: Ctx, input: ShipOrderInput) -> ShipOrderPayload:
        lines = input.lines
        outcome = await m.ship_order(
            info.context,
            str(input.order_id),
            [str(line.line_id) for line in lines] if lines is not None else None,
            [line.quantity for line in lines] if lines is not None else [],
            input.tracking_number,
            input.idempotency_key,
        )
        return ShipOrderPayload(
            order=await _order(info, outcome), user_errors=user_errors(outcome.problems)
        )

    @strawberry.mutation
    async def cancel_order(self, info: Ctx, input: CancelOrderInput) -> CancelOrderPayload:
        lines = input.lines
        outcome = await m.cancel_order(
            info.context,
            str(input.order_id),
            input.reason,
            [str(line.line_id) for line in lines] if lines is not None else None,
            [line.quantity for line in lines] if lines is not None else [],
            input.idempotency_key,
        )
        return CancelOrderPayload(
            order=await _order(info, outcome), user_errors=user_errors(outcome.problems)
        )

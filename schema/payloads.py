"""Mutation payloads: what each mutation answers, with its userErrors."""

from __future__ import annotations

import strawberry

from ordergraph.schema.types import (
    ApiKeyType,
    OrderLineType,
    OrderType,
    ProductType,
    StoreType,
    UserError,
)


@strawberry.type
class CreateStorePayload:
    store: StoreType | None
    api_key: ApiKeyType | None
    token: str | None
    user_errors: list[UserError]


@strawberry.type
class CreateApiKeyPayload:
    api_key: ApiKeyType | None
    token: str | None
    user_errors: list[UserError]


@strawberry.type
class RevokeApiKeyPayload:
    api_key: ApiKeyType | None
    user_errors: list[UserError]


@strawberry.type
class UpsertProductPayload:
    product: ProductType | None
    user_errors: list[UserError]


@strawberry.type
class ReceiveStockPayload:
    product: ProductType | None
    filled_lines: list[OrderLineType]
    user_errors: list[UserError]


@strawberry.type
class AdjustStockPayload:
    product: ProductType | None
    user_errors: list[UserError]


@strawberry.type
class PlaceOrderPayload:
    order: OrderType | None
    user_errors: list[UserError]


@strawberry.type
class ShipOrderPayload:
    order: OrderType | None
    user_errors: list[UserError]


@strawberry.type
class CancelOrderPayload:
    order: OrderType | None
    user_errors: list[UserError]

"""Mutation payloads: what each mutation answers, with its userErrors."""

from __future__ import annotations

from typing import Any

import strawberry

from ordergraph.schema.types import (
    ApiKeyType,
    IncomingReceiptType,
    OrderLineType,
    OrderType,
    ProductType,
    StoreType,
    UserError,
)

USER_ERRORS = "Why the mutation was refused; empty when it succeeded."
TOKEN = (
    "The new key's token, for `Authorization: Bearer <token>`: shown only here, never again "
    "(only its hash is stored); null when refused."
)


def _user_errors() -> Any:
    """The userErrors field (a new field object for each payload type)."""
    return strawberry.field(description=USER_ERRORS)


@strawberry.type(description="What createStore answers.")
class CreateStorePayload:
    store: StoreType | None = strawberry.field(description="The new store; null when refused.")
    api_key: ApiKeyType | None = strawberry.field(
        description="A key made with the store, with every scope, for it alone; null when refused."
    )
    token: str | None = strawberry.field(description=TOKEN)
    user_errors: list[UserError] = _user_errors()


@strawberry.type(description="What createApiKey answers.")
class CreateApiKeyPayload:
    api_key: ApiKeyType | None = strawberry.field(description="The new key; null when refused.")
    token: str | None = strawberry.field(description=TOKEN)
    user_errors: list[UserError] = _user_errors()


@strawberry.type(description="What revokeApiKey answers.")
class RevokeApiKeyPayload:
    api_key: ApiKeyType | None = strawberry.field(
        description="The key, now revoked (`revokedAt` set; revoking again keeps the first "
        "instant); null when refused."
    )
    user_errors: list[UserError] = _user_errors()


@strawberry.type(description="What upsertProduct answers.")
class UpsertProductPayload:
    product: ProductType | None = strawberry.field(
        description="The product as created or changed; null when refused."
    )
    user_errors: list[UserError] = _user_errors()


@strawberry.type(description="What receiveStock answers.")
class ReceiveStockPayload:
    product: ProductType | None = strawberry.field(
        description="The product after the receipt; null when refused."
    )
    filled_lines: list[OrderLineType] = strawberry.field(
        description="The waiting order lines that the receipt gave stock to, in fill order; "
        "empty when none."
    )
    receipt: IncomingReceiptType | None = strawberry.field(
        description="The scheduled receipt named by `receiptId`, after this delivery (what "
        "it still expects, what it received); null when none was named or when refused."
    )
    user_errors: list[UserError] = _user_errors()


@strawberry.type(description="What adjustStock answers.")
class AdjustStockPayload:
    product: ProductType | None = strawberry.field(
        description="The product after the correction; null when refused."
    )
    user_errors: list[UserError] = _user_errors()


@strawberry.type(description="What placeOrder answers.")
class PlaceOrderPayload:
    order: OrderType | None = strawberry.field(
        description="The new order; null when refused (then nothing was placed)."
    )
    user_errors: list[UserError] = _user_errors()


@strawberry.type(description="What shipOrder answers.")
class ShipOrderPayload:
    order: OrderType | None = strawberry.field(
        description="The order after the shipment; null when refused."
    )
    user_errors: list[UserError] = _user_errors()


@strawberry.type(description="What cancelOrder answers.")
class CancelOrderPayload:
    order: OrderType | None = strawberry.field(
        description="The order after the cancellation; null when refused."
    )
    user_errors: list[UserError] = _user_errors()


@strawberry.type(description="What scheduleReceipt answers.")
class ScheduleReceiptPayload:
    receipt: IncomingReceiptType | None = strawberry.field(
        description="The receipt scheduled; null when refused."
    )
    user_errors: list[UserError] = _user_errors()


@strawberry.type(description="What updateReceipt answers.")
class UpdateReceiptPayload:
    receipt: IncomingReceiptType | None = strawberry.field(
        description="The receipt as changed; null when refused."
    )
    user_errors: list[UserError] = _user_errors()


@strawberry.type(description="What cancelReceipt answers.")
class CancelReceiptPayload:
    receipt: IncomingReceiptType | None = strawberry.field(
        description="The receipt, now CANCELLED (cancelling again changes nothing); null "
        "when refused."
    )
    user_errors: list[UserError] = _user_errors()

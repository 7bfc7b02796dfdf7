"""Mutation inputs: what each mutation takes (checked by the domain, not here)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import strawberry
from strawberry.types.unset import UNSET

from ordergraph.schema.enums import ApiScope, BackorderPolicy, CancelReason


@strawberry.input
class CreateStoreInput:
    handle: str
    name: str
    currency_code: str
    timezone: str
    default_backorder_policy: BackorderPolicy | None = BackorderPolicy.DENY


@strawberry.input
class CreateApiKeyInput:
    name: str
    store_ids: list[strawberry.ID]
    scopes: list[ApiScope]


@strawberry.input
class UpsertProductInput:
    store_id: strawberry.ID
    sku: str
    title: str | None = UNSET
    price: Decimal | None = UNSET
    backorder_policy: BackorderPolicy | None = UNSET
    backorder_limit: int | None = UNSET
    restock_date: dt.date | None = UNSET


@strawberry.input
class ReceiveStockInput:
    store_id: strawberry.ID
    sku: str
    quantity: int
    note: str | None = None
    idempotency_key: str | None = None


@strawberry.input
class AdjustStockInput:
    store_id: strawberry.ID
    sku: str
    reason: str
    delta: int | None = None
    set_on_hand: int | None = None
    idempotency_key: str | None = None


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

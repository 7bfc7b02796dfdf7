"""Mutation inputs: what each mutation takes (checked by the domain, not here)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import strawberry
from strawberry.types.unset import UNSET

from ordergraph.domain import validation as check
from ordergraph.schema.enums import ApiScope, BackorderPolicy, CancelReason

IDEMPOTENCY_KEY = (
    "Your key for this change, 1 to 255 characters: sent again (same operation, store and "
    "input) within ORDERGRAPH_IDEMPOTENCY_TTL_HOURS (24 h by default), the first result comes "
    "back with no second effect; with another input, IDEMPOTENCY_KEY_REUSED. Null: no "
    "deduplication."
)
STORE_ID = "The store's global ID (`Store.id`); a store the key may not use is NOT_FOUND."
SKU = (
    "The product's SKU: 1 to 64 characters of A-Z, a-z, 0-9, '-', '_' and '.', starting "
    "with a letter or digit."
)
ONE_LINE = f"one line, at most {check.MAX_TEXT} characters, no control characters"
LINE_QUANTITY = f"Units: 1 to {check.MAX_LINE_QUANTITY:,}."
DAY_RANGE = f"{check.MIN_DAY} to {check.MAX_DAY}"


@strawberry.input(description="A new store (createStore).")
class CreateStoreInput:
    handle: str = strawberry.field(
        description="The store's unique short name: 2 to 40 characters of a-z, 0-9 and '-', "
        "starting and ending with a letter or digit (DUPLICATE when taken)."
    )
    name: str = strawberry.field(description=f"The display name ({ONE_LINE}).")
    currency_code: str = strawberry.field(
        description="An active ISO 4217 currency code, e.g. USD; fixed for the store's life."
    )
    timezone: str = strawberry.field(description="An IANA time zone name, e.g. America/New_York.")
    default_backorder_policy: BackorderPolicy | None = strawberry.field(
        default=BackorderPolicy.DENY,
        description="The policy new products start with; null: DENY.",
    )


@strawberry.input(description="A new API key (createApiKey).")
class CreateApiKeyInput:
    name: str = strawberry.field(description=f"A name for people ({ONE_LINE}).")
    store_ids: list[strawberry.ID] = strawberry.field(
        description="The stores the key may use (`Store.id`): 1 to 100."
    )
    scopes: list[ApiScope] = strawberry.field(description="What the key may do: at least one.")


@strawberry.input(
    description="A product to create, or to change, by SKU (upsertProduct). Omitted fields "
    "keep their value; a new product needs `title` and `price`."
)
class UpsertProductInput:
    store_id: strawberry.ID = strawberry.field(description=STORE_ID)
    sku: str = strawberry.field(
        description=f"{SKU} A SKU the store does not have yet creates the product."
    )
    title: str | None = strawberry.field(
        default=UNSET, description=f"The product's name ({ONE_LINE}); null: unchanged."
    )
    price: Decimal | None = strawberry.field(
        default=UNSET,
        description="The unit price for new orders, in the store's currency: at least 0, "
        "below 10^12, at most 4 decimals; null: unchanged.",
    )
    backorder_policy: BackorderPolicy | None = strawberry.field(
        default=UNSET,
        description="The product's backorder policy; null: unchanged (a new product starts "
        "with the store's default).",
    )
    backorder_limit: int | None = strawberry.field(
        default=UNSET,
        description=f"Units that may await stock at once: 0 to {check.MAX_STOCK_CHANGE:,}. "
        "Required under LIMIT (omitted: the current limit), refused under the other "
        "policies, which drop it.",
    )
    restock_date: dt.date | None = strawberry.field(
        default=UNSET,
        description=f"When new stock is expected ({DAY_RANGE}); null clears it, omitted "
        "leaves it unchanged.",
    )


@strawberry.input(
    description="Stock that arrived (receiveStock): it goes to the waiting order lines "
    "first, oldest first."
)
class ReceiveStockInput:
    store_id: strawberry.ID = strawberry.field(description=STORE_ID)
    sku: str = strawberry.field(description=SKU)
    quantity: int = strawberry.field(
        description=f"Units received: 1 to {check.MAX_STOCK_CHANGE:,}."
    )
    note: str | None = strawberry.field(
        default=None,
        description=f"Free text kept with the RECEIVED event (at most {check.MAX_NOTE:,} "
        "characters; may span lines).",
    )
    idempotency_key: str | None = strawberry.field(default=None, description=IDEMPOTENCY_KEY)
    receipt_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="The scheduled receipt (`IncomingReceipt.id`) this delivery fulfils, "
        "wholly or in part: what it still expects goes down by `quantity`, and once nothing "
        "is expected it closes (receiving more than expected is allowed and closes it). It "
        "must be an open receipt of this SKU (NOT_FOUND, ALREADY_CLOSED, INVALID otherwise); "
        "null: plain stock.",
    )


@strawberry.input(
    description="A correction of the count on hand (adjustStock): give exactly one of "
    "`delta` and `setOnHand`."
)
class AdjustStockInput:
    store_id: strawberry.ID = strawberry.field(description=STORE_ID)
    sku: str = strawberry.field(description=SKU)
    reason: str = strawberry.field(
        description=f"Why the count changes ({ONE_LINE}); kept with the ADJUSTED event."
    )
    delta: int | None = strawberry.field(
        default=None,
        description="Units to add (positive) or remove (negative); not 0. On hand must stay "
        f"between 0 and {check.MAX_STOCK_CHANGE:,}.",
    )
    set_on_hand: int | None = strawberry.field(
        default=None,
        description=f"The new count on hand: 0 to {check.MAX_STOCK_CHANGE:,}.",
    )
    idempotency_key: str | None = strawberry.field(default=None, description=IDEMPOTENCY_KEY)


@strawberry.input(description="One product of a new order.")
class OrderLineInput:
    sku: str = strawberry.field(description=f"{SKU} NOT_FOUND when the store has no such product.")
    quantity: int = strawberry.field(
        description=f"{LINE_QUANTITY} Lines of one SKU are merged, and their sum must not "
        f"exceed {check.MAX_LINE_QUANTITY:,} either."
    )


@strawberry.input(description="A new order (placeOrder).")
class PlaceOrderInput:
    store_id: strawberry.ID = strawberry.field(description=STORE_ID)
    lines: list[OrderLineInput] = strawberry.field(
        description=f"What is ordered: 1 to {check.MAX_LINES} lines."
    )
    idempotency_key: str | None = strawberry.field(default=None, description=IDEMPOTENCY_KEY)
    external_id: str | None = strawberry.field(
        default=None,
        description=f"Your own reference for the order ({ONE_LINE}); not checked for uniqueness.",
    )
    customer_ref: str | None = strawberry.field(
        default=None, description=f"A reference to the customer ({ONE_LINE})."
    )
    requested_ship_date: dt.date | None = strawberry.field(
        default=None,
        description=f"The day by which the order should ship ({DAY_RANGE}); after it ends "
        "in the store's time zone, an unshipped order is overdue. Null: none.",
    )


@strawberry.input(description="Units of one line to ship.")
class ShipLineInput:
    line_id: strawberry.ID = strawberry.field(
        description="The line's global ID (`OrderLine.id`), a line of this order."
    )
    quantity: int = strawberry.field(
        description=f"{LINE_QUANTITY} At most the line's allocated units (NOT_SHIPPABLE)."
    )


@strawberry.input(description="A shipment of an order's allocated units (shipOrder).")
class ShipOrderInput:
    order_id: strawberry.ID = strawberry.field(description="The order's global ID (`Order.id`).")
    lines: list[ShipLineInput] | None = strawberry.field(
        default=None,
        description=f"What to ship: 1 to {check.MAX_LINES} entries; null: every allocated "
        "unit of the order.",
    )
    tracking_number: str | None = strawberry.field(
        default=None, description=f"The carrier's tracking number ({ONE_LINE})."
    )
    idempotency_key: str | None = strawberry.field(default=None, description=IDEMPOTENCY_KEY)


@strawberry.input(description="Units of one line to cancel.")
class CancelLineInput:
    line_id: strawberry.ID = strawberry.field(
        description="The line's global ID (`OrderLine.id`), a line of this order."
    )
    quantity: int = strawberry.field(
        description=f"{LINE_QUANTITY} At most the line's units not shipped or cancelled yet."
    )


@strawberry.input(
    description="A cancellation of an order's unshipped units (cancelOrder): backordered "
    "units go first, then allocated ones, whose stock goes to the waiting lines at once."
)
class CancelOrderInput:
    order_id: strawberry.ID = strawberry.field(description="The order's global ID (`Order.id`).")
    reason: CancelReason = strawberry.field(description="Why; kept with the CANCELLED event.")
    lines: list[CancelLineInput] | None = strawberry.field(
        default=None,
        description=f"What to cancel: 1 to {check.MAX_LINES} entries; null: every unit "
        "not shipped yet.",
    )
    idempotency_key: str | None = strawberry.field(default=None, description=IDEMPOTENCY_KEY)


@strawberry.input(
    description="Stock on its way (scheduleReceipt): units of a product expected on a date."
)
class ScheduleReceiptInput:
    store_id: strawberry.ID = strawberry.field(description=STORE_ID)
    sku: str = strawberry.field(description=SKU + " The product must exist (NOT_FOUND).")
    quantity: int = strawberry.field(
        description=f"Units expected: 1 to {check.MAX_STOCK_CHANGE:,}."
    )
    expected_at: dt.date = strawberry.field(
        description=f"The day they are expected ({DAY_RANGE}); a past day is accepted."
    )
    reference: str | None = strawberry.field(
        default=None,
        description=f"Your purchase order or shipment reference ({ONE_LINE}); blank or null: none.",
    )
    idempotency_key: str | None = strawberry.field(default=None, description=IDEMPOTENCY_KEY)


@strawberry.input(
    description="A change to an open receipt (updateReceipt): give what changes; omitted "
    "fields stay as they are."
)
class UpdateReceiptInput:
    id: strawberry.ID = strawberry.field(
        description="The receipt's global ID (`IncomingReceipt.id`); another store's, or one "
        "the key may not use, is NOT_FOUND; a closed or cancelled one is ALREADY_CLOSED."
    )
    quantity: int | None = strawberry.field(
        default=UNSET,
        description=f"Units still expected: 0 to {check.MAX_STOCK_CHANGE:,}; 0 closes the "
        "receipt (nothing more is coming). Null: unchanged.",
    )
    expected_at: dt.date | None = strawberry.field(
        default=UNSET, description=f"The new expected day ({DAY_RANGE}); null: unchanged."
    )
    reference: str | None = strawberry.field(
        default=UNSET,
        description=f"The new reference ({ONE_LINE}); null or blank clears it, omitted "
        "leaves it unchanged.",
    )

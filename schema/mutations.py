"""The Mutation root: each field is one resolver (resolvers.admin, .inventory, .orders).

Inputs are in schema.inputs, payloads in schema.payloads. `mutation` adds the
descriptions of the resolver's arguments, which the resolvers do not carry.
"""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types.field import StrawberryField

from ordergraph.resolvers import admin, inventory, orders, receipts, webhooks

INPUT = "What to change; see the input type for each field's rules."


def mutation(resolver: Any, description: str, **arguments: str) -> Any:
    """The root field of `resolver`, with its description and its arguments' (by Python
    name; `input` has a default)."""
    field: StrawberryField = strawberry.mutation(resolver=resolver, description=description)
    given = {"input": INPUT, **arguments}
    for argument in field.arguments:
        argument.description = given.get(argument.python_name)
    return field


@strawberry.type(
    description="What can be changed. Each mutation answers a payload: what changed, or "
    "`userErrors` saying why nothing did."
)
class Mutation:
    create_store = mutation(
        admin.create_store, "Create a store and a first API key for it (admin token)."
    )
    create_api_key = mutation(
        admin.create_api_key, "Create an API key (admin token); its token is shown only here."
    )
    revoke_api_key = mutation(
        admin.revoke_api_key,
        "Revoke an API key (admin token); it stops working on the next request, and its "
        "open websockets close (4403) within seconds.",
        id="The key's global ID (`ApiKey.id`).",
    )
    upsert_product = mutation(
        inventory.upsert_product,
        "Create a product, or change its title, price, backorder terms or restock date "
        "(INVENTORY). Changing terms does not move stock already allocated or backordered.",
    )
    receive_stock = mutation(
        inventory.receive_stock,
        "Add received units to a product's stock (INVENTORY); they fill waiting order lines "
        "first, oldest first.",
    )
    adjust_stock = mutation(
        inventory.adjust_stock,
        "Correct a product's count on hand (INVENTORY). Going up fills waiting lines like a "
        "receipt; going below `allocated` moves the newest lines' units back to backorder.",
    )
    schedule_receipt = mutation(
        receipts.schedule_receipt,
        "Record stock on its way (INVENTORY): units of a product expected on a day. Open "
        "receipts date the waiting lines (`OrderLine.expectedFillDate`) and lower "
        "`Product.unitsToReorder`; stock itself moves only with receiveStock.",
    )
    update_receipt = mutation(
        receipts.update_receipt,
        "Change an open receipt's quantity still expected, expected day or reference "
        "(INVENTORY); a quantity of 0 closes it.",
    )
    cancel_receipt = mutation(
        receipts.cancel_receipt,
        "Cancel an open receipt (INVENTORY): nothing more is coming on it, and it stops "
        "dating waiting lines. Cancelling again changes nothing.",
        id="The receipt's global ID (`IncomingReceipt.id`).",
    )
    place_order = mutation(
        orders.place_order,
        "Place an order (ORDERS), all or nothing: each line takes available stock and, where "
        "the product's policy allows, backorders the rest.",
    )
    ship_order = mutation(
        orders.ship_order,
        "Ship allocated units of an open order (ORDERS): the lines given, or all of them.",
    )
    cancel_order = mutation(
        orders.cancel_order,
        "Cancel unshipped units of an open order (ORDERS): the lines given, or all of them. "
        "Released stock goes to waiting lines at once.",
    )
    create_webhook_subscription = mutation(
        webhooks.create_webhook_subscription,
        "Create a webhook subscription (WEBHOOKS scope); its signing secret is shown only "
        "in this payload.",
    )
    update_webhook_subscription = mutation(
        webhooks.update_webhook_subscription,
        "Change a subscription's URL, topics or SKU filter, pause or resume it (WEBHOOKS).",
    )
    delete_webhook_subscription = mutation(
        webhooks.delete_webhook_subscription,
        "Delete a webhook subscription and its delivery log (WEBHOOKS).",
        id="The subscription's global ID (`WebhookSubscription.id`).",
    )
    rotate_webhook_secret = mutation(
        webhooks.rotate_webhook_secret,
        "A new signing secret (WEBHOOKS); the old one keeps signing (as a second v1 "
        "signature) for 24 h.",
        id="The subscription's global ID (`WebhookSubscription.id`).",
    )
    redeliver_webhook = mutation(
        webhooks.redeliver_webhook,
        "Deliver again every matching event after the cursor, in order (WEBHOOKS): the "
        "subscription's cursor moves back there.",
    )
    redeliver_webhook_event = mutation(
        webhooks.redeliver_webhook_event,
        "Send one event that was already delivered again (WEBHOOKS), then go on from "
        "where the cursor stood: later events are not sent again.",
    )

"""The Mutation root: each field is one resolver (resolvers.admin, .inventory, .orders).

Inputs are in schema.inputs, payloads in schema.payloads.
"""

from __future__ import annotations

import strawberry

from ordergraph.resolvers import admin, inventory, orders, webhooks


@strawberry.type
class Mutation:
    create_store = strawberry.mutation(
        resolver=admin.create_store,
        description="Create a store and a first API key for it (admin token).",
    )
    create_api_key = strawberry.mutation(
        resolver=admin.create_api_key,
        description="Create an API key; its token is shown only here.",
    )
    revoke_api_key = strawberry.mutation(
        resolver=admin.revoke_api_key,
        description="Revoke an API key; it stops working on the next request.",
    )
    upsert_product = strawberry.mutation(resolver=inventory.upsert_product)
    receive_stock = strawberry.mutation(resolver=inventory.receive_stock)
    adjust_stock = strawberry.mutation(resolver=inventory.adjust_stock)
    place_order = strawberry.mutation(resolver=orders.place_order)
    ship_order = strawberry.mutation(resolver=orders.ship_order)
    cancel_order = strawberry.mutation(resolver=orders.cancel_order)
    create_webhook_subscription = strawberry.mutation(
        resolver=webhooks.create_webhook_subscription,
        description="Create a webhook subscription (WEBHOOKS scope); its signing secret "
        "is shown only in this payload.",
    )
    update_webhook_subscription = strawberry.mutation(
        resolver=webhooks.update_webhook_subscription,
        description="Change a subscription's URL or topics, pause or resume it (WEBHOOKS).",
    )
    delete_webhook_subscription = strawberry.mutation(
        resolver=webhooks.delete_webhook_subscription,
        description="Delete a webhook subscription and its delivery log (WEBHOOKS).",
    )
    rotate_webhook_secret = strawberry.mutation(
        resolver=webhooks.rotate_webhook_secret,
        description="A new signing secret (WEBHOOKS); the old one keeps signing (as a "
        "second v1 signature) for 24 h.",
    )
    redeliver_webhook = strawberry.mutation(
        resolver=webhooks.redeliver_webhook,
        description="Deliver again every matching event after the cursor, in order "
        "(WEBHOOKS): the subscription's cursor moves back there.",
    )

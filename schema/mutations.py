"""The Mutation root: each field is one resolver (resolvers.admin, .inventory, .orders).

Inputs are in schema.inputs, payloads in schema.payloads.
"""

from __future__ import annotations

import strawberry

from ordergraph.resolvers import admin, inventory, orders


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

"""Setup through the API for the benches: a store with one product in stock, made with
the admin token, and the placeOrder mutation they send."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx

SKU = "BENCH-1"
STOCK = 1_000_000_000

PLACE_ORDER = """
mutation($input: PlaceOrderInput!) {
  placeOrder(input: $input) { order { id number } userErrors { code message } }
}"""


def gql(
    url: str, query: str, variables: dict[str, Any], token: str, field_name: str
) -> dict[str, Any]:
    response = httpx.post(
        f"{url}/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    body = response.json()
    if body.get("errors"):
        raise RuntimeError(f"{field_name}: {body['errors']}")
    payload: dict[str, Any] = body["data"][field_name]
    if payload.get("userErrors"):
        raise RuntimeError(f"{field_name}: {payload['userErrors']}")
    return payload


@dataclass
class BenchStore:
    gid: str
    handle: str
    token: str


def create_store(url: str, admin_token: str, policy: str = "DENY") -> BenchStore:
    """A new store (UTC, USD) with the default backorder policy given, and its token."""
    handle = "bench-" + uuid.uuid4().hex[:10]
    created = gql(
        url,
        """mutation($input: CreateStoreInput!) { createStore(input: $input) {
             store { id handle } token userErrors { code message } } }""",
        {
            "input": {
                "handle": handle,
                "name": "Benchmark store",
                "currencyCode": "USD",
                "timezone": "UTC",
                "defaultBackorderPolicy": policy,
            }
        },
        admin_token,
        "createStore",
    )
    return BenchStore(created["store"]["id"], handle, created["token"])


def add_product(
    url: str, store: BenchStore, sku: str, title: str, price: str, stock: int = 0
) -> None:
    """A product of the store, with `stock` units received (none: out of stock)."""
    gql(
        url,
        """mutation($input: UpsertProductInput!) { upsertProduct(input: $input) {
             product { id } userErrors { code message } } }""",
        {"input": {"storeId": store.gid, "sku": sku, "title": title, "price": price}},
        store.token,
        "upsertProduct",
    )
    if stock:
        gql(
            url,
            """mutation($input: ReceiveStockInput!) { receiveStock(input: $input) {
                 product { onHand } userErrors { code message } } }""",
            {"input": {"storeId": store.gid, "sku": sku, "quantity": stock}},
            store.token,
            "receiveStock",
        )


def make_store(url: str, admin_token: str) -> BenchStore:
    """A store with one product (SKU) in ample stock."""
    store = create_store(url, admin_token)
    add_product(url, store, SKU, "Benchmark item", "9.99", STOCK)
    return store

"""A small GraphQL client for the tests, speaking HTTP to the app."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from ordergraph.storage.db import Database

ORDER_FIELDS = """
  id number status stockStatus inBacklog isBackordered isOverdue placedAt
  requestedShipDate externalId customerRef expectedShipDate
  total { amount currencyCode } backorderedValue { amount currencyCode }
  lines { id sku quantity allocated backordered shipped cancelled unitPrice { amount } }
"""
PRODUCT_FIELDS = """
  id sku title onHand allocated available backordered availableToSell
  backorderPolicy backorderLimit restockDate price { amount currencyCode }
"""
ERRORS = "userErrors { field message code }"


class GraphQLFailure(AssertionError):
    pass


@dataclass
class StoreHandle:
    id: str
    handle: str
    token: str


class Api:
    def __init__(self, http: httpx.AsyncClient, admin_token: str, db: Database | None) -> None:
        self.http = http
        self.admin_token = admin_token
        self.db = db

    async def raw(
        self, query: str, variables: dict[str, Any] | None = None, token: str | None = None
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        body: dict[str, Any] = response.json()
        return body

    async def gql(
        self, query: str, variables: dict[str, Any] | None = None, token: str | None = None
    ) -> dict[str, Any]:
        body = await self.raw(query, variables, token)
        if body.get("errors"):
            raise GraphQLFailure(body["errors"])
        data: dict[str, Any] = body["data"]
        return data

    async def create_store(
        self, *, policy: str = "DENY", timezone: str = "UTC", currency: str = "USD"
    ) -> StoreHandle:
        handle = "s-" + uuid.uuid4().hex[:12]
        data = await self.gql(
            """mutation($input: CreateStoreInput!) { createStore(input: $input) {
                 store { id handle } token userErrors { field message code } } }""",
            {
                "input": {
                    "handle": handle,
                    "name": f"Store {handle}",
                    "currencyCode": currency,
                    "timezone": timezone,
                    "defaultBackorderPolicy": policy,
                }
            },
            token=self.admin_token,
        )
        payload = data["createStore"]
        assert payload["userErrors"] == [], payload
        return StoreHandle(payload["store"]["id"], handle, payload["token"])

    async def upsert(self, store: StoreHandle, sku: str, **fields: Any) -> dict[str, Any]:
        fields.setdefault("title", f"Product {sku}")
        fields.setdefault("price", "10.00")
        data = await self.gql(
            f"""mutation($input: UpsertProductInput!) {{ upsertProduct(input: $input) {{
                 product {{ {PRODUCT_FIELDS} }} {ERRORS} }} }}""",
            {"input": {"storeId": store.id, "sku": sku, **fields}},
            token=store.token,
        )
        result: dict[str, Any] = data["upsertProduct"]
        return result

    async def product(self, store: StoreHandle, sku: str) -> dict[str, Any]:
        data = await self.gql(
            f"""query($h: String!, $sku: String!) {{ store(handle: $h) {{
                 product(sku: $sku) {{ {PRODUCT_FIELDS} }} }} }}""",
            {"h": store.handle, "sku": sku},
            token=store.token,
        )
        product: dict[str, Any] = data["store"]["product"]
        return product

    async def receive(
        self, store: StoreHandle, sku: str, quantity: int, key: str | None = None
    ) -> dict[str, Any]:
        data = await self.gql(
            f"""mutation($input: ReceiveStockInput!) {{ receiveStock(input: $input) {{
                 product {{ {PRODUCT_FIELDS} }}
                 filledLines {{ id sku allocated backordered order {{ number }} }}
                 {ERRORS} }} }}""",
            {
                "input": {
                    "storeId": store.id,
                    "sku": sku,
                    "quantity": quantity,
                    "idempotencyKey": key,
                }
            },
            token=store.token,
        )
        result: dict[str, Any] = data["receiveStock"]
        return result

    async def adjust(self, store: StoreHandle, sku: str, **fields: Any) -> dict[str, Any]:
        fields.setdefault("reason", "cycle count")
        data = await self.gql(
            f"""mutation($input: AdjustStockInput!) {{ adjustStock(input: $input) {{
                 product {{ {PRODUCT_FIELDS} }} {ERRORS} }} }}""",
            {"input": {"storeId": store.id, "sku": sku, **fields}},
            token=store.token,
        )
        result: dict[str, Any] = data["adjustStock"]
        return result

    async def place(
        self, store: StoreHandle, lines: list[tuple[str, int]], **fields: Any
    ) -> dict[str, Any]:
        data = await self.gql(
            f"""mutation($input: PlaceOrderInput!) {{ placeOrder(input: $input) {{
                 order {{ {ORDER_FIELDS} }} {ERRORS} }} }}""",
            {
                "input": {
                    "storeId": store.id,
                    "lines": [{"sku": s, "quantity": q} for s, q in lines],
                    **fields,
                }
            },
            token=store.token,
        )
        result: dict[str, Any] = data["placeOrder"]
        return result

    async def ship(
        self,
        store: StoreHandle,
        order_id: str,
        lines: list[tuple[str, int]] | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        data = await self.gql(
            f"""mutation($input: ShipOrderInput!) {{ shipOrder(input: $input) {{
                 order {{ {ORDER_FIELDS} }} {ERRORS} }} }}""",
            {
                "input": {
                    "orderId": order_id,
                    "lines": None
                    if lines is None
                    else [{"lineId": lid, "quantity": q} for lid, q in lines],
                    **fields,
                }
            },
            token=store.token,
        )
        result: dict[str, Any] = data["shipOrder"]
        return result

    async def cancel(
        self,
        store: StoreHandle,
        order_id: str,
        reason: str = "CUSTOMER_REQUEST",
        lines: list[tuple[str, int]] | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        data = await self.gql(
            f"""mutation($input: CancelOrderInput!) {{ cancelOrder(input: $input) {{
                 order {{ {ORDER_FIELDS} }} {ERRORS} }} }}""",
            {
                "input": {
                    "orderId": order_id,
                    "reason": reason,
                    "lines": None
                    if lines is None
                    else [{"lineId": lid, "quantity": q} for lid, q in lines],
                    **fields,
                }
            },
            token=store.token,
        )
        result: dict[str, Any] = data["cancelOrder"]
        return result

    async def order(self, store: StoreHandle, number: int) -> dict[str, Any]:
        data = await self.gql(
            f"""query($h: String!, $n: Int!) {{ store(handle: $h) {{ order(number: $n) {{
                 {ORDER_FIELDS} events {{ nodes {{ type status stockStatus cursor }} }} }} }} }}""",
            {"h": store.handle, "n": number},
            token=store.token,
        )
        order: dict[str, Any] = data["store"]["order"]
        return order

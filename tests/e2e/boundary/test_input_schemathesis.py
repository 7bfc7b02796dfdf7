"""Schemathesis over the GraphQL schema, against a real server on each database.

Queries and mutations, positive and negative cases, from a fixed seed and a bounded
number of examples (400 per database, about 20 s each here; ORDERGRAPH_FUZZ_EXAMPLES
changes it), sent with a real API key holding every scope (admin mutations with the
admin token). Arguments naming a store, order, line, handle or SKU get the real ones most
of the time, so generated operations reach the data. No response may be a server error: no 5xx,
no "Internal server error", no INTERNAL_SERVER_ERROR; and the server logs no traceback.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import graphql
import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from schemathesis.generation import GenerationMode

from tests.conftest import ADMIN_TOKEN, ROOT, LiveServer, start_server

EXAMPLES = int(os.environ.get("ORDERGRAPH_FUZZ_EXAMPLES", "400"))
SEED = 20270124
ADMIN_FIELDS = {"createStore", "createApiKey", "revokeApiKey"}
MASKED = "Internal server error"
# Generous limits: the run checks input handling, not the throttle.
SERVER_ENV = {
    "ORDERGRAPH_RATE_LIMIT_CAPACITY": "100000000",
    "ORDERGRAPH_RATE_LIMIT_RESTORE_PER_SECOND": "100000000",
    "ORDERGRAPH_ANONYMOUS_REQUESTS_PER_MINUTE": "100000",
    "ORDERGRAPH_LOG_LEVEL": "WARNING",
}

SCHEMA = schemathesis.graphql.from_path(ROOT / "schema.graphql")


@pytest.fixture(params=["sqlite", "postgres"])
def fuzz_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveServer]:
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    server = start_server(url, tmp_path / "server.log", SERVER_ENV)
    try:
        yield server
    finally:
        server.stop()


def _gql(http: httpx.Client, token: str, query: str, variables: dict[str, Any]) -> Any:
    response = http.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {token}"},
    )
    body = response.json()
    assert not body.get("errors"), body
    return body["data"]


def _full_key(http: httpx.Client) -> dict[str, str]:
    """A fresh store with a few products and an order; a key on it with every scope.
    Returns the token and the store's real handle and IDs, by argument name."""
    handle = f"fuzz-{time.time_ns() % 10**9}"
    store = _gql(
        http,
        ADMIN_TOKEN,
        """mutation($input: CreateStoreInput!) { createStore(input: $input) {
             store { id } userErrors { message } } }""",
        {
            "input": {
                "handle": handle,
                "name": "Fuzz",
                "currencyCode": "USD",
                "timezone": "Europe/Paris",
                "defaultBackorderPolicy": "ALLOW",
            }
        },
    )["createStore"]["store"]["id"]
    token = _gql(
        http,
        ADMIN_TOKEN,
        """mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) {
             token userErrors { message } } }""",
        {"input": {"name": "fuzz", "storeIds": [store], "scopes": ["READ", "ORDERS", "INVENTORY"]}},
    )["createApiKey"]["token"]
    for sku in ("A", "B"):
        _gql(
            http,
            token,
            """mutation($input: UpsertProductInput!) { upsertProduct(input: $input) {
                 userErrors { message } } }""",
            {"input": {"storeId": store, "sku": sku, "title": sku, "price": "1.50"}},
        )
    order = _gql(
        http,
        token,
        """mutation($input: PlaceOrderInput!) { placeOrder(input: $input) {
             order { id lines { id } } userErrors { message } } }""",
        {"input": {"storeId": store, "lines": [{"sku": "A", "quantity": 2}]}},
    )["placeOrder"]["order"]
    return {
        "token": token,
        "handle": handle,
        "storeId": store,
        "orderId": order["id"],
        "lineId": order["lines"][0]["id"],
        "sku": "A",
    }


# Arguments and input fields given a real value (most of the time), so that generated
# operations reach the store's data instead of stopping at "not found".
REAL_ARGUMENTS: dict[str, tuple[str, ...]] = {
    "handle": ("handle",),
    "sku": ("sku",),
    "id": ("storeId", "orderId", "lineId"),
}
REAL_ARGUMENTS |= {"ids": ("storeId", "orderId", "lineId")}
REAL_FIELDS: dict[str, tuple[str, ...]] = {
    "storeId": ("storeId",),
    "storeIds": ("storeId",),
    "orderId": ("orderId",),
}
REAL_FIELDS |= {"lineId": ("lineId",), "sku": ("sku",)}


class _Realistic(graphql.Visitor):
    def __init__(self, known: dict[str, str], rnd: Any) -> None:
        super().__init__()
        self.known = known
        self.rnd = rnd

    def _value(self, name: str, node: Any, table: dict[str, tuple[str, ...]]) -> Any:
        keys = table.get(name)
        if keys is None or self.rnd.random() > 0.8:
            return None
        value: Any = graphql.StringValueNode(value=self.known[self.rnd.choice(keys)])
        if name in ("storeIds", "ids"):
            value = graphql.ListValueNode(values=(value,))
        return node.__class__(name=node.name, value=value)

    def enter_argument(self, node: graphql.ArgumentNode, *_: Any) -> Any:
        return self._value(node.name.value, node, REAL_ARGUMENTS)

    def enter_object_field(self, node: graphql.ObjectFieldNode, *_: Any) -> Any:
        return self._value(node.name.value, node, REAL_FIELDS)


def realistic(body: str, known: dict[str, str], rnd: Any) -> str:
    try:
        document = graphql.parse(body)
    except graphql.GraphQLError:
        return body
    return graphql.print_ast(graphql.visit(document, _Realistic(known, rnd)))


def _server_error(response: httpx.Response) -> str | None:
    if response.status_code >= 500:
        return f"HTTP {response.status_code}"
    if MASKED in response.text or "INTERNAL_SERVER_ERROR" in response.text:
        return "internal error in the body"
    return None


def test_schemathesis_finds_no_server_error(fuzz_server: LiveServer) -> None:
    strategy = st.one_of(
        SCHEMA.as_strategy(GenerationMode.POSITIVE),
        SCHEMA.as_strategy(GenerationMode.NEGATIVE),
    )
    failures: list[str] = []
    sent = 0
    with httpx.Client(base_url=fuzz_server.url, timeout=60) as http:
        known = _full_key(http)

        @settings(
            max_examples=EXAMPLES,
            database=None,
            deadline=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @seed(SEED)
        @given(case=strategy, rnd=st.randoms(use_true_random=False))
        def fuzz(case: Any, rnd: Any) -> None:
            nonlocal sent
            field = case.operation.definition.field_name
            who = ADMIN_TOKEN if field in ADMIN_FIELDS else known["token"]
            query = realistic(case.body, known, rnd)
            response = http.post(
                "/graphql",
                content=json.dumps({"query": query}, ensure_ascii=True),
                headers={"Authorization": f"Bearer {who}", "Content-Type": "application/json"},
            )
            sent += 1
            problem = _server_error(response)
            if problem is not None:
                failures.append(f"{problem}: {query!r} -> {response.text[:300]}")

        fuzz()

    log = fuzz_server.log.read_text(errors="replace")
    assert sent >= EXAMPLES // 2, sent
    assert not failures, "\n".join(failures[:10])
    assert "Traceback" not in log, log[-3000:]

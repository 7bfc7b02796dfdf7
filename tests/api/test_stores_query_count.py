"""`stores` runs a fixed number of SQL statements, however many stores the page holds."""

from __future__ import annotations

from ordergraph.storage.db import Database
from tests.api.test_schema_and_queries_count import counting_statements
from tests.client import Api
from tests.conftest import ADMIN_TOKEN, app_client

CREATE_KEY = """mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) {
  token userErrors { field message code } } }"""
STORES = """query($first: Int!) { stores(first: $first) {
  nodes { id handle name currencyCode } pageInfo { hasNextPage } } }"""


async def test_a_page_of_stores_runs_the_same_statements_for_any_size(api: Api) -> None:
    stores = [await api.create_store() for _ in range(30)]
    data = await api.gql(
        CREATE_KEY,
        {"input": {"name": "reader", "storeIds": [s.id for s in stores], "scopes": ["READ"]}},
        token=ADMIN_TOKEN,
    )
    assert data["createApiKey"]["userErrors"] == []
    token = data["createApiKey"]["token"]
    assert api.db is not None
    # Without the token cache, each request looks its token up: both counts include it.
    async with app_client(api.db, auth_cache_seconds=0) as http:
        reader = Api(http, ADMIN_TOKEN, api.db)
        counts = {first: await _selects(reader, api.db, token, first) for first in (2, 30)}
    assert counts[2] == counts[30], counts
    # token (3) and the page of stores
    assert counts[30] <= 4, counts


async def _selects(api: Api, db: Database, token: str, first: int) -> int:
    with counting_statements(db) as statements:
        data = await api.gql(STORES, {"first": first}, token=token)
    nodes = data["stores"]["nodes"]
    assert len(nodes) == first
    assert all(node["name"] and node["currencyCode"] == "USD" for node in nodes)
    return len([s for s in statements if s.lstrip().upper().startswith("SELECT")])

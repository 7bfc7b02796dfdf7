"""Bad input, malformed requests, limits and faults: what a client sees."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from ordergraph.app import create_app
from ordergraph.settings import Settings
from tests.client import Api, GraphQLFailure
from tests.conftest import ADMIN_TOKEN


async def test_invalid_order_input_gets_field_paths_and_changes_nothing(api: Api) -> None:
    store = await api.create_store(policy="ALLOW")
    await api.upsert(store, "A")
    result = await api.place(store, [("A", 1), ("A", 0), ("", 3)])
    assert result["order"] is None
    assert {(tuple(e["field"]), e["code"]) for e in result["userErrors"]} == {
        (("input", "lines", "1", "quantity"), "INVALID"),
        (("input", "lines", "2", "sku"), "INVALID"),
    }
    too_many = await api.place(store, [("A", 10_001)])
    assert too_many["userErrors"][0]["code"] == "INVALID"
    many_lines = await api.place(store, [(f"S{i}", 1) for i in range(101)])
    assert many_lines["userErrors"][0]["field"] == ["input", "lines"]
    unknown = await api.place(store, [("A", 1), ("NOPE", 1)])
    assert unknown["userErrors"] == [
        {
            "field": ["input", "lines", "1", "sku"],
            "message": "no product with sku 'NOPE'",
            "code": "NOT_FOUND",
        }
    ]
    product = await api.product(store, "A")
    assert (product["allocated"], product["backordered"]) == (0, 0)
    orders = await api.gql(
        "query($h: String!) { store(handle: $h) { orders { totalCount } } }",
        {"h": store.handle},
        token=store.token,
    )
    assert orders["store"]["orders"]["totalCount"] == 0


async def test_deny_policy_refuses_the_whole_order(api: Api) -> None:
    store = await api.create_store()
    await api.upsert(store, "A")
    await api.upsert(store, "B")
    await api.receive(store, "A", 5)
    await api.receive(store, "B", 1)
    refused = await api.place(store, [("A", 2), ("B", 2)])
    assert [e["code"] for e in refused["userErrors"]] == ["INSUFFICIENT_STOCK"]
    assert refused["userErrors"][0]["field"] == ["input", "lines", "1", "quantity"]
    assert (await api.product(store, "A"))["available"] == 5


async def test_product_and_store_validation(api: Api) -> None:
    store = await api.create_store()
    missing = await api.upsert(store, "NEW", title=None, price=None)
    assert {e["field"][-1] for e in missing["userErrors"]} == {"title", "price"}
    limit = await api.upsert(store, "L", backorderPolicy="LIMIT")
    assert limit["userErrors"][0]["field"] == ["input", "backorderLimit"]
    negative = await api.upsert(store, "P", price="-1")
    assert negative["userErrors"][0]["code"] == "INVALID"
    created = await api.upsert(store, "L", backorderPolicy="LIMIT", backorderLimit=5)
    assert created["product"]["availableToSell"] == 5
    renamed = await api.upsert(store, "L", title="Renamed", price=None, backorderLimit=2)
    assert renamed["product"]["title"] == "Renamed"
    assert renamed["product"]["backorderLimit"] == 2
    assert renamed["product"]["price"]["amount"] == "10.00"

    mutation = """mutation($input: CreateStoreInput!) { createStore(input: $input) {
        store { id } userErrors { field code } } }"""
    base = {"handle": store.handle, "name": "x", "currencyCode": "USD", "timezone": "UTC"}
    cases = [
        ({}, ["input", "handle"], "DUPLICATE"),
        ({"handle": "Bad Handle"}, ["input", "handle"], "INVALID"),
        ({"handle": "fresh-1", "currencyCode": "XXY"}, ["input", "currencyCode"], "INVALID"),
        ({"handle": "fresh-2", "timezone": "Mars/Base"}, ["input", "timezone"], "INVALID"),
    ]
    for change, field, code in cases:
        data = await api.gql(mutation, {"input": {**base, **change}}, token=ADMIN_TOKEN)
        assert data["createStore"]["store"] is None
        assert data["createStore"]["userErrors"] == [{"field": field, "code": code}]


async def test_adjust_stock_needs_exactly_one_of_delta_and_set_on_hand(api: Api) -> None:
    store = await api.create_store()
    await api.upsert(store, "A")
    both = await api.adjust(store, "A", delta=1, setOnHand=3)
    assert both["userErrors"][0]["code"] == "INVALID"
    neither = await api.adjust(store, "A")
    assert neither["userErrors"][0]["code"] == "INVALID"
    below_zero = await api.adjust(store, "A", delta=-1)
    assert below_zero["userErrors"][0]["field"] == ["input", "delta"]
    ok = await api.adjust(store, "A", setOnHand=4)
    assert ok["product"]["onHand"] == 4


async def test_malformed_queries_get_standard_graphql_errors(api: Api) -> None:
    store = await api.create_store()
    body = await api.raw("{ store(handle: ", token=store.token)
    assert "Syntax Error" in body["errors"][0]["message"]
    body = await api.raw('{ store(handle: "x") { nope } }', token=store.token)
    assert "Cannot query field 'nope'" in body["errors"][0]["message"]


async def test_depth_alias_and_token_limits_refuse_abusive_queries(api: Api) -> None:
    store = await api.create_store()
    deep = (
        '{ store(handle: "x") { ' + "orders { nodes { store { " * 5 + "id" + " } } }" * 5 + " } }"
    )
    body = await api.raw(deep, token=store.token)
    assert "exceeds maximum operation depth" in body["errors"][0]["message"]
    aliases = "{ " + " ".join(f'a{i}: store(handle: "x") {{ id }}' for i in range(31)) + " }"
    body = await api.raw(aliases, token=store.token)
    assert "aliases" in body["errors"][0]["message"]
    tokens = "{ " + " ".join("__typename" for _ in range(6000)) + " }"
    body = await api.raw(tokens, token=store.token)
    assert "token" in body["errors"][0]["message"].lower()


async def test_query_batching_is_off(api: Api) -> None:
    store = await api.create_store()
    response = await api.http.post(
        "/graphql",
        json=[{"query": "{ __typename }"}, {"query": "{ __typename }"}],
        headers={"Authorization": f"Bearer {store.token}"},
    )
    assert response.status_code == 400


async def test_graphiql_opens_in_a_browser(api: Api) -> None:
    response = await api.http.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()


async def test_unexpected_faults_are_masked_and_logged_with_request_id(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A database file in a folder that does not exist: every query fails inside the app.
    broken = f"sqlite+aiosqlite:///{tmp_path}/missing/dir/db.sqlite"
    app = create_app(Settings(database_url=broken, admin_token=ADMIN_TOKEN))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        with caplog.at_level(logging.ERROR, logger="ordergraph.errors"):
            response = await http.post(
                "/graphql",
                json={"query": "{ stores { nodes { id } } }"},
                headers={"Authorization": "Bearer og_some_token"},
            )
    body = response.json()
    assert body["errors"][0]["message"] == "Internal server error"
    assert "sqlite" not in response.text.lower()
    assert "traceback" not in response.text.lower()
    request_id = response.headers["x-request-id"]
    assert any(getattr(r, "request_id", None) == request_id for r in caplog.records)
    assert any(r.exc_info for r in caplog.records)


async def test_unknown_store_id_is_not_found(api: Api) -> None:
    store = await api.create_store()
    for bad in ("garbage", "U3RvcmU6OTk5OTk5"):  # not an id; a store that does not exist
        data = await api.gql(
            """mutation($input: ReceiveStockInput!) { receiveStock(input: $input) {
                 product { id } userErrors { field message code } } }""",
            {"input": {"storeId": bad, "sku": "A", "quantity": 1}},
            token=store.token,
        )
        assert data["receiveStock"]["userErrors"] == [
            {"field": ["input", "storeId"], "message": "store not found", "code": "NOT_FOUND"}
        ]


async def test_missing_token_is_unauthenticated(api: Api) -> None:
    with pytest.raises(GraphQLFailure) as failure:
        await api.gql("{ stores { nodes { id } } }")
    assert failure.value.args[0][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_queries_also_work_over_get_but_mutations_do_not(api: Api) -> None:
    store = await api.create_store()
    auth = {"Authorization": f"Bearer {store.token}"}
    query = "query($h: String!) { store(handle: $h) { handle } }"
    response = await api.http.get(
        "/graphql", params={"query": query, "variables": f'{{"h": "{store.handle}"}}'}, headers=auth
    )
    assert response.json()["data"] == {"store": {"handle": store.handle}}
    mutation = 'mutation { revokeApiKey(id: "x") { userErrors { code } } }'
    refused = await api.http.get("/graphql", params={"query": mutation}, headers=auth)
    assert refused.status_code == 405  # GraphQL over HTTP: Method Not Allowed, use POST
    assert refused.headers["allow"] == "POST"
    assert "mutations are not allowed" in refused.text.lower()
    assert refused.json()["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"

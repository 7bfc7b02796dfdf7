"""GraphiQL at /graphql: its starting document matches the served schema and runs; it and
introspection can be switched off."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from graphql import FragmentDefinitionNode, OperationDefinitionNode, parse, validate

from ordergraph.app import create_app
from ordergraph.graphiql import (
    EXAMPLE_HEADERS,
    EXAMPLES,
    example_variables,
    render_page,
    start_state,
)
from ordergraph.schema.build import build_schema
from ordergraph.settings import Settings, SettingsError
from ordergraph.storage.db import Database
from tests.client import Api
from tests.conftest import ADMIN_TOKEN

PRICE = Decimal("12.50")
BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def operations() -> dict[str, OperationDefinitionNode]:
    document = parse(EXAMPLES)
    found = {}
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            assert definition.name is not None, "every example has a name to pick it by"
            found[definition.name.value] = definition
    return found


def fields(node: Any) -> set[str]:
    """Every field name selected anywhere below a node (fragments by name too)."""
    names: set[str] = set()
    selection_set = getattr(node, "selection_set", None)
    for selection in selection_set.selections if selection_set else []:
        name = getattr(selection, "name", None)
        if name is not None:
            names.add(name.value)
        names |= fields(selection)
    return names


def test_every_example_operation_validates_against_the_served_schema() -> None:
    schema = build_schema()._schema
    # GraphiQL sends the whole document with the picked operation's name.
    assert validate(schema, parse(EXAMPLES)) == []


def test_the_examples_cover_tallies_backorders_placing_and_a_subscription() -> None:
    ops = operations()
    kinds = {name: op.operation.value for name, op in ops.items()}
    assert kinds["Tallies"] == "query"
    assert kinds["Backorders"] == "query"
    assert kinds["PlaceOrder"] == "mutation"
    assert kinds["OrderEvents"] == "subscription"
    tally = next(d for d in parse(EXAMPLES).definitions if isinstance(d, FragmentDefinitionNode))
    assert tally.name.value == "Tally"
    assert {"backlog", "backorders", "overdue", "overdueBackorders"} <= fields(ops["Tallies"])
    assert {"orders", "units", "value"} <= fields(tally)
    assert "isBackordered: true" in EXAMPLES
    assert "pageInfo" in fields(ops["Backorders"])
    assert "placeOrder" in fields(ops["PlaceOrder"])
    assert "orderEvents" in fields(ops["OrderEvents"])
    assert kinds["WhatWaitingCosts"] == "query"
    costs = fields(ops["WhatWaitingCosts"])
    assert {"backorderOutcomes", "backorderLeaders", "lostRevenue", "wait"} <= costs
    assert {"backorderRate", "stillWaiting", "unitsToReorder"} <= costs
    assert "backorderLeaders(by: LOST_REVENUE" in EXAMPLES


def test_the_variables_open_on_the_last_30_whole_days_for_what_waiting_costs() -> None:
    now = dt.datetime(2026, 3, 9, 23, 59, tzinfo=dt.UTC)
    variables = json.loads(start_state(now)["variables"])
    assert variables["from"] == "2026-02-08T00:00:00Z"
    assert variables["to"] == "2026-03-10T00:00:00Z"  # the end of today
    assert json.loads(start_state(now + dt.timedelta(minutes=1))["variables"])["to"] == (
        "2026-03-11T00:00:00Z"
    )


def page_state(page: str) -> dict[str, str]:
    match = re.search(
        r'<script id="ordergraph-start" type="application/json">(.*?)</script>', page, re.S
    )
    assert match is not None
    state: dict[str, str] = json.loads(match.group(1))
    return state


async def test_a_browser_gets_graphiql_opening_on_the_examples_and_the_header_tab(
    api: Api,
) -> None:
    response = await api.http.get("/graphql", headers=BROWSER)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "graphiql" in page.lower()
    assert "<title>ordergraph" in page
    state = page_state(page)
    asked = dt.datetime.now(dt.UTC)
    # the period of WhatWaitingCosts ends with the day the page was served
    assert state in (start_state(asked), start_state(asked - dt.timedelta(minutes=5)))
    assert state["query"] == EXAMPLES
    assert (
        json.loads(state["headers"])
        == EXAMPLE_HEADERS
        == {"Authorization": "Bearer <paste a token here>"}
    )
    assert set(json.loads(state["variables"])) >= {"handle", "storeId", "sku"}
    # The subscription gets the token too (a websocket has no headers tab).
    assert "wsConnectionParams" in page


def test_nothing_in_the_start_state_can_end_the_script_early() -> None:
    page = render_page()
    start = page.index('<script id="ordergraph-start"')
    end = page.index("</script>", start)
    embedded = page[start:end]
    assert "<" not in embedded[embedded.index(">") + 1 :]  # escaped as \u003c
    assert "\\u003c" in embedded  # the examples' "<paste a token here>", escaped


async def test_the_example_queries_and_mutation_run_against_a_real_store(api: Api) -> None:
    store = await api.create_store(policy="ALLOW")
    await api.upsert(store, "MUG", price=str(PRICE))
    variables = {"handle": store.handle, "storeId": store.id, "sku": "MUG", "quantity": 2}

    async def run(name: str) -> dict[str, Any]:
        response = await api.http.post(
            "/graphql",
            json={"query": EXAMPLES, "operationName": name, "variables": variables},
            headers={"Authorization": f"Bearer {store.token}"},
        )
        body: dict[str, Any] = response.json()
        assert "errors" not in body, (name, body)
        data: dict[str, Any] = body["data"]
        return data

    assert store.id in [s["id"] for s in (await run("Stores"))["stores"]["nodes"]]
    placed = (await run("PlaceOrder"))["placeOrder"]
    assert placed["userErrors"] == []
    assert placed["order"]["lines"][0]["backordered"] == 2
    tallies = (await run("Tallies"))["store"]["backlog"]
    assert tallies["backorders"]["orders"] == 1
    assert tallies["backorders"]["units"] == 2
    page = (await run("Backorders"))["store"]["orders"]
    assert [o["number"] for o in page["nodes"]] == [placed["order"]["number"]]

    # The customer will not wait: the two waiting mugs are lost revenue, within the
    # period the Variables tab opens on.
    variables.update({k: v for k, v in example_variables().items() if k in ("from", "to")})
    declined = await api.cancel(store, placed["order"]["id"], "CUSTOMER_DECLINED_BACKORDER")
    assert declined["userErrors"] == []
    costs = (await run("WhatWaitingCosts"))["store"]
    assert Decimal(costs["backorderOutcomes"]["lostRevenue"]["amount"]) == 2 * PRICE
    assert costs["backorderOutcomes"]["ordersPlaced"] == 1
    assert costs["backorderOutcomes"]["backorderRate"] == 1
    [leader] = costs["backorderLeaders"]
    assert leader["product"]["sku"] == "MUG"
    assert Decimal(leader["outcomes"]["lostRevenue"]["amount"]) == 2 * PRICE


@pytest.fixture
async def locked_down(database: Database) -> AsyncIterator[httpx.AsyncClient]:
    """The app as production would run it: no GraphiQL, no introspection."""
    settings = Settings.from_env(
        {
            "ORDERGRAPH_DATABASE_URL": database.url,
            "ORDERGRAPH_ADMIN_TOKEN": ADMIN_TOKEN,
            "ORDERGRAPH_GRAPHIQL": "false",
            "ORDERGRAPH_INTROSPECTION": "off",
        }
    )
    app = create_app(settings, db=database)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        yield http


async def test_with_graphiql_off_a_browser_gets_404_and_the_api_still_answers(
    locked_down: httpx.AsyncClient, api: Api
) -> None:
    response = await locked_down.get("/graphql", headers=BROWSER)
    assert response.status_code == 404
    assert "graphiql" not in response.text.lower()
    store = await api.create_store()
    response = await locked_down.post(
        "/graphql",
        json={
            "query": "query($h: String!) { store(handle: $h) { handle } }",
            "variables": {"h": store.handle},
        },
        headers={"Authorization": f"Bearer {store.token}"},
    )
    assert response.json()["data"] == {"store": {"handle": store.handle}}


@pytest.mark.parametrize(
    "query",
    [
        "{ __schema { queryType { name } } }",
        '{ __type(name: "Store") { fields { name } } }',
        "query Sneaky { stores(first: 1) { nodes { id } } __schema { types { name } } }",
    ],
)
async def test_with_introspection_off_schema_queries_are_refused_clearly(
    locked_down: httpx.AsyncClient, api: Api, query: str
) -> None:
    body = (await locked_down.post("/graphql", json={"query": query})).json()
    assert body.get("data") is None
    assert "introspection has been disabled" in body["errors"][0]["message"]
    # With the default settings, the same document is answered.
    store = await api.create_store()
    open_body = (
        await api.http.post(
            "/graphql", json={"query": query}, headers={"Authorization": f"Bearer {store.token}"}
        )
    ).json()
    assert "errors" not in open_body, open_body


async def test_with_introspection_off_typename_still_works(
    locked_down: httpx.AsyncClient,
) -> None:
    body = (await locked_down.post("/graphql", json={"query": "{ __typename }"})).json()
    assert body["data"] == {"__typename": "Query"}
    assert "errors" not in body


def test_the_switches_are_read_from_the_environment() -> None:
    defaults = Settings.from_env({})
    assert defaults.graphiql is True
    assert defaults.introspection is True
    assert defaults.log_format == "json"
    assert defaults.metrics_max_operations == 50
    off = Settings.from_env(
        {
            "ORDERGRAPH_GRAPHIQL": "0",
            "ORDERGRAPH_INTROSPECTION": "false",
            "ORDERGRAPH_LOG_FORMAT": "TEXT",
            "ORDERGRAPH_METRICS_MAX_OPERATIONS": "7",
        }
    )
    assert (off.graphiql, off.introspection, off.log_format) == (False, False, "text")
    assert off.metrics_max_operations == 7
    with pytest.raises(SettingsError, match="ORDERGRAPH_LOG_FORMAT"):
        Settings.from_env({"ORDERGRAPH_LOG_FORMAT": "xml"})
    with pytest.raises(SettingsError, match="ORDERGRAPH_GRAPHIQL"):
        Settings.from_env({"ORDERGRAPH_GRAPHIQL": "maybe"})

"""The work a read does, counted (not timed): a document sent again is neither parsed nor
validated again, nor costed again when its cost depends on it alone; a page of 50 orders
with their lines and products resolves through resolvers (with an Info built for each
call) only where it needs the request, and graphql-core executes only its three root
fields, whatever the number of orders (schema/execution.py completes the rest, each order
in one call of a compiled builder); each operation runs five extension hooks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from graphql import (
    FieldNode,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    OperationDefinitionNode,
    SelectionSetNode,
    parse,
)
from sqlalchemy.sql import coercions
from strawberry.extensions import SchemaExtension

from ordergraph.app import create_app
from ordergraph.app.view import CountedAndCosted
from ordergraph.clock import Clock
from ordergraph.schema.build import Executor, Gate, build_schema
from ordergraph.settings import Settings
from ordergraph.storage.db import Database
from tests.client import Api, StoreHandle
from tests.conftest import ADMIN_TOKEN

# The page of bench/reads.py and scripts/layer_cpu.py.
PAGE = """query($h: String!) { store(handle: $h) { orders(first: 50) { nodes {
  id number placedAt status stockStatus lines { id sku quantity allocated backordered
  unitPrice { amount currencyCode } product { id sku title } } } } } }"""
# The fields of the page that resolve through a resolver (with an Info): the store and
# its page (they read the database), the connection's nodes, and per line its price and
# product (they read the request's loaders). Every other field is read from its object.
RESOLVED = {
    ("Query", "store"),
    ("Store", "orders"),
    ("OrderConnection", "nodes"),
    ("OrderLine", "unitPrice"),
    ("OrderLine", "product"),
}
HOOKS = ("on_operation", "on_parse", "on_validate", "on_execute")


def _fields(
    parent: GraphQLObjectType, selection: SelectionSetNode
) -> Iterator[tuple[GraphQLObjectType, str]]:
    for node in selection.selections:
        assert isinstance(node, FieldNode)
        yield parent, node.name.value
        if node.selection_set is not None:
            inner = parent.fields[node.name.value].type
            while isinstance(inner, (GraphQLNonNull, GraphQLList)):
                inner = inner.of_type
            assert isinstance(inner, GraphQLObjectType)
            yield from _fields(inner, node.selection_set)


def test_a_page_of_orders_builds_an_info_only_for_the_fields_that_need_the_request() -> None:
    schema: Any = build_schema()
    operation = parse(PAGE).definitions[0]
    assert isinstance(operation, OperationDefinitionNode)
    resolved = set()
    for parent, name in _fields(schema._schema.query_type, operation.selection_set):
        # Strawberry resolves a field without a resolver ("basic") with no Info.
        resolver = parent.fields[name].resolve
        if not getattr(resolver, "_is_default", False):
            resolved.add((parent.name, name))
    assert resolved == RESOLVED


def test_each_operation_runs_five_extension_hooks() -> None:
    # Strawberry wraps every hook of every extension anew for each operation.
    def hooks(extension: type[SchemaExtension]) -> set[str]:
        return {h for h in HOOKS if getattr(extension, h) is not getattr(SchemaExtension, h)}

    assert hooks(CountedAndCosted) == {"on_operation", "on_execute"}
    assert hooks(Gate) == {"on_operation", "on_parse", "on_execute"}


async def test_a_document_sent_again_is_not_parsed_or_validated_again(
    database: Database,
) -> None:
    settings = Settings(database_url=database.url, admin_token=ADMIN_TOKEN)
    app = create_app(settings, clock=Clock(), db=database)
    documents = app.state.schema.documents
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        api = Api(http, ADMIN_TOKEN, database)
        store = await api.create_store(policy="ALLOW")
        await api.upsert(store, "A")
        for _ in range(3):
            await api.place(store, [("A", 1)])
        before = (documents.parses, documents.misses, documents.hits)
        for _ in range(5):
            data = await api.gql(PAGE, {"h": store.handle}, store.token)
            assert len(data["store"]["orders"]["nodes"]) == 3
        after = (documents.parses, documents.misses, documents.hits)
    assert (after[0] - before[0], after[1] - before[1], after[2] - before[2]) == (1, 1, 4)


@asynccontextmanager
async def page_store(database: Database, **changes: Any) -> AsyncIterator[tuple[Api, StoreHandle]]:
    """An app on the database (with these settings changed) and a store selling A and B,
    for pages of its orders."""
    settings = Settings(database_url=database.url, admin_token=ADMIN_TOKEN, **changes)
    app = create_app(settings, clock=Clock(), db=database)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        api = Api(http, ADMIN_TOKEN, database)
        store = await api.create_store(policy="ALLOW")
        await api.upsert(store, "A")
        await api.upsert(store, "B")
        yield api, store


async def test_graphql_core_executes_three_fields_of_a_page_whatever_its_size(
    database: Database, monkeypatch: Any
) -> None:
    """The store, its page and the page's nodes: every other field of the page (ids,
    statuses, lines, their prices and products) is completed by the schema's one pass of
    plain and contextual fields, not field by field by graphql-core. And, once the
    process has seen the page's types, each order with its lines, prices and products is
    made by one compiled builder: the per-field pass (`_run`) does not run at all, for a
    page of 2 or of 12 orders."""
    executed: list[str] = []
    runs: list[str] = []
    execute_field, run = Executor.execute_field, Executor._run

    def counting(self: Any, parent_type: Any, *args: Any) -> Any:
        executed.append(parent_type.name)
        return execute_field(self, parent_type, *args)

    def running(self: Any, parent_type: Any, *args: Any) -> Any:
        runs.append(parent_type.name)
        return run(self, parent_type, *args)

    monkeypatch.setattr(Executor, "execute_field", counting)
    monkeypatch.setattr(Executor, "_run", running)
    async with page_store(database) as (api, store):
        placed = 0
        for page, orders in enumerate((2, 2, 12)):
            for _ in range(orders - placed):
                await api.place(store, [("A", 1), ("B", 2)])
            placed = orders
            executed.clear()
            runs.clear()
            data = await api.gql(PAGE, {"h": store.handle}, store.token)
            nodes = data["store"]["orders"]["nodes"]
            assert len(nodes) == orders
            line = nodes[-1]["lines"][1]
            assert line["product"]["sku"] == "B"
            assert line["unitPrice"] == {"amount": "10.00", "currencyCode": "USD"}
            assert sorted(executed) == ["OrderConnection", "Query", "Store"], executed
            if page > 0:
                assert runs == [], runs


async def test_a_cost_that_depends_on_the_document_alone_is_kept_with_it(
    database: Database,
) -> None:
    settings = Settings(database_url=database.url, admin_token=ADMIN_TOKEN)
    app = create_app(settings, clock=Clock(), db=database)
    documents = app.state.schema.documents
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        api = Api(http, ADMIN_TOKEN, database)
        store = await api.create_store()
        inline = PAGE.replace("query($h: String!)", "query").replace("$h", f'"{store.handle}"')
        trend = (
            f'query {{ store(handle: "{store.handle}") {{ backlogTrend('
            'from: "2026-01-01T00:00:00Z", to: "2026-01-02T00:00:00Z", interval: HOUR) '
            "{ at } } }"
        )
        sized = PAGE.replace("query($h: String!)", "query($h: String!, $n: Int!)").replace(
            "orders(first: 50)", "orders(first: $n)"
        )
        assert sized != PAGE
        place = (
            "mutation($input: PlaceOrderInput!) { placeOrder(input: $input) "
            "{ userErrors { code } } }"
        )
        place_input = {"input": {"storeId": store.id, "lines": [{"sku": "NONE", "quantity": 1}]}}
        for query, variables, kept in (
            (inline, None, True),
            # a variable the cost does not read (a handle, a mutation's input): kept
            (PAGE, {"h": store.handle}, True),
            (place, place_input, True),
            # a page's size from a variable: costed each time
            (sized, {"h": store.handle, "n": 50}, False),
            (trend, None, False),  # a trend's points depend on the time
        ):
            costs = []
            for _ in range(3):
                response = await http.post(
                    "/graphql",
                    json={"query": query, "variables": variables},
                    headers={"Authorization": f"Bearer {store.token}"},
                )
                body = response.json()
                assert "errors" not in body, body
                costs.append(body["extensions"]["cost"]["requestedQueryCost"])
            assert len(set(costs)) == 1
            assert costs[0] > 0
            assert (documents.cost_of(query, None) == costs[0]) is kept, query


# A read of the store by its handle, and of its figures now (bench/reads.py's `store` and
# `backlog`).
STORE_AND_BACKLOG = """query($h: String!) { store(handle: $h) { handle backlog {
  backlog { orders units value { amount } } overdue { orders } } } }"""


async def test_a_store_and_its_figures_are_read_with_statements_built_once(
    database: Database, monkeypatch: Any
) -> None:
    """The statements of `store(handle:)` and `backlog` are built once per process, not
    per request (building the figures' statement took most of a `backlog` read's own
    CPU), nor the key's lookup: a read builds no SQL expression, counted by SQLAlchemy's
    coercion of each element it is given."""
    built: list[str] = []
    expect = coercions.expect

    def counting(role: Any, element: Any, *args: Any, **kwargs: Any) -> Any:
        built.append(type(element).__name__)
        return expect(role, element, *args, **kwargs)

    # No key cached: each read looks its key up too, as one does every couple of seconds.
    async with page_store(database, auth_cache_seconds=0) as (api, store):
        await api.place(store, [("A", 1), ("B", 2)])
        for read in range(3):
            monkeypatch.setattr(coercions, "expect", counting)
            built.clear()
            data = await api.gql(STORE_AND_BACKLOG, {"h": store.handle}, store.token)
            monkeypatch.setattr(coercions, "expect", expect)
            assert data["store"]["backlog"]["backlog"] == {
                "orders": 1,
                "units": 3,
                "value": {"amount": "30.00"},
            }
            if read > 0:  # (the first may build the statements)
                assert built == [], built

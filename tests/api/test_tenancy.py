"""Who may do what: tokens, scopes, the admin token, and stores that cannot see each other."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import Table, inspect, select
from sqlalchemy.engine import Connection

from ordergraph.clock import Clock
from ordergraph.resolvers import ids
from ordergraph.resolvers.context import Context, Limits
from ordergraph.resolvers.keyguard import KeyGuard
from ordergraph.storage import tables as t
from ordergraph.storage.db import Database
from ordergraph.storage.units import SqlUnits
from tests.client import ERRORS, Api, StoreHandle
from tests.conftest import without_placements

STORES = "{ stores(first: 10) { nodes { id handle } } }"
PLACE = f"""mutation($input: PlaceOrderInput!) {{ placeOrder(input: $input) {{
  order {{ id }} {ERRORS} }} }}"""
RECEIVE = f"""mutation($input: ReceiveStockInput!) {{ receiveStock(input: $input) {{
  product {{ id }} {ERRORS} }} }}"""
CREATE_KEY = f"""mutation($input: CreateApiKeyInput!) {{ createApiKey(input: $input) {{
  apiKey {{ id name scopes stores {{ handle }} revokedAt }} token {ERRORS} }} }}"""
REVOKE_KEY = f"""mutation($id: ID!) {{ revokeApiKey(id: $id) {{
  apiKey {{ id revokedAt }} {ERRORS} }} }}"""
NODE = """query($id: ID!) { node(id: $id) { id __typename } }"""

# Tables that belong to no single store.
GLOBAL_TABLES = {"stores", "api_keys"}


def error_codes(body: dict[str, Any]) -> list[str]:
    return [e.get("extensions", {}).get("code") for e in body.get("errors", [])]


async def create_key(
    api: Api, name: str, stores: list[StoreHandle], scopes: list[str]
) -> dict[str, Any]:
    data = await api.gql(
        CREATE_KEY,
        {"input": {"name": name, "storeIds": [s.id for s in stores], "scopes": scopes}},
        token=api.admin_token,
    )
    payload: dict[str, Any] = data["createApiKey"]
    assert payload["userErrors"] == [], payload
    return payload


async def place_raw(api: Api, store_id: str, token: str, sku: str = "TEN") -> dict[str, Any]:
    return await api.raw(
        PLACE,
        {"input": {"storeId": store_id, "lines": [{"sku": sku, "quantity": 1}]}},
        token=token,
    )


# -- authentication and scopes ---------------------------------------------------


@pytest.mark.parametrize("token", [None, "og_not-a-real-token", "garbage"])
async def test_refuses_requests_without_a_valid_token_as_unauthenticated(
    api: Api, token: str | None
) -> None:
    store = await api.create_store()
    await api.upsert(store, "TEN")

    query = await api.raw(STORES, token=token)
    mutation = await place_raw(api, store.id, token or "")

    for body in (query, mutation):
        assert error_codes(body) == ["UNAUTHENTICATED"]
        assert body.get("data") is None
    assert (await api.product(store, "TEN"))["allocated"] == 0


async def test_refuses_a_bearer_header_of_another_scheme(api: Api) -> None:
    store = await api.create_store()
    response = await api.http.post(
        "/graphql",
        json={"query": STORES},
        headers={"Authorization": f"Basic {store.token}"},
    )
    assert error_codes(response.json()) == ["UNAUTHENTICATED"]


async def test_refuses_a_read_only_key_that_places_an_order_as_forbidden(api: Api) -> None:
    store = await api.create_store(policy="ALLOW")
    await api.upsert(store, "TEN")
    reader = await create_key(api, "reporting", [store], ["READ"])

    body = await place_raw(api, store.id, reader["token"])

    assert error_codes(body) == ["FORBIDDEN"]
    assert await api.gql(STORES, token=reader["token"]) == {
        "stores": {"nodes": [{"id": store.id, "handle": store.handle}]}
    }
    assert (await api.product(store, "TEN"))["backordered"] == 0


async def test_refuses_an_orders_key_that_receives_stock_as_forbidden(api: Api) -> None:
    store = await api.create_store()
    await api.upsert(store, "TEN")
    checkout = await create_key(api, "checkout", [store], ["ORDERS"])

    body = await api.raw(
        RECEIVE,
        {"input": {"storeId": store.id, "sku": "TEN", "quantity": 5}},
        token=checkout["token"],
    )

    assert error_codes(body) == ["FORBIDDEN"]
    assert (await api.product(store, "TEN"))["onHand"] == 0


async def test_lets_the_admin_token_create_stores_and_keys_and_nothing_else(api: Api) -> None:
    store = await api.create_store()
    await api.upsert(store, "TEN")
    await api.receive(store, "TEN", 3)

    listing = await api.raw(STORES, token=api.admin_token)
    lookup = await api.raw(
        "query($h: String!) { store(handle: $h) { id } }", {"h": store.handle}, api.admin_token
    )
    order = await place_raw(api, store.id, api.admin_token)
    node = await api.raw(NODE, {"id": store.id}, token=api.admin_token)

    for body in (listing, lookup, order, node):
        assert error_codes(body) == ["FORBIDDEN"], body
    assert (await api.product(store, "TEN"))["allocated"] == 0
    key = await create_key(api, "ops", [store], ["READ"])
    assert key["token"]


async def test_refuses_store_and_key_creation_to_store_tokens(api: Api) -> None:
    store = await api.create_store()
    create_store = await api.raw(
        """mutation { createStore(input: {handle: "sneaky-store", name: "x",
             currencyCode: "USD", timezone: "UTC"}) { store { id } } }""",
        token=store.token,
    )
    create_key_body = await api.raw(
        CREATE_KEY,
        {"input": {"name": "mine", "storeIds": [store.id], "scopes": ["READ"]}},
        token=store.token,
    )
    assert error_codes(create_store) == ["FORBIDDEN"]
    assert error_codes(create_key_body) == ["FORBIDDEN"]
    anonymous = await api.raw(
        CREATE_KEY, {"input": {"name": "mine", "storeIds": [store.id], "scopes": ["READ"]}}
    )
    assert error_codes(anonymous) == ["UNAUTHENTICATED"]


# -- api keys ------------------------------------------------------------------------


async def test_creates_a_key_for_chosen_stores_and_scopes_whose_token_works(api: Api) -> None:
    north, south, other = [await api.create_store(policy="ALLOW") for _ in range(3)]
    for store in (north, south, other):
        await api.upsert(store, "TEN")

    key = await create_key(api, "fulfilment", [north, south], ["READ", "ORDERS"])

    assert key["apiKey"]["name"] == "fulfilment"
    assert sorted(key["apiKey"]["scopes"]) == ["ORDERS", "READ"]
    assert sorted(s["handle"] for s in key["apiKey"]["stores"]) == sorted(
        [north.handle, south.handle]
    )
    assert key["apiKey"]["revokedAt"] is None
    listing = await api.gql(STORES, token=key["token"])
    assert sorted(s["handle"] for s in listing["stores"]["nodes"]) == sorted(
        [north.handle, south.handle]
    )
    placed = await place_raw(api, south.id, key["token"])
    assert placed["data"]["placeOrder"]["userErrors"] == []
    assert placed["data"]["placeOrder"]["order"]["id"]
    refused = await place_raw(api, other.id, key["token"])
    assert refused["data"]["placeOrder"]["order"] is None
    assert [e["code"] for e in refused["data"]["placeOrder"]["userErrors"]] == ["NOT_FOUND"]


async def test_stops_a_revoked_token_on_the_very_next_request(api: Api) -> None:
    store = await api.create_store(policy="ALLOW")
    await api.upsert(store, "TEN")
    key = await create_key(api, "partner", [store], ["READ", "ORDERS"])
    assert (await api.gql(STORES, token=key["token"]))["stores"]["nodes"]

    revoked = await api.gql(REVOKE_KEY, {"id": key["apiKey"]["id"]}, token=api.admin_token)

    assert revoked["revokeApiKey"]["userErrors"] == []
    assert revoked["revokeApiKey"]["apiKey"]["revokedAt"] is not None
    assert error_codes(await api.raw(STORES, token=key["token"])) == ["UNAUTHENTICATED"]
    assert error_codes(await place_raw(api, store.id, key["token"])) == ["UNAUTHENTICATED"]
    # The store's own token is untouched.
    assert (await api.gql(STORES, token=store.token))["stores"]["nodes"]


async def test_stores_tokens_only_as_hashes(api: Api) -> None:
    assert api.db is not None
    store = await api.create_store()
    key = await create_key(api, "hashed", [store], ["READ"])

    async with api.db.read() as conn:
        rows = (await conn.execute(select(t.api_keys))).mappings().all()
    stored = repr([dict(row) for row in rows])

    assert len(rows) >= 2
    for token in (store.token, key["token"]):
        assert token not in stored
        assert token.removeprefix("og_") not in stored


# -- other stores are invisible ----------------------------------------------------


async def two_stores_with_orders(api: Api) -> tuple[StoreHandle, StoreHandle, dict[str, Any]]:
    """Mine and theirs, each with a product and an order; returns their order."""
    mine = await api.create_store(policy="ALLOW")
    theirs = await api.create_store(policy="ALLOW")
    for store in (mine, theirs):
        await api.upsert(store, "TEN")
        await api.receive(store, "TEN", 5)
    await api.place(mine, [("TEN", 1)])
    their_order = (await api.place(theirs, [("TEN", 2)]))["order"]
    return mine, theirs, their_order


def store_number(store: StoreHandle) -> int:
    found = ids.store_id(store.id)
    assert found is not None
    return found


async def test_hides_another_stores_objects_from_queries(api: Api) -> None:
    mine, theirs, their_order = await two_stores_with_orders(api)
    their_product = await api.product(theirs, "TEN")

    lookup = await api.gql(
        "query($h: String!) { store(handle: $h) { id } }", {"h": theirs.handle}, mine.token
    )
    assert lookup == {"store": None}
    missing = await api.gql(
        "query($h: String!) { store(handle: $h) { id } }", {"h": "no-such-store"}, mine.token
    )
    assert missing == lookup

    foreign = [theirs.id, their_product["id"], their_order["id"], their_order["lines"][0]["id"]]
    for gid in foreign:
        assert await api.gql(NODE, {"id": gid}, token=theirs.token) != {"node": None}
        assert await api.gql(NODE, {"id": gid}, token=mine.token) == {"node": None}, gid
    listed = await api.gql(
        "query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": foreign}, token=mine.token
    )
    assert listed == {"nodes": [None] * len(foreign)}
    listing = await api.gql(STORES, token=mine.token)
    assert [s["handle"] for s in listing["stores"]["nodes"]] == [mine.handle]


async def test_answers_mutations_on_another_stores_objects_exactly_like_unknown_ones(
    api: Api,
) -> None:
    mine, theirs, their_order = await two_stores_with_orders(api)
    my_order = (await api.place(mine, [("TEN", 1)]))["order"]
    my_line = my_order["lines"][0]["id"]
    their_line = their_order["lines"][0]["id"]
    unknown_store = ids.encode("Store", 9_000_000)
    unknown_order = ids.encode("Order", store_number(mine), 9_000_000)
    unknown_line = ids.encode("OrderLine", store_number(mine), 9_000_000)

    async def user_errors(query: str, variables: dict[str, Any]) -> list[dict[str, Any]]:
        data = await api.gql(query, variables, token=mine.token)
        (payload,) = data.values()
        assert all(value is None for name, value in payload.items() if name != "userErrors")
        errors: list[dict[str, Any]] = payload["userErrors"]
        assert [e["code"] for e in errors] == ["NOT_FOUND"], errors
        return errors

    def store_input(store_id: str) -> dict[str, Any]:
        return {"input": {"storeId": store_id, "lines": [{"sku": "TEN", "quantity": 1}]}}

    place_foreign = await user_errors(PLACE, store_input(theirs.id))
    assert place_foreign == await user_errors(PLACE, store_input(unknown_store))
    assert place_foreign == await user_errors(PLACE, store_input("not-an-id"))

    def receive_input(store_id: str) -> dict[str, Any]:
        return {"input": {"storeId": store_id, "sku": "TEN", "quantity": 1}}

    receive_foreign = await user_errors(RECEIVE, receive_input(theirs.id))
    assert receive_foreign == await user_errors(RECEIVE, receive_input(unknown_store))

    adjust = f"""mutation($input: AdjustStockInput!) {{ adjustStock(input: $input) {{
      product {{ id }} {ERRORS} }} }}"""

    def adjust_input(store_id: str) -> dict[str, Any]:
        return {"input": {"storeId": store_id, "sku": "TEN", "delta": -1, "reason": "count"}}

    assert await user_errors(adjust, adjust_input(theirs.id)) == await user_errors(
        adjust, adjust_input(unknown_store)
    )

    ship = f"""mutation($input: ShipOrderInput!) {{ shipOrder(input: $input) {{
      order {{ id }} {ERRORS} }} }}"""
    cancel = f"""mutation($input: CancelOrderInput!) {{ cancelOrder(input: $input) {{
      order {{ id }} {ERRORS} }} }}"""
    for mutation in (ship, cancel):
        extra = {"reason": "FRAUD"} if mutation is cancel else {}
        foreign = await user_errors(mutation, {"input": {"orderId": their_order["id"], **extra}})
        assert foreign == await user_errors(
            mutation, {"input": {"orderId": unknown_order, **extra}}
        )
        line_input = {"orderId": my_order["id"], **extra}
        foreign_line = await user_errors(
            mutation, {"input": {**line_input, "lines": [{"lineId": their_line, "quantity": 1}]}}
        )
        assert foreign_line == await user_errors(
            mutation, {"input": {**line_input, "lines": [{"lineId": unknown_line, "quantity": 1}]}}
        )

    # Nothing of theirs moved, nothing of mine either.
    assert (await api.product(theirs, "TEN"))["onHand"] == 5
    assert (await api.order(theirs, their_order["number"]))["status"] == "OPEN"
    assert (await api.order(mine, my_order["number"]))["lines"][0]["id"] == my_line
    assert (await api.order(mine, my_order["number"]))["status"] == "OPEN"


# -- the schema keeps every row in its store -----------------------------------------


def store_owned(table: Table) -> bool:
    return table.name not in GLOBAL_TABLES


def test_every_store_owned_table_leads_its_primary_key_with_store_id() -> None:
    owned = [table for table in t.metadata.sorted_tables if store_owned(table)]
    assert owned
    for table in owned:
        assert table.primary_key.columns.keys()[0] == "store_id", table.name


def test_every_foreign_key_between_store_owned_tables_includes_store_id() -> None:
    checked = 0
    for table in t.metadata.sorted_tables:
        if not store_owned(table):
            continue
        for fk in table.foreign_key_constraints:
            if not store_owned(fk.referred_table):
                continue
            pairs = {(e.parent.name, e.column.name) for e in fk.elements}
            assert ("store_id", "store_id") in pairs, (table.name, fk.name)
            checked += 1
    assert checked >= 4


def _database_keys(sync: Connection) -> dict[str, Any]:
    inspector = inspect(sync)
    return {
        name: (inspector.get_pk_constraint(name), inspector.get_foreign_keys(name))
        for name in without_placements(inspector.get_table_names())
        if name != "alembic_version"
    }


async def test_migrated_database_keys_every_store_owned_row_by_store(api: Api) -> None:
    assert api.db is not None
    async with api.db.read() as conn:
        found = await conn.run_sync(_database_keys)

    assert set(found) == {table.name for table in t.metadata.sorted_tables}
    for name, (pk, fks) in found.items():
        if name in GLOBAL_TABLES:
            continue
        assert pk["constrained_columns"][0] == "store_id", name
        for fk in fks:
            if fk["referred_table"] in GLOBAL_TABLES:
                continue
            pairs = set(zip(fk["constrained_columns"], fk["referred_columns"], strict=True))
            assert ("store_id", "store_id") in pairs, (name, fk)


async def test_a_token_in_the_short_cache_is_known_without_a_lookup_or_a_turn_of_the_loop(
    api: Api, database: Database, clock: Clock
) -> None:
    """The key guard's cache answers a request's principal at once (no task, no await
    that suspends); a revoked key is looked up again, and found revoked."""
    store = await api.create_store()
    key = await create_key(api, "cached", [store], ["READ"])
    guard = KeyGuard(database, cache_seconds=60)
    units = SqlUnits(database, clock, idempotency_ttl=dt.timedelta(hours=1))

    def context() -> Context:
        return Context(
            db=database,
            clock=clock,
            admin_token=None,
            authorization=f"Bearer {key['token']}",
            limits=Limits(idempotency_ttl=dt.timedelta(hours=1)),
            guard=guard,
            units=units,
        )

    first = await context().principal()  # looked up
    assert first.key is not None
    assert guard.lookups == 1
    known = context().principal()
    with pytest.raises(StopIteration) as done:
        known.send(None)  # finishes without suspending once
    assert done.value.value.key == first.key
    assert guard.lookups == 1

    await api.gql(REVOKE_KEY, {"id": key["apiKey"]["id"]}, token=api.admin_token)
    guard.revoked(int(first.key.id))
    again = context()
    assert again._known() is None  # the revoked key is not answered from the cache
    assert (await again.principal()).key is None
    assert guard.lookups == 2

"""Reading through the API: lists, filters, sort keys, cursors, nodes and the event log."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from ordergraph.clock import Clock
from tests.client import Api, GraphQLFailure, StoreHandle

ORDERS = """
query($h: String!, $first: Int, $after: String, $last: Int, $before: String,
      $filter: OrderFilter, $sortKey: OrderSortKey, $reverse: Boolean) {
  store(handle: $h) {
    orders(first: $first, after: $after, last: $last, before: $before,
           filter: $filter, sortKey: $sortKey, reverse: $reverse) {
      totalCount
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
      edges { cursor node { number } }
      nodes { number }
    }
  }
}
"""


async def orders(api: Api, store: StoreHandle, **variables: Any) -> dict[str, Any]:
    data = await api.gql(ORDERS, {"h": store.handle, **variables}, token=store.token)
    result: dict[str, Any] = data["store"]["orders"]
    return result


def numbers(page: dict[str, Any]) -> list[int]:
    return [node["number"] for node in page["nodes"]]


@pytest.fixture
async def shop(api: Api, clock: Clock) -> StoreHandle:
    """A store with five orders an hour apart: 1001..1005, two backordered, one shipped."""
    store = await api.create_store()
    await api.upsert(store, "A", backorderPolicy="ALLOW")
    await api.upsert(store, "B", backorderPolicy="ALLOW")
    await api.receive(store, "A", 3)
    clock.freeze(dt.datetime(2027, 1, 20, 12, tzinfo=dt.UTC))
    dates = ["2027-01-25", None, "2027-01-22", "2027-01-30", None]
    lines = [[("A", 1)], [("B", 2)], [("A", 1), ("B", 1)], [("A", 1)], [("A", 2)]]
    for sku_lines, date in zip(lines, dates, strict=True):
        placed = await api.place(store, sku_lines, requestedShipDate=date, externalId=f"ext-{date}")
        assert placed["userErrors"] == []
        clock.advance(dt.timedelta(hours=1))
    first = await api.order(store, 1001)
    shipped = await api.ship(store, first["id"])
    assert shipped["order"]["status"] == "SHIPPED"
    return store


async def test_lists_orders_oldest_first_with_total_count(api: Api, shop: StoreHandle) -> None:
    page = await orders(api, shop)
    assert numbers(page) == [1001, 1002, 1003, 1004, 1005]
    assert page["totalCount"] == 5
    assert page["pageInfo"]["hasNextPage"] is False


async def test_pages_forward_and_back_with_keyset_cursors(api: Api, shop: StoreHandle) -> None:
    first = await orders(api, shop, first=2)
    assert numbers(first) == [1001, 1002]
    assert first["pageInfo"]["hasNextPage"] is True
    second = await orders(api, shop, first=2, after=first["pageInfo"]["endCursor"])
    assert numbers(second) == [1003, 1004]
    assert second["pageInfo"]["hasPreviousPage"] is True
    back = await orders(api, shop, last=2, before=second["pageInfo"]["startCursor"])
    assert numbers(back) == [1001, 1002]
    tail = await orders(api, shop, last=2)
    assert numbers(tail) == [1004, 1005]
    assert tail["pageInfo"]["hasPreviousPage"] is True


async def test_sorts_by_each_key_and_reverses(api: Api, shop: StoreHandle) -> None:
    assert numbers(await orders(api, shop, sortKey="NUMBER", reverse=True)) == [
        1005,
        1004,
        1003,
        1002,
        1001,
    ]
    by_date = await orders(api, shop, sortKey="REQUESTED_SHIP_DATE")
    assert numbers(by_date) == [1003, 1001, 1004, 1002, 1005]
    paged = await orders(api, shop, sortKey="REQUESTED_SHIP_DATE", first=3)
    rest = await orders(
        api, shop, sortKey="REQUESTED_SHIP_DATE", first=3, after=paged["pageInfo"]["endCursor"]
    )
    assert numbers(paged) + numbers(rest) == [1003, 1001, 1004, 1002, 1005]


async def test_filters_orders_by_every_field(api: Api, shop: StoreHandle, clock: Clock) -> None:
    async def only(**flt: Any) -> list[int]:
        return numbers(await orders(api, shop, filter=flt))

    assert await only(status=["SHIPPED"]) == [1001]
    assert await only(inBacklog=True) == [1002, 1003, 1004, 1005]
    assert await only(isBackordered=True) == [1002, 1003, 1005]
    assert await only(stockStatus=["PARTIALLY_BACKORDERED"]) == [1003]
    assert await only(stockStatus=["BACKORDERED"]) == [1002, 1005]
    assert await only(sku="B") == [1002, 1003]
    assert await only(externalId="ext-2027-01-30") == [1004]
    assert await only(placedAfter="2027-01-20T13:30:00+00:00") == [1003, 1004, 1005]
    assert await only(placedBefore="2027-01-20T13:30:00+00:00") == [1001, 1002]
    assert await only(isOverdue=True) == []
    clock.freeze(dt.datetime(2027, 1, 26, 0, 0, 1, tzinfo=dt.UTC))
    assert await only(isOverdue=True) == [1003]
    assert await only(isOverdue=False, inBacklog=True) == [1002, 1004, 1005]


async def test_refuses_pages_over_250_and_bad_cursors(api: Api, shop: StoreHandle) -> None:
    with pytest.raises(GraphQLFailure, match="between 0 and 250"):
        await orders(api, shop, first=251)
    with pytest.raises(GraphQLFailure, match="invalid cursor"):
        await orders(api, shop, after="not-a-cursor")
    assert len(numbers(await orders(api, shop, first=250))) == 5


async def test_searches_products_by_sku_or_title(api: Api) -> None:
    store = await api.create_store()
    await api.upsert(store, "TEA-GREEN", title="Green tea")
    await api.upsert(store, "TEA-BLACK", title="Black tea")
    await api.upsert(store, "MUG-1", title="Mug with 100% cotton cozy")
    query = """query($h: String!, $q: String, $first: Int, $after: String) { store(handle: $h) {
      products(query: $q, first: $first, after: $after) {
        totalCount nodes { sku } pageInfo { endCursor hasNextPage } } } }"""

    async def skus(q: str | None, **more: Any) -> dict[str, Any]:
        data = await api.gql(query, {"h": store.handle, "q": q, **more}, token=store.token)
        result: dict[str, Any] = data["store"]["products"]
        return result

    assert [p["sku"] for p in (await skus("tea"))["nodes"]] == ["TEA-BLACK", "TEA-GREEN"]
    assert [p["sku"] for p in (await skus("GREEN"))["nodes"]] == ["TEA-GREEN"]
    assert [p["sku"] for p in (await skus("100%"))["nodes"]] == ["MUG-1"]
    assert (await skus("%"))["totalCount"] == 1
    assert (await skus("_"))["totalCount"] == 0
    everything = await skus(None, first=2)
    assert everything["totalCount"] == 3
    rest = await skus(None, first=2, after=everything["pageInfo"]["endCursor"])
    assert [p["sku"] for p in rest["nodes"]] == ["TEA-GREEN"]


async def test_backorder_queue_lists_waiting_lines_in_fill_order(api: Api) -> None:
    store = await api.create_store(policy="ALLOW")
    await api.upsert(store, "A")
    for quantity in (2, 1, 3):
        await api.place(store, [("A", quantity)])
    await api.receive(store, "A", 1)
    data = await api.gql(
        """query($h: String!) { store(handle: $h) { product(sku: "A") {
             backordered availableToSell
             backorderQueue(first: 10) {
               totalCount nodes { backordered order { number } } } } } }""",
        {"h": store.handle},
        token=store.token,
    )
    product = data["store"]["product"]
    queue = product["backorderQueue"]
    assert [(n["order"]["number"], n["backordered"]) for n in queue["nodes"]] == [
        (1001, 1),
        (1002, 1),
        (1003, 3),
    ]
    assert queue["totalCount"] == 3
    assert product["backordered"] == 5
    assert product["availableToSell"] is None


async def test_resolves_nodes_by_global_id(api: Api) -> None:
    store = await api.create_store(policy="ALLOW")
    await api.upsert(store, "A")
    order = (await api.place(store, [("A", 1)]))["order"]
    product = await api.product(store, "A")
    data = await api.gql(
        """query($ids: [ID!]!) { nodes(ids: $ids) { __typename id
             ... on Order { number } ... on Product { sku } ... on Store { handle }
             ... on OrderLine { quantity } } }""",
        {"ids": [order["id"], product["id"], store.id, order["lines"][0]["id"], "bogus"]},
        token=store.token,
    )
    assert [n and n["__typename"] for n in data["nodes"]] == [
        "Order",
        "Product",
        "Store",
        "OrderLine",
        None,
    ]
    assert data["nodes"][0]["number"] == 1001
    single = await api.gql(
        "query($id: ID!) { node(id: $id) { id ... on Product { sku } } }",
        {"id": product["id"]},
        token=store.token,
    )
    assert single["node"] == {"id": product["id"], "sku": "A"}


async def test_order_events_tell_the_whole_life_of_an_order(api: Api) -> None:
    store = await api.create_store(policy="ALLOW")
    await api.upsert(store, "A")
    await api.upsert(store, "B")
    await api.receive(store, "A", 1)
    order = (await api.place(store, [("A", 1), ("B", 2)]))["order"]
    await api.receive(store, "B", 1)
    line_a = next(line for line in order["lines"] if line["sku"] == "A")
    await api.ship(store, order["id"], [(line_a["id"], 1)], trackingNumber="1Z")
    await api.cancel(store, order["id"], "CUSTOMER_DECLINED_BACKORDER")
    data = await api.gql(
        """query($id: ID!) { node(id: $id) { ... on Order { status
             events(first: 10) { edges { cursor node { type status stockStatus
               occurredAt order { number } } } } } } }""",
        {"id": order["id"]},
        token=store.token,
    )
    events = [edge["node"] for edge in data["node"]["events"]["edges"]]
    assert [(e["type"], e["status"], e["stockStatus"]) for e in events] == [
        ("PLACED", "OPEN", "PARTIALLY_BACKORDERED"),
        ("BACKORDERED", "OPEN", "PARTIALLY_BACKORDERED"),
        ("BACKORDER_FILLED", "OPEN", "PARTIALLY_BACKORDERED"),
        ("PARTIALLY_SHIPPED", "PARTIALLY_SHIPPED", "PARTIALLY_BACKORDERED"),
        ("CANCELLED", "SHIPPED", None),
    ]
    assert data["node"]["status"] == "SHIPPED"
    cursors = [edge["cursor"] for edge in data["node"]["events"]["edges"]]
    later = await api.gql(
        """query($id: ID!, $after: String) { node(id: $id) { ... on Order {
             events(first: 10, after: $after) { nodes { type } } } } }""",
        {"id": order["id"], "after": cursors[2]},
        token=store.token,
    )
    assert [e["type"] for e in later["node"]["events"]["nodes"]] == [
        "PARTIALLY_SHIPPED",
        "CANCELLED",
    ]


async def test_expected_ship_date_is_latest_restock_date_of_awaited_products(api: Api) -> None:
    store = await api.create_store(policy="ALLOW")
    await api.upsert(store, "A", restockDate="2027-02-01")
    await api.upsert(store, "B", restockDate="2027-02-10")
    await api.upsert(store, "C")
    both = (await api.place(store, [("A", 1), ("B", 1)]))["order"]
    assert both["expectedShipDate"] == "2027-02-10"
    unknown = (await api.place(store, [("A", 1), ("C", 1)]))["order"]
    assert unknown["expectedShipDate"] is None
    await api.receive(store, "C", 5)
    await api.receive(store, "A", 5)
    none_waiting = await api.order(store, 1002)
    assert none_waiting["expectedShipDate"] is None


async def test_money_is_a_decimal_string_in_the_store_currency(api: Api) -> None:
    store = await api.create_store(policy="ALLOW", currency="EUR")
    await api.upsert(store, "A", price="12.5")
    await api.upsert(store, "B", price="0.3333")
    order = (await api.place(store, [("A", 3), ("B", 3)]))["order"]
    assert order["total"] == {"amount": "38.4999", "currencyCode": "EUR"}
    assert order["lines"][0]["unitPrice"]["amount"] == "12.50"
    assert order["backorderedValue"]["amount"] == "38.4999"

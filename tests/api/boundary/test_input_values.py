"""Bad but well-formed GraphQL input: dates, cursors, IDs, control characters, handles,
SKUs, numbers and lists. Each gets a GraphQL error or a userError with a code, never
"Internal server error", on SQLite and on PostgreSQL; each is counted in /metrics and
none logs a traceback."""

from __future__ import annotations

import base64
import json
import logging
import re
from dataclasses import dataclass
from typing import Any

import pytest

from tests.client import Api, StoreHandle
from tests.conftest import ADMIN_TOKEN

MASKED = "Internal server error"


def b64(raw: bytes | str) -> str:
    data = raw.encode() if isinstance(raw, str) else raw
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@dataclass
class World:
    store: StoreHandle
    other: StoreHandle
    order_id: str
    line_id: str
    cursors: dict[str, str]


async def world(api: Api) -> World:
    store = await api.create_store(policy="ALLOW")
    other = await api.create_store()
    await api.upsert(store, "A")
    await api.upsert(store, "B")
    await api.receive(store, "A", 1)
    placed = await api.place(store, [("A", 2), ("B", 1)], requestedShipDate="2027-02-01")
    order = placed["order"]
    await api.place(store, [("A", 1)])
    data = await api.gql(
        """query($h: String!) {
             stores(first: 1) { edges { cursor } }
             store(handle: $h) {
               products(first: 1) { edges { cursor } }
               placed: orders(first: 1) { edges { cursor } }
               number: orders(first: 1, sortKey: NUMBER) { edges { cursor } }
               ship: orders(first: 1, sortKey: REQUESTED_SHIP_DATE) { edges { cursor } }
               product(sku: "A") { backorderQueue(first: 1) { edges { cursor } } }
               order(number: 1001) { events(first: 1) { edges { cursor } } }
             } }""",
        {"h": store.handle},
        token=store.token,
    )
    s = data["store"]
    cursors = {
        "stores": data["stores"]["edges"][0]["cursor"],
        "products": s["products"]["edges"][0]["cursor"],
        "placed": s["placed"]["edges"][0]["cursor"],
        "number": s["number"]["edges"][0]["cursor"],
        "ship": s["ship"]["edges"][0]["cursor"],
        "queue": s["product"]["backorderQueue"]["edges"][0]["cursor"],
        "events": s["order"]["events"]["edges"][0]["cursor"],
    }
    return World(store, other, order["id"], order["lines"][0]["id"], cursors)


# -- cases ----------------------------------------------------------------------------

# Every connection, by the name of its cursor in World.cursors, as a query taking $c.
CONNECTIONS = {
    "stores": "query($h: String!, $c: String) { stores(after: $c) { edges { cursor } } "
    "store(handle: $h) { id } }",
    "products": "query($h: String!, $c: String) { store(handle: $h) { "
    "products(after: $c) { edges { cursor } } } }",
    "products-before": "query($h: String!, $c: String) { store(handle: $h) { "
    "products(last: 5, before: $c) { edges { cursor } } } }",
    "placed": "query($h: String!, $c: String) { store(handle: $h) { "
    "orders(after: $c) { edges { cursor } } } }",
    "number": "query($h: String!, $c: String) { store(handle: $h) { "
    "orders(after: $c, sortKey: NUMBER) { edges { cursor } } } }",
    "ship": "query($h: String!, $c: String) { store(handle: $h) { "
    "orders(before: $c, last: 3, sortKey: REQUESTED_SHIP_DATE, reverse: true) "
    "{ edges { cursor } } } }",
    "queue": 'query($h: String!, $c: String) { store(handle: $h) { product(sku: "A") { '
    "backorderQueue(after: $c) { edges { cursor } } } } }",
    "events": "query($h: String!, $c: String) { store(handle: $h) { order(number: 1001) { "
    "events(after: $c) { edges { cursor } } } } }",
}

CRAFTED_CURSORS = {
    "not base64": "!!!***",
    "empty": "",
    "not utf-8": b64(b"\xff\xfe\xfd"),
    "not json": b64("garbage"),
    "json object": b64('{"a": 1}'),
    "json string": b64('"x"'),
    "empty list": b64("[]"),
    "huge number": b64("[123456789012345678901234567890]"),
    "huge float": b64("[1e999]"),
    "negative": b64("[-1]"),
    "bool": b64("[true]"),
    "null": b64("[null]"),
    "string for a number": b64('["x"]'),
    "number for a string": b64("[5]"),
    "nul string": b64('["a\\u0000b"]'),
    "lone surrogate": b64('["\\ud800"]'),
    "datetime of a number": b64('[{"t": 5}, 1]'),
    "naive datetime": b64('[{"t": "2027-01-01T00:00:00"}, 1]'),
    "bad datetime": b64('[{"t": "yesterday"}, 1]'),
    "bad date": b64('[{"d": "2027-02-30"}, 1]'),
    "date for a datetime": b64('[{"d": "2027-01-01"}, 1]'),
    "three values": b64("[1, 2, 3]"),
    "deep nesting": b64("[" * 20_000 + "]" * 20_000),
    "long": "A" * 100_000,
    "huge digits": b64("[" + "9" * 5000 + "]"),
}


def cursor_cases() -> list[Any]:
    int_keyed = {"stores", "number", "events"}  # a one-number cursor is well-formed there
    cases = [
        pytest.param(conn, name, id=f"{conn}:{name}")
        for conn in CONNECTIONS
        for name in CRAFTED_CURSORS
        if not (conn in int_keyed and name == "number for a string")
    ]
    # Every connection given every other connection's (real) cursor.
    cases += [
        pytest.param(conn, f"from:{source}", id=f"{conn}:from-{source}")
        for conn in CONNECTIONS
        for source in ("stores", "products", "placed", "number", "ship", "queue", "events")
        if conn.split("-")[0] != source
    ]
    return cases


@dataclass(frozen=True)
class Case:
    query: str
    variables: dict[str, Any]
    token: str = "store"  # store | admin
    expect: str = "error"  # error: a GraphQL error; user: a userError (mutation payload)
    code: str | None = None  # the expected code, when it is ours (INVALID, NOT_FOUND)
    field: tuple[str, ...] | None = None


BACKLOG = "query($h: String!, $t: DateTime) { store(handle: $h) { backlog(asOf: $t) { asOf } } }"
TREND = """query($h: String!, $f: DateTime!, $t: DateTime!) { store(handle: $h) {
    backlogTrend(from: $f, to: $t, interval: DAY) { at } } }"""
ORDERS_FILTER = """query($h: String!, $f: OrderFilter) { store(handle: $h) {
    orders(filter: $f) { totalCount edges { cursor } } } }"""
PLACE = """mutation($input: PlaceOrderInput!) { placeOrder(input: $input) {
    order { id requestedShipDate isOverdue } userErrors { field message code } } }"""
UPSERT = """mutation($input: UpsertProductInput!) { upsertProduct(input: $input) {
    product { sku restockDate } userErrors { field message code } } }"""
RECEIVE = """mutation($input: ReceiveStockInput!) { receiveStock(input: $input) {
    product { sku } userErrors { field message code } } }"""
ADJUST = """mutation($input: AdjustStockInput!) { adjustStock(input: $input) {
    product { sku } userErrors { field message code } } }"""
SHIP = """mutation($input: ShipOrderInput!) { shipOrder(input: $input) {
    order { id } userErrors { field message code } } }"""
CANCEL = """mutation($input: CancelOrderInput!) { cancelOrder(input: $input) {
    order { id } userErrors { field message code } } }"""
CREATE_STORE = """mutation($input: CreateStoreInput!) { createStore(input: $input) {
    store { id handle } userErrors { field message code } } }"""
CREATE_KEY = """mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) {
    apiKey { id } userErrors { field message code } } }"""
NODE = "query($id: ID!) { node(id: $id) { id } }"
STORE = "query($h: String!) { store(handle: $h) { id } }"
PRODUCT = "query($h: String!, $s: String!) { store(handle: $h) { product(sku: $s) { id } } }"
SEARCH = (
    "query($h: String!, $q: String) { store(handle: $h) { products(query: $q) { totalCount } } }"
)

STORE_ID = "$store"  # replaced by the test store's global ID
ORDER_ID = "$order"
LINE_ID = "$line"
HANDLE = "$handle"


def line(sku: str = "A", quantity: int = 1) -> dict[str, Any]:
    return {"sku": sku, "quantity": quantity}


def place(**fields: Any) -> dict[str, Any]:
    return {"input": {"storeId": STORE_ID, "lines": [line()], **fields}}


def store_input(**fields: Any) -> dict[str, Any]:
    return {
        "input": {"handle": "fresh", "name": "Fresh", "currencyCode": "USD", "timezone": "UTC"}
        | fields
    }


INVALID = "INVALID"
CASES: dict[str, Case] = {
    # -- dates and instants --
    "asOf without offset": Case(BACKLOG, {"h": HANDLE, "t": "2027-01-01T00:00:00"}),
    "asOf year 1 east of UTC": Case(BACKLOG, {"h": HANDLE, "t": "0001-01-01T00:30:00+01:00"}),
    "asOf year 9999 west of UTC": Case(BACKLOG, {"h": HANDLE, "t": "9999-12-31T23:00:00-05:00"}),
    "asOf 24:00 of 9999-12-31": Case(BACKLOG, {"h": HANDLE, "t": "9999-12-31T24:00:00Z"}),
    "asOf year 0": Case(BACKLOG, {"h": HANDLE, "t": "0000-01-01T00:00:00Z"}),
    "asOf year 10000": Case(BACKLOG, {"h": HANDLE, "t": "10000-01-01T00:00:00Z"}),
    "asOf year 1": Case(
        BACKLOG, {"h": HANDLE, "t": "0001-01-01T00:00:00Z"}, code=INVALID, field=("asOf",)
    ),
    "asOf a number": Case(BACKLOG, {"h": HANDLE, "t": 5}),
    "asOf literal without offset": Case(
        'query($h: String!) { store(handle: $h) { backlog(asOf: "2027-01-01T00:00") { asOf } } }',
        {"h": HANDLE},
    ),
    "asOf literal 24:00 of 9999-12-31": Case(
        'query($h: String!) { store(handle: $h) { backlog(asOf: "9999-12-31T24:00:00Z") '
        "{ asOf } } }",
        {"h": HANDLE},
    ),
    "trend from year 1": Case(
        TREND,
        {"h": HANDLE, "f": "0001-01-01T00:00:00Z", "t": "0001-01-05T00:00:00Z"},
        code=INVALID,
        field=("from",),
    ),
    "trend to year 9999": Case(
        TREND,
        {"h": HANDLE, "f": "9999-12-25T00:00:00Z", "t": "9999-12-31T23:59:59Z"},
        code=INVALID,
        field=("from",),
    ),
    "trend without offset": Case(
        TREND, {"h": HANDLE, "f": "2027-01-01T00:00:00", "t": "2027-01-02T00:00:00Z"}
    ),
    "placedAfter without offset": Case(
        ORDERS_FILTER, {"h": HANDLE, "f": {"placedAfter": "2027-01-01T00:00:00"}}
    ),
    "placedBefore year 1": Case(
        ORDERS_FILTER,
        {"h": HANDLE, "f": {"placedBefore": "0001-01-01T00:00:00+00:00"}},
        code=INVALID,
        field=("filter", "placedBefore"),
    ),
    "placedAfter year 9999": Case(
        ORDERS_FILTER,
        {"h": HANDLE, "f": {"placedAfter": "9999-12-31T23:59:59+14:00"}},
        code=INVALID,
        field=("filter", "placedAfter"),
    ),
    "requestedShipDate 9999-12-31": Case(
        PLACE,
        place(requestedShipDate="9999-12-31"),
        expect="user",
        code=INVALID,
        field=("input", "requestedShipDate"),
    ),
    "requestedShipDate 0001-01-01": Case(
        PLACE,
        place(requestedShipDate="0001-01-01"),
        expect="user",
        code=INVALID,
        field=("input", "requestedShipDate"),
    ),
    "requestedShipDate a datetime": Case(PLACE, place(requestedShipDate="2027-01-01T00:00Z")),
    "requestedShipDate year 0": Case(PLACE, place(requestedShipDate="0000-01-01")),
    "restockDate 9999-12-31": Case(
        UPSERT,
        {"input": {"storeId": STORE_ID, "sku": "A", "restockDate": "9999-12-31"}},
        expect="user",
        code=INVALID,
        field=("input", "restockDate"),
    ),
    # -- global IDs --
    "node garbage": Case(NODE, {"id": "!!!"}, expect="null"),
    "node huge store": Case(NODE, {"id": b64("Store:" + "9" * 40)}, expect="null"),
    "node negative": Case(NODE, {"id": b64("Product:-1:-1")}, expect="null"),
    "node digits": Case(NODE, {"id": b64("Store:" + "9" * 5000)}, expect="null"),
    "node nul": Case(NODE, {"id": b64("Store:1\x00")}, expect="null"),
    "node long": Case(NODE, {"id": "A" * 100_000}, expect="null"),
    "nodes 251": Case(
        "query($ids: [ID!]!) { nodes(ids: $ids) { id } }",
        {"ids": ["x"] * 251},
        code=INVALID,
    ),
    "storeId of an order": Case(
        RECEIVE,
        {"input": {"storeId": ORDER_ID, "sku": "A", "quantity": 1}},
        expect="user",
        code="NOT_FOUND",
        field=("input", "storeId"),
    ),
    "storeId an int": Case(
        RECEIVE,
        {"input": {"storeId": 5, "sku": "A", "quantity": 1}},
        expect="user",
        code="NOT_FOUND",
        field=("input", "storeId"),
    ),
    "orderId of a store": Case(
        SHIP, {"input": {"orderId": STORE_ID}}, expect="user", code="NOT_FOUND"
    ),
    "lineId of an order": Case(
        SHIP,
        {"input": {"orderId": ORDER_ID, "lines": [{"lineId": ORDER_ID, "quantity": 1}]}},
        expect="user",
        code="NOT_FOUND",
    ),
    # -- NUL and other control characters, everywhere --
    "handle arg with NUL": Case(STORE, {"h": "a\x00"}, code=INVALID, field=("handle",)),
    "handle literal with NUL": Case(
        'query { store(handle: "a\\u0000") { id } }', {}, code=INVALID, field=("handle",)
    ),
    "sku arg with NUL": Case(PRODUCT, {"h": HANDLE, "s": "A\x00"}, code=INVALID, field=("sku",)),
    "search with NUL": Case(SEARCH, {"h": HANDLE, "q": "\x00"}, code=INVALID, field=("query",)),
    # A lone surrogate in a JSON body is not Unicode text: the HTTP layer refuses the body
    # before the document is read (websockets reach the input guard: test_input_websocket).
    "search with lone surrogate": Case(SEARCH, {"h": HANDLE, "q": "\ud800"}, code="BAD_REQUEST"),
    "filter sku with NUL": Case(
        ORDERS_FILTER,
        {"h": HANDLE, "f": {"sku": "A\x00"}},
        code=INVALID,
        field=("filter", "sku"),
    ),
    "filter externalId with NUL": Case(
        ORDERS_FILTER,
        {"h": HANDLE, "f": {"externalId": "\x00"}},
        code=INVALID,
        field=("filter", "externalId"),
    ),
    "cursor with NUL": Case(
        'query { stores(after: "\\u0000") { edges { cursor } } }',
        {},
        code=INVALID,
        field=("after",),
    ),
    "order line sku with NUL": Case(
        PLACE,
        {"input": {"storeId": STORE_ID, "lines": [line(), line("B\x00")]}},
        code=INVALID,
        field=("input", "lines", "1", "sku"),
    ),
    "externalId with NUL": Case(
        PLACE, place(externalId="x\x00"), code=INVALID, field=("input", "externalId")
    ),
    "customerRef with BEL": Case(
        PLACE, place(customerRef="x\x07"), code=INVALID, field=("input", "customerRef")
    ),
    "customerRef with lone surrogate": Case(
        PLACE, place(customerRef="x\udfff"), code="BAD_REQUEST"
    ),
    "idempotencyKey with NUL": Case(
        PLACE, place(idempotencyKey="k\x00"), code=INVALID, field=("input", "idempotencyKey")
    ),
    "note with NUL": Case(
        RECEIVE,
        {"input": {"storeId": STORE_ID, "sku": "A", "quantity": 1, "note": "n\x00"}},
        code=INVALID,
        field=("input", "note"),
    ),
    "reason with ESC": Case(
        ADJUST,
        {"input": {"storeId": STORE_ID, "sku": "A", "delta": 1, "reason": "\x1b[31m"}},
        code=INVALID,
        field=("input", "reason"),
    ),
    "trackingNumber with NUL": Case(
        SHIP,
        {"input": {"orderId": ORDER_ID, "trackingNumber": "1Z\x00"}},
        code=INVALID,
        field=("input", "trackingNumber"),
    ),
    "title with DEL": Case(
        UPSERT,
        {"input": {"storeId": STORE_ID, "sku": "A", "title": "T\x7f"}},
        code=INVALID,
        field=("input", "title"),
    ),
    "store name with NUL": Case(
        CREATE_STORE,
        store_input(name="N\x00"),
        token="admin",
        code=INVALID,
        field=("input", "name"),
    ),
    "key name with NUL": Case(
        CREATE_KEY,
        {"input": {"name": "k\x00", "storeIds": [STORE_ID], "scopes": ["READ"]}},
        token="admin",
        code=INVALID,
        field=("input", "name"),
    ),
    "variable default with NUL": Case(
        'query($h: String = "a\\u0000") { store(handle: $h) { id } }',
        {},
        code=INVALID,
        field=("handle",),
    ),
    "NUL in a fragment": Case(
        'query { ...F } fragment F on Query { store(handle: "\\u0000") { id } }',
        {},
        code=INVALID,
        field=("handle",),
    ),
    # -- text rules in the domain (newline, tab, bidi are refused in one-line text) --
    "title with newline": Case(
        UPSERT,
        {"input": {"storeId": STORE_ID, "sku": "A", "title": "two\nlines"}},
        expect="user",
        code=INVALID,
        field=("input", "title"),
    ),
    "customerRef with bidi override": Case(
        PLACE,
        place(customerRef="abc\u202edcb"),
        expect="user",
        code=INVALID,
        field=("input", "customerRef"),
    ),
    "store name too long": Case(
        CREATE_STORE,
        store_input(name="n" * 256),
        token="admin",
        expect="user",
        code=INVALID,
        field=("input", "name"),
    ),
    "note too long": Case(
        RECEIVE,
        {"input": {"storeId": STORE_ID, "sku": "A", "quantity": 1, "note": "n" * 1001}},
        expect="user",
        code=INVALID,
        field=("input", "note"),
    ),
    # -- handles and SKUs --
    "handle with trailing newline": Case(
        CREATE_STORE,
        store_input(handle="fresh\n"),
        token="admin",
        expect="user",
        code=INVALID,
        field=("input", "handle"),
    ),
    "handle with zero-width space": Case(
        CREATE_STORE,
        store_input(handle="fre\u200bsh"),
        token="admin",
        expect="user",
        code=INVALID,
        field=("input", "handle"),
    ),
    "handle with a trailing hyphen": Case(
        CREATE_STORE,
        store_input(handle="fresh-"),
        token="admin",
        expect="user",
        code=INVALID,
        field=("input", "handle"),
    ),
    "handle with fullwidth letters": Case(
        CREATE_STORE,
        store_input(handle="\uff46\uff52\uff45\uff53\uff48"),
        token="admin",
        expect="user",
        code=INVALID,
        field=("input", "handle"),
    ),
    "sku with trailing newline": Case(
        UPSERT,
        {"input": {"storeId": STORE_ID, "sku": "A\n", "title": "t", "price": "1"}},
        expect="user",
        code=INVALID,
        field=("input", "sku"),
    ),
    "sku with zero-width joiner": Case(
        UPSERT,
        {"input": {"storeId": STORE_ID, "sku": "A\u200d", "title": "t", "price": "1"}},
        expect="user",
        code=INVALID,
        field=("input", "sku"),
    ),
    "sku with bidi isolate": Case(
        UPSERT,
        {"input": {"storeId": STORE_ID, "sku": "\u2066A", "title": "t", "price": "1"}},
        expect="user",
        code=INVALID,
        field=("input", "sku"),
    ),
    "sku with cyrillic A": Case(
        UPSERT,
        {"input": {"storeId": STORE_ID, "sku": "\u0410", "title": "t", "price": "1"}},
        expect="user",
        code=INVALID,
        field=("input", "sku"),
    ),
    "sku starting with a dot": Case(
        UPSERT,
        {"input": {"storeId": STORE_ID, "sku": ".A", "title": "t", "price": "1"}},
        expect="user",
        code=INVALID,
        field=("input", "sku"),
    ),
    "order line sku with zero-width space": Case(
        PLACE,
        {"input": {"storeId": STORE_ID, "lines": [line("A\u200b")]}},
        expect="user",
        code=INVALID,
        field=("input", "lines", "0", "sku"),
    ),
    # -- numbers --
    "first huge": Case(
        "query { stores(first: 2147483647) { edges { cursor } } }",
        {},
        code=INVALID,
        field=("first",),
    ),
    "first beyond Int": Case(
        "query($n: Int) { stores(first: $n) { edges { cursor } } }", {"n": 2**40}
    ),
    "first -1": Case(
        "query { stores(first: -1) { edges { cursor } } }", {}, code=INVALID, field=("first",)
    ),
    "last -1": Case(
        "query($h: String!) { store(handle: $h) { products(last: -1) { totalCount } } }",
        {"h": HANDLE},
        code=INVALID,
        field=("last",),
    ),
    "first and last": Case(
        "query($h: String!) { store(handle: $h) { products(first: 1, last: 1) { totalCount } } }",
        {"h": HANDLE},
        code=INVALID,
        field=("first",),
    ),
    "backorderedProducts first huge": Case(
        "query($h: String!) { store(handle: $h) { backorderedProducts(first: 2147483647) "
        "{ sku } } }",
        {"h": HANDLE},
        code=INVALID,
        field=("first",),
    ),
    "backorderedProducts first -1": Case(
        "query($h: String!) { store(handle: $h) { backorderedProducts(first: -1) { sku } } }",
        {"h": HANDLE},
        code=INVALID,
        field=("first",),
    ),
    "order number huge": Case(
        "query($h: String!) { store(handle: $h) { order(number: 2147483647) { id } } }",
        {"h": HANDLE},
        expect="ok",
    ),
    "order number -1": Case(
        "query($h: String!) { store(handle: $h) { order(number: -2147483648) { id } } }",
        {"h": HANDLE},
        expect="ok",
    ),
    "quantity huge": Case(
        RECEIVE,
        {"input": {"storeId": STORE_ID, "sku": "A", "quantity": 2147483647}},
        expect="user",
        code=INVALID,
        field=("input", "quantity"),
    ),
    "quantity negative": Case(
        PLACE,
        {"input": {"storeId": STORE_ID, "lines": [line("A", -2147483648)]}},
        expect="user",
        code=INVALID,
        field=("input", "lines", "0", "quantity"),
    ),
    "delta huge": Case(
        ADJUST,
        {"input": {"storeId": STORE_ID, "sku": "A", "delta": 2147483647, "reason": "r"}},
        expect="user",
        code=INVALID,
    ),
    "delta very negative": Case(
        ADJUST,
        {"input": {"storeId": STORE_ID, "sku": "A", "delta": -2147483648, "reason": "r"}},
        expect="user",
        code=INVALID,
        field=("input", "delta"),
    ),
    "setOnHand negative": Case(
        ADJUST,
        {"input": {"storeId": STORE_ID, "sku": "A", "setOnHand": -1, "reason": "r"}},
        expect="user",
        code=INVALID,
        field=("input", "setOnHand"),
    ),
    "ship quantity huge": Case(
        SHIP,
        {"input": {"orderId": ORDER_ID, "lines": [{"lineId": LINE_ID, "quantity": 2147483647}]}},
        expect="user",
        code=INVALID,
    ),
    "cancel quantity negative": Case(
        CANCEL,
        {
            "input": {
                "orderId": ORDER_ID,
                "reason": "OTHER",
                "lines": [{"lineId": LINE_ID, "quantity": -5}],
            }
        },
        expect="user",
        code=INVALID,
    ),
    "backorderLimit negative": Case(
        UPSERT,
        {
            "input": {
                "storeId": STORE_ID,
                "sku": "A",
                "backorderPolicy": "LIMIT",
                "backorderLimit": -2147483648,
            }
        },
        expect="user",
        code=INVALID,
        field=("input", "backorderLimit"),
    ),
    "price huge exponent": Case(
        UPSERT,
        {"input": {"storeId": STORE_ID, "sku": "A", "price": "1e999999999999999999"}},
        expect="user",
        code=INVALID,
        field=("input", "price"),
    ),
    "price beyond Decimal": Case(
        UPSERT,
        {"input": {"storeId": STORE_ID, "sku": "A", "price": "1e9999999999999999999999999"}},
    ),
    "price tiny exponent": Case(
        UPSERT,
        {"input": {"storeId": STORE_ID, "sku": "A", "price": "1e-999999999999"}},
        expect="user",
        code=INVALID,
        field=("input", "price"),
    ),
    "price NaN": Case(
        UPSERT,
        {"input": {"storeId": STORE_ID, "sku": "A", "price": "sNaN"}},
        expect="user",
        code=INVALID,
        field=("input", "price"),
    ),
    "price float": Case(
        UPSERT,
        {"input": {"storeId": STORE_ID, "sku": "A", "price": 1e308}},
        expect="user",
        code=INVALID,
        field=("input", "price"),
    ),
    "price an object": Case(
        UPSERT, {"input": {"storeId": STORE_ID, "sku": "A", "price": {"a": 1}}}
    ),
    # -- lists --
    "order with 1,000 lines": Case(
        PLACE,
        {"input": {"storeId": STORE_ID, "lines": [line(f"S{i}") for i in range(1_000)]}},
        expect="user",
        code=INVALID,
        field=("input", "lines"),
    ),
    "ship 1,000 lines": Case(
        SHIP,
        {
            "input": {
                "orderId": ORDER_ID,
                "lines": [{"lineId": LINE_ID, "quantity": 1}] * 1_000,
            }
        },
        expect="user",
        code=INVALID,
        field=("input", "lines"),
    ),
    "cancel 1,000 lines": Case(
        CANCEL,
        {
            "input": {
                "orderId": ORDER_ID,
                "reason": "OTHER",
                "lines": [{"lineId": LINE_ID, "quantity": 1}] * 1_000,
            }
        },
        expect="user",
        code=INVALID,
        field=("input", "lines"),
    ),
    "key with 1,000 stores": Case(
        CREATE_KEY,
        {"input": {"name": "k", "storeIds": [STORE_ID] * 1_000, "scopes": ["READ"]}},
        token="admin",
        expect="user",
        code=INVALID,
        field=("input", "storeIds"),
    ),
    "key with 1,000 scopes": Case(
        CREATE_KEY,
        {"input": {"name": "k", "storeIds": [STORE_ID], "scopes": ["READ"] * 1_000}},
        token="admin",
        expect="ok",
    ),
    "filter with 1,000 statuses": Case(
        ORDERS_FILTER, {"h": HANDLE, "f": {"status": ["OPEN"] * 1_000}}, expect="ok"
    ),
    "idempotencyKey too long": Case(
        PLACE,
        place(idempotencyKey="k" * 256),
        expect="user",
        code=INVALID,
        field=("input", "idempotencyKey"),
    ),
}


def substitute(value: Any, w: World) -> Any:
    if isinstance(value, dict):
        return {k: substitute(v, w) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, w) for v in value]
    return (
        {
            STORE_ID: w.store.id,
            ORDER_ID: w.order_id,
            LINE_ID: w.line_id,
            HANDLE: w.store.handle,
        }.get(value, value)
        if isinstance(value, str)
        else value
    )


def no_server_error(body: dict[str, Any]) -> None:
    text = json.dumps(body)
    assert MASKED not in text, body
    assert "INTERNAL_SERVER_ERROR" not in text, body


def errors_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = body.get("errors") or []
    return errors


def user_errors(body: dict[str, Any]) -> list[dict[str, Any]]:
    data = body.get("data") or {}
    found: list[dict[str, Any]] = []
    for payload in data.values():
        if isinstance(payload, dict):
            found.extend(payload.get("userErrors") or [])
    return found


def check(case: Case, body: dict[str, Any]) -> None:
    no_server_error(body)
    errors = errors_of(body)
    if case.expect == "ok":
        assert not errors, body
        return
    if case.expect == "null":
        assert not errors, body
        assert list(body["data"].values()) == [None], body
        return
    if case.expect == "user":
        assert not errors, body
        found = user_errors(body)
        assert found, body
        if case.code:
            assert found[0]["code"] == case.code, body
        if case.field:
            assert tuple(found[0]["field"]) == case.field, body
        return
    assert errors, body
    if case.code:
        ext = errors[0].get("extensions") or {}
        assert ext.get("code") == case.code, body
        if case.field:
            assert tuple(ext.get("field") or ()) == case.field, body


@pytest.fixture
def quiet(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO)
    return caplog


def assert_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not bad, [r.getMessage() for r in bad]


async def outcomes(api: Api) -> dict[str, float]:
    text = (await api.http.get("/metrics")).text
    found: dict[str, float] = {}
    for match in re.finditer(
        r'^ordergraph_graphql_operations_total\{[^}]*outcome="(\w+)"[^}]*\} (\S+)$', text, re.M
    ):
        found[match.group(1)] = found.get(match.group(1), 0) + float(match.group(2))
    return found


async def post(api: Api, query: str, variables: dict[str, Any], token: str) -> dict[str, Any]:
    """POST with every non-ASCII character escaped, so lone surrogates can be sent."""
    response = await api.http.post(
        "/graphql",
        content=json.dumps({"query": query, "variables": variables}, ensure_ascii=True),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    body: dict[str, Any] = response.json()
    return body


async def send(api: Api, w: World, case: Case) -> dict[str, Any]:
    token = ADMIN_TOKEN if case.token == "admin" else w.store.token
    return await post(api, case.query, substitute(case.variables, w), token)


_worlds: dict[int, World] = {}


async def shared_world(api: Api) -> World:
    key = id(api.db)
    if key not in _worlds:
        _worlds[key] = await world(api)
    return _worlds[key]


@pytest.mark.parametrize("name", list(CASES))
async def test_bad_value_gets_a_coded_answer(
    api: Api, name: str, quiet: pytest.LogCaptureFixture
) -> None:
    w = await shared_world(api)
    before = await outcomes(api)
    body = await send(api, w, CASES[name])
    check(CASES[name], body)
    after = await outcomes(api)
    assert after.get("internal_error", 0) == before.get("internal_error", 0)
    assert sum(after.values()) > sum(before.values()), "the refusal is counted in /metrics"
    assert_no_traceback(quiet)


@pytest.mark.parametrize(("conn", "cursor"), cursor_cases())
async def test_crafted_cursor_is_refused_with_a_code(
    api: Api, conn: str, cursor: str, quiet: pytest.LogCaptureFixture
) -> None:
    w = await shared_world(api)
    value = (
        w.cursors[cursor.removeprefix("from:")]
        if cursor.startswith("from:")
        else CRAFTED_CURSORS[cursor]
    )
    body = await post(api, CONNECTIONS[conn], {"h": w.store.handle, "c": value}, w.store.token)
    no_server_error(body)
    errors = errors_of(body)
    assert errors, body
    ext = errors[0].get("extensions") or {}
    assert ext.get("code") == "INVALID", body
    assert ext.get("field") in (["after"], ["before"]), body
    assert_no_traceback(quiet)


async def test_real_cursors_still_page(api: Api) -> None:
    w = await shared_world(api)
    for conn in CONNECTIONS:
        value = w.cursors[conn.split("-")[0]]
        body = await api.raw(
            CONNECTIONS[conn], {"h": w.store.handle, "c": value}, token=w.store.token
        )
        assert not errors_of(body), (conn, body)

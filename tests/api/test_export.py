"""Bulk export (GET /export/...): what a partner downloads is the store's data, complete
across pages, filtered as asked, escaped as CSV must be; refused with a coded error when
it cannot be served; limited like the rest of the API. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from ordergraph.clock import Clock
from ordergraph.storage import tables as t
from ordergraph.storage.db import Database
from tests.client import Api, StoreHandle
from tests.conftest import ADMIN_TOKEN, app_client, start_server

CREATE_KEY = """mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) {
  token userErrors { field message code } } }"""


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def new_key(api: Api, stores: list[StoreHandle], scopes: list[str]) -> str:
    data = await api.gql(
        CREATE_KEY,
        {"input": {"name": "exporter", "storeIds": [s.id for s in stores], "scopes": scopes}},
        token=ADMIN_TOKEN,
    )
    assert data["createApiKey"]["userErrors"] == []
    token: str = data["createApiKey"]["token"]
    return token


async def seeded(api: Api, orders: int = 5) -> tuple[StoreHandle, list[dict[str, Any]]]:
    """A store with products A (a title with a comma and quotes) and B, and `orders`
    orders of one or two lines."""
    store = await api.create_store(policy="ALLOW")
    await api.upsert(store, "A", title='Mug, "large"', price="12.50")
    await api.upsert(store, "B", title="Plate")
    await api.receive(store, "A", 3)
    placed = []
    for n in range(orders):
        lines = [("A", 1)] if n % 2 else [("A", 2), ("B", 1)]
        result = await api.place(store, lines, customerRef=f"cust, no. {n}")
        assert result["userErrors"] == []
        placed.append(result["order"])
    return store, placed


def ndjson(text: str) -> list[dict[str, Any]]:
    assert text.endswith("\n") or text == ""
    return [json.loads(line) for line in text.splitlines()]


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


async def get(
    http: httpx.AsyncClient, path: str, token: str | None, **params: Any
) -> httpx.Response:
    return await http.get(path, params=params, headers=bearer(token) if token else {})


def code(response: httpx.Response) -> str:
    body = response.json()
    value: str = body["errors"][0]["extensions"]["code"]
    return value


# -- content ----------------------------------------------------------------------------


async def test_orders_ndjson_holds_every_order_with_its_lines_across_pages(
    database: Database,
) -> None:
    async with app_client(database, export_page_size=2) as http:
        api = Api(http, ADMIN_TOKEN, database)
        store, placed = await seeded(api, orders=5)
        response = await get(http, "/export/orders.ndjson", store.token, store=store.handle)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/x-ndjson")
        assert "attachment" in response.headers["content-disposition"]
        assert response.headers["ordergraph-export-cursor"]
        exported = ndjson(response.text)

    assert [o["id"] for o in exported] == [o["id"] for o in placed]
    for got, want in zip(exported, placed, strict=True):
        assert got["number"] == want["number"]
        assert got["status"] == want["status"]
        assert got["stockStatus"] == want["stockStatus"]
        assert got["customerRef"] == want["customerRef"]
        assert got["currencyCode"] == "USD"
        assert [(line["id"], line["sku"], line["quantity"]) for line in got["lines"]] == [
            (line["id"], line["sku"], line["quantity"]) for line in want["lines"]
        ]
        assert [
            (line["allocated"], line["backordered"], line["unitPrice"]) for line in got["lines"]
        ] == [
            (line["allocated"], line["backordered"], line["unitPrice"]["amount"])
            for line in want["lines"]
        ]


async def test_orders_csv_has_one_row_per_line_with_the_order_repeated(database: Database) -> None:
    async with app_client(database, export_page_size=2) as http:
        api = Api(http, ADMIN_TOKEN, database)
        store, placed = await seeded(api, orders=5)
        response = await get(http, "/export/orders.csv", store.token, store=store.id)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/csv")
        text = response.text

    assert text.startswith("order_id,order_number,")
    assert "\r\n" in text
    rows = csv_rows(text)
    expected = [(o["id"], line["id"], line["sku"]) for o in placed for line in o["lines"]]
    assert [(r["order_id"], r["line_id"], r["sku"]) for r in rows] == expected
    first = rows[0]
    assert first["customer_ref"] == "cust, no. 0"  # the comma survives, quoted
    assert first["order_number"] == str(placed[0]["number"])
    assert first["in_backlog"] == "true"
    assert first["requested_ship_date"] == ""  # null is an empty field


async def test_products_csv_escapes_commas_quotes_and_line_breaks(database: Database) -> None:
    async with app_client(database, export_page_size=1) as http:
        api = Api(http, ADMIN_TOKEN, database)
        store, _ = await seeded(api, orders=3)
        await api.upsert(store, "C.1", title="Bowl; 'small'")
        # Titles may not hold line breaks through the API; one written by other means is
        # still exported intact.
        async with database.write() as conn:
            await conn.execute(
                update(t.products)
                .where(t.products.c.sku == "B")
                .values(title='Plate\r\nwith "rim", white')
            )
        csv_text = (await get(http, "/export/products.csv", store.token, store=store.handle)).text
        lines = ndjson(
            (await get(http, "/export/products.ndjson", store.token, store=store.handle)).text
        )

    rows = csv_rows(csv_text)
    assert [(r["sku"], r["title"]) for r in rows] == [
        ("A", 'Mug, "large"'),
        ("B", 'Plate\r\nwith "rim", white'),
        ("C.1", "Bowl; 'small'"),
    ]
    a = rows[0]
    # A: 3 on hand, all allocated; 2 + 1 + 2 ordered => 5 ordered, 2 backordered.
    assert (a["on_hand"], a["allocated"], a["available"], a["backordered"]) == ("3", "3", "0", "2")
    assert a["available_to_sell"] == ""  # ALLOW: unlimited (null)
    assert a["price"] == "12.50"
    assert a["currency_code"] == "USD"
    assert [p["sku"] for p in lines] == ["A", "B", "C.1"]
    assert lines[1]["title"] == 'Plate\r\nwith "rim", white'
    assert lines[0]["onHand"] == 3
    assert lines[0]["backordered"] == 2


async def test_an_empty_store_exports_a_header_only_csv_and_an_empty_ndjson(
    database: Database,
) -> None:
    async with app_client(database) as http:
        api = Api(http, ADMIN_TOKEN, database)
        store = await api.create_store()
        as_csv = await get(http, "/export/orders.csv", store.token, store=store.handle)
        as_ndjson = await get(http, "/export/orders.ndjson", store.token, store=store.handle)
    assert as_csv.status_code == 200
    assert csv_rows(as_csv.text) == []
    assert as_csv.text.startswith("order_id,")
    assert as_ndjson.status_code == 200
    assert as_ndjson.text == ""


# -- filters ----------------------------------------------------------------------------


async def test_filters_by_status_placed_since_and_updated_since(database: Database) -> None:
    clock = Clock()
    start = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
    clock.freeze(start)
    async with app_client(database, clock=clock, export_page_size=1) as http:
        api = Api(http, ADMIN_TOKEN, database)
        store, placed = await seeded(api, orders=4)  # all placed at `start`
        numbers = [o["number"] for o in placed]
        clock.advance(dt.timedelta(days=2))
        shipped = await api.ship(store, placed[1]["id"])  # A x1, allocated: ships
        assert shipped["userErrors"] == []
        cancelled = await api.cancel(store, placed[3]["id"])
        assert cancelled["userErrors"] == []
        late = await api.place(store, [("B", 1)])
        numbers.append(late["order"]["number"])

        async def exported(**params: Any) -> list[int]:
            response = await get(
                http, "/export/orders.ndjson", store.token, store=store.handle, **params
            )
            assert response.status_code == 200, response.text
            return [o["number"] for o in ndjson(response.text)]

        assert await exported() == numbers
        assert await exported(status="SHIPPED") == [numbers[1]]
        assert await exported(status="shipped,cancelled") == [numbers[1], numbers[3]]
        assert await exported(status=["OPEN", "CANCELLED"]) == [
            numbers[0],
            numbers[2],
            numbers[3],
            numbers[4],
        ]
        later = (start + dt.timedelta(days=1)).isoformat()
        assert await exported(placed_since=later) == [numbers[4]]
        assert await exported(placed_since="2026-03-01") == numbers
        # Updated: an event at or after the instant (the shipment, the cancellation, the
        # new order), whatever the order's placing date.
        assert await exported(updated_since=later) == [numbers[1], numbers[3], numbers[4]]
        assert await exported(updated_since="2026-03-03T12:00:01+00:00") == []
        assert await exported(updated_since=later, status="OPEN") == [numbers[4]]


H = "{handle}"  # the test's store


@pytest.mark.parametrize(
    ("path", "params", "parameter"),
    [
        ("/export/orders.ndjson", {"store": H, "placed_since": "yesterday"}, "placed_since"),
        ("/export/orders.ndjson", {"store": H, "placed_since": "2026-13-01"}, "placed_since"),
        ("/export/orders.csv", {"store": H, "updated_since": "2026-01-01T00:00"}, "updated_since"),
        ("/export/orders.csv", {"store": H, "updated_since": "0001-01-01T00:00Z"}, "updated_since"),
        ("/export/orders.csv", {"store": H, "status": "SHIPPING"}, "status"),
        ("/export/orders.csv", {"store": H, "status": ","}, "status"),
        ("/export/orders.csv", {"store": H, "sort": "desc"}, "sort"),
        ("/export/products.csv", {"store": H, "status": "OPEN"}, "status"),
        ("/export/orders.csv", {}, "store"),
        ("/export/orders.csv", {"store": "Not a handle!"}, "store"),
        ("/export/orders.csv", {"store": "x" * 500}, "store"),
        ("/export/orders.xlsx", {"store": H}, None),
        ("/export/customers.csv", {"store": H}, None),
        ("/export/orders", {"store": H}, None),
    ],
)
async def test_bad_requests_get_a_coded_400_naming_the_parameter(
    database: Database, path: str, params: dict[str, str], parameter: str | None
) -> None:
    async with app_client(database) as http:
        api = Api(http, ADMIN_TOKEN, database)
        store = await api.create_store()
        filled = {k: v.replace(H, store.handle) for k, v in params.items()}
        response = await get(http, path, store.token, **filled)
    assert response.status_code == 400, response.text
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "BAD_REQUEST"
    assert error["extensions"].get("parameter") == parameter
    assert "Internal" not in error["message"]


# -- who may export ---------------------------------------------------------------------


async def test_refuses_without_a_token_without_read_and_for_the_admin_token(
    database: Database,
) -> None:
    async with app_client(database) as http:
        api = Api(http, ADMIN_TOKEN, database)
        store = await api.create_store()
        writer = await new_key(api, [store], ["ORDERS", "INVENTORY"])
        path = "/export/orders.csv"

        none = await get(http, path, None, store=store.handle)
        assert (none.status_code, code(none)) == (401, "UNAUTHENTICATED")
        assert none.headers["www-authenticate"] == "Bearer"
        wrong = await get(http, path, "og_not_a_real_token", store=store.handle)
        assert (wrong.status_code, code(wrong)) == (401, "UNAUTHENTICATED")
        no_read = await get(http, path, writer, store=store.handle)
        assert (no_read.status_code, code(no_read)) == (403, "FORBIDDEN")
        admin = await get(http, path, ADMIN_TOKEN, store=store.handle)
        assert (admin.status_code, code(admin)) == (403, "FORBIDDEN")
        post = await http.post(path, params={"store": store.handle}, headers=bearer(store.token))
        assert (post.status_code, code(post)) == (405, "METHOD_NOT_ALLOWED")


async def test_another_stores_data_looks_exactly_like_no_store(database: Database) -> None:
    async with app_client(database) as http:
        api = Api(http, ADMIN_TOKEN, database)
        mine, _ = await seeded(api, orders=1)
        theirs, _ = await seeded(api, orders=2)
        reader = await new_key(api, [mine], ["READ"])
        by_handle = await get(http, "/export/orders.csv", reader, store=theirs.handle)
        by_id = await get(http, "/export/orders.ndjson", reader, store=theirs.id)
        missing = await get(http, "/export/orders.csv", reader, store="no-such-store")
        missing_id = await get(http, "/export/products.csv", reader, store="U3RvcmU6OTk5OTk5")
        own = await get(http, "/export/orders.ndjson", reader, store=mine.handle)

    for refused in (by_handle, by_id, missing, missing_id):
        assert refused.status_code == 404
        assert refused.json() == missing.json()
    assert code(missing) == "NOT_FOUND"
    assert own.status_code == 200
    assert len(ndjson(own.text)) == 1


# -- limits -----------------------------------------------------------------------------


async def test_an_export_is_charged_to_the_keys_bucket_and_refused_when_it_is_dry(
    database: Database,
) -> None:
    # Capacity 30, one point a row, pages of 10: an export of 5 orders costs 3 + 10
    # (the request and a full page, charged at the start).
    async with app_client(
        database,
        rate_limit_capacity=30,
        rate_limit_restore_per_second=1,
        export_rows_per_point=1,
        export_page_size=10,
    ) as http:
        api = Api(http, ADMIN_TOKEN, database)
        store = await api.create_store()
        reader = await new_key(api, [store], ["READ"])
        first = await get(http, "/export/orders.csv", reader, store=store.handle)
        second = await get(http, "/export/orders.csv", reader, store=store.handle)
        third = await get(http, "/export/orders.csv", reader, store=store.handle)
    assert first.status_code == 200
    assert second.status_code == 200
    assert (third.status_code, code(third)) == (429, "THROTTLED")
    assert int(third.headers["retry-after"]) >= 1
    assert third.json()["errors"][0]["extensions"]["retryAfterSeconds"] > 0


async def test_an_export_larger_than_the_bucket_is_paced_not_cut(database: Database) -> None:
    async with app_client(database, export_page_size=5) as http:
        api = Api(http, ADMIN_TOKEN, database)
        store, placed = await seeded(api, orders=30)
    async with app_client(
        database,
        rate_limit_capacity=20,
        rate_limit_restore_per_second=40,
        export_rows_per_point=1,
        export_page_size=5,
    ) as http:
        api = Api(http, ADMIN_TOKEN, database)
        reader = await new_key(api, [store], ["READ"])
        began = time.monotonic()
        response = await get(http, "/export/orders.ndjson", reader, store=store.handle)
        took = time.monotonic() - began
    assert response.status_code == 200
    assert [o["id"] for o in ndjson(response.text)] == [o["id"] for o in placed]
    # 3 + 35 points (seven pages of 5, the last one empty) through a bucket of 20
    # restoring 40 a second: at least (38 - 20) / 40 s of waiting.
    assert took >= 0.4


async def test_a_store_runs_at_most_the_configured_exports_at_once(database: Database) -> None:
    async with app_client(database, export_page_size=5) as http:
        api = Api(http, ADMIN_TOKEN, database)
        store, _ = await seeded(api, orders=10)
    async with app_client(
        database,
        export_max_concurrent=1,
        rate_limit_capacity=10,
        rate_limit_restore_per_second=5,
        export_rows_per_point=1,
        export_page_size=5,
    ) as http:
        api = Api(http, ADMIN_TOKEN, database)
        slow = await new_key(api, [store], ["READ"])  # its bucket paces its export
        other = await new_key(api, [store], ["READ"])
        running = asyncio.create_task(get(http, "/export/orders.csv", slow, store=store.handle))
        await asyncio.sleep(0.3)
        assert not running.done()
        busy = await get(http, "/export/products.csv", other, store=store.handle)
        done = await running
        after = await get(http, "/export/products.csv", other, store=store.handle)
    assert (busy.status_code, code(busy)) == (429, "THROTTLED")
    assert busy.headers["retry-after"] == "5"
    assert done.status_code == 200
    assert len(csv_rows(done.text)) == 15
    assert after.status_code == 200


# -- streaming --------------------------------------------------------------------------


@pytest.mark.e2e
async def test_the_first_orders_arrive_long_before_the_export_ends(
    database: Database, tmp_path: Path
) -> None:
    """Against a real server process: pages of one order, paced by the key's bucket
    (10 points, 5 a second, one point a row), so 20 orders take seconds to export; the
    first order has arrived well before."""
    async with app_client(database) as http:
        api = Api(http, ADMIN_TOKEN, database)
        store, placed = await seeded(api, orders=20)
        reader = await new_key(api, [store], ["READ"])
    server = start_server(
        database.url,
        tmp_path / "server.log",
        {
            "ORDERGRAPH_EXPORT_PAGE_SIZE": "1",
            "ORDERGRAPH_EXPORT_ROWS_PER_POINT": "1",
            "ORDERGRAPH_RATE_LIMIT_CAPACITY": "10",
            "ORDERGRAPH_RATE_LIMIT_RESTORE_PER_SECOND": "5",
        },
    )
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            began = time.monotonic()
            first_at = None
            body = b""
            async with http.stream(
                "GET",
                "/export/orders.ndjson",
                params={"store": store.handle},
                headers={**bearer(reader), "accept-encoding": "identity"},
            ) as response:
                assert response.status_code == 200
                async for chunk in response.aiter_raw():
                    if first_at is None and chunk:
                        first_at = time.monotonic() - began
                    body += chunk
            total = time.monotonic() - began
    finally:
        server.stop()
    assert [o["id"] for o in ndjson(body.decode())] == [o["id"] for o in placed]
    assert first_at is not None
    assert total >= 2.0, total
    assert first_at < 1.0, (first_at, total)
    assert first_at < total / 3, (first_at, total)


@pytest.mark.e2e
async def test_a_client_that_leaves_gives_its_export_slot_back(
    database: Database, tmp_path: Path
) -> None:
    """One export at a time per store; the first is paced to take seconds, its client
    leaves after the first order, and the next export is let in at once."""
    async with app_client(database) as http:
        api = Api(http, ADMIN_TOKEN, database)
        store, _ = await seeded(api, orders=20)
        reader = await new_key(api, [store], ["READ"])
        other = await new_key(api, [store], ["READ"])
    server = start_server(
        database.url,
        tmp_path / "server.log",
        {
            "ORDERGRAPH_EXPORT_MAX_CONCURRENT": "1",
            "ORDERGRAPH_EXPORT_PAGE_SIZE": "1",
            "ORDERGRAPH_EXPORT_ROWS_PER_POINT": "1",
            "ORDERGRAPH_RATE_LIMIT_CAPACITY": "10",
            "ORDERGRAPH_RATE_LIMIT_RESTORE_PER_SECOND": "2",
        },
    )
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            params = {"store": store.handle}
            async with http.stream(
                "GET", "/export/orders.ndjson", params=params, headers=bearer(reader)
            ) as response:
                assert response.status_code == 200
                # One chunk, keeping the stream open (leaving an `async for` early would
                # close it).
                chunks = response.aiter_raw()
                assert await anext(chunks)
                busy = await http.get("/export/orders.csv", params=params, headers=bearer(other))
                assert (busy.status_code, code(busy)) == (429, "THROTTLED")
            # The first client has gone: its export stops and frees the store's slot.
            for _ in range(20):
                await asyncio.sleep(0.5)
                after = await http.get("/export/products.csv", params=params, headers=bearer(other))
                if after.status_code != 429:
                    break
    finally:
        server.stop()
    assert after.status_code == 200
    assert [row["sku"] for row in csv_rows(after.text)] == ["A", "B"]

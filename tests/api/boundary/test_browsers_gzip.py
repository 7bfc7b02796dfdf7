"""Responses of at least ORDERGRAPH_GZIP_MIN_BYTES (default 1 KB) are gzipped for clients
that accept it; the others, and clients that do not, get them as they were."""

from __future__ import annotations

import gzip
import json
import time
import zlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from ordergraph.app import create_app
from ordergraph.settings import Settings
from ordergraph.storage.db import Database
from tests.client import Api, StoreHandle
from tests.conftest import ADMIN_TOKEN

PAGE = """query Page($handle: String!) { store(handle: $handle) {
  orders(first: 250) { totalCount pageInfo { hasNextPage endCursor } nodes {
    id number placedAt status stockStatus expectedShipDate customerRef
    backorderedValue { amount currencyCode }
    lines { sku quantity allocated backordered }
  } } } }"""
ORDERS = 250


def settings_for(database: Database, **changes: Any) -> Settings:
    # The page is big on purpose: room enough under the cost and rate limits for it.
    return Settings(
        database_url=database.url,
        admin_token=ADMIN_TOKEN,
        max_cost=1_000_000,
        rate_limit_capacity=1_000_000,
        rate_limit_restore_per_second=1_000_000,
        **changes,
    )


@pytest.fixture
async def client(database: Database) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings_for(database), db=database)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test", timeout=60
    ) as http:
        yield http


async def fetch(
    http: httpx.AsyncClient, body: dict[str, Any], token: str | None, **headers: str
) -> tuple[httpx.Response, bytes]:
    """The response and its body as sent, before any decoding."""
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with http.stream("POST", "/graphql", json=body, headers=headers) as response:
        raw = b"".join([chunk async for chunk in response.aiter_raw()])
    return response, raw


async def store_with_orders(api: Api) -> StoreHandle:
    store = await api.create_store(policy="ALLOW")
    await api.upsert(store, "MUG")
    await api.upsert(store, "KETTLE")
    for n in range(ORDERS):
        placed = await api.place(
            store, [("MUG", 1 + n % 3), ("KETTLE", 1)], customerRef=f"customer-{n:04d}"
        )
        assert placed["userErrors"] == []
    return store


async def test_a_250_order_page_is_gzipped_for_clients_that_accept_it(
    api: Api, client: httpx.AsyncClient, database: Database
) -> None:
    store = await store_with_orders(api)
    body = {"query": PAGE, "variables": {"handle": store.handle}}

    plain, plain_raw = await fetch(client, body, store.token, **{"Accept-Encoding": "identity"})
    assert plain.status_code == 200
    assert "content-encoding" not in plain.headers
    page = json.loads(plain_raw)
    assert "errors" not in page, page
    assert len(page["data"]["store"]["orders"]["nodes"]) == ORDERS

    packed, packed_raw = await fetch(client, body, store.token, **{"Accept-Encoding": "gzip"})
    assert packed.status_code == 200
    assert packed.headers["content-encoding"] == "gzip"
    assert "accept-encoding" in packed.headers["vary"].lower()
    assert int(packed.headers["content-length"]) == len(packed_raw)
    assert packed.headers["content-type"] == plain.headers["content-type"]
    assert json.loads(gzip.decompress(packed_raw)) == page
    assert packed.headers["x-request-id"]  # headers set by the view survive

    ratio = len(packed_raw) / len(plain_raw)
    started = time.perf_counter()
    for _ in range(20):
        level9 = len(gzip.compress(plain_raw, compresslevel=9))
    ms9 = (time.perf_counter() - started) / 20 * 1000
    started = time.perf_counter()
    for _ in range(20):
        gzip.compress(plain_raw, compresslevel=6)
    ms6 = (time.perf_counter() - started) / 20 * 1000
    print(
        f"\n{ORDERS}-order page: {len(plain_raw):,} bytes, gzipped {len(packed_raw):,} "
        f"({ratio:.1%}); level 6 {ms6:.2f} ms, level 9 {level9:,} bytes {ms9:.2f} ms"
    )
    assert len(plain_raw) > 90_000
    assert ratio < 0.15

    # The GraphQL-over-HTTP media type is compressed alike and keeps its content type.
    modern = {"Accept": "application/graphql-response+json", "Accept-Encoding": "gzip"}
    typed, typed_raw = await fetch(client, body, store.token, **modern)
    assert typed.headers["content-encoding"] == "gzip"
    assert json.loads(gzip.decompress(typed_raw)) == page
    modern["Accept-Encoding"] = "identity"
    typed_plain, _ = await fetch(client, body, store.token, **modern)
    assert typed.headers["content-type"] == typed_plain.headers["content-type"]

    # With the setting at 0, nothing is compressed.
    off = create_app(settings_for(database, gzip_min_bytes=0), db=database)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=off), base_url="http://test", timeout=60
    ) as http:
        unpacked, unpacked_raw = await fetch(http, body, store.token, **{"Accept-Encoding": "gzip"})
    assert "content-encoding" not in unpacked.headers
    assert json.loads(unpacked_raw) == page


async def test_small_responses_are_sent_as_they_are(
    api: Api, client: httpx.AsyncClient, database: Database
) -> None:
    small, raw = await fetch(
        client, {"query": "{ __typename }"}, None, **{"Accept-Encoding": "gzip"}
    )
    assert len(raw) < 1024
    assert "content-encoding" not in small.headers
    assert json.loads(raw)["data"] == {"__typename": "Query"}

    # The threshold is the setting: at 20 bytes, the same answer is compressed.
    low = create_app(settings_for(database, gzip_min_bytes=20), db=database)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=low), base_url="http://test"
    ) as http:
        packed, packed_raw = await fetch(
            http, {"query": "{ __typename }"}, None, **{"Accept-Encoding": "gzip"}
        )
    assert packed.headers["content-encoding"] == "gzip"
    unpacked = json.loads(zlib.decompress(packed_raw, 16 + zlib.MAX_WBITS))
    assert unpacked["data"] == {"__typename": "Query"}

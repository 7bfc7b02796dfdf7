"""Round trips to PostgreSQL per operation: a deterministic guard of the hot path.

The app reaches the database through a counting wire proxy (tests/pg_wire.py): every
simple query and every extended-protocol Sync is one round trip the request waited for.
Counts are taken after a warm-up, as a long-running process sees them: the token is in
the per-process cache and the pool's connections have their statements prepared.
receiveStock here fills one waiting order; shipOrder ships a whole order.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from bench.pg_wire import Wire, proxy
from ordergraph.app import create_app
from ordergraph.clock import Clock
from ordergraph.settings import Settings
from ordergraph.storage.db import Database
from tests.client import Api, StoreHandle
from tests.conftest import ADMIN_TOKEN, PG_HOST, PG_PORT

# A placeOrder or shipOrder is one transaction of three round trips (BEGIN; the store's
# lock with the first reads; the writes with COMMIT): the budget was four. A
# receiveStock reads its queue of waiting lines and their orders besides; a trivial
# read is one statement (the budget: two).
PLACE_ORDER = 3
RECEIVE_STOCK = 8
SHIP_ORDER = 3
TRIVIAL_READ = 2

TRIVIAL = "query($h: String!) { store(handle: $h) { handle } }"
ORDERS_PAGE = """query($h: String!) { store(handle: $h) { orders(first: 50) { nodes {
  id number placedAt status stockStatus lines { id sku quantity allocated backordered
  unitPrice { amount currencyCode } product { id sku title } } } } } }"""
BACKLOG = """query($h: String!) { store(handle: $h) { backlog {
  backlog { orders units value { amount currencyCode } }
  backorders { orders units value { amount currencyCode } }
  overdue { orders units value { amount currencyCode } } } } }"""
# A page of 50 orders with their lines and products: the store, the page (orders and
# their lines, two statements) and the products, one statement each (the issue's
# budget: five). `backlog` now: the store, then the figures in one statement.
ORDERS_PAGE_TRIPS = 4
BACKLOG_TRIPS = 2


@asynccontextmanager
async def _proxied_api(pg_url: str, clock: Clock) -> AsyncIterator[tuple[Api, Wire]]:
    async with proxy(PG_HOST, PG_PORT) as wire:
        url = make_url(pg_url).set(host="127.0.0.1", port=wire.port)
        db = Database(url.render_as_string(hide_password=False), pool_size=4)
        # The token stays cached for the whole test: counts are of a key already looked up.
        settings = Settings(database_url=db.url, admin_token=ADMIN_TOKEN, auth_cache_seconds=3600)
        app = create_app(settings, clock=clock, db=db)
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                yield Api(http, ADMIN_TOKEN, db), wire
        finally:
            await db.dispose()


async def _fewest(
    wire: Wire, label: str, budget: int, call: Callable[[], Awaitable[dict[str, Any]]]
) -> dict[str, Any]:
    """The operation three times: the fewest round trips of the three must be in budget.

    (A background task of the process, the rate limits' reconciliation about once a
    second, may add its own round trips to one of them; it cannot to all three.)
    """
    counts, trips, result = [], [], {}
    for _ in range(3):
        wire.reset()
        result = await call()
        counts.append(wire.round_trips)
        trips.append(list(wire.trips))
    fewest = min(counts)
    print(f"{label}: {fewest} round trips (of {counts})")
    assert fewest <= budget, f"{label}: {fewest} round trips (budget {budget}):\n  " + "\n  ".join(
        trips[counts.index(fewest)]
    )
    return result


async def _warm(api: Api, store: StoreHandle) -> None:
    """Every kind of operation twice, so each pooled connection has its statements."""
    for _ in range(3):
        placed = await api.place(store, [("A", 1), ("B", 2)])
        assert placed["userErrors"] == []
        await api.receive(store, "A", 1)
        await api.ship(store, placed["order"]["id"])
        await api.gql(
            "query($h: String!) { store(handle: $h) { handle } }",
            {"h": store.handle},
            token=store.token,
        )


@pytest.mark.xdist_group("timing")
async def test_round_trips_of_the_hot_operations(pg_url: str, clock: Clock) -> None:
    async with _proxied_api(pg_url, clock) as (api, wire):
        store = await api.create_store(policy="ALLOW")
        for sku in ("A", "B", "C"):
            assert (await api.upsert(store, sku))["userErrors"] == []
        await api.receive(store, "A", 1000)
        await api.receive(store, "B", 1000)
        await _warm(api, store)

        placed = await _fewest(
            wire, "placeOrder", PLACE_ORDER, lambda: api.place(store, [("A", 1), ("B", 2)])
        )
        assert placed["userErrors"] == []
        assert [line["allocated"] for line in placed["order"]["lines"]] == [1, 2]

        # Orders wait for C; each delivery fills the oldest waiting one.
        waiting = [(await api.place(store, [("C", 2)]))["order"] for _ in range(3)]
        filled = await _fewest(
            wire, "receiveStock", RECEIVE_STOCK, lambda: api.receive(store, "C", 2)
        )
        assert filled["userErrors"] == []
        assert [line["order"]["number"] for line in filled["filledLines"]] == [
            waiting[-1]["number"]
        ]

        to_ship = [(await api.place(store, [("A", 1)]))["order"]["id"] for _ in range(3)]
        shipped = await _fewest(
            wire, "shipOrder", SHIP_ORDER, lambda: api.ship(store, to_ship.pop(0))
        )
        assert shipped["userErrors"] == []
        assert shipped["order"]["status"] == "SHIPPED"

        read = await _fewest(
            wire,
            "trivial read",
            TRIVIAL_READ,
            lambda: api.gql(TRIVIAL, {"h": store.handle}, token=store.token),
        )
        assert read == {"store": {"handle": store.handle}}

        for _ in range(50):
            await api.place(store, [("A", 1), ("B", 1), ("C", 1)])
        page = await _fewest(
            wire,
            "page of 50 orders",
            ORDERS_PAGE_TRIPS,
            lambda: api.gql(ORDERS_PAGE, {"h": store.handle}, token=store.token),
        )
        nodes = page["store"]["orders"]["nodes"]
        assert len(nodes) == 50
        assert all(line["product"]["sku"] == line["sku"] for n in nodes for line in n["lines"])
        figures = await _fewest(
            wire,
            "backlog",
            BACKLOG_TRIPS,
            lambda: api.gql(BACKLOG, {"h": store.handle}, token=store.token),
        )
        assert figures["store"]["backlog"]["backlog"]["orders"] > 50

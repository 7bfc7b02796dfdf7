"""Round trips to PostgreSQL per operation: a deterministic guard of the hot path.

The app reaches the database through a counting wire proxy (tests/pg_wire.py): every
simple query and every extended-protocol Sync is one round trip the request waited for.
Counts are taken after a warm-up, as a long-running process sees them: the token is in
the per-process cache and the pool's connections have their statements prepared.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from ordergraph.app import create_app
from ordergraph.clock import Clock
from ordergraph.settings import Settings
from ordergraph.storage.db import Database
from tests.client import Api, StoreHandle
from tests.conftest import ADMIN_TOKEN, PG_HOST, PG_PORT
from tests.pg_wire import Wire, proxy

# The budgets of issue 11: a placeOrder in one transaction of at most 4 round trips
# (BEGIN with the store's lock, the reads, the writes, COMMIT), and the other mutations
# within twice that; a trivial read in at most 2.
PLACE_ORDER = 4
RECEIVE_STOCK = 8
SHIP_ORDER = 8
TRIVIAL_READ = 2

TRIVIAL = "query($h: String!) { store(handle: $h) { handle } }"


@asynccontextmanager
async def _proxied_api(pg_url: str, clock: Clock) -> AsyncIterator[tuple[Api, Wire]]:
    async with proxy(PG_HOST, PG_PORT) as wire:
        url = make_url(pg_url).set(host="127.0.0.1", port=wire.port)
        db = Database(url.render_as_string(hide_password=False), pool_size=4)
        settings = Settings(database_url=db.url, admin_token=ADMIN_TOKEN)
        app = create_app(settings, clock=clock, db=db)
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                yield Api(http, ADMIN_TOKEN, db), wire
        finally:
            await db.dispose()


async def _counted(
    wire: Wire, label: str, budget: int, call: Awaitable[dict[str, Any]]
) -> dict[str, Any]:
    wire.reset()
    result = await call
    trips = list(wire.trips)
    print(f"{label}: {wire.round_trips} round trips")
    assert wire.round_trips <= budget, (
        f"{label}: {wire.round_trips} round trips (budget {budget}):\n  " + "\n  ".join(trips)
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

        placed = await _counted(
            wire, "placeOrder", PLACE_ORDER, api.place(store, [("A", 1), ("B", 2)])
        )
        assert placed["userErrors"] == []
        assert [line["allocated"] for line in placed["order"]["lines"]] == [1, 2]

        # Three orders wait for C; the stock that arrives fills them, oldest first.
        waiting = [(await api.place(store, [("C", 2)]))["order"] for _ in range(3)]
        filled = await _counted(wire, "receiveStock", RECEIVE_STOCK, api.receive(store, "C", 6))
        assert filled["userErrors"] == []
        assert [line["order"]["number"] for line in filled["filledLines"]] == [
            order["number"] for order in waiting
        ]

        shipped = await _counted(
            wire, "shipOrder", SHIP_ORDER, api.ship(store, placed["order"]["id"])
        )
        assert shipped["userErrors"] == []
        assert shipped["order"]["status"] == "SHIPPED"

        read = await _counted(
            wire,
            "trivial read",
            TRIVIAL_READ,
            api.gql(TRIVIAL, {"h": store.handle}, token=store.token),
        )
        assert read == {"store": {"handle": store.handle}}

"""backlogChanged pushes when an order becomes overdue, with no other change in the store.

The server runs in this process (uvicorn on a real port) so that the test can move its
clock past the end of the requested ship date; the subscriber must be sent the new
summary, with the overdue sweep on (it writes the OVERDUE event) and with it off (the
live figures wake at the instant by themselves).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

import httpx
import pytest

from bench import harness
from ordergraph.app import create_app
from ordergraph.clock import Clock
from ordergraph.settings import Settings
from ordergraph.storage.db import Database
from tests.client import Api
from tests.conftest import ADMIN_TOKEN
from tests.ws_client import ws_connect

SWEEP_SECONDS = 1


@pytest.fixture(params=[SWEEP_SECONDS, 0], ids=["sweeping", "no-sweep"])
async def served(
    database: Database, clock: Clock, request: pytest.FixtureRequest
) -> AsyncIterator[str]:
    # With the sweep off, the push can only come from the figures' own wake-up at the
    # instant the order became overdue (live/figures.py).
    settings = Settings(
        database_url=database.url,
        admin_token=ADMIN_TOKEN,
        overdue_sweep_seconds=request.param,
        tail_poll_ms=200,
    )
    app = create_app(settings, clock=clock, db=database)
    async with harness.serve_in_loop(app) as url:
        yield url


async def test_backlog_changed_pushes_when_an_order_becomes_overdue(
    served: str, clock: Clock
) -> None:
    async with httpx.AsyncClient(base_url=served, timeout=30) as http:
        api = Api(http, ADMIN_TOKEN, None)
        store = await api.create_store(policy="ALLOW", timezone="UTC")
        await api.upsert(store, "A")
        today = clock().astimezone(dt.UTC).date()
        await api.place(store, [("A", 2)], requestedShipDate=today.isoformat())

        async with ws_connect(served) as ws:
            await ws.init(store.token)
            await ws.subscribe(
                """subscription($s: ID!) { backlogChanged(storeId: $s) {
                     backlog { orders } overdue { orders units }
                     overdueBackorders { orders units } } }""",
                {"s": store.id},
            )
            first = (await ws.next_data())["backlogChanged"]
            assert first["backlog"] == {"orders": 1}
            assert first["overdue"] == {"orders": 0, "units": 0}

            # Nothing else happens in the store: only the end of the day passes.
            midnight = dt.datetime.combine(today + dt.timedelta(days=1), dt.time(), dt.UTC)
            clock.advance(midnight - clock() + dt.timedelta(seconds=1))
            loop = asyncio.get_running_loop()
            started = loop.time()
            pushed = (await ws.next_data(wait=SWEEP_SECONDS + 10))["backlogChanged"]
            waited = loop.time() - started
        assert pushed["overdue"] == {"orders": 1, "units": 2}
        assert pushed["overdueBackorders"] == {"orders": 1, "units": 2}
        assert waited < SWEEP_SECONDS + 3, f"the push came {waited:.1f} s after the date ended"

"""backlogChanged: 2,000 subscriptions to one store share each computation of the figures.

The server runs in this process (uvicorn on a real port) so the test can read how many
times the figures were computed (`app.state.live.feed.computations`). 2,000
subscriptions over 20 websocket connections, then 100 orders: the figures are computed
at most 100 times, and every subscription's last push is the final figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from bench import harness
from ordergraph.app import create_app
from ordergraph.clock import Clock
from ordergraph.settings import Settings
from ordergraph.storage.db import Database
from tests.client import Api
from tests.conftest import ADMIN_TOKEN
from tests.ws_client import WsClient, ws_connect

CONNECTIONS = 20
PER_CONNECTION = 100
ORDERS = 100
SUMMARY = """subscription($s: ID!) { backlogChanged(storeId: $s) {
    backlog { orders units } backorders { orders units } } }"""


@pytest.fixture
async def served(database: Database, clock: Clock) -> AsyncIterator[tuple[str, Starlette]]:
    settings = Settings(
        database_url=database.url,
        admin_token=ADMIN_TOKEN,
        tail_poll_ms=200,
        max_subscriptions_per_key=CONNECTIONS * PER_CONNECTION,
        max_subscriptions_per_connection=PER_CONNECTION,
        rate_limit_capacity=1_000_000,  # 2,000 subscriptions at once: lift the key's rate
    )
    app = create_app(settings, clock=clock, db=database)
    async with harness.serve_in_loop(app) as url:
        yield url, app


async def _follow(ws: WsClient, latest: dict[str, dict[str, Any]], odd: list[Any]) -> None:
    """Keep the latest summary each of the connection's subscriptions was sent; anything
    else the server sends (errors, completions) goes to `odd`."""
    while True:
        message = json.loads(await ws.conn.recv())
        if message["type"] == "next" and not message["payload"].get("errors"):
            latest[message["id"]] = message["payload"]["data"]["backlogChanged"]
        elif message["type"] not in ("ping", "pong"):
            odd.append(message)


async def test_two_thousand_subscribers_share_each_computation(
    served: tuple[str, Starlette],
) -> None:
    url, app = served
    feed = app.state.live.feed
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        api = Api(http, ADMIN_TOKEN, None)
        store = await api.create_store(policy="ALLOW")
        await api.upsert(store, "A")  # none in stock: every order waits
        async with contextlib.AsyncExitStack() as stack:
            sockets = [
                await stack.enter_async_context(ws_connect(url, ping_interval=None))
                for _ in range(CONNECTIONS)
            ]
            for ws in sockets:
                await ws.init(store.token)
            latest: list[dict[str, dict[str, Any]]] = [{} for _ in sockets]
            for ws in sockets:
                for _ in range(PER_CONNECTION):
                    await ws.subscribe(SUMMARY, {"s": store.id})
            odd: list[Any] = []
            followers = [
                asyncio.create_task(_follow(ws, seen, odd))
                for ws, seen in zip(sockets, latest, strict=True)
            ]
            try:
                await _until(lambda: sum(len(seen) for seen in latest) == 2000 or odd, 120)
                assert not odd, odd[:3]
                before = feed.computations
                for _ in range(ORDERS // 10):  # ten clients at a time
                    await asyncio.gather(*(api.place(store, [("A", 1)]) for _ in range(10)))
                final = {
                    "backlog": {"orders": ORDERS, "units": ORDERS},
                    "backorders": {"orders": ORDERS, "units": ORDERS},
                }
                await _until(
                    lambda: odd or all(s == final for seen in latest for s in seen.values()), 120
                )
            finally:
                for task in followers:
                    task.cancel()
                await asyncio.gather(*followers, return_exceptions=True)
    assert not odd, odd[:3]
    assert before <= 2, f"2,000 subscribers joining computed the figures {before} times"
    computed = feed.computations - before
    assert computed <= ORDERS, f"{computed} computations for {ORDERS} orders"


async def _until(done: Any, seconds: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not done():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)

"""Tasks the server makes per request: a deterministic guard of the hot path's overhead.

Each asyncio task costs its creation, a turn of the event loop to start and callbacks to
finish; the fewer a request needs, the more of the server's single thread is left for
requests. Counted with a task factory on the running loop, only those made in the
request's context (not the background work of this app or of an earlier test's), after a
warm-up (the token in the process's short cache), the fewest of three runs.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from ordergraph.app import create_app
from ordergraph.clock import Clock
from ordergraph.settings import Settings
from ordergraph.storage.db import Database
from tests.client import Api
from tests.conftest import ADMIN_TOKEN

# placeOrder: the operation with its deadline (ordergraph/http.py), the store's queue,
# which runs its units of work itself (resolvers/batches.py), and SQLAlchemy's close of
# the unit's connection, which finishes in a task of its own. Before: 8. The key's lookup
# made one per request, though answered from the short cache; waiting for a commit's
# wake-up made one in each of the live hub and the webhook worker; the watch for the
# client going away started with every request (now only with one still running after
# 50 ms); and each unit of work ran in a task of its own.
PLACE_ORDER_TASKS = 3
# A trivial read: the operation and the close of the read's connection (4 before).
TRIVIAL_READ_TASKS = 2

TRIVIAL = "query($h: String!) { store(handle: $h) { handle } }"


# Set around the request: only tasks made in its context (the request's own, and those
# they make) are counted, not those of background work of this or an earlier app.
_IN_REQUEST: contextvars.ContextVar[bool] = contextvars.ContextVar("in_request", default=False)


@contextmanager
def _counting_tasks() -> Iterator[Counter[str]]:
    loop = asyncio.get_running_loop()
    made: Counter[str] = Counter()
    previous = loop.get_task_factory()

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        if _IN_REQUEST.get():
            made[getattr(coro, "__qualname__", type(coro).__name__)] += 1
        return asyncio.Task(coro, loop=loop, **kwargs)

    loop.set_task_factory(factory)
    marked = _IN_REQUEST.set(True)
    try:
        yield made
    finally:
        _IN_REQUEST.reset(marked)
        loop.set_task_factory(previous)


async def _fewest(label: str, budget: int, call: Callable[[], Awaitable[Any]]) -> None:
    runs = []
    for _ in range(3):
        with _counting_tasks() as made:
            await call()
            await asyncio.sleep(0.05)  # let what the request set going start
        runs.append(made)
    fewest = min(runs, key=lambda made: sum(made.values()))
    print(f"{label}: {sum(fewest.values())} tasks: {dict(fewest)}")
    assert sum(fewest.values()) <= budget, f"{label}: {dict(fewest)} (budget {budget})"


@pytest.mark.xdist_group("timing")
async def test_tasks_made_per_hot_request(pg_url: str, clock: Clock) -> None:
    db = Database(pg_url, pool_size=4)
    settings = Settings(database_url=db.url, admin_token=ADMIN_TOKEN, auth_cache_seconds=3600)
    app = create_app(settings, clock=clock, db=db)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://test"
            ) as http,
        ):
            api = Api(http, ADMIN_TOKEN, db)
            store = await api.create_store(policy="ALLOW")
            assert (await api.upsert(store, "A"))["userErrors"] == []
            await api.receive(store, "A", 1000)
            for _ in range(3):
                await api.place(store, [("A", 1)])
                await api.gql(TRIVIAL, {"h": store.handle}, token=store.token)

            await _fewest("placeOrder", PLACE_ORDER_TASKS, lambda: api.place(store, [("A", 1)]))
            await _fewest(
                "trivial read",
                TRIVIAL_READ_TASKS,
                lambda: api.gql(TRIVIAL, {"h": store.handle}, token=store.token),
            )
    finally:
        await db.dispose()

"""GraphQL over Server-Sent Events at /graphql/stream (graphql-sse, distinct connections).

The server runs in this process on a real port; the client reads the event stream as
it arrives, line by line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from bench import harness
from ordergraph.app import create_app
from ordergraph.clock import Clock
from ordergraph.settings import Settings
from ordergraph.storage.db import Database
from tests.client import Api, StoreHandle
from tests.conftest import ADMIN_TOKEN

SSE = {"accept": "text/event-stream"}
ORDER_EVENTS = """subscription($s: ID!) { orderEvents(storeId: $s) {
    cursor type order { number } } }"""
EVENTS_AFTER = """subscription($s: ID!, $after: String) { orderEvents(storeId: $s, after: $after) {
    cursor type order { number } } }"""


@dataclass
class Event:
    name: str | None
    id: str | None
    data: str

    @property
    def json(self) -> Any:
        return json.loads(self.data)


class Stream:
    """An open event stream: `next()` is the next event; comments are counted."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.lines = response.aiter_lines()
        self.comments = 0

    async def next(self, wait: float = 10) -> Event:
        return await asyncio.wait_for(self._next(), wait)

    async def ping(self, wait: float = 5) -> None:
        """Wait for a `: ping` comment; fails if an event comes first."""

        async def first_comment() -> None:
            async for line in self.lines:
                if line.startswith(":"):
                    self.comments += 1
                    return
                assert line == "", f"an event came before the ping: {line}"
            raise EOFError("the stream ended")

        await asyncio.wait_for(first_comment(), wait)

    async def _next(self) -> Event:
        name = event_id = None
        data: list[str] = []
        async for line in self.lines:
            if line == "":
                if name is None and not data:
                    continue
                return Event(name, event_id, "\n".join(data))
            if line.startswith(":"):
                self.comments += 1
                continue
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "id":
                event_id = value
            elif field == "data":
                data.append(value)
        raise EOFError("the stream ended")


@contextlib.asynccontextmanager
async def _serve(database: Database, clock: Clock, **settings: Any) -> AsyncIterator[str]:
    """A server in this process on a real port: pings every second, these settings."""
    app = create_app(
        Settings(
            database_url=database.url,
            admin_token=ADMIN_TOKEN,
            tail_poll_ms=200,
            ws_ping_seconds=1,
            **settings,
        ),
        clock=clock,
        db=database,
    )
    async with harness.serve_in_loop(app) as url:
        yield url


@pytest.fixture
async def served(database: Database, clock: Clock) -> AsyncIterator[str]:
    async with _serve(database, clock, revocation_check_ms=200) as url:
        yield url


@pytest.fixture
async def http(served: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=served, timeout=30) as client:
        yield client


@pytest.fixture
async def store(http: httpx.AsyncClient) -> StoreHandle:
    api = Api(http, ADMIN_TOKEN, None)
    handle = await api.create_store(policy="ALLOW")
    await api.upsert(handle, "A")
    return handle


@contextlib.asynccontextmanager
async def stream(
    http: httpx.AsyncClient,
    token: str | None,
    body: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> AsyncIterator[Stream]:
    sent = {**SSE, **(headers or {})}
    if token is not None:
        sent["authorization"] = f"Bearer {token}"
    async with http.stream("POST", "/graphql/stream", json=body, headers=sent) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-accel-buffering"] == "no"
        yield Stream(response)


async def test_order_events_stream_with_cursors_and_resume(
    http: httpx.AsyncClient, store: StoreHandle
) -> None:
    api = Api(http, ADMIN_TOKEN, None)
    await api.place(store, [("A", 1)])  # 1001: PLACED and BACKORDERED (no stock)
    first = (await api.order(store, 1001))["events"]["nodes"][0]["cursor"]
    body = {"query": EVENTS_AFTER, "variables": {"s": store.id, "after": first}}
    async with stream(http, store.token, body) as events:
        backordered = await events.next()  # replayed: the stream is subscribed
        await api.place(store, [("A", 1)])  # 1002, live
        placed, waiting = await events.next(), await events.next()
    for event in (backordered, placed, waiting):
        assert event.name == "next"
        assert event.id == event.json["data"]["orderEvents"]["cursor"]
    seen = [e.json["data"]["orderEvents"] for e in (backordered, placed, waiting)]
    assert [(e["type"], e["order"]["number"]) for e in seen] == [
        ("BACKORDERED", 1001), ("PLACED", 1002), ("BACKORDERED", 1002),
    ]  # fmt: skip
    # A client that lost the stream after the first event reconnects with Last-Event-ID
    # (which wins over `after`): it gets every later event once, in order, then live ones.
    resumed = {"last-event-id": str(backordered.id)}
    async with stream(http, store.token, body, resumed) as events:
        again = [await events.next(), await events.next()]
        await api.place(store, [("A", 1)])  # 1003, live
        live = await events.next()
    assert [e.id for e in again] == [placed.id, waiting.id]
    assert live.json["data"]["orderEvents"]["order"]["number"] == 1003


async def test_a_query_is_one_result_then_complete(
    http: httpx.AsyncClient, store: StoreHandle
) -> None:
    body = {"query": "query($s: ID!) { node(id: $s) { id } }", "variables": {"s": store.id}}
    async with stream(http, store.token, body) as events:
        result = await events.next()
        done = await events.next()
    assert result.json["data"] == {"node": {"id": store.id}}
    assert (done.name, done.data) == ("complete", "")


async def test_errors_before_execution_come_as_a_next_event(
    http: httpx.AsyncClient, store: StoreHandle
) -> None:
    async with stream(http, store.token, {"query": "subscription { nope }"}) as events:
        refused = await events.next()
        done = await events.next()
    assert refused.name == "next"
    [error] = refused.json["errors"]
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert done.name == "complete"
    # Without a key: the subscription field says so, in the stream.
    body = {"query": ORDER_EVENTS, "variables": {"s": store.id}}
    async with stream(http, None, body) as events:
        denied = await events.next()
    assert denied.json["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_refused_at_the_door_like_graphql(
    http: httpx.AsyncClient, store: StoreHandle
) -> None:
    body = {"query": ORDER_EVENTS, "variables": {"s": store.id}}
    plain = await http.post("/graphql/stream", json=body)
    assert plain.status_code == 406
    assert plain.json()["errors"][0]["extensions"]["code"] == "NOT_ACCEPTABLE"
    too_big = await http.post(
        "/graphql/stream",
        content=b"{" + b" " * 2_000_000 + b"}",
        headers={**SSE, "content-type": "application/json"},
    )
    assert too_big.status_code == 413
    over_get = await http.get(
        "/graphql/stream", params={"query": "mutation { __typename }"}, headers=SSE
    )
    assert over_get.status_code == 405
    assert over_get.json()["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"
    query = await http.get("/graphql/stream", params={"query": "{ __typename }"}, headers=SSE)
    assert query.status_code == 200
    assert '"__typename":"Query"' in query.text


async def test_an_idle_stream_is_pinged_and_a_revoked_key_ends_it(
    http: httpx.AsyncClient, store: StoreHandle
) -> None:
    admin = Api(http, ADMIN_TOKEN, None)
    created = await admin.gql(
        "mutation($i: CreateApiKeyInput!) { createApiKey(input: $i) { apiKey { id } token } }",
        {"i": {"name": "reader", "storeIds": [store.id], "scopes": ["READ"]}},
        token=ADMIN_TOKEN,
    )
    key = created["createApiKey"]
    body = {"query": ORDER_EVENTS, "variables": {"s": store.id}}
    async with stream(http, key["token"], body) as events:
        await asyncio.sleep(2.5)  # ws_ping_seconds=1: comments keep proxies from timing out
        await admin.gql(
            "mutation($id: ID!) { revokeApiKey(id: $id) { userErrors { message } } }",
            {"id": key["apiKey"]["id"]},
            token=ADMIN_TOKEN,
        )
        ended = await events.next(wait=10)
        done = await events.next()
    assert events.comments >= 2
    assert ended.json["errors"][0]["message"] == "this API key was revoked"
    assert done.name == "complete"


@pytest.fixture
async def one_stream_per_key(database: Database, clock: Clock) -> AsyncIterator[str]:
    async with _serve(database, clock, max_websockets_per_key=1) as url:
        yield url


async def test_streams_count_against_the_keys_socket_limit(one_stream_per_key: str) -> None:
    async with httpx.AsyncClient(base_url=one_stream_per_key, timeout=30) as http:
        api = Api(http, ADMIN_TOKEN, None)
        store = await api.create_store(policy="ALLOW")
        body = {"query": ORDER_EVENTS, "variables": {"s": store.id}}
        async with stream(http, store.token, body) as first:
            await first.ping()  # open and counted
            async with stream(http, store.token, body) as second:
                refused, done = await second.next(), await second.next()
        assert refused.json["errors"][0]["extensions"]["code"] == "THROTTLED"
        assert done.name == "complete"
        # The first stream closed: the key may open another, which is not refused.
        async with stream(http, store.token, body) as again:
            await again.ping()

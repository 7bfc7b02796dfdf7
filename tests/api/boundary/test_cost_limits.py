"""Query cost and rate limits in one process, on SQLite and PostgreSQL.

The cost is computed before any resolver runs; an operation over the maximum is
refused with MAX_COST_EXCEEDED; every answer carries extensions.cost; a key's bucket
drains and refills; requests without a valid token are limited per client address; a
request holds at most max_connections_per_request pool connections at once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from ordergraph.schema.cost import (
    FIGURES,
    ITEM,
    MUTATION,
    OPERATION,
    OUTCOMES,
    OUTCOMES_POINT,
    TREND_POINT,
    Selected,
    cost,
    outcome_points,
    trend_points,
)
from ordergraph.settings import Settings
from ordergraph.storage.db import Database
from ordergraph.throttle import Bucket
from tests.client import Api, StoreHandle
from tests.conftest import ADMIN_TOKEN, app_client, start_server
from tests.ws_client import LEGACY, TRANSPORT, ws_connect

NOW = dt.datetime(2027, 3, 1, 12, tzinfo=dt.UTC)


@asynccontextmanager
async def serving(database: Database, **settings: Any) -> AsyncIterator[Api]:
    """The app in process with these settings, over httpx."""
    async with app_client(database, **settings) as http:
        yield Api(http, ADMIN_TOKEN, database)


def trend(days: int, interval: str = "HOUR", aliases: int = 1) -> str:
    start = (dt.datetime.now(dt.UTC) - dt.timedelta(days=days)).isoformat()
    end = dt.datetime.now(dt.UTC).isoformat()
    fields = " ".join(
        f'a{i}: backlogTrend(from: "{start}", to: "{end}", interval: {interval}) '
        "{ at backlog { orders } }"
        for i in range(aliases)
    )
    return "query($h: String!) { store(handle: $h) { " + fields + " } }"


NESTED = """query($h: String!) { store(handle: $h) { orders(first: 50) { nodes { lines {
  product { backorderQueue(first: 50) { nodes { order { number } } } } } } } } }"""


# -- the arithmetic, without a server ------------------------------------------------


def test_a_connection_costs_its_page_size_times_what_is_selected_under_it() -> None:
    def orders(first: int | None, fields: int) -> list[Selected]:
        node = Selected(
            "OrderEdge", "node", {}, tuple(Selected("Order", "id") for _ in range(fields))
        )
        edges = Selected("OrderConnection", "edges", {}, (node,))
        args = {} if first is None else {"first": first}
        connection = Selected("Store", "orders", args, (edges,))
        return [Selected("Query", "store", {"handle": "x"}, (connection,))]

    small, large = cost("Query", orders(10, 40), NOW), cost("Query", orders(100, 40), NOW)
    assert large > 5 * small
    # No `first`: the default page (50); `first` beyond the cap counts as the cap (250).
    assert cost("Query", orders(None, 40), NOW) == cost("Query", orders(50, 40), NOW)
    assert cost("Query", orders(10_000, 40), NOW) == cost("Query", orders(250, 40), NOW)


def test_a_trend_costs_its_points_and_mutations_cost_a_write() -> None:
    args = {"from": NOW - dt.timedelta(days=40), "to": NOW, "interval": "HOUR"}
    assert 960 <= trend_points(args, NOW) <= 963
    point = Selected("Store", "backlogTrend", args, (Selected("BacklogPoint", "at"),))
    assert cost("Query", [point], NOW) > 960 * TREND_POINT
    # Points after now are not computed, and not charged.
    future = {**args, "to": NOW + dt.timedelta(days=400)}
    assert trend_points(future, NOW) == trend_points(args, NOW)
    # Surely over the resolver's 1,000 points: it refuses them before any query.
    assert trend_points({**args, "from": NOW - dt.timedelta(days=43)}, NOW) == 0
    summary = Selected("Store", "backlog", {}, ())
    assert cost("Query", [summary], NOW) >= OPERATION + FIGURES
    place = Selected("Mutation", "placeOrder", {}, (Selected("PlaceOrderPayload", "userErrors"),))
    assert cost("Mutation", [place], NOW) >= OPERATION + MUTATION


def test_what_waiting_costs_is_charged_per_point_and_per_leader() -> None:
    week = {"from": NOW - dt.timedelta(days=364), "to": NOW, "interval": "WEEK"}
    day = {**week, "interval": "DAY"}
    assert 52 <= outcome_points(week, NOW) <= 55
    assert 364 <= outcome_points(day, NOW) <= 382
    at = (Selected("BackorderOutcomesPoint", "at"),)
    weekly = cost("Query", [Selected("Store", "backorderOutcomesTrend", week, at)], NOW)
    daily = cost("Query", [Selected("Store", "backorderOutcomesTrend", day, at)], NOW)
    assert daily > 5 * weekly > 5 * OUTCOMES
    # a span surely over the 1,000 points is refused by the resolver before any query
    long = {**day, "from": NOW - dt.timedelta(days=1100)}
    assert outcome_points(long, NOW) == 0
    one = cost("Query", [Selected("Store", "backorderOutcomes", week, ())], NOW)
    # the leaders' outcomes are read together: each leader costs what a trend's point does
    leaders = Selected("Store", "backorderLeaders", {"first": 100}, ())
    hundred = cost("Query", [leaders], NOW)
    assert 100 * OUTCOMES_POINT < hundred - one < 100 * OUTCOMES
    ten = cost("Query", [Selected("Store", "backorderLeaders", {"first": 10}, ())], NOW)
    assert hundred - ten == pytest.approx(90 * (OUTCOMES_POINT + ITEM), abs=1)  # (rounded up)


def test_the_bucket_leaks_at_its_restore_rate() -> None:
    bucket = Bucket(capacity=100, rate=10)
    assert bucket.charge(60, now=0.0) is None
    assert bucket.charge(60, now=0.0) == pytest.approx(2.0)  # 20 over: 2 s at 10/s
    assert bucket.wait_for(60, now=1.0) == pytest.approx(1.0)
    assert bucket.charge(60, now=2.0) is None  # 60 - 20 leaked + 60 = 100: fits exactly
    assert bucket.status(now=2.0)["currentlyAvailable"] == 0
    assert bucket.status(now=100.0)["currentlyAvailable"] == 100  # never above capacity


# -- over HTTP, in process -------------------------------------------------------------


async def test_every_answer_carries_its_cost_and_the_keys_throttle_state(api: Api) -> None:
    store = await api.create_store()
    body = await api.raw(
        "query($h: String!) { store(handle: $h) { handle } }", {"h": store.handle}, store.token
    )
    assert body["data"]["store"]["handle"] == store.handle
    report = body["extensions"]["cost"]
    assert report["requestedQueryCost"] >= 1
    status = report["throttleStatus"]
    assert status["maximumAvailable"] == Settings().rate_limit_capacity
    assert status["restoreRate"] == Settings().rate_limit_restore_per_second
    assert 0 < status["currentlyAvailable"] <= status["maximumAvailable"]
    # Errors carry it too.
    refused = await api.raw("{ stores { nodes { id } } }")
    assert "cost" in refused["extensions"]


async def test_an_operation_over_the_maximum_is_refused_before_anything_runs(api: Api) -> None:
    store = await api.create_store()
    body = await api.raw(trend(40, aliases=2), {"h": store.handle}, store.token)
    assert body.get("data") is None
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "MAX_COST_EXCEEDED"
    assert error["extensions"]["maxCost"] == 1000
    assert error["extensions"]["cost"] > 1000
    assert body["extensions"]["cost"]["requestedQueryCost"] == error["extensions"]["cost"]
    # The same under 30 aliases, and the nested connections: refused, quickly.
    for query in (trend(40, aliases=30), NESTED):
        body = await api.raw(query, {"h": store.handle}, store.token)
        assert body["errors"][0]["extensions"]["code"] == "MAX_COST_EXCEEDED", body
    # A mutation over the maximum changes nothing: no resolver ran.
    await api.upsert(store, "A", price="1.00")
    await api.receive(store, "A", 5)
    heavy = """mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { order {
      store { orders(first: 250) { nodes { lines { product {
        backorderQueue(first: 250) { nodes { sku } } } } } } } } } }"""
    body = await api.raw(
        heavy, {"input": {"storeId": store.id, "lines": [{"sku": "A", "quantity": 1}]}}, store.token
    )
    assert body["errors"][0]["extensions"]["code"] == "MAX_COST_EXCEEDED"
    assert (await api.product(store, "A"))["available"] == 5


async def test_the_maximum_is_a_setting(database: Database) -> None:
    # The deadline is widened from 10 s: the 40-day trend may take that long on a loaded
    # machine, and only the cost limit is under test here.
    async with serving(database, max_cost=5000, operation_timeout_ms=120_000) as api:
        store = await api.create_store()
        body = await api.raw(trend(40, aliases=2), {"h": store.handle}, store.token)
        assert "errors" not in body, body
        assert len(body["data"]["store"]["a1"]) > 900


async def test_a_keys_bucket_empties_says_when_to_retry_and_refills(database: Database) -> None:
    async with serving(database, rate_limit_capacity=40, rate_limit_restore_per_second=4) as api:
        store = await api.create_store()
        query = "query($h: String!) { store(handle: $h) { backlog { backlog { orders } } } }"
        answers = [await api.raw(query, {"h": store.handle}, store.token) for _ in range(12)]
        admitted = [a for a in answers if "errors" not in a]
        throttled = [a for a in answers if a.get("errors")]
        each = admitted[0]["extensions"]["cost"]["requestedQueryCost"]
        assert 40 // each <= len(admitted) <= 40 // each + 1  # a slow machine refills a bit
        assert throttled
        error = throttled[0]["errors"][0]
        assert error["extensions"]["code"] == "THROTTLED"
        wait = error["extensions"]["retryAfterSeconds"]
        assert 0 < wait <= each / 4 + 0.05
        assert throttled[0].get("data") is None
        status = throttled[0]["extensions"]["cost"]["throttleStatus"]
        assert status["currentlyAvailable"] < each
        # A throttled answer is held back a while (the tarpit), so on a slow machine a
        # later request may be let in again: wait as the newest refusal says.
        for _ in range(40 // each + 2):  # the bucket runs dry again within a few
            latest = await api.raw(query, {"h": store.handle}, store.token)
            if "errors" in latest:
                break
        assert latest["errors"][0]["extensions"]["code"] == "THROTTLED"
        wait = latest["errors"][0]["extensions"]["retryAfterSeconds"]
        await asyncio.sleep(wait + 0.05)
        again = await api.raw(query, {"h": store.handle}, store.token)
        assert "errors" not in again, again
        # Another key has its own bucket.
        other = await api.create_store()
        fine = await api.raw(query, {"h": other.handle}, other.token)
        assert "errors" not in fine, fine


async def test_requests_without_a_valid_token_are_limited_per_address(database: Database) -> None:
    async with serving(database, anonymous_requests_per_minute=3) as api:
        store = await api.create_store()  # the admin token is not limited
        query = "{ stores { nodes { id } } }"
        assert "errors" not in await api.raw(query, token=store.token)
        codes = [
            (await api.raw(query, token=token))["errors"][0]["extensions"]["code"]
            for token in (None, "og_guess_1", "og_guess_2", "og_guess_3", None)
        ]
        assert codes == ["UNAUTHENTICATED"] * 3 + ["THROTTLED"] * 2
        # A key that checked out before still gets through; an unknown one does not.
        known = await api.raw(query, token=store.token)
        assert "errors" not in known, known
        other = await api.create_store()
        refused = await api.raw(query, token=other.token)
        assert refused["errors"][0]["extensions"]["code"] == "THROTTLED"
        assert refused["errors"][0]["extensions"]["retryAfterSeconds"] > 0


async def test_a_request_holds_at_most_max_connections_per_request(database: Database) -> None:
    in_use = 0
    peak = 0

    def checkout(*_: Any) -> None:
        nonlocal in_use, peak
        in_use += 1
        peak = max(peak, in_use)

    def checkin(*_: Any) -> None:
        nonlocal in_use
        in_use -= 1

    # A pool of its own: the shared test pool also serves background work that other
    # tests' apps left behind (throttle reconciliation), which is not this request's.
    own = Database(database.engine.url.render_as_string(hide_password=False), pool_size=20)
    pool = own.engine.sync_engine.pool
    try:
        async with serving(own, max_cost=100_000) as api:
            store = await api.create_store()
            await asyncio.sleep(0.1)
            event.listen(pool, "checkout", checkout)
            event.listen(pool, "checkin", checkin)
            try:
                in_use = peak = 0
                fields = " ".join(f"b{i}: backlog {{ backlog {{ orders }} }}" for i in range(30))
                body = await api.raw(
                    "query($h: String!) { store(handle: $h) { " + fields + " } }",
                    {"h": store.handle},
                    store.token,
                )
            finally:
                event.remove(pool, "checkout", checkout)
                event.remove(pool, "checkin", checkin)
    finally:
        await own.dispose()
    assert "errors" not in body, body
    assert len(body["data"]["store"]) == 30
    assert 1 <= peak <= Settings().max_connections_per_request


# -- subscriptions, costed when they start (a real server) -----------------------------


@pytest.mark.parametrize("protocol", [TRANSPORT, LEGACY])
@pytest.mark.e2e  # starts a process
async def test_a_subscription_is_costed_and_refused_at_subscribe_time(
    sqlite_url: str, tmp_path: Path, protocol: str
) -> None:
    database = Database(sqlite_url)
    async with serving(database) as api:
        store: StoreHandle = await api.create_store()
    await database.dispose()
    server = start_server(sqlite_url, tmp_path / "server.log", {"ORDERGRAPH_MAX_COST": "5"})
    try:
        async with ws_connect(server.url, protocol) as ws:
            await ws.init(store.token)
            await ws.subscribe(
                "subscription($s: ID!) { backlogChanged(storeId: $s) { backlog { orders } } }",
                {"s": store.id},
            )
            message = await ws.receive()
            assert message["type"] in ("error", "next", "data"), message
            payload: Any = message["payload"]
            errors = payload if isinstance(payload, list) else payload.get("errors")
            assert errors[0]["extensions"]["code"] == "MAX_COST_EXCEEDED", message
            assert errors[0]["extensions"]["maxCost"] == 5
    finally:
        server.stop()

"""Fairness: one key's most expensive operations do not stall another store.

A real server (uvicorn, default limits). While a READ key on store A sends, from
several connections at once, the most expensive operations it is allowed (a trend
just under the maximum cost, nested connections) and ones that are refused (over the
maximum, then throttled), a second store's placeOrder and a `stores` query keep a p99
under 250 ms, and nothing answers "Internal server error". On PostgreSQL and SQLite.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import uuid
from typing import Any

import httpx

from tests.client import Api, StoreHandle
from tests.conftest import ADMIN_TOKEN, LiveServer

ATTACKERS = 6
SECONDS = 10.0
P99_MS = 250.0


def _trend(days: float, aliases: int = 1) -> str:
    now = dt.datetime.now(dt.UTC)
    start = (now - dt.timedelta(days=days)).isoformat()
    fields = " ".join(
        f'a{i}: backlogTrend(from: "{start}", to: "{now.isoformat()}", interval: HOUR) '
        "{ at backlog { orders units value { amount } } backorders { orders } }"
        for i in range(aliases)
    )
    return "query($h: String!) { store(handle: $h) { " + fields + " } }"


NESTED = """query($h: String!) { store(handle: $h) { orders(first: 50) { nodes { number
  lines { sku product { sku backorderQueue(first: 10) { nodes { quantity
  order { number total { amount } } } } } } } } } }"""


async def _read_key(api: Api, store: StoreHandle) -> str:
    data = await api.gql(
        """mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) {
             token userErrors { code } } }""",
        {"input": {"name": "reader", "storeIds": [store.id], "scopes": ["READ"]}},
        token=api.admin_token,
    )
    token: str = data["createApiKey"]["token"]
    return token


def _answers(body: dict[str, Any]) -> list[str]:
    return [e.get("extensions", {}).get("code", "?") for e in body.get("errors") or []]


PLACE = """mutation($input: PlaceOrderInput!) { placeOrder(input: $input) {
    order { number } userErrors { code } } }"""


async def _stores(api: Api) -> tuple[StoreHandle, str, StoreHandle]:
    """Store A with orders to read and its READ key; a second store with stock to sell."""
    target = await api.create_store(policy="ALLOW")
    for sku in ("A", "B", "C"):
        await api.upsert(target, sku, price="3.00")
    for i in range(30):
        await api.place(target, [("A", 1 + i % 3), ("B", 1), ("C", 2)])
    reader = await _read_key(api, target)
    victim = await api.create_store()
    await api.upsert(victim, "V", price="1.00")
    await api.receive(victim, "V", 100_000)
    return target, reader, victim


async def _heaviest_allowed_trend(api: Api, target: StoreHandle, reader: str) -> str:
    """The heaviest allowed: as many 40-day HOUR trends (960 points each) under aliases as
    the maximum cost lets in."""
    aliases = 10
    while True:
        body = await api.raw(_trend(40, aliases), {"h": target.handle}, reader)
        if "MAX_COST_EXCEEDED" not in _answers(body):
            break
        aliases -= 1
    assert "errors" not in body, body
    assert aliases >= 1
    return _trend(40, aliases)


async def _attack(
    http: httpx.AsyncClient,
    n: int,
    stop: float,
    heavy: list[tuple[str, bool]],
    target: StoreHandle,
    reader: str,
    seen: dict[str, int],
    faults: list[str],
) -> None:
    i = n
    while time.monotonic() < stop:
        query, _ = heavy[i % len(heavy)]
        i += 1
        response = await http.post(
            "/graphql",
            json={"query": query, "variables": {"h": target.handle}},
            headers={"Authorization": f"Bearer {reader}"},
        )
        if "Internal server error" in response.text:
            faults.append(response.text[:300])
        codes = _answers(response.json()) or ["ok"]
        for code in codes[:1]:
            seen[code] = seen.get(code, 0) + 1


def _victim_request(n: int, victim: StoreHandle) -> tuple[str, dict[str, Any]]:
    """placeOrder on odd calls, the `stores` query on even ones."""
    if n % 2:
        return PLACE, {
            "input": {
                "storeId": victim.id,
                "lines": [{"sku": "V", "quantity": 1}],
                "idempotencyKey": uuid.uuid4().hex,
            }
        }
    return "{ stores { nodes { id handle } } }", {}


async def _victim_calls(
    http: httpx.AsyncClient,
    stop: float,
    victim: StoreHandle,
    latencies: list[float],
    faults: list[str],
) -> None:
    n = 0
    await asyncio.sleep(0.5)  # the attack is under way
    while time.monotonic() < stop:
        n += 1
        query, variables = _victim_request(n, victim)
        started = time.perf_counter()
        response = await http.post(
            "/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {victim.token}"},
        )
        latencies.append((time.perf_counter() - started) * 1000)
        body = response.json()
        if body.get("errors"):
            faults.append(json.dumps(body)[:300])
        elif n % 2:
            assert body["data"]["placeOrder"]["order"] is not None, body
        await asyncio.sleep(0.05)


async def test_a_heavy_key_does_not_stall_another_store(live_server: LiveServer) -> None:
    limits = httpx.Limits(max_connections=50, max_keepalive_connections=50)
    async with httpx.AsyncClient(base_url=live_server.url, timeout=60, limits=limits) as http:
        api = Api(http, ADMIN_TOKEN, None)
        target, reader, victim = await _stores(api)
        allowed_trend = await _heaviest_allowed_trend(api, target, reader)
        heavy = [
            (allowed_trend, True),
            (NESTED, True),
            (_trend(40, aliases=10), False),  # refused: over the maximum
            (_trend(40, aliases=30), False),
        ]
        stop = time.monotonic() + SECONDS
        seen: dict[str, int] = {}
        faults: list[str] = []
        latencies: list[float] = []
        await asyncio.gather(
            *(
                _attack(http, n, stop, heavy, target, reader, seen, faults)
                for n in range(ATTACKERS)
            ),
            _victim_calls(http, stop, victim, latencies, faults),
        )

    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(
        f"victim: {len(latencies)} calls, p50 {latencies[len(latencies) // 2]:.0f} ms, "
        f"p99 {p99:.0f} ms, max {latencies[-1]:.0f} ms; attacker answers {seen}"
    )
    assert faults == []
    assert seen.get("ok", 0) > 0, seen
    assert seen.get("MAX_COST_EXCEEDED", 0) > 0, seen
    assert seen.get("THROTTLED", 0) > 0, seen
    assert len(latencies) > 20
    assert p99 < P99_MS, (p99, latencies[-5:])

"""The figures over HTTP: the queries, their check against the order lives, and the timed
requests (medians per store)."""

from __future__ import annotations

import datetime as dt
import statistics
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx

from bench.figures_load import Store
from bench.figures_world import (
    PAST,
    TREND_POINTS,
    TZ,
    Expected,
    Life,
    Timeline,
    expected_at,
)
from ordergraph.resolvers import ids

TALLY = "orders units value { amount }"
SUMMARY = (
    f"asOf backlog {{ {TALLY} }} backorders {{ {TALLY} }} overdue {{ {TALLY} }}"
    f" overdueBackorders {{ {TALLY} }} oldestBackorderPlacedAt"
)
BACKLOG_QUERY = (
    "query($h: String!, $t: DateTime) { store(handle: $h) {"
    f" backlog(asOf: $t) {{ {SUMMARY} }} }} }}"
)
TREND_QUERY = (
    "query($h: String!, $from: DateTime!, $to: DateTime!) { store(handle: $h) {"
    " backlogTrend(from: $from, to: $to, interval: DAY) {"
    f" at backlog {{ {TALLY} }} backorders {{ {TALLY} }} overdue {{ {TALLY} }} }} }} }}"
)


class Client:
    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token
        self.http = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120
        )

    def post(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        response = self.http.post("/graphql", json={"query": query, "variables": variables})
        body: dict[str, Any] = response.json()
        if response.status_code != 200 or body.get("errors"):
            raise SystemExit(f"request failed ({response.status_code}): {response.text[:500]}")
        return body

    def close(self) -> None:
        self.http.close()


def trend_window(end: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """From the local midnight 29 days before the last one up to `end`: 30 DAY points."""
    last_midnight = end.astimezone(TZ).replace(hour=0, minute=0, second=0, microsecond=0)
    first_day = last_midnight.date() - dt.timedelta(days=TREND_POINTS - 1)
    first = dt.datetime.combine(first_day, dt.time(0), tzinfo=TZ).astimezone(dt.UTC)
    return first, end


def _tally(found: dict[str, Any]) -> tuple[int, int, Decimal]:
    return (found["orders"], found["units"], Decimal(found["value"]["amount"]))


def summary_problems(found: dict[str, Any], want: Expected) -> list[str]:
    problems = []
    for name, tally in (
        ("backlog", want.backlog),
        ("backorders", want.backorders),
        ("overdue", want.overdue),
        ("overdueBackorders", want.overdue_backorders),
    ):
        if name in found and _tally(found[name]) != tally.as_tuple():
            problems.append(f"{name}: got {_tally(found[name])}, expected {tally.as_tuple()}")
    if "oldestBackorderPlacedAt" in found:
        raw = found["oldestBackorderPlacedAt"]
        got = dt.datetime.fromisoformat(raw) if raw else None
        if got != want.oldest_backorder:
            problems.append(f"oldestBackorderPlacedAt: got {got}, expected {want.oldest_backorder}")
    return problems


def check_instants(lives: list[Life], timeline: Timeline) -> list[dt.datetime]:
    """Instants to check: before the first order, exactly at changes and overdue instants
    (the history includes what happened at the instant), just before one, and more."""
    start, end = timeline.start, timeline.end
    instants = [start - dt.timedelta(hours=1), lives[0].placed_at, end, end - PAST]
    fills = [life.fill_at for life in lives if life.fill_at is not None]
    ships = [life.ship_at for life in lives if life.ship_at is not None]
    dues = [life.overdue_at for life in lives if life.overdue_at and life.overdue_at < end]
    for found in (fills, ships, dues):
        if found:
            instants.append(found[len(found) // 2])
    if dues:
        instants.append(dues[len(dues) // 3] - dt.timedelta(microseconds=1))
    for days in (40, 100, 250, 330):
        instants.append(start + dt.timedelta(days=days, microseconds=12_345))
    return sorted(set(instants))


def check_http(client: Client, handle: str, lives: list[Life], timeline: Timeline) -> list[str]:
    problems = []
    for at in [*check_instants(lives, timeline), None]:
        variables = {"h": handle, "t": at.isoformat() if at else None}
        found = client.post(BACKLOG_QUERY, variables)["data"]["store"]["backlog"]
        as_of = dt.datetime.fromisoformat(found["asOf"])
        problems += [
            f"asOf {at or 'null'}: {p}" for p in summary_problems(found, expected_at(lives, as_of))
        ]
    start, end = trend_window(timeline.end)
    points = client.post(
        TREND_QUERY, {"h": handle, "from": start.isoformat(), "to": end.isoformat()}
    )["data"]["store"]["backlogTrend"]
    if len(points) != TREND_POINTS:
        problems.append(f"trend: {len(points)} points, expected {TREND_POINTS}")
    for point in points:
        at = dt.datetime.fromisoformat(point["at"])
        problems += [f"trend at {at}: {p}" for p in summary_problems(point, expected_at(lives, at))]
    return problems


def medians_ms(
    client: Client, requests: list[tuple[str, dict[str, Any]]], warmup: int, samples: int
) -> list[float]:
    """Median time of each request; rounds go through all of them in turn, so that a load
    elsewhere on the machine weighs on every store size alike."""
    for query, variables in requests:
        for _ in range(warmup):
            client.post(query, variables)
    took: list[list[float]] = [[] for _ in requests]
    for _ in range(samples):
        for index, (query, variables) in enumerate(requests):
            began = time.perf_counter()
            client.post(query, variables)
            took[index].append(time.perf_counter() - began)
    return [statistics.median(t) * 1000 for t in took]


def read_key(url: str, admin_token: str, store_ids: list[int]) -> str:
    response = httpx.post(
        f"{url}/graphql",
        json={
            "query": """mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) {
                token userErrors { code message } } }""",
            "variables": {
                "input": {
                    "name": "figures benchmark",
                    "storeIds": [ids.encode("Store", s) for s in store_ids],
                    "scopes": ["READ"],
                }
            },
        },
        headers={"Authorization": f"Bearer {admin_token}"},
        timeout=30,
    )
    body = response.json()
    payload = (body.get("data") or {}).get("createApiKey") or {}
    if body.get("errors") or payload.get("userErrors") or not payload.get("token"):
        raise SystemExit(f"createApiKey failed: {body}")
    return str(payload["token"])


@dataclass
class Measured:
    orders: int
    now_ms: float
    past_ms: float
    trend_ms: float


def check_all_http(client: Client, stores: list[Store], timeline: Timeline) -> list[str]:
    problems = []
    for store in stores:
        began = time.perf_counter()
        found = check_http(client, store.handle, store.lives, timeline)
        problems += [f"N={store.orders:,}: {p}" for p in found]
        if not found:
            print(
                f"checked N={store.orders:,} over HTTP: backlog at"
                f" {len(check_instants(store.lives, timeline)) + 1} instants and a"
                f" {TREND_POINTS}-day trend equal the order lives"
                f" ({time.perf_counter() - began:.1f} s)",
                flush=True,
            )
    return problems


def measure(
    client: Client, stores: list[Store], timeline: Timeline, warmup: int, samples: int
) -> list[Measured]:
    past = (timeline.end - PAST).isoformat()
    trend_from, trend_to = trend_window(timeline.end)
    trend = {"from": trend_from.isoformat(), "to": trend_to.isoformat()}
    columns = [
        medians_ms(
            client, [(query, {"h": store.handle, **extra}) for store in stores], warmup, samples
        )
        for query, extra in (
            (BACKLOG_QUERY, {"t": None}),
            (BACKLOG_QUERY, {"t": past}),
            (TREND_QUERY, trend),
        )
    ]
    return [
        Measured(store.orders, now, then, over)
        for store, now, then, over in zip(stores, *columns, strict=True)
    ]

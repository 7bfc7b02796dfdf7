"""The figures benchmark's trend rows: a 1,000-point HOUR `backlogTrend` against the
30-point DAY trend on one store, interleaved, three rounds, with the server's CPU per
request (the application process and its PostgreSQL backends) read from /proc."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from bench.figures_http import TALLY, TREND_QUERY, Client, summary_problems, trend_window
from bench.figures_load import Store
from bench.figures_world import Timeline, expected_at
from bench.light_client import Connection, client_cpu_seconds, encode_head
from bench.proc import process_cpu_seconds

HOUR_POINTS = 1_000
HOUR_TREND_QUERY = (
    "query($h: String!, $from: DateTime!, $to: DateTime!) { store(handle: $h) {"
    " backlogTrend(from: $from, to: $to, interval: HOUR) {"
    f" at backlog {{ {TALLY} }} backorders {{ {TALLY} }} overdue {{ {TALLY} }} }} }} }}"
)
CHECKED_EVERY = 50  # hourly points checked against the order lives (and the last one)
GOAL_MS = 250.0
GOAL_RATIO = 2.0


def hour_window(end: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """From 999 hours before the last full hour up to `end`: 1,000 HOUR points."""
    last = end.replace(minute=0, second=0, microsecond=0)
    return last - dt.timedelta(hours=HOUR_POINTS - 1), end


def check_hour_trend(client: Client, store: Store, timeline: Timeline) -> list[str]:
    """The 1,000-point trend has its 1,000 boundaries, and a sample of them equals the
    figures computed from the order lives."""
    start, end = hour_window(timeline.end)
    points = client.post(
        HOUR_TREND_QUERY, {"h": store.handle, "from": start.isoformat(), "to": end.isoformat()}
    )["data"]["store"]["backlogTrend"]
    ats = [dt.datetime.fromisoformat(p["at"]) for p in points]
    want = [start + dt.timedelta(hours=i) for i in range(HOUR_POINTS)]
    if ats != want:
        return [f"hour trend: {len(ats)} points, not the {HOUR_POINTS} hourly boundaries"]
    problems = []
    for point in [*points[::CHECKED_EVERY], points[-1]]:
        at = dt.datetime.fromisoformat(point["at"])
        found = summary_problems(point, expected_at(store.lives, at))
        problems += [f"hour trend at {at}: {p}" for p in found]
    return problems


@dataclass
class Contender:
    name: str
    query: str
    variables: dict[str, Any]
    points: int
    round_ms: list[float] = field(default_factory=list)  # median latency of each round
    app_cpu_ms: list[float] = field(default_factory=list)  # per request, each round
    db_cpu_ms: list[float] = field(default_factory=list)
    client_cpu_ms: list[float] = field(default_factory=list)  # the light client's


async def backend_pids(dsn: str) -> list[int]:
    """The PostgreSQL backends serving the database of `dsn`, other than this one."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    return [int(r["pid"]) for r in rows]


def _cpu(pids: list[int]) -> dict[int, float]:
    """CPU seconds so far of each of the processes that still runs."""
    found = {}
    for pid in pids:
        try:
            found[pid] = process_cpu_seconds(pid)
        except (OSError, ValueError, IndexError):
            continue
    return found


def _spent(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(after[pid] - before[pid] for pid in before.keys() & after.keys())


async def _timed(client: Client, c: Contender, samples: int) -> tuple[list[float], float]:
    """`samples` requests in a row on one connection of the light client: the time from
    sending each to its answer's last byte, and the client's CPU per request. The answers
    are read after the timing: a 1,000-point answer is about 230 KB, whose parsing by
    the client (and its gzip, had the client asked for it) is no part of the server's
    answer time."""
    connection = Connection(client.url)
    head = encode_head(
        "POST",
        "/graphql",
        connection.authority,
        {"Authorization": f"Bearer {client.token}", "Content-Type": "application/json"},
    )
    body = json.dumps({"query": c.query, "variables": c.variables}).encode()
    took, answers = [], []
    try:
        cpu_before = client_cpu_seconds()
        for _ in range(samples):
            began = time.perf_counter()
            answers.append(await connection.post(head, body))
            took.append(time.perf_counter() - began)
        cpu = (client_cpu_seconds() - cpu_before) / samples
    finally:
        await connection.close()
    for status, raw in answers:
        found = json.loads(raw)
        if status != 200 or found.get("errors") or not found["data"]["store"]["backlogTrend"]:
            raise SystemExit(f"{c.name}: request failed ({status}): {raw[:500]!r}")
    return took, cpu


def _run(client: Client, c: Contender, samples: int, app: list[int], db: list[int]) -> None:
    app_before, db_before = _cpu(app), _cpu(db)
    took, client_cpu = asyncio.run(_timed(client, c, samples))
    c.round_ms.append(statistics.median(took) * 1000)
    c.app_cpu_ms.append(_spent(app_before, _cpu(app)) * 1000 / samples)
    c.db_cpu_ms.append(_spent(db_before, _cpu(db)) * 1000 / samples)
    c.client_cpu_ms.append(client_cpu * 1000)


def measure_trends(
    client: Client,
    store: Store,
    timeline: Timeline,
    app_pid: int,
    dsn: str,
    rounds: int,
    samples: int,
    warmup: int,
) -> list[Contender]:
    """Rounds of `samples` sequential requests per contender, the order alternating from
    one round to the next; CPU from /proc over each contender's requests of a round."""
    contenders = []
    for name, query, (start, end), points in (
        ("30 DAY points", TREND_QUERY, trend_window(timeline.end), 30),
        (f"{HOUR_POINTS:,} HOUR points", HOUR_TREND_QUERY, hour_window(timeline.end), 1000),
    ):
        variables = {"h": store.handle, "from": start.isoformat(), "to": end.isoformat()}
        contenders.append(Contender(name, query, variables, points))
    for c in contenders:
        for _ in range(warmup):
            client.post(c.query, c.variables)
    for index in range(rounds):
        for c in contenders if index % 2 == 0 else contenders[::-1]:
            _run(client, c, samples, [app_pid], asyncio.run(backend_pids(dsn)))
    return contenders


def trend_table(store: Store, contenders: list[Contender], rounds: int, samples: int) -> str:
    base, top = contenders[0], contenders[-1]
    head = (
        f"{'backlogTrend':<18} {'min':>9} {'median':>9} {'max':>9} {'ratio':>6}"
        f"  {'app CPU/req':>11} {'db CPU/req':>10} {'client CPU/req':>14}"
    )
    lines = [
        f"backlogTrend on the store of {store.orders:,} orders: {rounds} rounds of {samples}"
        " sequential requests per trend, interleaved, from a light client (bench/light_client.py,"
        " no gzip); latency = each round's median, to the answer's last byte; CPU per request"
        " from /proc (median of the rounds)",
        head,
        "-" * len(head),
    ]
    for c in contenders:
        ms = sorted(c.round_ms)
        ratio = statistics.median(c.round_ms) / statistics.median(base.round_ms)
        lines.append(
            f"{c.name:<18} {ms[0]:>6.1f} ms {statistics.median(ms):>6.1f} ms {ms[-1]:>6.1f} ms"
            f" {ratio:>6.2f}  {statistics.median(c.app_cpu_ms):>8.1f} ms"
            f" {statistics.median(c.db_cpu_ms):>7.1f} ms"
            f" {statistics.median(c.client_cpu_ms):>11.2f} ms"
        )
    median_top = statistics.median(top.round_ms)
    ratio = median_top / statistics.median(base.round_ms)
    lines.append("")
    lines.append(f"goals for {top.name} (medians):")
    for what, value, goal, unit in (
        ("latency", median_top, GOAL_MS, " ms"),
        (f"ratio to {base.name}", ratio, GOAL_RATIO, " x"),
    ):
        verdict = "met" if value <= goal else "MISSED"
        lines.append(f"  {what:<28} {value:>7.2f} <= {goal:g}{unit} {verdict}")
    return "\n".join(lines)

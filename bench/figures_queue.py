"""The figures benchmark's queue rows: `expectedFillDate` over a product's whole backorder
queue (the queue store: every order waits on one product) with a few open receipts,
checked against a walk of the order lives, and timed."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.figures_http import Client
from bench.figures_load import Store
from bench.figures_replay import _apply
from bench.figures_trends import _cpu, _spent, backend_pids
from bench.figures_world import BY_ID, QUEUE_PRODUCT, TZ, Life
from ordergraph.domain import services
from ordergraph.domain.commands import ScheduleReceipt
from ordergraph.resolvers import ids
from ordergraph.storage.db import Database

PAGE = 250  # the largest page backorderQueue gives
GOAL_MS = 100.0
# The open receipts: (days from today, share of the queue's units); 15 % of the units stay
# uncovered (no restock date: those lines have no date).
RECEIPTS = ((7, 0.20), (14, 0.25), (21, 0.25), (28, 0.15))

QUEUE_QUERY = (
    "query($h: String!, $sku: String!, $after: String) { store(handle: $h) {"
    f" product(sku: $sku) {{ backorderQueue(first: {PAGE}, after: $after) {{"
    " nodes { id backordered expectedFillDate } pageInfo { hasNextPage endCursor } } } } }"
)
RUNS_QUERY = (
    "query($h: String!, $sku: String!) { store(handle: $h) { product(sku: $sku) {"
    " expectedFills { expectedFillDate firstPosition lines units receipt { id }"
    " firstLine { id } lastLine { id } } } } }"
)
REORDER_QUERY = (
    "query($h: String!, $sku: String!) { store(handle: $h) {"
    " product(sku: $sku) { backordered unitsToReorder } } }"
)


async def schedule_receipts(url: str, store: Store) -> list[tuple[dt.date, int]]:
    """Schedule the open receipts of the queue's product through the application's own
    service (scheduleReceipt), now; returns their (day, quantity) in date order."""
    units = sum(life.qty for life in store.lives)
    today = dt.datetime.now(TZ).date()
    made = [
        (today + dt.timedelta(days=days), max(1, int(units * share))) for days, share in RECEIPTS
    ]
    db = Database(url)
    try:
        for day, quantity in made:
            command = ScheduleReceipt(
                sku=BY_ID[QUEUE_PRODUCT].sku, quantity=quantity, expected_at=day
            )
            schedule = functools.partial(services.schedule_receipt, cmd=command)
            await _apply(db, store.loaded.store_id, dt.datetime.now(dt.UTC), schedule)
    finally:
        await db.dispose()
    return made


def expected_dates(lives: list[Life], receipts: list[tuple[dt.date, int]]) -> list[str | None]:
    """Each waiting line's date in fill order (placement): the day of the receipt whose
    running total first reaches the line's running total of units; None beyond them all."""
    ends, total = [], 0
    for day, quantity in receipts:
        total += quantity
        ends.append((total, day))
    dates: list[str | None] = []
    running = 0
    for life in lives:
        running += life.qty
        found = next((day for end, day in ends if end >= running), None)
        dates.append(found.isoformat() if found else None)
    return dates


def read_queue(client: Client, handle: str) -> tuple[list[dict[str, Any]], int]:
    """The whole queue, page after page: its lines and the number of requests."""
    lines: list[dict[str, Any]] = []
    after, pages = None, 0
    while True:
        variables = {"h": handle, "sku": BY_ID[QUEUE_PRODUCT].sku, "after": after}
        found = client.post(QUEUE_QUERY, variables)["data"]["store"]["product"]
        pages += 1
        lines += found["backorderQueue"]["nodes"]
        info = found["backorderQueue"]["pageInfo"]
        if not info["hasNextPage"]:
            return lines, pages
        after = info["endCursor"]


def check_queue(client: Client, store: Store, receipts: list[tuple[dt.date, int]]) -> list[str]:
    lines, _ = read_queue(client, store.handle)
    problems = []
    got_ids = []
    for line in lines:
        decoded = ids.decode(line["id"], "OrderLine")
        got_ids.append(decoded[1][-1] if decoded else None)
    if got_ids != [life.line_id for life in store.lives]:
        problems.append(f"queue: {len(lines)} lines, not the {len(store.lives)} in placement order")
        return problems
    if [line["backordered"] for line in lines] != [life.qty for life in store.lives]:
        problems.append("queue: backordered units differ from the lives")
    want = expected_dates(store.lives, receipts)
    got = [line["expectedFillDate"] for line in lines]
    for index, (a, b) in enumerate(zip(got, want, strict=True)):
        if a != b:
            problems.append(f"queue line {index + 1}: expectedFillDate {a}, expected {b}")
            break
    problems += check_runs(client, store, want)
    units = sum(life.qty for life in store.lives)
    reorder = client.post(REORDER_QUERY, {"h": store.handle, "sku": BY_ID[QUEUE_PRODUCT].sku})
    left = reorder["data"]["store"]["product"]["unitsToReorder"]
    want_left = max(0, units - sum(q for _, q in receipts))
    if left != want_left:
        problems.append(f"unitsToReorder: {left}, expected {want_left}")
    if not problems:
        dated = sum(d is not None for d in want)
        print(
            f"checked the queue over HTTP: {len(lines):,} waiting lines ({units:,} units),"
            f" {len(receipts)} open receipts; expectedFillDate of every line ({dated:,} dated),"
            " the runs of expectedFills and unitsToReorder equal a walk of the order lives",
            flush=True,
        )
    return problems


def read_runs(client: Client, handle: str) -> list[dict[str, Any]]:
    variables = {"h": handle, "sku": BY_ID[QUEUE_PRODUCT].sku}
    found = client.post(RUNS_QUERY, variables)["data"]["store"]["product"]
    runs: list[dict[str, Any]] = found["expectedFills"]
    return runs


def check_runs(client: Client, store: Store, want: list[str | None]) -> list[str]:
    """expectedFills, expanded line by line (each run's lines are the next `lines` of the
    queue), gives every line the date of the walk; its first and last lines are the
    lives' at those positions."""
    runs = read_runs(client, store.handle)
    line_ids = [life.line_id for life in store.lives]
    expanded: list[str | None] = []
    for run in runs:
        start = run["firstPosition"] - 1
        if start != len(expanded):
            return [f"expectedFills: a run starts at {start + 1}, not {len(expanded) + 1}"]
        ends = [ids.decode(run[end]["id"], "OrderLine") for end in ("firstLine", "lastLine")]
        want_ends = [line_ids[start], line_ids[start + run["lines"] - 1]]
        if [end[1][-1] if end else None for end in ends] != want_ends:
            return [f"expectedFills: the run at {start + 1} names other first/last lines"]
        units = sum(life.qty for life in store.lives[start : start + run["lines"]])
        if run["units"] != units:
            return [f"expectedFills: the run at {start + 1} has {run['units']} units, not {units}"]
        expanded += [run["expectedFillDate"]] * run["lines"]
    if expanded != want:
        return [f"expectedFills: {len(runs)} runs do not expand to the walk's dates"]
    return []


@dataclass
class QueueTimed:
    name: str
    requests: int  # per timed read
    round_ms: list[float] = field(default_factory=list)
    app_cpu_ms: list[float] = field(default_factory=list)
    db_cpu_ms: list[float] = field(default_factory=list)


def measure_queue(
    client: Client,
    store: Store,
    app_pid: int,
    dsn: str,
    rounds: int,
    samples: int,
    warmup: int,
) -> list[QueueTimed]:
    """Rounds of `samples` timed reads each: the whole queue (every page, in turn), its first
    page, and unitsToReorder (one walk of the whole queue in one request)."""
    sku = BY_ID[QUEUE_PRODUCT].sku
    first = {"h": store.handle, "sku": sku, "after": None}
    _, pages = read_queue(client, store.handle)
    reorder = {"h": store.handle, "sku": sku}

    def whole() -> object:
        return read_queue(client, store.handle)

    def first_page() -> object:
        return client.post(QUEUE_QUERY, first)

    def units_to_reorder() -> object:
        return client.post(REORDER_QUERY, reorder)

    def runs() -> object:
        return read_runs(client, store.handle)

    reads: list[tuple[QueueTimed, Callable[[], object]]] = [
        (QueueTimed("whole queue as runs", 1), runs),
        (QueueTimed(f"whole queue, {pages} pages", pages), whole),
        (QueueTimed(f"first page ({PAGE} lines)", 1), first_page),
        (QueueTimed("unitsToReorder", 1), units_to_reorder),
    ]
    for _, read in reads:
        for _ in range(warmup):
            read()
    for index in range(rounds):
        for timed, read in reads if index % 2 == 0 else reads[::-1]:
            app, db = [app_pid], asyncio.run(backend_pids(dsn))
            app_before, db_before = _cpu(app), _cpu(db)
            took = []
            for _ in range(samples):
                began = time.perf_counter()
                read()
                took.append(time.perf_counter() - began)
            timed.round_ms.append(statistics.median(took) * 1000)
            timed.app_cpu_ms.append(_spent(app_before, _cpu(app)) * 1000 / samples)
            timed.db_cpu_ms.append(_spent(db_before, _cpu(db)) * 1000 / samples)
    return [timed for timed, _ in reads]


def queue_table(store: Store, found: list[QueueTimed], rounds: int, samples: int) -> str:
    head = (
        f"{'read':<24} {'requests':>8} {'min':>9} {'median':>9} {'max':>9}"
        f"  {'app CPU':>8} {'db CPU':>8}"
    )
    lines = [
        f"expectedFillDate over a product's queue of {len(store.lives):,} waiting lines:"
        f" {rounds} rounds of {samples} timed reads each; latency = each round's median;"
        " CPU per read from /proc (median of the rounds)",
        head,
        "-" * len(head),
    ]
    for t in found:
        ms = sorted(t.round_ms)
        lines.append(
            f"{t.name:<24} {t.requests:>8} {ms[0]:>6.1f} ms {statistics.median(ms):>6.1f} ms"
            f" {ms[-1]:>6.1f} ms  {statistics.median(t.app_cpu_ms):>5.1f} ms"
            f" {statistics.median(t.db_cpu_ms):>5.1f} ms"
        )
    runs, pages = (statistics.median(t.round_ms) for t in found[:2])
    verdict = "met" if runs < GOAL_MS else "MISSED"
    lines.append("")
    lines.append(
        f"goal: the whole queue's expectedFillDate (Product.expectedFills, one request)"
        f" {runs:.1f} < {GOAL_MS:g} ms {verdict}"
    )
    lines.append(f"      line by line (backorderQueue pages with expectedFillDate): {pages:.1f} ms")
    return "\n".join(lines)

"""The figures benchmark's outcome rows (issue 14, "what waiting costs"): a store's
backorderOutcomes over the last 90 days, backorderLeaders by LOST_REVENUE and by WAIT_P90
over those days, and a 52-point WEEK backorderOutcomesTrend, checked against the order
lives, then timed per store size in rounds with the server's CPU per request."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import statistics
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from bench.figures_http import TALLY, Client
from bench.figures_load import Store
from bench.figures_trends import _cpu, _spent, backend_pids
from bench.figures_world import BY_ID, TZ, Life, Timeline

PERIOD = dt.timedelta(days=90)
WEEKS = 52
GOAL_RATIO = 3.0
LEADERS = 10
REL_ERROR = 0.02  # the wait quantiles' bound (domain/outcomes.py RELATIVE_ERROR)

OUTCOMES = (
    f"from to started {{ {TALLY} }} filled {{ {TALLY} }} wait {{ p50 p90 max relativeError }}"
    f" cancelledWhileWaiting {{ reason tally {{ {TALLY} }} }} lostRevenue {{ amount }}"
    f" ordersPlaced backorderRate overdueShare stillWaiting {{ label tally {{ {TALLY} }} }}"
)
OUTCOMES_QUERY = (
    "query($h: String!, $from: DateTime!, $to: DateTime!) { store(handle: $h) {"
    f" backorderOutcomes(from: $from, to: $to) {{ {OUTCOMES} }} }} }}"
)
LEADERS_QUERY = (
    "query($h: String!, $by: OutcomeRanking!, $from: DateTime!, $to: DateTime!) {"
    f" store(handle: $h) {{ backorderLeaders(by: $by, from: $from, to: $to, first: {LEADERS})"
    f" {{ product {{ sku }} unitsToReorder outcomes {{ {OUTCOMES} }} }} }} }}"
)
TREND_QUERY = (
    "query($h: String!, $from: DateTime!, $to: DateTime!) { store(handle: $h) {"
    " backorderOutcomesTrend(from: $from, to: $to, interval: WEEK) {"
    f" at outcomes {{ {OUTCOMES} }} }} }} }}"
)
AGES = ((0, 2), (3, 7), (8, 14), (15, None))  # the age buckets, in the store's calendar days


def period(timeline: Timeline) -> tuple[dt.datetime, dt.datetime]:
    """The last 90 days up to the end of the history."""
    return timeline.end - PERIOD, timeline.end


def week_window(end: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """From the local Monday midnight 51 weeks before this week's up to `end`: 52 WEEK
    points, the last one partial."""
    local = end.astimezone(TZ)
    monday = local.date() - dt.timedelta(days=local.weekday() + 7 * (WEEKS - 1))
    return dt.datetime.combine(monday, dt.time(0), tzinfo=TZ).astimezone(dt.UTC), end


# -- the outcomes, straight from the lives -------------------------------------------


@dataclass
class Tally:
    orders: int = 0
    units: int = 0
    value: Decimal = Decimal(0)

    def add(self, life: Life) -> None:
        self.orders += 1
        self.units += life.qty
        self.value += life.qty * BY_ID[life.product].price

    def as_tuple(self) -> tuple[int, int, Decimal]:
        return (self.orders, self.units, self.value)


@dataclass
class Expected:
    started: Tally = field(default_factory=Tally)
    filled: Tally = field(default_factory=Tally)
    declined: Tally = field(default_factory=Tally)  # cancelled while waiting
    placed: int = 0
    overdue: int = 0
    waits: list[tuple[float, int]] = field(default_factory=list)  # (hours, units) filled
    still: list[Tally] = field(default_factory=lambda: [Tally() for _ in AGES])


def _within(at: dt.datetime | None, lo: dt.datetime, hi: dt.datetime) -> bool:
    return at is not None and lo <= at < hi


def expected_outcomes(lives: list[Life], lo: dt.datetime, hi: dt.datetime) -> Expected:
    """The outcomes of [lo, hi) by their definition, from the order lives: an order on a
    zero-stock product waits from its placement to its fill or its cancellation."""
    fig = Expected()
    for life in lives:
        if life.placed_at >= hi:
            break
        fig.placed += lo <= life.placed_at
        if BY_ID[life.product].stocked:
            continue
        closed = life.fill_at or life.cancel_at
        if lo <= life.placed_at:
            fig.started.add(life)
            due = life.overdue_at
            if due is not None and due < hi and (closed is None or closed > due):
                fig.overdue += 1
        if _within(life.fill_at, lo, hi):
            assert life.fill_at is not None
            fig.filled.add(life)
            fig.waits.append(((life.fill_at - life.placed_at).total_seconds() / 3600, life.qty))
        if _within(life.cancel_at, lo, hi):
            fig.declined.add(life)
        if closed is None or closed >= hi:
            days = (hi.astimezone(TZ).date() - life.placed_at.astimezone(TZ).date()).days
            index = next(i for i, (_, top) in enumerate(AGES) if top is None or days <= top)
            fig.still[index].add(life)
    return fig


def _quantile(waits: list[tuple[float, int]], q: float) -> float | None:
    """The lower q-quantile over the units: the wait of the unit at rank ceil(q * n)."""
    total = sum(units for _, units in waits)
    if not total:
        return None
    rank, seen = max(1, math.ceil(q * total)), 0
    for hours, units in sorted(waits):
        seen += units
        if seen >= rank:
            return hours
    raise AssertionError("unreachable")


def _tally(found: dict[str, Any]) -> tuple[int, int, Decimal]:
    return (found["orders"], found["units"], Decimal(found["value"]["amount"]))


def _near(got: float | None, want: float | None, rel: float) -> bool:
    if got is None or want is None:
        return got is want
    return abs(got - want) <= rel * want + 1e-9


def outcome_problems(found: dict[str, Any], want: Expected) -> list[str]:
    """What differs between an answer and the outcomes computed from the lives (the
    wait's p50 and p90 within their relative error)."""
    problems = []
    declined = [
        _tally(c["tally"])
        for c in found["cancelledWhileWaiting"]
        if c["reason"] == "CUSTOMER_DECLINED_BACKORDER"
    ]
    for name, got, tally in (
        ("started", _tally(found["started"]), want.started),
        ("filled", _tally(found["filled"]), want.filled),
        ("declined", declined[0] if declined else (0, 0, Decimal(0)), want.declined),
    ):
        if got != tally.as_tuple():
            problems.append(f"{name}: got {got}, expected {tally.as_tuple()}")
    if Decimal(found["lostRevenue"]["amount"]) != want.declined.value:
        problems.append(f"lostRevenue: got {found['lostRevenue']}, expected {want.declined.value}")
    rate = want.started.orders / want.placed if want.placed else 0.0
    share = want.overdue / want.started.orders if want.started.orders else 0.0
    for name, got_n, expected_n in (
        ("ordersPlaced", found["ordersPlaced"], want.placed),
        ("backorderRate", found["backorderRate"], rate),
        ("overdueShare", found["overdueShare"], share),
    ):
        if not math.isclose(got_n, expected_n, rel_tol=1e-9, abs_tol=1e-12):
            problems.append(f"{name}: got {got_n}, expected {expected_n}")
    wait = found["wait"]
    longest = max((h for h, _ in want.waits), default=None)
    for name, got_w, want_w, rel in (
        ("p50", wait["p50"], _quantile(want.waits, 0.5), REL_ERROR),
        ("p90", wait["p90"], _quantile(want.waits, 0.9), REL_ERROR),
        ("max", wait["max"], longest, 1e-9),
    ):
        if not _near(got_w, want_w, rel):
            problems.append(f"wait {name}: got {got_w}, expected {want_w}")
    still = [_tally(b["tally"]) for b in found["stillWaiting"]]
    if still != [t.as_tuple() for t in want.still]:
        problems.append(f"stillWaiting: got {still}, expected {[t.as_tuple() for t in want.still]}")
    return problems


def lost_revenue_leaders(lives: list[Life], lo: dt.datetime, hi: dt.datetime) -> list[str]:
    """The SKUs leading by lost revenue over [lo, hi), ties by product (its age)."""
    lost: dict[int, Decimal] = {}
    for life in lives:
        if _within(life.cancel_at, lo, hi) and not BY_ID[life.product].stocked:
            lost[life.product] = lost.get(life.product, Decimal(0)) + life.qty * (
                BY_ID[life.product].price
            )
    ranked = sorted((-value, pid) for pid, value in lost.items() if value > 0)
    return [BY_ID[pid].sku for _, pid in ranked[:LEADERS]]


def check_outcomes(client: Client, store: Store, timeline: Timeline) -> list[str]:
    """The 90-day outcomes, both leader lists and the 52-week trend (its points' bounds,
    and a few of its points in full) equal what the order lives give."""
    lo, hi = period(timeline)
    window = {"h": store.handle, "from": lo.isoformat(), "to": hi.isoformat()}
    problems = []
    found = client.post(OUTCOMES_QUERY, window)["data"]["store"]["backorderOutcomes"]
    want = expected_outcomes(store.lives, lo, hi)
    problems += [f"90 days: {p}" for p in outcome_problems(found, want)]
    by_sku = {p.sku: p for p in BY_ID.values()}
    by_product: dict[int, list[Life]] = {}
    for life in store.lives:
        by_product.setdefault(life.product, []).append(life)

    for by in ("LOST_REVENUE", "WAIT_P90"):
        leaders = client.post(LEADERS_QUERY, {**window, "by": by})["data"]["store"][
            "backorderLeaders"
        ]
        skus = [row["product"]["sku"] for row in leaders]
        for row in leaders:
            spec = by_sku[row["product"]["sku"]]
            want = expected_outcomes(by_product.get(spec.id, []), lo, hi)
            # a product's outcomes count its lines: one per order here, so the same figures
            problems += [f"{by} {spec.sku}: {p}" for p in outcome_problems(row["outcomes"], want)]
        if by == "LOST_REVENUE":
            want_skus = lost_revenue_leaders(store.lives, lo, hi)
            if skus != want_skus:
                problems.append(f"LOST_REVENUE leaders: got {skus}, expected {want_skus}")
        else:
            p90s = [row["outcomes"]["wait"]["p90"] for row in leaders]
            filled = {
                BY_ID[life.product].sku for life in store.lives if _within(life.fill_at, lo, hi)
            }
            if p90s != sorted(p90s, reverse=True) or len(skus) != min(LEADERS, len(filled)):
                problems.append(f"WAIT_P90 leaders: {list(zip(skus, p90s, strict=True))}")

    start, end = week_window(timeline.end)
    points = client.post(
        TREND_QUERY, {"h": store.handle, "from": start.isoformat(), "to": end.isoformat()}
    )["data"]["store"]["backorderOutcomesTrend"]
    ats = [dt.datetime.fromisoformat(p["at"]) for p in points]
    want_ats = [
        dt.datetime.combine(start.astimezone(TZ).date() + dt.timedelta(weeks=k), dt.time(0), TZ)
        for k in range(WEEKS)
    ]
    if ats != want_ats:
        problems.append(f"trend: {len(ats)} points, not the {WEEKS} local Mondays")
        return problems
    for index in (0, WEEKS // 2, WEEKS - 1):
        point = points[index]["outcomes"]
        p_lo = dt.datetime.fromisoformat(point["from"])
        p_hi = dt.datetime.fromisoformat(point["to"])
        want = expected_outcomes(store.lives, p_lo, p_hi)
        problems += [f"trend week {index + 1}: {p}" for p in outcome_problems(point, want)]
    return problems


def check_all_outcomes(client: Client, stores: list[Store], timeline: Timeline) -> list[str]:
    problems = []
    for store in stores:
        began = time.perf_counter()
        found = check_outcomes(client, store, timeline)
        problems += [f"N={store.orders:,}: {p}" for p in found]
        if not found:
            print(
                f"checked N={store.orders:,} over HTTP: 90-day backorderOutcomes, both"
                f" backorderLeaders and 3 of the {WEEKS} trend weeks equal the order lives"
                f" ({time.perf_counter() - began:.1f} s)",
                flush=True,
            )
    return problems


# -- the measurement ---------------------------------------------------------------


@dataclass
class Timed:
    """One query on one store: each round's median latency and CPU per request."""

    round_ms: list[float] = field(default_factory=list)
    app_cpu_ms: list[float] = field(default_factory=list)
    db_cpu_ms: list[float] = field(default_factory=list)

    @property
    def ms(self) -> float:
        return statistics.median(self.round_ms)


@dataclass
class Row:
    name: str
    timed: dict[int, Timed]  # by store size


def requests(store: Store, timeline: Timeline) -> list[tuple[str, str, dict[str, Any]]]:
    lo, hi = period(timeline)
    window = {"h": store.handle, "from": lo.isoformat(), "to": hi.isoformat()}
    start, end = week_window(timeline.end)
    trend = {"h": store.handle, "from": start.isoformat(), "to": end.isoformat()}
    return [
        ("outcomes, 90 days", OUTCOMES_QUERY, window),
        ("leaders LOST_REVENUE", LEADERS_QUERY, {**window, "by": "LOST_REVENUE"}),
        ("leaders WAIT_P90", LEADERS_QUERY, {**window, "by": "WAIT_P90"}),
        (f"trend, {WEEKS} WEEKs", TREND_QUERY, trend),
    ]


def measure_outcomes(
    client: Client,
    stores: list[Store],
    timeline: Timeline,
    app_pid: int,
    dsn: str,
    rounds: int,
    samples: int,
    warmup: int,
) -> list[Row]:
    """Per query: `rounds` rounds, each with `samples` sequential requests per store (the
    stores' order alternating from one round to the next, so that load elsewhere weighs
    on every size alike); the server's CPU from /proc over each store's requests."""
    per_store = [requests(store, timeline) for store in stores]
    rows = [Row(name, {s.orders: Timed() for s in stores}) for name, _, _ in per_store[0]]
    for made in per_store:
        for _, query, variables in made:
            for _ in range(warmup):
                client.post(query, variables)
    for index in range(rounds):
        for q, row in enumerate(rows):
            order = list(zip(stores, per_store, strict=True))
            for store, made in order if index % 2 == 0 else order[::-1]:
                _, query, variables = made[q]
                app, db = [app_pid], asyncio.run(backend_pids(dsn))
                app_before, db_before = _cpu(app), _cpu(db)
                took = []
                for _ in range(samples):
                    began = time.perf_counter()
                    client.post(query, variables)
                    took.append(time.perf_counter() - began)
                timed = row.timed[store.orders]
                timed.round_ms.append(statistics.median(took) * 1000)
                timed.app_cpu_ms.append(_spent(app_before, _cpu(app)) * 1000 / samples)
                timed.db_cpu_ms.append(_spent(db_before, _cpu(db)) * 1000 / samples)
    return rows


def outcomes_table(rows: list[Row], rounds: int, samples: int) -> str:
    sizes = sorted(rows[0].timed)
    base, top = sizes[0], sizes[-1]
    head = (
        f"{'query':<22} {'orders':>10} {'min':>9} {'median':>9} {'max':>9} {'ratio':>6}"
        f"  {'app CPU/req':>11} {'db CPU/req':>10}"
    )
    lines = [
        f"what waiting costs: {rounds} rounds of {samples} sequential requests per query and"
        " store; latency = each round's median; ratio of the medians to"
        f" {base:,} orders; CPU per request from /proc (median of the rounds)",
        head,
        "-" * len(head),
    ]
    for row in rows:
        for orders in sizes:
            t = row.timed[orders]
            ms = sorted(t.round_ms)
            lines.append(
                f"{row.name:<22} {orders:>10,} {ms[0]:>6.1f} ms {t.ms:>6.1f} ms {ms[-1]:>6.1f} ms"
                f" {t.ms / row.timed[base].ms:>6.2f}  {statistics.median(t.app_cpu_ms):>8.1f} ms"
                f" {statistics.median(t.db_cpu_ms):>7.1f} ms"
            )
    lines.append("")
    lines.append(f"goals at {top:,} orders (ratio to {base:,}):")
    for row in rows:
        ratio = row.timed[top].ms / row.timed[base].ms
        verdict = "met" if ratio <= GOAL_RATIO else "MISSED"
        lines.append(f"  {row.name:<22} {ratio:>8.2f} <= {GOAL_RATIO:g} {verdict}")
    return "\n".join(lines)

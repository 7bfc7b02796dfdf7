"""The figures benchmark loads its stores, checks them, and prints medians with ratios."""

from __future__ import annotations

import re

import pytest

from tests.conftest import bench_dropped_its_database, run_bench

MS = r"([0-9]+\.[0-9]+) ms\s+([0-9]+\.[0-9]+)"
ROW = re.compile(rf"^\s*([0-9,]+)\s+{MS}\s+{MS}\s+{MS}\s*$", re.MULTILINE)
GOAL = re.compile(r"^\s+(backlog\S*.*?)\s+([0-9.]+) <= ([0-9.]+)\s+(met|MISSED)$", re.MULTILINE)
TREND = re.compile(
    r"^(30 DAY|1,000 HOUR) points\s+([0-9.]+) ms\s+([0-9.]+) ms\s+([0-9.]+) ms\s+([0-9.]+)"
    r"\s+([0-9.]+) ms\s+([0-9.]+) ms\s+([0-9.]+) ms$",
    re.MULTILINE,
)
OUTCOME = re.compile(
    r"^(outcomes, 90 days|leaders LOST_REVENUE|leaders WAIT_P90|trend, 52 WEEKs)\s+([0-9,]+)"
    r"\s+([0-9.]+) ms\s+([0-9.]+) ms\s+([0-9.]+) ms\s+([0-9.]+)\s+([0-9.]+) ms\s+([0-9.]+) ms$",
    re.MULTILINE,
)
OUTCOME_GOAL = re.compile(r"^\s+(outcomes|leaders|trend)\S*.*?\s([0-9.]+) <= 3 (met|MISSED)$", re.M)
QUEUE = re.compile(
    r"^(whole queue as runs|whole queue, 3 pages|first page \(250 lines\)|unitsToReorder)"
    r"\s+([0-9]+)"
    r"\s+([0-9.]+) ms\s+([0-9.]+) ms\s+([0-9.]+) ms\s+([0-9.]+) ms\s+([0-9.]+) ms$",
    re.MULTILINE,
)


def printed_ratio_fits(ratio: float, median: float, first: float, decimals: int) -> bool:
    """A ratio printed to two decimals from medians printed to `decimals` decimals of a
    millisecond: within what that rounding allows of the printed medians' own ratio (the
    bench divides the unrounded medians; at about 10 ms, rounding each to 0.1 ms moves
    their ratio by up to about 0.01)."""
    half = 0.5 * 0.1**decimals
    spread = half / first * (1 + median / first)  # the medians' rounding
    return abs(ratio - median / first) <= 0.005 + spread + 1e-9


@pytest.mark.postgres
def test_smoke_run_checks_consistency_and_prints_medians_with_ratios(pg_url: str) -> None:
    # pg_url skips this test when PostgreSQL is unreachable (and fails it under CI=true).
    done = run_bench("figures.py", "--smoke")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "consistency: ok" in done.stdout, output
    assert "every row of 11 tables equal the bulk load" in done.stdout, output
    for size in ("200", "2,000"):
        assert (
            f"checked N={size} over HTTP: 90-day backorderOutcomes, both backorderLeaders"
            in done.stdout
        ), output
    assert "checked the queue over HTTP: 600 waiting lines" in done.stdout, output

    rows = {int(found[0].replace(",", "")): found[1:] for found in ROW.findall(done.stdout)}
    assert sorted(rows) == [200, 2_000], output
    for orders, numbers in rows.items():
        medians = [float(x) for x in numbers[0::2]]
        ratios = [float(x) for x in numbers[1::2]]
        assert all(m > 0 for m in medians), output
        if orders == 200:
            assert ratios == [1.0, 1.0, 1.0], output
        else:
            base = [float(x) for x in rows[200][0::2]]
            for median, ratio, first in zip(medians, ratios, base, strict=True):
                assert printed_ratio_fits(ratio, median, first, decimals=2), output
    goals = GOAL.findall(done.stdout)
    assert [float(goal) for _, _, goal, _ in goals] == [1.5, 3.0, 10.0], output

    # The trend rows, on the larger store: min <= median <= max, ratios to the DAY trend.
    assert "backlogTrend on the store of 2,000 orders" in done.stdout, output
    trends = {name: [float(x) for x in rest] for name, *rest in TREND.findall(done.stdout)}
    assert sorted(trends) == ["1,000 HOUR", "30 DAY"], output
    for low, median, high, *_ in trends.values():
        assert 0 < low <= median <= high, output
    assert trends["30 DAY"][3] == 1.0, output
    ratio = trends["1,000 HOUR"][1] / trends["30 DAY"][1]
    assert trends["1,000 HOUR"][3] == pytest.approx(ratio, rel=0.02), output
    # The light client's own CPU per request is printed, and is small beside the server's.
    for *_, client_cpu in trends.values():
        assert 0 <= client_cpu < 5, output

    # What waiting costs: each query on both stores, ratios to the smaller one, a verdict each.
    outcomes = OUTCOME.findall(done.stdout)
    assert len(outcomes) == 8, output
    smallest = {name: float(m) for name, size, _, m, *_ in outcomes if size == "200"}
    for name, _, low, middle, high, times, *_ in outcomes:
        assert 0 < float(low) <= float(middle) <= float(high), output
        assert printed_ratio_fits(float(times), float(middle), smallest[name], decimals=1), output
    assert len(OUTCOME_GOAL.findall(done.stdout)) == 4, output

    # The queue of 600 lines: read in 3 pages, each read timed, and the goal's verdict.
    queue = {name: rest for name, *rest in QUEUE.findall(done.stdout)}
    assert sorted(queue) == [
        "first page (250 lines)",
        "unitsToReorder",
        "whole queue as runs",
        "whole queue, 3 pages",
    ]
    assert queue["whole queue, 3 pages"][0] == "3", output
    assert queue["whole queue as runs"][0] == "1", output
    for _, low, middle, high, *_ in queue.values():
        assert 0 < float(low) <= float(middle) <= float(high), output
    assert re.search(
        r"^goal: the whole queue's expectedFillDate \(Product.expectedFills, one request\)"
        r" [0-9.]+ < 100 ms (met|MISSED)$",
        done.stdout,
        re.M,
    ), output

    assert bench_dropped_its_database(done.stdout, "ordergraph_figures"), output

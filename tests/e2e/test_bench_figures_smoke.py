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
    r"\s+([0-9.]+) ms\s+([0-9.]+) ms$",
    re.MULTILINE,
)


@pytest.mark.postgres
def test_smoke_run_checks_consistency_and_prints_medians_with_ratios(pg_url: str) -> None:
    # pg_url skips this test when PostgreSQL is unreachable (and fails it under CI=true).
    done = run_bench("figures.py", "--smoke")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "consistency: ok" in done.stdout, output
    assert "every row of 7 tables equal the bulk load" in done.stdout, output

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
                assert ratio == pytest.approx(median / first, abs=0.01), output
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

    assert bench_dropped_its_database(done.stdout, "ordergraph_figures"), output

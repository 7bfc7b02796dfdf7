"""The placeOrder benchmark runs end to end and reports both rates and their ratio."""

from __future__ import annotations

import re

import pytest

from tests.conftest import bench_dropped_its_database, run_bench

ROW = re.compile(r"^(baseline|ordergraph)\s+(\d+)\s+(\d+)\s+([0-9.]+)\s", re.MULTILINE)
RATIO = re.compile(r"^ratio \(ordergraph / baseline\): ([0-9.]+)$", re.MULTILINE)


@pytest.mark.postgres
def test_benchmark_places_orders_on_both_prints_the_ratio_and_drops_its_database(
    pg_url: str,
) -> None:
    # pg_url skips this test when PostgreSQL is unreachable (and fails it under CI=true).
    done = run_bench("place_orders.py", "--seconds", "2", "--warmup", "0.5", "--concurrency", "4")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output

    rates = {name: float(rate) for name, _orders, _errors, rate in ROW.findall(done.stdout)}
    assert set(rates) == {"baseline", "ordergraph"}, output
    assert rates["baseline"] > 0, output
    assert rates["ordergraph"] > 0, output
    ratio = RATIO.search(done.stdout)
    assert ratio is not None, output
    assert float(ratio.group(1)) == pytest.approx(
        rates["ordergraph"] / rates["baseline"], rel=0.02, abs=0.002
    )
    assert output.count("checked in the database") == 2, output

    assert bench_dropped_its_database(done.stdout, "ordergraph_bench"), output

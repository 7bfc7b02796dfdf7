"""The reads benchmark runs end to end: the three contenders (the bare baseline, the
stack's floor, ordergraph) give the same data for each read, the summary has the three
ratios per read, and the database is dropped."""

from __future__ import annotations

import re

import pytest

from tests.conftest import bench_dropped_its_database, run_bench

RATIO = re.compile(r"^ratio \((\w+) / (\w+)\): ([0-9.]+)$", re.MULTILINE)
ROW = re.compile(r"^(baseline|floor|ordergraph)\s+([0-9.]+)\s", re.MULTILINE)


@pytest.mark.postgres
def test_reads_benchmark_compares_the_same_json_and_drops_its_database(pg_url: str) -> None:
    done = run_bench(
        "reads.py",
        *("--seconds", "0.5", "--rounds", "1", "--warmup", "0", "--concurrency", "2"),
        *("--orders", "12"),
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "same JSON from all three for: store, orders, backlog" in done.stdout, output
    pairs = [(a, b) for a, b, _ in RATIO.findall(done.stdout)]
    expected = [("ordergraph", "baseline"), ("ordergraph", "floor"), ("floor", "baseline")]
    assert pairs == expected * 3, output
    rates = [float(rate) for _, rate in ROW.findall(done.stdout)]
    assert len(rates) == 9, output
    assert all(rate > 0 for rate in rates), output
    assert bench_dropped_its_database(done.stdout, "ordergraph_bench_reads"), output

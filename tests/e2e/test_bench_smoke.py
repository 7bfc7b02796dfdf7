"""The placeOrder benchmark runs end to end: every contender places orders, the summary
gives medians, the ratios and the client's CPU, the rows are checked, the database dropped."""

from __future__ import annotations

import re
import shutil

import pytest

from tests.conftest import bench_dropped_its_database, run_bench

ROW = re.compile(r"^(baseline|floor|ordergraph|pgbench)\s+([0-9.]+)\s", re.MULTILINE)
RATIO = re.compile(r"^ratio \((\w+) / (\w+)\): ([0-9.]+)$", re.MULTILINE)
CLIENT_CPU = re.compile(r"client CPU ms/req ([0-9.]+)")


@pytest.mark.postgres
def test_benchmark_places_orders_on_every_contender_prints_ratios_and_drops_its_database(
    pg_url: str,
) -> None:
    # pg_url skips this test when PostgreSQL is unreachable (and fails it under CI=true).
    done = run_bench(
        "place_orders.py",
        *("--seconds", "1", "--rounds", "1", "--warmup", "0", "--concurrency", "4"),
        *("--workload", "spread", "--stores", "2"),
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output

    with_pgbench = shutil.which("pgbench") is not None
    contenders = {"baseline", "floor", "ordergraph"} | ({"pgbench"} if with_pgbench else set())
    rates = {name: float(rate) for name, rate in ROW.findall(done.stdout)}
    assert set(rates) == contenders, output
    assert all(rate > 0 for rate in rates.values()), output
    ratios = {(a, b): float(r) for a, b, r in RATIO.findall(done.stdout)}
    expected = {("ordergraph", c) for c in contenders - {"ordergraph"}} | {("floor", "baseline")}
    assert set(ratios) == expected, output
    for a, b in ratios:
        assert ratios[a, b] == pytest.approx(rates[a] / rates[b], rel=0.02, abs=0.002), output
    if not with_pgbench:
        assert "pgbench NOT FOUND" in done.stdout, output
    assert "ANALYZE" in done.stdout, output
    # The light client's own CPU is printed with every run, and stays well below a server's.
    client = [float(ms) for ms in CLIENT_CPU.findall(done.stdout)]
    assert len(client) == len(contenders), output
    assert "store lock hold, ordergraph: per unit of work" in done.stdout, output
    assert "ms of hold per order" in done.stdout, output  # the server counts orders per unit
    assert output.count("checked in the database") == len(contenders), output

    assert bench_dropped_its_database(done.stdout, "ordergraph_bench"), output

"""The mutations benchmark runs end to end at tiny sizes: receiveStock fills every waiting
line, the shipped and cancelled orders end so in the database, the round trips are
counted through the proxy, the ratios to placeOrder are printed, the database dropped."""

from __future__ import annotations

import ast
import re

import pytest

from tests.conftest import bench_dropped_its_database, run_bench

STATUSES = re.compile(r"^checks: ok \(.*orders by status (\{[^}]*\})", re.MULTILINE)
FILLED = re.compile(r"^round 1 receiveStock filling 20 lines: .* (\d+) round trips$", re.MULTILINE)
SEQUENTIAL = re.compile(
    r"^round 1 sequential (placeOrder|shipOrder|cancelOrder): 10 calls .* 0 errors.*"
    r"round trips/call ([0-9.]+)",
    re.MULTILINE,
)
RATIO = re.compile(r"^(shipOrder|cancelOrder|receiveStock) per (touched|filled) line vs", re.M)


@pytest.mark.postgres
def test_mutations_benchmark_fills_ships_cancels_counts_and_drops_its_database(
    pg_url: str,
) -> None:
    # pg_url skips this test when PostgreSQL is unreachable (and fails it under CI=true).
    done = run_bench(
        "mutations.py",
        *("--rounds", "1", "--calls", "10", "--concurrent-calls", "2"),
        *("--concurrency", "2", "--waiting", "20"),
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output

    # The bench's own checks held: 6 warm-up + 10 sequential + 2 x 2 concurrent orders of
    # each kind, read back from the database by status.
    statuses = STATUSES.search(done.stdout)
    assert statuses is not None, output
    found = ast.literal_eval(statuses.group(1))
    assert found["SHIPPED"] == 20, output
    assert found["CANCELLED"] == 20, output
    assert "receiveStock filled all 20 waiting lines: backordered 0, allocated +20" in output

    trips = dict(SEQUENTIAL.findall(done.stdout))
    assert set(trips) == {"placeOrder", "shipOrder", "cancelOrder"}, output
    assert all(float(count) >= 1 for count in trips.values()), output
    filled = FILLED.search(done.stdout)
    assert filled is not None, output
    assert int(filled.group(1)) >= 1, output
    assert len(RATIO.findall(done.stdout)) == 5, output
    assert bench_dropped_its_database(done.stdout, "ordergraph_bench_mutations"), output

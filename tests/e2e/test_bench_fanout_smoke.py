"""The fan-out benchmark runs end to end: every subscriber gets every order event once."""

from __future__ import annotations

import re

import pytest

from tests.conftest import bench_dropped_its_database, run_bench


def _figure(output: str, name: str) -> str:
    found = re.search(rf"^{re.escape(name)}\s+(.+?)\s*$", output, re.MULTILINE)
    assert found is not None, f"no {name!r} row in:\n{output}"
    return found.group(1)


@pytest.mark.postgres
def test_fanout_smoke_delivers_every_event_to_every_subscriber_and_drops_its_database(
    pg_url: str,
) -> None:
    # pg_url skips this test when PostgreSQL is unreachable (and fails it under CI=true).
    done = run_bench("fanout.py", "--smoke")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output

    assert _figure(done.stdout, "subscribers connected") == "50 / 50", output
    events = int(_figure(done.stdout, "order events committed"))
    assert events >= 2, output  # the warm-up order and at least one measured one
    expected = int(_figure(done.stdout, "events expected"))
    assert expected == 50 * events, output
    assert int(_figure(done.stdout, "events delivered")) == expected, output
    for name in ("missing", "duplicate", "unexpected", "subscribers out of order"):
        assert _figure(done.stdout, name) == "0", output
    assert _figure(done.stdout, "subscribers complete") == "50 / 50", output
    latencies = [float(_figure(done.stdout, f"latency {q} ms")) for q in ("p50", "p99", "max")]
    assert 0 < latencies[0] <= latencies[1] <= latencies[2], output
    assert float(_figure(done.stdout, "server memory per subscriber KiB")) > 0, output
    assert "every event exactly once, in order" in done.stdout, output

    assert bench_dropped_its_database(done.stdout, "ordergraph_bench"), output

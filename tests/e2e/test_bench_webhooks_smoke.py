"""The webhook benchmark runs end to end: every delivery arrives, in order, signed."""

from __future__ import annotations

import re

import pytest

from tests.conftest import bench_dropped_its_database, run_bench


@pytest.mark.postgres
def test_webhooks_smoke_delivers_every_event_in_order_signed_and_drops_its_database(
    pg_url: str,
) -> None:
    # pg_url skips this test when PostgreSQL is unreachable (and fails it under CI=true).
    done = run_bench("webhooks.py", "--smoke")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output

    checks = re.search(
        r"^checks: (\d+) of (\d+) arrived, missing (\d+), duplicates (\d+), out of order (\d+), "
        r"bad signatures (\d+), bad event-id headers (\d+)$",
        done.stdout,
        re.MULTILINE,
    )
    assert checks is not None, output
    arrived, expected, missing, _duplicates, disordered, unsigned, bad_ids = map(
        int, checks.groups()
    )
    # The smoke: 2 subscriptions, 20 orders a run; the warm-up, ordergraph's catch-up and
    # sustained runs, and the baseline's three runs, 40 deliveries each.
    assert expected == 6 * 40, output
    assert arrived >= expected, output
    assert missing == disordered == unsigned == bad_ids == 0, output
    assert "every event arrived, in order, signatures valid" in done.stdout, output
    for table in ("catch-up (", "sustained ("):
        assert table in done.stdout, output
    for contender in ("ordergraph", "baseline"):
        assert re.search(rf"^{contender}\s+\d", done.stdout, re.MULTILINE), output

    assert bench_dropped_its_database(done.stdout, "ordergraph_bench"), output

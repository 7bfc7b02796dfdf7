"""The embedded benchmark runs end to end on SQLite and prints its figures."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import ROOT

ROUND = re.compile(
    r"^1\s+([0-9.]+)\s+[0-9.]+\s+[0-9.]+\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)\s", re.M
)


def test_embedded_bench_places_orders_and_times_seed_demo() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "embedded.py"), "--rounds", "1", "--seconds", "1",
         "--warmup", "0.2", "--orders", "60", "--no-baseline"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    found = ROUND.search(done.stdout)
    assert found is not None, output
    # orders/s, server and client CPU per order, seed-demo seconds: all measured
    assert all(float(value) > 0 for value in found.groups()), output
    assert "placeOrder orders/s" in done.stdout
    assert "seed-demo s (60 orders)" in done.stdout

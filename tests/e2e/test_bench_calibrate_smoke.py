"""The cost calibration runs end to end on a small demo database and prints, for every
operation kind of the table, its cost and the server's CPU per request."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

ROW = re.compile(r"^(.+?)\s+cost\s+(\d+)\s+cpu\s+([0-9.]+) ms\s+([0-9.]+) ms/pt", re.M)


def _ordergraph(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "ordergraph", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_calibration_prints_cost_and_cpu_of_every_kind(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    _ordergraph("seed-demo", "--database-url", url, "--orders", "150")
    made = _ordergraph(
        "create-key", "--database-url", url, "--store", "demo-new-york",
        "--scope", "READ", "--scope", "ORDERS", "--name", "calibrate",
    )  # fmt: skip
    token = re.search(r"token:\s+(og_\S+)", made)
    assert token is not None, made
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "cost_calibrate.py"), "--database-url", url,
         "--token", token.group(1), "--samples", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    rows = {name.strip(): (int(cost), float(cpu)) for name, cost, cpu, _ in ROW.findall(output)}
    assert len(rows) == 21, output
    assert {"placeOrder", "trend HOUR 40d, all fields", "leaders 10"} <= set(rows), output
    assert all(cost > 0 and cpu > 0 for cost, cpu in rows.values()), output

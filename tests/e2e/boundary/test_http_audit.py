"""The graphql-http audit suite (npm graphql-http, pinned in tests/e2e/boundary/audit) against
a real `ordergraph serve`: all 61 audits of GraphQL-over-HTTP conformance pass, with no
warning and no error."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import IN_CI, LiveServer

AUDIT = Path(__file__).resolve().parent / "audit"


@pytest.fixture
def audit_ready() -> None:
    if shutil.which("node") is None or not (AUDIT / "node_modules" / "graphql-http").is_dir():
        message = (
            "run `npm ci` in tests/e2e/boundary/audit (.ci/run does) to audit GraphQL over HTTP"
        )
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


def test_the_graphql_http_audit_passes_with_no_warning(
    audit_ready: None, live_server: LiveServer
) -> None:
    done = subprocess.run(
        ["node", "audit.mjs", f"{live_server.url}/graphql"],
        cwd=AUDIT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = done.stdout.strip().splitlines()
    assert lines, done.stderr
    summary = json.loads(lines[-1])
    not_ok = [line for line in lines[:-1] if not line.startswith("ok ")]
    assert summary == {"total": 61, "ok": 61, "notice": 0, "warn": 0, "error": 0}, not_ok
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in live_server.log.read_text()

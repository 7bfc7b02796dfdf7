"""The graphql-http audit suite (npm graphql-http, pinned in tests/boundary/audit) against
a real `ordergraph serve`: all 61 audits of GraphQL-over-HTTP conformance pass, with no
warning and no error."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import IN_CI, LiveServer, start_server

AUDIT = Path(__file__).resolve().parent / "audit"


@pytest.fixture
def audit_ready() -> None:
    if shutil.which("node") is None or not (AUDIT / "node_modules" / "graphql-http").is_dir():
        message = "run `npm ci` in tests/boundary/audit (.ci/run does) to audit GraphQL over HTTP"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(params=["sqlite", "postgres"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveServer]:
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    live = start_server(url, tmp_path / "server.log")
    try:
        yield live
    finally:
        live.stop()


def test_the_graphql_http_audit_passes_with_no_warning(
    audit_ready: None, server: LiveServer
) -> None:
    done = subprocess.run(
        ["node", "audit.mjs", f"{server.url}/graphql"],
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
    assert "Traceback" not in server.log.read_text()

"""The `ordergraph` command: serve on the embedded default, migrate, export-schema."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERGRAPH_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


def test_export_schema_prints_the_sdl(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ordergraph", "export-schema"],
        capture_output=True,
        text=True,
        check=True,
        env=_env(tmp_path),
        cwd=tmp_path,
    )
    assert "type Query {" in out.stdout
    assert out.stdout == (ROOT / "schema.graphql").read_text()


def test_migrate_reports_a_bad_setting_in_one_line(tmp_path: Path) -> None:
    env = {**_env(tmp_path), "ORDERGRAPH_PORT": "eighty"}
    out = subprocess.run(
        [sys.executable, "-m", "ordergraph", "serve"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert out.returncode == 2
    assert out.stderr.strip() == "ordergraph: ORDERGRAPH_PORT must be a whole number, got 'eighty'"


def test_serve_runs_with_no_setup_and_prints_an_admin_token_once(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "serve.log"

    def serve(log: Path) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "ordergraph", "serve", "--port", str(port)],
            env=_env(tmp_path),
            cwd=tmp_path,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )

    def wait_ready(log: Path) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise AssertionError(log.read_text())

    process = serve(log)
    try:
        wait_ready(log)
        printed = log.read_text()
        token = re.search(r"^\s+(og_admin_\S+)$", printed, re.M)
        assert token, printed
        assert (tmp_path / "ordergraph.db").exists()
        assert (tmp_path / "ordergraph.db.admin-token").read_text().strip() == token.group(1)
        created = httpx.post(
            f"http://127.0.0.1:{port}/graphql",
            json={
                "query": """mutation { createStore(input: {handle: "cli-shop", name: "Shop",
                  currencyCode: "USD", timezone: "Europe/Berlin"}) { store { handle } token } }"""
            },
            headers={"Authorization": f"Bearer {token.group(1)}"},
        ).json()
        assert created["data"]["createStore"]["store"]["handle"] == "cli-shop"
    finally:
        process.terminate()
        process.wait(timeout=15)

    second_log = tmp_path / "serve-again.log"
    process = serve(second_log)  # a second start keeps the token and does not print it again
    try:
        wait_ready(second_log)
        assert "og_admin_" not in second_log.read_text()
    finally:
        process.terminate()
        process.wait(timeout=15)

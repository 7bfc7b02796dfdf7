"""The deployment files: docker-compose.yml and the Dockerfile it builds.

There is no container engine in the test environment, so these read the files:
the YAML checks need PyYAML (installed with uvicorn[standard]) and skip without
it; the `docker-compose config` check runs where docker-compose is installed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _compose() -> dict[str, Any]:
    yaml = pytest.importorskip("yaml")
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_api_waits_for_a_healthy_postgres_16_with_a_volume() -> None:
    services = _compose()["services"]
    db, api = services["db"], services["api"]
    assert db["image"] == "postgres:16"
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    assert any(v.endswith(":/var/lib/postgresql/data") for v in db["volumes"])
    assert api["depends_on"] == {"db": {"condition": "service_healthy"}}


def test_api_is_configured_for_the_db_service_and_requires_an_admin_token() -> None:
    api = _compose()["services"]["api"]
    env = api["environment"]
    assert env["ORDERGRAPH_DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert "@db:5432/" in env["ORDERGRAPH_DATABASE_URL"]
    assert env["ORDERGRAPH_ADMIN_TOKEN"].startswith("${ORDERGRAPH_ADMIN_TOKEN:?")
    assert "8000:8000" in api["ports"]
    assert "/healthz" in " ".join(api["healthcheck"]["test"])
    assert api["command"][:2] == ["ordergraph", "serve"]
    assert "0.0.0.0" in api["command"]


def test_image_contains_every_package_the_wheel_ships() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\S+) \./\1$", dockerfile, re.MULTILINE))
    assert set(packages) <= copied
    assert re.search(r"^FROM python:3\.12-slim$", dockerfile, re.MULTILINE)
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert not set(packages) & set(ignored)


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose not installed")
def test_compose_config_is_valid_and_refuses_to_start_without_an_admin_token() -> None:
    env = {k: v for k, v in os.environ.items() if k != "ORDERGRAPH_ADMIN_TOKEN"}
    command = ["docker-compose", "config", "-q"]
    ok = subprocess.run(
        command,
        cwd=ROOT,
        env={**env, "ORDERGRAPH_ADMIN_TOKEN": "x"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    refused = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0
    assert "ORDERGRAPH_ADMIN_TOKEN" in refused.stderr

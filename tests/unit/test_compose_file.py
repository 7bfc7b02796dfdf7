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

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict[str, Any]:
    yaml = pytest.importorskip("yaml")
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


API_SERVICES = ("api-1", "api-2")


def _proxy_config() -> str:
    return (ROOT / "deploy" / "nginx.conf").read_text()


def test_migrations_run_once_after_a_healthy_postgres_16_with_a_volume() -> None:
    services = _compose()["services"]
    db, migrate = services["db"], services["migrate"]
    assert db["image"] == "postgres:16"
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    assert any(v.endswith(":/var/lib/postgresql/data") for v in db["volumes"])
    assert migrate["command"] == ["ordergraph", "migrate"]
    assert migrate["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert migrate["restart"] == "no"  # a one-shot job, not a service to keep up
    assert "ports" not in migrate


def test_two_api_processes_start_after_the_migrations_on_the_same_database() -> None:
    services = _compose()["services"]
    migrate = services["migrate"]
    for name in API_SERVICES:
        api = services[name]
        assert api["depends_on"] == {
            "db": {"condition": "service_healthy"},
            "migrate": {"condition": "service_completed_successfully"},
        }
        assert api["image"] == migrate["image"]
        assert api["build"] == migrate["build"]
        assert api["environment"] == migrate["environment"]
        assert api["command"][:2] == ["ordergraph", "serve"]
        assert "0.0.0.0" in api["command"]
        assert "ports" not in api, "only the proxy is published"
        probe = " ".join(api["healthcheck"]["test"])
        assert "/readyz" in probe or "/healthz" in probe
        assert api["stop_grace_period"] == "30s"  # room to drain on SIGTERM


def test_apis_are_configured_for_the_db_service_and_require_an_admin_token() -> None:
    services = _compose()["services"]
    for name in (*API_SERVICES, "migrate"):
        env = services[name]["environment"]
        assert env["ORDERGRAPH_DATABASE_URL"].startswith("postgresql+asyncpg://")
        assert "@db:5432/" in env["ORDERGRAPH_DATABASE_URL"]
        assert env["ORDERGRAPH_ADMIN_TOKEN"].startswith("${ORDERGRAPH_ADMIN_TOKEN:?")


def test_the_proxy_is_published_and_waits_for_both_healthy_apis() -> None:
    proxy = _compose()["services"]["proxy"]
    assert proxy["image"].startswith("nginx:")
    assert "8000:8000" in proxy["ports"]
    assert any(v.startswith("./deploy/nginx.conf:") for v in proxy["volumes"])
    assert proxy["depends_on"] == {name: {"condition": "service_healthy"} for name in API_SERVICES}
    assert "/healthz" in " ".join(proxy["healthcheck"]["test"])


def test_the_proxy_balances_both_apis_and_passes_websocket_upgrades() -> None:
    config = _proxy_config()
    upstream = re.search(r"upstream ordergraph \{(.*?)\}", config, re.DOTALL)
    assert upstream is not None
    servers = re.findall(r"^\s*server (\S+)", upstream.group(1), re.MULTILINE)
    assert servers == [f"{name}:8000" for name in API_SERVICES]
    assert "proxy_pass http://ordergraph;" in config
    assert "proxy_http_version 1.1;" in config
    assert "proxy_set_header Upgrade $http_upgrade;" in config
    assert "proxy_set_header Connection $connection_upgrade;" in config
    assert re.search(r"map \$http_upgrade \$connection_upgrade \{\s*default upgrade;", config)
    assert "listen 8000;" in config


def test_proxy_timeouts_outlast_the_websocket_ping_interval() -> None:
    """An idle subscription only carries the server's pings: the proxy must not cut it
    between two of them."""
    ping = int(
        _compose()["services"]["api-1"]["environment"]["ORDERGRAPH_WS_PING_SECONDS"]
        .removeprefix("${ORDERGRAPH_WS_PING_SECONDS:-")
        .removesuffix("}")
    )
    config = _proxy_config()
    for directive in ("proxy_read_timeout", "proxy_send_timeout"):
        match = re.search(rf"{directive} (\d+)s;", config)
        assert match is not None, directive
        assert int(match.group(1)) >= 4 * ping


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
@pytest.mark.e2e  # starts a process
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

"""The version a user sees: `ordergraph --version` and the /healthz body both say the
installed distribution's version (its metadata, written from pyproject.toml when it was
installed). tests/e2e/test_packaging.py checks that a fresh install reports pyproject's."""

from __future__ import annotations

import re
from importlib import metadata

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from ordergraph.app.endpoints import healthz
from ordergraph.cli import main

INSTALLED = metadata.version("ordergraph")


def test_the_installed_version_is_a_release_number() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+", INSTALLED), INSTALLED


def test_version_flag_prints_the_installed_version_and_exits_0(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"ordergraph {INSTALLED}\n"


def test_version_flag_is_listed_in_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "--version" in capsys.readouterr().out


async def test_healthz_reports_the_installed_version() -> None:
    app = Starlette(routes=[Route("/healthz", healthz)])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        response = await http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": INSTALLED}

"""The wheel installs one top-level package, `ordergraph`, with every folder beneath it."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SUBPACKAGES = ("domain", "storage", "schema", "resolvers", "live")


def _site_packages(env: Path) -> Path:
    found = list(env.glob("lib/python3*/site-packages"))
    assert len(found) == 1, found
    return found[0]


def _top_level(site: Path) -> set[str]:
    return {
        p.name
        for p in site.iterdir()
        if not p.name.endswith((".dist-info", ".pth")) and p.name != "__pycache__"
    }


def test_the_wheel_installs_only_ordergraph_at_the_top_level(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(ROOT)],
        check=True,
    )
    (wheel,) = dist.glob("ordergraph-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    roots = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert roots == {"ordergraph"}
    for package in SUBPACKAGES:  # the links are followed: real files, not link entries
        assert f"ordergraph/{package}/__init__.py" in names
    assert "ordergraph/storage/migrations/versions/0001_initial_schema.py" in names
    assert "ordergraph/static/dashboard.html" in names

    env = tmp_path / "venv"
    venv.create(env, with_pip=True)
    site = _site_packages(env)
    before = _top_level(site)
    python = env / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check", wheel],
        check=True,
    )
    gained = _top_level(site) - before
    assert gained == {"ordergraph"}
    # The subpackages import under their namespaced names from the installed copy (domain/
    # needs only the standard library, so no dependency has to be installed for this).
    probe = "import ordergraph.domain.model as m; print(m.__file__)"
    out = subprocess.run(
        [python, "-c", probe], check=True, capture_output=True, text=True, cwd=tmp_path
    )
    assert out.stdout.strip().startswith(str(site / "ordergraph" / "domain"))
    # It reports pyproject's version (what `ordergraph --version` and /healthz show).
    probe = "from ordergraph.version import version; print(version())"
    out = subprocess.run(
        [python, "-c", probe], check=True, capture_output=True, text=True, cwd=tmp_path
    )
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert out.stdout.strip() == pyproject["project"]["version"]

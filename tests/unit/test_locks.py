"""The lock files keep their promise: what pyproject.toml asks for, pinned and hashed.

requirements.lock (the application, which the Docker image installs) and
requirements-dev.lock (the application and the dev extra, which CI installs) are written
by scripts/lock. They are universal: one file for every Python and platform, an
environment marker on the entries that apply to some only. These tests read them as pip
would on the machines the project installs on (CPython 3.11 and 3.12 on Linux x86_64, the
versions of CI and of the image) and fail, naming `scripts/lock`, when pyproject.toml's
dependencies and the locks have drifted apart.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_LOCK = ROOT / "requirements.lock"
DEV_LOCK = ROOT / "requirements-dev.lock"
REGENERATE = "run scripts/lock (CONTRIBUTING.md, 'Dependencies and the lock files')"

# The marker environments of the machines the locks must install on.
TARGETS = {
    f"cpython-3.{minor}-linux-x86_64": {
        "implementation_name": "cpython",
        "implementation_version": f"3.{minor}.0",
        "os_name": "posix",
        "platform_machine": "x86_64",
        "platform_python_implementation": "CPython",
        "platform_system": "Linux",
        "python_full_version": f"3.{minor}.0",
        "python_version": f"3.{minor}",
        "sys_platform": "linux",
    }
    for minor in (11, 12)
}

HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})(?=\s|$)")


@dataclass(frozen=True)
class Pin:
    name: str
    version: Version
    marker: Marker | None
    hashes: tuple[str, ...]
    line: str

    def applies(self, environment: dict[str, str]) -> bool:
        return self.marker is None or self.marker.evaluate(environment)


def _logical_lines(path: Path) -> list[str]:
    """The lines pip reads: comments dropped, backslash continuations joined."""
    lines: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        if text.endswith("\\"):
            pending += text[:-1] + " "
            continue
        lines.append(pending + text)
        pending = ""
    if pending:
        lines.append(pending.strip())
    return lines


def _pins(path: Path) -> list[Pin]:
    assert path.is_file(), f"{path.name} is missing: {REGENERATE}"
    pins = []
    for line in _logical_lines(path):
        # Only requirements: an option line (-e, -r, --index-url, ...) would let pip install
        # something the hashes do not cover, or from somewhere else.
        assert not line.startswith("-"), f"{path.name}: option line {line!r}"
        requirement = Requirement(line.split(" --", 1)[0])
        specifiers = list(requirement.specifier)
        assert len(specifiers) == 1, f"{path.name}: {line!r} is not one exact pin"
        assert specifiers[0].operator == "==", f"{path.name}: {line!r} is not pinned with =="
        assert "*" not in specifiers[0].version, f"{path.name}: {line!r} pins a wildcard"
        assert requirement.url is None, f"{path.name}: {line!r} installs from a URL"
        pins.append(
            Pin(
                name=canonicalize_name(requirement.name),
                version=Version(specifiers[0].version),
                marker=requirement.marker,
                hashes=tuple(HASH.findall(line)),
                line=line.split(" --", 1)[0],
            )
        )
    return pins


def _pinned_for(pins: list[Pin], environment: dict[str, str]) -> dict[str, Pin]:
    """What pip installs from the lock in that environment: one pin per package."""
    chosen: dict[str, Pin] = {}
    for pin in pins:
        if pin.applies(environment):
            assert pin.name not in chosen, (
                f"{pin.name} is pinned twice for the same environment: "
                f"{chosen[pin.name].line!r} and {pin.line!r}"
            )
            chosen[pin.name] = pin
    return chosen


def _project() -> dict[str, object]:
    project: dict[str, object] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project


def _runtime_requirements() -> list[Requirement]:
    dependencies = _project()["dependencies"]
    assert isinstance(dependencies, list)
    return [Requirement(text) for text in dependencies]


def _dev_requirements() -> list[Requirement]:
    extras = _project()["optional-dependencies"]
    assert isinstance(extras, dict)
    return [Requirement(text) for text in extras["dev"]]


def _assert_within_ranges(
    requirements: list[Requirement], lock: Path, environment: dict[str, str]
) -> None:
    pinned = _pinned_for(_pins(lock), environment)
    problems = []
    for requirement in requirements:
        if requirement.marker is not None and not requirement.marker.evaluate(environment):
            continue
        pin = pinned.get(canonicalize_name(requirement.name))
        if pin is None:
            problems.append(f"{requirement.name} is not in {lock.name}")
        elif not requirement.specifier.contains(pin.version, prereleases=True):
            problems.append(
                f"{lock.name} pins {pin.name}=={pin.version}, outside pyproject's "
                f"{requirement.name}{requirement.specifier}"
            )
    assert not problems, "; ".join(problems) + f": {REGENERATE}"


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_every_runtime_dependency_is_pinned_in_the_runtime_lock_within_its_range(
    target: str,
) -> None:
    _assert_within_ranges(_runtime_requirements(), RUNTIME_LOCK, TARGETS[target])


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_every_dependency_and_dev_tool_is_pinned_in_the_dev_lock_within_its_range(
    target: str,
) -> None:
    _assert_within_ranges(_runtime_requirements() + _dev_requirements(), DEV_LOCK, TARGETS[target])


@pytest.mark.parametrize("lock", [RUNTIME_LOCK, DEV_LOCK], ids=lambda path: path.name)
def test_every_pin_carries_a_sha256_hash(lock: Path) -> None:
    """pip's --require-hashes refuses a file whose hash is not listed: a pin without one
    could not be installed at all, and a lock without hashes would trust whatever the
    index serves."""
    pins = _pins(lock)
    assert pins, f"{lock.name} pins nothing: {REGENERATE}"
    unhashed = [pin.line for pin in pins if not pin.hashes]
    assert not unhashed, f"{lock.name} has pins without --hash=sha256: {unhashed}: {REGENERATE}"


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_the_dev_lock_pins_every_runtime_package_at_the_runtime_version(target: str) -> None:
    """CI tests what the image runs: the same version of every runtime package."""
    environment = TARGETS[target]
    runtime = _pinned_for(_pins(RUNTIME_LOCK), environment)
    dev = _pinned_for(_pins(DEV_LOCK), environment)
    differing = [
        f"{name}: {pin.version} in {RUNTIME_LOCK.name}, "
        f"{dev[name].version if name in dev else 'absent'} in {DEV_LOCK.name}"
        for name, pin in sorted(runtime.items())
        if name not in dev or dev[name].version != pin.version
    ]
    assert not differing, "; ".join(differing) + f": {REGENERATE}"


def test_the_image_and_ci_install_from_the_locks() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^COPY [^\n]*\brequirements\.lock\b", dockerfile, re.MULTILINE)
    assert "pip install --require-hashes -r requirements.lock" in dockerfile
    assert "pip install --no-deps ." in dockerfile
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert not [pattern for pattern in ignored if fnmatch.fnmatch("requirements.lock", pattern)]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "--require-hashes -r requirements-dev.lock" in ci

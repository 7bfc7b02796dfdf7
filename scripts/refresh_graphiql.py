#!/usr/bin/env python3
"""Refresh the GraphiQL files vendored in ordergraph/static/graphiql/ from npm.

    scripts/refresh_graphiql.py                      # re-fetch the pinned versions
    scripts/refresh_graphiql.py graphiql=3.8.3 react=18.2.0 react-dom=18.2.0

Needs `npm` (it runs `npm pack`, which checks each tarball against the registry's own
integrity hash). Copies the browser bundles named in FILES, their licence files, and
rewrites manifest.json with each file's package, version and SRI hash (sha384). Nothing
here runs at run time or in CI: the server and the tests only read the files and the
manifest. After a refresh, run tests/api/test_graphiql.py and tests/api/boundary/test_browsers_*.py.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

TARGET = Path(__file__).resolve().parent.parent / "ordergraph" / "static" / "graphiql"
MANIFEST = TARGET / "manifest.json"

# Served file name -> (npm package, path inside the package tarball). The order is the
# order the page loads them in: React, ReactDOM, then GraphiQL (a UMD bundle that
# expects the other two as globals, and bundles graphql-ws for subscriptions).
FILES = {
    "graphiql.min.css": ("graphiql", "package/graphiql.min.css"),
    "react.production.min.js": ("react", "package/umd/react.production.min.js"),
    "react-dom.production.min.js": ("react-dom", "package/umd/react-dom.production.min.js"),
    "graphiql.min.js": ("graphiql", "package/graphiql.min.js"),
}
DEFAULT_VERSIONS = {"graphiql": "3.8.3", "react": "18.2.0", "react-dom": "18.2.0"}


def sri(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


def current_versions() -> dict[str, str]:
    if not MANIFEST.exists():
        return dict(DEFAULT_VERSIONS)
    manifest = json.loads(MANIFEST.read_text())
    return {entry["package"]: entry["version"] for entry in manifest["files"].values()}


def main(argv: list[str]) -> int:
    versions = current_versions()
    for arg in argv:
        package, _, version = arg.partition("=")
        if package not in DEFAULT_VERSIONS or not version:
            print(f"usage: {sys.argv[0]} [graphiql=X] [react=X] [react-dom=X]", file=sys.stderr)
            return 2
        versions[package] = version
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        tarballs: dict[str, tarfile.TarFile] = {}
        tarball_integrity: dict[str, str] = {}
        for package, version in versions.items():
            [packed] = json.loads(
                subprocess.run(
                    ["npm", "pack", "--json", f"{package}@{version}"],
                    cwd=work,
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
            )
            tarballs[package] = stack.enter_context(tarfile.open(work / packed["filename"]))
            tarball_integrity[package] = packed["integrity"]
        TARGET.mkdir(parents=True, exist_ok=True)
        entries = {}
        for name, (package, inner) in FILES.items():
            member = tarballs[package].extractfile(inner)
            if member is None:
                raise SystemExit(f"{package}@{versions[package]} has no {inner}")
            data = member.read()
            (TARGET / name).write_bytes(data)
            entries[name] = {
                "package": package,
                "version": versions[package],
                "path": inner.removeprefix("package/"),
                "integrity": sri(data),
                "tarball_integrity": tarball_integrity[package],
            }
            print(f"{name}: {package}@{versions[package]} {len(data):,} bytes {sri(data)}")
        for package, tar in tarballs.items():
            licence = tar.extractfile("package/LICENSE")
            if licence is not None:
                (TARGET / f"LICENSE.{package}").write_bytes(licence.read())
    MANIFEST.write_text(json.dumps({"files": entries}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

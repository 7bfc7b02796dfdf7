"""The version of ordergraph: the installed distribution's, read from the package metadata
(pyproject.toml's `version` when it was installed), so that `ordergraph --version`,
`/healthz` and `ordergraph.__version__` say what pip installed."""

from __future__ import annotations

from functools import cache
from importlib import metadata

UNKNOWN = "unknown"


@cache
def version() -> str:
    """The installed version, e.g. "0.2.0"; "unknown" when run from a checkout that was
    never installed (no metadata to read)."""
    try:
        return metadata.version("ordergraph")
    except metadata.PackageNotFoundError:
        return UNKNOWN

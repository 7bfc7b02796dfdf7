"""ordergraph: a GraphQL API for the order state of many stores."""

from typing import Any


def __getattr__(name: str) -> Any:
    # `ordergraph.__version__`, read from the package metadata when first asked for
    # (ordergraph.version), so that importing a subpackage does not look it up.
    if name == "__version__":
        from ordergraph.version import version

        return version()
    raise AttributeError(f"module 'ordergraph' has no attribute {name!r}")

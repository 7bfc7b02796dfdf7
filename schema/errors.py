"""How errors reach the client: faults of ours masked and logged, every error coded.

One place for the HTTP and websocket results (MaskUnexpectedErrors in schema.build) and
for the payloads shared by fan-out groups (ordergraph.live.fanout), so a client sees
the same error either way.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable

from graphql import GraphQLError

log = logging.getLogger("ordergraph.errors")
MASKED = "Internal server error"
_SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")


def is_unexpected(error: GraphQLError) -> bool:
    """True for faults of ours (to be masked); False for errors meant for the client."""
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError)


def coded(error: GraphQLError, code: str, quiet: bool) -> GraphQLError:
    """Give `error` its extensions.code if it has none; drop "Did you mean" when `quiet`.
    Errors are changed in place: the document cache keeps validation errors, and a
    cached one has its code already."""
    if quiet and "Did you mean" in error.message:
        error.message = _SUGGESTION.sub("", error.message)
    if not (error.extensions or {}).get("code"):
        error.extensions = {**(error.extensions or {}), "code": code}
    return error


def client_errors(
    errors: Iterable[GraphQLError],
    *,
    quiet: bool = False,
    should_mask: Callable[[GraphQLError], bool] = is_unexpected,
    message: str = MASKED,
) -> list[GraphQLError]:
    """The errors of an execution result as the client gets them.

    A fault of ours keeps only its place (locations and path) under `message`, with the
    code INTERNAL_SERVER_ERROR. Every other error gets a code if it has none:
    INTERNAL_SERVER_ERROR in a field (it has a path), BAD_USER_INPUT outside any field
    (variables that do not coerce). With `quiet`, "Did you mean ...?" is cut.
    """
    shown: list[GraphQLError] = []
    for error in errors:
        if should_mask(error):
            error = GraphQLError(
                message, nodes=error.nodes, source=error.source, positions=error.positions,
                path=error.path, extensions={"code": "INTERNAL_SERVER_ERROR"},
            )  # fmt: skip
        shown.append(
            coded(error, "INTERNAL_SERVER_ERROR" if error.path else "BAD_USER_INPUT", quiet)
        )
    return shown


def log_unexpected(errors: Iterable[GraphQLError], request_id: str | None) -> None:
    """Log each fault of ours with its traceback (the client sees it masked)."""
    for error in errors:
        if is_unexpected(error):
            log.error(
                "unexpected error in %s (request %s)",
                ".".join(str(p) for p in error.path or []),
                request_id,
                exc_info=error.original_error,
                extra={"request_id": request_id},
            )

"""The request side of GraphQL over HTTP: which media type to answer with, strict JSON, and
the size and shape limits of an operation's parameters (steps 1, 3 and 4 in ordergraph/http.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import Headers

from ordergraph.settings import Settings

JSON = "application/json"
GRAPHQL_RESPONSE = "application/graphql-response+json"


class Refused(Exception):
    """A request refused at the transport level: status, code and a message to show."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


@dataclass(frozen=True)
class Operation:
    query: str
    variables: dict[str, Any] | None
    operation_name: str | None
    extensions: dict[str, Any] | None


# -- content negotiation -----------------------------------------------------------------
def _accepted(accept: str) -> list[tuple[float, int, str]]:
    """The media ranges of an Accept header as (q, -position, range), best first."""
    ranges = []
    for position, part in enumerate(accept.split(",")):
        media, *params = (p.strip() for p in part.split(";"))
        if not media:
            continue
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q > 0:
            ranges.append((q, -position, media.lower()))
    return sorted(ranges, reverse=True)


def response_media_type(accept: str | None) -> str:
    """application/graphql-response+json when the client ranks it first (or only accepts
    it); application/json otherwise, also for */* and a missing Accept (older clients)."""
    if not accept:
        return JSON
    for _, _, media in _accepted(accept):
        if media == GRAPHQL_RESPONSE:
            return GRAPHQL_RESPONSE
        if media in (JSON, "application/*", "*/*"):
            return JSON
    return JSON


def wants_page(accept: str | None) -> bool:
    accept = (accept or "").lower()
    return "text/html" in accept or "*/*" in accept


# -- strict JSON -------------------------------------------------------------------------
def depth_of(value: Any, limit: int) -> int:
    """Nesting depth of a JSON value (a scalar is 0), counted up to `limit + 1` at most."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((child, depth) for child in children)
    return deepest


def _has_lone_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")  # NaN, Infinity, -Infinity


def parse_json(raw: bytes | str, what: str) -> Any:
    """Strict JSON: UTF-8 text, no lone surrogates, not nested past the parser's reach."""
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise Refused(400, "BAD_REQUEST", f"{what} is not valid UTF-8") from None
    else:
        text = raw
    try:
        value = json.loads(text, parse_constant=_not_json)
    except RecursionError:
        raise Refused(400, "BAD_REQUEST", f"{what} is nested too deeply") from None
    except ValueError:
        raise Refused(400, "BAD_REQUEST", f"{what} is not valid JSON") from None
    if "\\u" in text and _has_lone_surrogate(value):
        raise Refused(400, "BAD_REQUEST", f"{what} holds an unpaired UTF-16 surrogate")
    return value


class Limits:
    """The size limits of one request (settings, see docs/security.md)."""

    def __init__(self, settings: Settings) -> None:
        self.body = settings.max_body_bytes
        self.document = settings.max_document_bytes
        self.variables = settings.max_variables_bytes
        self.depth = settings.max_variables_depth
        self.operation_name = settings.max_operation_name_length

    def operation(self, params: dict[str, Any], *, from_query_string: bool) -> Operation:
        """Check and pick out the request's parameters. In a query string, variables and
        extensions are JSON text."""
        query = params.get("query")
        if query is None or query == "":
            raise Refused(400, "BAD_REQUEST", "no GraphQL document: give it as `query`")
        if not isinstance(query, str):
            raise Refused(400, "BAD_REQUEST", "`query` must be a string")
        if len(query) > self.document or len(query.encode("utf-8", "surrogatepass")) > (
            self.document
        ):
            raise Refused(
                413,
                "PAYLOAD_TOO_LARGE",
                f"the document is larger than {self.document} bytes",
            )
        name = params.get("operationName")
        if name == "":
            name = None
        if name is not None:
            if not isinstance(name, str):
                raise Refused(400, "BAD_REQUEST", "`operationName` must be a string or null")
            if len(name) > self.operation_name:
                raise Refused(
                    400,
                    "BAD_REQUEST",
                    f"`operationName` is longer than {self.operation_name} characters",
                )
        variables = self._object(params.get("variables"), "variables", from_query_string)
        extensions = self._object(params.get("extensions"), "extensions", from_query_string)
        return Operation(query, variables, name, extensions)

    def _object(self, value: Any, what: str, from_query_string: bool) -> dict[str, Any] | None:
        if from_query_string and isinstance(value, str):
            if value == "":
                return None
            if len(value) > self.variables:
                raise Refused(
                    413, "PAYLOAD_TOO_LARGE", f"`{what}` is larger than {self.variables} bytes"
                )
            value = parse_json(value, f"`{what}`")
        if value is None:
            return None
        if not isinstance(value, dict):
            raise Refused(400, "BAD_REQUEST", f"`{what}` must be an object or null")
        if depth_of(value, self.depth) > self.depth:
            raise Refused(400, "BAD_REQUEST", f"`{what}` is nested deeper than {self.depth} levels")
        size = len(json.dumps(value, separators=(",", ":")))
        if size > self.variables:
            raise Refused(
                413, "PAYLOAD_TOO_LARGE", f"`{what}` is larger than {self.variables} bytes"
            )
        return value


def check_content_type(headers: Headers) -> None:
    """Refuses a body that is not JSON in UTF-8."""
    content_type = headers.get("content-type")
    if not content_type:
        raise Refused(415, "UNSUPPORTED_MEDIA_TYPE", "send the body as application/json")
    media, *params = (p.strip().lower() for p in content_type.split(";"))
    if media != JSON:
        raise Refused(415, "UNSUPPORTED_MEDIA_TYPE", "send the body as application/json")
    for param in params:
        key, _, value = param.partition("=")
        if key.strip() == "charset" and value.strip().strip('"') not in ("utf-8", "utf8"):
            raise Refused(415, "UNSUPPORTED_MEDIA_TYPE", "the body must be UTF-8")


# -- the handler -------------------------------------------------------------------------

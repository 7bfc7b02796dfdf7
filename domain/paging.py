"""Pages of a list: what a client asks for (first/last/after/before), what it gets back,
and the opaque cursors that name a row's sort key, never an offset. The SQL that fetches
a page is storage's (ordergraph.storage.paging)."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MAX_PAGE = 250
DEFAULT_PAGE = 50
MAX_CURSOR_LENGTH = 512
MAX_CURSOR_TEXT = 255
_INT64 = 2**63
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


class BadPageRequest(ValueError):
    """first/last/after/before that cannot be honoured; `field` names the argument."""

    def __init__(self, message: str, field: str = "after") -> None:
        super().__init__(message)
        self.field = field


def encode_cursor(values: Sequence[Any], tag: str | None = None) -> str:
    tagged = []
    for value in values:
        if isinstance(value, dt.datetime):
            tagged.append({"t": value.isoformat()})
        elif isinstance(value, dt.date):
            tagged.append({"d": value.isoformat()})
        else:
            tagged.append(value)
    body: Any = tagged if tag is None else {"k": tag, "v": tagged}
    raw = json.dumps(body, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _value(item: Any, expected: type | None) -> Any:
    """One decoded key value, checked against the key's type; ValueError if it does not fit."""
    if isinstance(item, dict) and set(item) == {"t"} and isinstance(item["t"], str):
        value: Any = dt.datetime.fromisoformat(item["t"])
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive instant")
        value.astimezone(dt.UTC)  # OverflowError at the ends of the calendar
    elif isinstance(item, dict) and set(item) == {"d"} and isinstance(item["d"], str):
        value = dt.date.fromisoformat(item["d"])
    elif isinstance(item, int) and not isinstance(item, bool):
        if not 0 <= item < _INT64:  # ids, numbers and sequences are never negative
            raise ValueError("out of range")
        value = item
    elif isinstance(item, str):
        if len(item) > MAX_CURSOR_TEXT or _FORBIDDEN.search(item):
            raise ValueError("bad text")
        value = item
    else:
        raise ValueError("unknown value")
    if expected is not None:
        # A datetime is a date too: ask for the exact kind.
        fits = (
            type(value) is expected
            if expected in (dt.date, dt.datetime)
            else isinstance(value, expected)
        )
        if not fits:
            raise ValueError("wrong type")
    return value


def decode_cursor(
    cursor: str,
    size: int,
    tag: str | None = None,
    types: Sequence[type | None] | None = None,
    field: str = "after",
) -> list[Any]:
    """The key values a cursor names; BadPageRequest (with `field`) for anything else:
    not base64, not JSON, too long, of another connection, of the wrong arity or types."""
    try:
        if len(cursor) > MAX_CURSOR_LENGTH:
            raise ValueError("too long")
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        body = json.loads(raw.decode("utf-8"))
        if tag is None:
            tagged = body
        elif isinstance(body, dict) and set(body) == {"k", "v"} and body["k"] == tag:
            tagged = body["v"]
        else:
            raise ValueError("another connection's cursor")
        if not isinstance(tagged, list) or len(tagged) != size:
            raise ValueError("wrong arity")
        expected = list(types) if types is not None else [None] * size
        return [_value(item, kind) for item, kind in zip(tagged, expected, strict=True)]
    except (ValueError, TypeError, OverflowError, RecursionError, binascii.Error):
        raise BadPageRequest(
            f"invalid cursor: {field} is not a cursor of this connection", field
        ) from None


@dataclass(frozen=True)
class PageRequest:
    first: int | None = None
    after: str | None = None
    last: int | None = None
    before: str | None = None
    reverse: bool = False

    def size(self) -> tuple[int, bool]:
        """How many rows, and whether they are counted from the end."""
        if self.first is not None and self.last is not None:
            raise BadPageRequest("give first or last, not both", "first")
        for name, value in (("first", self.first), ("last", self.last)):
            if value is not None and not 0 <= value <= MAX_PAGE:
                raise BadPageRequest(f"{name} must be between 0 and {MAX_PAGE}", name)
        if self.last is not None:
            return self.last, True
        return (self.first if self.first is not None else DEFAULT_PAGE), False


@dataclass
class Page:
    rows: list[Any]
    cursors: list[str]
    has_next: bool
    has_previous: bool

"""Keyset pagination: opaque cursors that name a row's sort key, never an offset."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, or_
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

MAX_PAGE = 250
DEFAULT_PAGE = 50


class BadPageRequest(ValueError):
    """first/last/after/before that cannot be honoured."""


def encode_cursor(values: Sequence[Any]) -> str:
    tagged = []
    for value in values:
        if isinstance(value, dt.datetime):
            tagged.append({"t": value.isoformat()})
        elif isinstance(value, dt.date):
            tagged.append({"d": value.isoformat()})
        else:
            tagged.append(value)
    raw = json.dumps(tagged, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, size: int) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        tagged = json.loads(raw)
        if not isinstance(tagged, list) or len(tagged) != size:
            raise ValueError(cursor)
        values: list[Any] = []
        for item in tagged:
            if isinstance(item, dict) and "t" in item:
                values.append(dt.datetime.fromisoformat(item["t"]))
            elif isinstance(item, dict) and "d" in item:
                values.append(dt.date.fromisoformat(item["d"]))
            elif isinstance(item, (int, str)) and not isinstance(item, bool):
                values.append(item)
            else:
                raise ValueError(cursor)
        return values
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadPageRequest("invalid cursor") from None


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
            raise BadPageRequest("give first or last, not both")
        for name, value in (("first", self.first), ("last", self.last)):
            if value is not None and not 0 <= value <= MAX_PAGE:
                raise BadPageRequest(f"{name} must be between 0 and {MAX_PAGE}")
        if self.last is not None:
            return self.last, True
        return (self.first if self.first is not None else DEFAULT_PAGE), False


@dataclass
class Page:
    rows: list[Any]
    cursors: list[str]
    has_next: bool
    has_previous: bool


def _beyond(keys: Sequence[ColumnElement[Any]], values: Sequence[Any], ascending: bool) -> Any:
    """Rows strictly after `values` in (keys) order, spelled out for every backend."""
    clauses = []
    for i, key in enumerate(keys):
        equal = [keys[j] == values[j] for j in range(i)]
        step = key > values[i] if ascending else key < values[i]
        clauses.append(and_(*equal, step))
    return or_(*clauses)


async def fetch_page(
    conn: AsyncConnection,
    query: Select[Any],
    keys: Sequence[ColumnElement[Any]],
    key_of: Any,
    request: PageRequest,
) -> Page:
    """Run `query` one page at a time ordered by `keys`; `key_of(row)` gives a row's key."""
    limit, from_end = request.size()
    ascending = not request.reverse
    if request.after is not None:
        query = query.where(_beyond(keys, decode_cursor(request.after, len(keys)), ascending))
    if request.before is not None:
        query = query.where(_beyond(keys, decode_cursor(request.before, len(keys)), not ascending))
    walk_ascending = ascending != from_end
    order = [key.asc() if walk_ascending else key.desc() for key in keys]
    rows = list((await conn.execute(query.order_by(*order).limit(limit + 1))).mappings())
    more = len(rows) > limit
    rows = rows[:limit]
    if from_end:
        rows.reverse()
        has_previous, has_next = more, request.before is not None
    else:
        has_next, has_previous = more, request.after is not None
    return Page(rows, [encode_cursor(key_of(r)) for r in rows], has_next, has_previous)

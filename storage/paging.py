"""Keyset pagination in SQL: a page of a query ordered by its sort keys, after or before
a cursor (cursors and page requests: ordergraph.domain.paging)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, TypeDecorator, and_, or_
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from ordergraph.domain.paging import Page, PageRequest, decode_cursor, encode_cursor


def key_tag(keys: Sequence[ColumnElement[Any]]) -> str | None:
    """A short tag naming a connection's sort keys, so a cursor of one connection is
    refused by another. Connections keyed by the event sequence alone carry no tag:
    their cursors are also made by the live subscriptions (encode_cursor([seq]))."""
    names = [str(getattr(key, "name", None) or type(key).__name__) for key in keys]
    if names == ["seq"]:
        return None
    return hashlib.sha256(",".join(names).encode()).hexdigest()[:8]


def key_types(keys: Sequence[ColumnElement[Any]]) -> list[type | None]:
    """The Python type of each sort key (None when the column type does not say)."""
    found: list[type | None] = []
    for key in keys:
        kind: Any = key.type
        if isinstance(kind, TypeDecorator):
            kind = kind.impl_instance
        try:
            python_type = kind.python_type
        except NotImplementedError:
            python_type = None
        found.append(python_type if isinstance(python_type, type) else None)
    return found


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
    tag, types = key_tag(keys), key_types(keys)
    if request.after is not None:
        after = decode_cursor(request.after, len(keys), tag, types, "after")
        query = query.where(_beyond(keys, after, ascending))
    if request.before is not None:
        before = decode_cursor(request.before, len(keys), tag, types, "before")
        query = query.where(_beyond(keys, before, not ascending))
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
    return Page(rows, [encode_cursor(key_of(r), tag) for r in rows], has_next, has_previous)

"""Rows named by (store id, row id) pairs, fetched in one statement whatever the stores."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, or_


def by_store(keys: Iterable[tuple[int, int]]) -> dict[int, set[int]]:
    """The ids of each store among (store id, id) pairs."""
    grouped: dict[int, set[int]] = {}
    for store_id, row_id in keys:
        grouped.setdefault(store_id, set()).add(row_id)
    return grouped


def in_stores(
    table: Table, keys: Iterable[tuple[int, int]], id_column: str = "id"
) -> ColumnElement[Any] | None:
    """A clause matching the rows of `table` named by (store_id, `id_column`) pairs, one
    IN list per store; None when there are no pairs (nothing to fetch)."""
    grouped = by_store(keys)
    if not grouped:
        return None
    column = table.c[id_column]
    return or_(*(and_(table.c.store_id == s, column.in_(ids)) for s, ids in grouped.items()))

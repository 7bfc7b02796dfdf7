"""Rows named by (store id, row id) pairs, fetched in one statement whatever the stores."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Executable, Table, and_, bindparam, or_
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from ordergraph.storage.driver_reads import fetch

# The condition that a `store_id` column is one of the read's stores.
StoresOf = Callable[[ColumnElement[Any]], ColumnElement[Any]]


def by_store(keys: Iterable[tuple[int, int]]) -> dict[int, set[int]]:
    """The ids of each store among (store id, id) pairs."""
    grouped: dict[int, set[int]] = {}
    for store_id, row_id in keys:
        grouped.setdefault(store_id, set()).add(row_id)
    return grouped


def _per_store(table: Table, grouped: dict[int, set[int]], id_column: str) -> ColumnElement[Any]:
    column = table.c[id_column]
    return or_(*(and_(table.c.store_id == s, column.in_(ids)) for s, ids in grouped.items()))


def _one_store(column: ColumnElement[Any]) -> ColumnElement[Any]:
    """`column` is the read's one store (the parameter scope_store_id)."""
    return column == bindparam("scope_store_id", type_=BigInteger)


class Scoped:
    """A read of the rows of `table` named by (store id, `id_column`) pairs, the statement
    made by `build(where)`. For the pairs of one store, a request's usual case, the
    statement is built once, with the store and the ids as parameters (an IN list
    expanded at execution): SQLAlchemy builds a statement written as an expression anew
    at every call, which cost a page of orders about a tenth of its CPU. For several
    stores it is built per read, one IN list per store."""

    def __init__(
        self,
        table: Table,
        build: Callable[[ColumnElement[Any]], Executable] | None = None,
        id_column: str = "id",
        *,
        joined: Callable[[ColumnElement[Any], StoresOf], Executable] | None = None,
    ) -> None:
        """`joined`, in place of `build`, for a statement that reads other tables of the
        store too: it is also given the stores' condition for another table's `store_id`
        column, for each table to name the stores itself (Citus sends a statement to one
        shard only when every distributed table in it is filtered by the store)."""
        if (build is None) == (joined is None):
            raise TypeError("Scoped takes one of build and joined")
        self.table, self.build, self.id_column, self.joined = table, build, id_column, joined
        self._one: Executable | None = None
        self._one_array: Any = None

    async def rows(
        self, conn: AsyncConnection, keys: Iterable[tuple[int, int]]
    ) -> Sequence[Mapping[Any, Any]]:
        """The rows named by these pairs. On PostgreSQL the pairs of one store are read by
        the driver (storage/driver_reads.py) with the ids as one array parameter
        (`= ANY`): one statement whatever their number, where an IN list is a statement
        per length."""
        grouped = by_store(keys)
        if not grouped:
            return []
        if len(grouped) == 1 and conn.dialect.name == "postgresql":
            [(store_id, ids)] = grouped.items()
            if self._one_array is None:
                self._one_array = self._made(
                    and_(
                        _one_store(self.table.c.store_id),
                        self.table.c[self.id_column]
                        == bindparam("scope_ids", type_=ARRAY(BigInteger)).any_(),
                    ),
                    _one_store,
                )
            values = {"scope_store_id": store_id, "scope_ids": sorted(ids)}
            return await fetch(conn, self._one_array, values)
        found = self.statement(keys)
        assert found is not None
        result = await conn.execute(*found)
        rows: Sequence[Mapping[Any, Any]] = result.mappings().all()
        return rows

    def _made(self, where: ColumnElement[Any], stores: StoresOf) -> Executable:
        if self.joined is not None:
            return self.joined(where, stores)
        assert self.build is not None
        return self.build(where)

    def statement(
        self, keys: Iterable[tuple[int, int]]
    ) -> tuple[Executable, dict[str, Any]] | None:
        """The statement and its parameters for these pairs; None when there are none."""
        grouped = by_store(keys)
        if not grouped:
            return None
        if len(grouped) > 1:
            stores = list(grouped)
            where = _per_store(self.table, grouped, self.id_column)
            return self._made(where, lambda column: column.in_(stores)), {}
        [(store_id, ids)] = grouped.items()
        one = self._one
        if one is None:
            where = and_(
                _one_store(self.table.c.store_id),
                self.table.c[self.id_column].in_(bindparam("scope_ids", expanding=True)),
            )
            one = self._one = self._made(where, _one_store)
        return one, {"scope_store_id": store_id, "scope_ids": sorted(ids)}

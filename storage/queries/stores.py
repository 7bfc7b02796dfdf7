"""Stores: by id, by handle (through the directory), whether there is any, a page of them."""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any

from sqlalchemy import BigInteger, Select, bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ordergraph.domain.model import Store
from ordergraph.domain.paging import Page, PageRequest
from ordergraph.storage import tables as t
from ordergraph.storage.driver_reads import fetch
from ordergraph.storage.mapping import store_from
from ordergraph.storage.paging import fetch_page


async def stores_by_id(conn: AsyncConnection, ids: Iterable[int]) -> dict[int, Store]:
    rows = await conn.execute(select(t.stores).where(t.stores.c.id.in_(set(ids))))
    return {row["id"]: store_from(row) for row in rows.mappings()}


async def store_by_handle(
    conn: AsyncConnection, handle: str, among: Iterable[int] | None = None
) -> Store | None:
    """The store of this handle, found through the directory, in one statement; with
    `among` (the store ids a key may see), only one of those: on Citus that statement
    then goes only to the workers holding them, not to every one."""
    if among is None:
        rows = await fetch(conn, _BY_HANDLE, {"handle": handle})
    else:
        ids = sorted(set(among))
        if len(ids) <= _FEW:
            values: dict[str, Any] = {f"among_{n}": i for n, i in enumerate(ids)}
            values["handle"] = handle
            rows = await fetch(conn, _by_handle_among(len(ids)), values)
        else:
            rows = await fetch(conn, _BY_HANDLE_AMONG, {"handle": handle, "among": ids})
    return store_from(rows[0]) if rows else None


# Built once: the statement of every `store(handle:)`, so a request does not build it anew.
_BY_HANDLE = select(t.stores).where(
    t.stores.c.id
    == select(t.store_directory.c.store_id)
    .where(t.store_directory.c.handle == bindparam("handle"))
    .scalar_subquery()
)
_BY_HANDLE_AMONG = _BY_HANDLE.where(t.stores.c.id.in_(bindparam("among", expanding=True)))

# A key reaches a few stores: for up to _FEW, one statement per count, with the ids as
# parameters of their own (the SQL an expanding parameter renders), which the driver
# runs as compiled (storage/driver_reads.py); more go SQLAlchemy's way.
_FEW = 16


@cache
def _by_handle_among(count: int) -> Select[Any]:
    ids = [bindparam(f"among_{n}", type_=BigInteger) for n in range(count)]
    return _BY_HANDLE.where(t.stores.c.id.in_(ids))


async def store_ids_by_handle(conn: AsyncConnection, handles: Iterable[str]) -> dict[str, int]:
    """The ids of the stores of these handles (those that exist), from the directory alone."""
    d = t.store_directory
    rows = await conn.execute(select(d.c.handle, d.c.store_id).where(d.c.handle.in_(set(handles))))
    return {handle: store_id for handle, store_id in rows.tuples()}


async def any_store(conn: AsyncConnection) -> bool:
    """Whether the database holds any store at all."""
    return (await conn.execute(select(t.stores.c.id).limit(1))).first() is not None


async def stores_page(conn: AsyncConnection, allowed: Iterable[int], request: PageRequest) -> Page:
    """A page of the allowed stores, ordered by id: its rows are the stores themselves."""
    query = select(t.stores).where(t.stores.c.id.in_(set(allowed)))
    page = await fetch_page(conn, query, [t.stores.c.id], lambda r: [r["id"]], request)
    page.rows = [store_from(row) for row in page.rows]
    return page

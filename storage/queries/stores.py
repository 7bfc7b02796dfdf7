"""Stores: by id, by handle (through the directory), whether there is any, a page of them."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ordergraph.domain.model import Store
from ordergraph.domain.paging import Page, PageRequest
from ordergraph.storage import tables as t
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
        found = await conn.execute(_BY_HANDLE, {"handle": handle})
    else:
        found = await conn.execute(_BY_HANDLE_AMONG, {"handle": handle, "among": list(set(among))})
    row = found.mappings().first()
    return store_from(row) if row else None


# Built once: the statement of every `store(handle:)`, so a request does not build it anew.
_BY_HANDLE = select(t.stores).where(
    t.stores.c.id
    == select(t.store_directory.c.store_id)
    .where(t.store_directory.c.handle == bindparam("handle"))
    .scalar_subquery()
)
_BY_HANDLE_AMONG = _BY_HANDLE.where(t.stores.c.id.in_(bindparam("among", expanding=True)))


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

"""Stores: by id, by handle, whether there is any, and a page of the stores a key may see."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from ordergraph.domain.model import Store
from ordergraph.domain.paging import Page, PageRequest
from ordergraph.storage import tables as t
from ordergraph.storage.mapping import store_from
from ordergraph.storage.paging import fetch_page


async def stores_by_id(conn: AsyncConnection, ids: Iterable[int]) -> dict[int, Store]:
    rows = await conn.execute(select(t.stores).where(t.stores.c.id.in_(set(ids))))
    return {row["id"]: store_from(row) for row in rows.mappings()}


async def store_by_handle(conn: AsyncConnection, handle: str) -> Store | None:
    row = (
        (await conn.execute(select(t.stores).where(t.stores.c.handle == handle))).mappings().first()
    )
    return store_from(row) if row else None


async def any_store(conn: AsyncConnection) -> bool:
    """Whether the database holds any store at all."""
    return (await conn.execute(select(t.stores.c.id).limit(1))).first() is not None


async def stores_page(conn: AsyncConnection, allowed: Iterable[int], request: PageRequest) -> Page:
    """A page of the allowed stores, ordered by id: its rows are the stores themselves."""
    query = select(t.stores).where(t.stores.c.id.in_(set(allowed)))
    page = await fetch_page(conn, query, [t.stores.c.id], lambda r: [r["id"]], request)
    page.rows = [store_from(row) for row in page.rows]
    return page

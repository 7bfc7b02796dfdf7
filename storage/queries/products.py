"""Products: by id, by sku, a page (optionally matching a text), the most backordered."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ordergraph.domain.model import Product
from ordergraph.domain.paging import Page, PageRequest
from ordergraph.storage import tables as t
from ordergraph.storage.mapping import product_from
from ordergraph.storage.paging import fetch_page
from ordergraph.storage.queries.scoping import Scoped

BY_ID = Scoped(t.products, lambda where: select(t.products).where(where))


async def products_by_id(
    conn: AsyncConnection, keys: Iterable[tuple[int, int]]
) -> dict[tuple[int, int], Product]:
    rows = await BY_ID.rows(conn, keys)
    return {(row["store_id"], row["id"]): product_from(row) for row in rows}


async def product_by_sku(conn: AsyncConnection, store_id: int, sku: str) -> Product | None:
    p = t.products
    row = (
        (await conn.execute(select(p).where(p.c.store_id == store_id, p.c.sku == sku)))
        .mappings()
        .first()
    )
    return product_from(row) if row else None


def _product_query(store_id: int, text: str | None) -> Any:
    p = t.products
    query = select(p).where(p.c.store_id == store_id)
    if text:
        pattern = (
            "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        )
        query = query.where(
            or_(
                func.lower(p.c.sku).like(pattern, escape="\\"),
                func.lower(p.c.title).like(pattern, escape="\\"),
            )
        )
    return query


async def products_page(
    conn: AsyncConnection, store_id: int, text: str | None, request: PageRequest
) -> Page:
    page = await fetch_page(
        conn, _product_query(store_id, text), [t.products.c.sku], lambda r: [r["sku"]], request
    )
    page.rows = [product_from(row) for row in page.rows]
    return page


async def products_count(conn: AsyncConnection, store_id: int, text: str | None) -> int:
    query = _product_query(store_id, text).with_only_columns(func.count())
    return int((await conn.execute(query)).scalar_one())


async def backordered_products(conn: AsyncConnection, store_id: int, first: int) -> list[Product]:
    """The store's products with units awaiting stock, most backordered first (ties: sku)."""
    p = t.products
    query = (
        select(p)
        .where(p.c.store_id == store_id, p.c.backordered > 0)
        .order_by(p.c.backordered.desc(), p.c.sku)
        .limit(first)
    )
    return [product_from(row) for row in (await conn.execute(query)).mappings()]

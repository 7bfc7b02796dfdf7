"""Bulk export's reads: where an export stops (fixed when it starts) and its pages, each
one statement on the primary key's order (keyset: `id > last`, never OFFSET).

One statement per page means one snapshot per page on PostgreSQL at READ COMMITTED (and
a read transaction on SQLite): an order always comes with its lines as they stood
together. Between pages nothing is held: no connection, no transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import and_, exists, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ordergraph.domain.model import Order, OrderLine, Product
from ordergraph.storage import tables as t
from ordergraph.storage.mapping import order_from, product_from

# A line's own columns; its store, order, placing time and order number are the order's.
_LINE_COLUMNS = (
    "id",
    "product_id",
    "sku",
    "quantity",
    "unit_price",
    "allocated",
    "backordered",
    "shipped",
    "cancelled",
)


@dataclass(frozen=True)
class ExportBounds:
    """What an export includes at most, read in one statement when it starts: the event
    log's position, and the highest order and product ids (a store takes ids from its
    counter under its lock, so everything committed later has a higher one)."""

    last_seq: int
    last_order_id: int
    last_product_id: int


async def export_bounds(conn: AsyncConnection, store_id: int) -> ExportBounds | None:
    s, o, p = t.stores, t.orders, t.products
    last_order = select(func.max(o.c.id)).where(o.c.store_id == store_id).scalar_subquery()
    last_product = select(func.max(p.c.id)).where(p.c.store_id == store_id).scalar_subquery()
    row = (
        await conn.execute(
            select(s.c.last_event_seq, last_order, last_product).where(s.c.id == store_id)
        )
    ).first()
    if row is None:
        return None
    return ExportBounds(int(row[0] or 0), int(row[1] or 0), int(row[2] or 0))


async def export_orders_page(
    conn: AsyncConnection,
    store_id: int,
    *,
    after: int,
    bounds: ExportBounds,
    limit: int,
    statuses: Collection[str] | None = None,
    placed_since: dt.datetime | None = None,
    updated_since: dt.datetime | None = None,
) -> list[Order]:
    """Up to `limit` orders with ids in (after, bounds.last_order_id], in id order, each
    with its lines. `updated_since`: the order has an event at or after that instant
    among the log's first `bounds.last_seq` events."""
    o, ol, e = t.orders, t.order_lines, t.events
    wanted = select(o).where(
        o.c.store_id == store_id, o.c.id > after, o.c.id <= bounds.last_order_id
    )
    if statuses:
        wanted = wanted.where(o.c.status.in_(sorted(statuses)))
    if placed_since is not None:
        wanted = wanted.where(o.c.placed_at >= placed_since)
    if updated_since is not None:
        wanted = wanted.where(
            exists().where(
                e.c.store_id == store_id,
                e.c.order_id == o.c.id,
                e.c.seq <= bounds.last_seq,
                e.c.occurred_at >= updated_since,
            )
        )
    page = wanted.order_by(o.c.id).limit(limit).subquery("page")
    query = (
        select(page, *(ol.c[name].label("l_" + name) for name in _LINE_COLUMNS))
        .select_from(
            # The store named for each table, so a sharded database reads its shard alone.
            page.join(ol, and_(ol.c.store_id == store_id, ol.c.order_id == page.c.id))
        )
        .order_by(page.c.id, ol.c.id)
    )
    orders: list[Order] = []
    current: Order | None = None
    for row in (await conn.execute(query)).mappings():
        if current is None or current.id != row["id"]:
            current = order_from(row, [])
            orders.append(current)
        current.lines.append(
            OrderLine(
                store_id=current.store_id,
                id=row["l_id"],
                order_id=current.id,
                product_id=row["l_product_id"],
                sku=row["l_sku"],
                quantity=row["l_quantity"],
                unit_price=row["l_unit_price"],
                placed_at=current.placed_at,
                order_number=current.number,
                allocated=row["l_allocated"],
                backordered=row["l_backordered"],
                shipped=row["l_shipped"],
                cancelled=row["l_cancelled"],
            )
        )
    return orders


async def export_products_page(
    conn: AsyncConnection, store_id: int, *, after: int, bounds: ExportBounds, limit: int
) -> list[Product]:
    """Up to `limit` products with ids in (after, bounds.last_product_id], in id order."""
    p = t.products
    query = (
        select(p)
        .where(p.c.store_id == store_id, p.c.id > after, p.c.id <= bounds.last_product_id)
        .order_by(p.c.id)
        .limit(limit)
    )
    return [product_from(row) for row in (await conn.execute(query)).mappings()]

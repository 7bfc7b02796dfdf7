"""Incoming receipts by id and per product, and what the fill-date walk reads: a
product's waiting lines in fill order with its restock date (one statement for a batch
of products) and its open receipts (one more)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ordergraph.domain.model import Receipt, ReceiptStatus
from ordergraph.storage import tables as t
from ordergraph.storage.mapping import receipt_from
from ordergraph.storage.queries.scoping import Scoped

_BY_ID = Scoped(t.incoming_receipts, lambda where: select(t.incoming_receipts).where(where))


async def receipts_by_id(
    conn: AsyncConnection, keys: Iterable[tuple[int, int]]
) -> dict[tuple[int, int], Receipt]:
    rows = await _BY_ID.rows(conn, keys)
    return {(row["store_id"], row["id"]): receipt_from(row) for row in rows}


def _open(where: Any) -> Any:
    r = t.incoming_receipts
    return (
        select(r)
        .where(where, r.c.status == ReceiptStatus.OPEN.value)
        .order_by(r.c.store_id, r.c.product_id, r.c.expected_at, r.c.id)
    )


_OPEN = Scoped(t.incoming_receipts, _open, "product_id")


async def open_receipts(
    conn: AsyncConnection, keys: Iterable[tuple[int, int]]
) -> dict[tuple[int, int], list[Receipt]]:
    """Each (store id, product id)'s open receipts, earliest expected first (ties: the
    earlier scheduled)."""
    statement = _OPEN.statement(keys)
    found: dict[tuple[int, int], list[Receipt]] = {}
    if statement is None:
        return found
    for row in (await conn.execute(*statement)).mappings():
        found.setdefault((row["store_id"], row["product_id"]), []).append(receipt_from(row))
    return found


@dataclass
class Waiting:
    """A product's restock date and its waiting lines as (line id, order id,
    backordered units), in fill order."""

    restock_date: dt.date | None = None
    lines: list[tuple[int, int, int]] = field(default_factory=list)


def _waiting(where: Any) -> Any:
    p, ol = t.products, t.order_lines
    return (
        select(p.c.store_id, p.c.id, p.c.restock_date, ol.c.id, ol.c.order_id, ol.c.backordered)
        .select_from(
            p.outerjoin(
                ol,
                and_(
                    ol.c.store_id == p.c.store_id,
                    ol.c.product_id == p.c.id,
                    ol.c.backordered > 0,
                ),
            )
        )
        .where(where)
        .order_by(p.c.store_id, p.c.id, ol.c.placed_at, ol.c.order_number, ol.c.id)
    )


_WAITING = Scoped(t.products, _waiting)


async def waiting_lines(
    conn: AsyncConnection, keys: Iterable[tuple[int, int]]
) -> dict[tuple[int, int], Waiting]:
    """Each (store id, product id)'s restock date and waiting lines in fill order (as
    `receiveStock` fills them), in one statement; a product that does not exist is absent."""
    statement = _WAITING.statement(keys)
    found: dict[tuple[int, int], Waiting] = {}
    if statement is None:
        return found
    rows = await conn.execute(*statement)
    for store_id, product_id, restock, line_id, order_id, backordered in rows:
        waiting = found.get((store_id, product_id))
        if waiting is None:
            waiting = found[(store_id, product_id)] = Waiting(restock)
        if line_id is not None:
            waiting.lines.append((line_id, order_id, backordered))
    return found

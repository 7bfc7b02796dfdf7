"""Incoming receipts by id and per product, and what the fill-date walk reads: a
product's waiting lines in fill order with its restock date (one statement for a batch
of products) and its open receipts (one more)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, func, select, true
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncConnection

from ordergraph.domain.model import Receipt, ReceiptStatus
from ordergraph.storage import tables as t
from ordergraph.storage.mapping import receipt_from
from ordergraph.storage.queries.scoping import Scoped, StoresOf

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
    """A product's restock date and its waiting lines as (line id, backordered units), in
    fill order."""

    restock_date: dt.date | None = None
    lines: list[tuple[int, int]] = field(default_factory=list)


def _waiting(where: Any) -> Any:
    p, ol = t.products, t.order_lines
    return (
        select(p.c.store_id, p.c.id, p.c.restock_date, ol.c.id, ol.c.backordered)
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


def _waiting_arrays(where: Any, stores: StoresOf) -> Any:
    """PostgreSQL: one row per product, its waiting lines' ids and units as two arrays in
    fill order (a product's queue of 10,000 lines was 10,000 rows, each made and taken
    apart in Python; two arrays of integers the driver decodes at once. One array of
    (id, units) pairs costs less to sort, but its 10,000 small lists cost Python more)."""
    p, ol = t.products, t.order_lines
    fill_order = (ol.c.placed_at, ol.c.order_number, ol.c.id)

    def in_fill_order(column: Any) -> Any:
        return func.array_agg(aggregate_order_by(column, *fill_order))

    lines = (
        select(
            in_fill_order(ol.c.id).label("line_ids"),
            in_fill_order(ol.c.backordered).label("units"),
        )
        .where(
            stores(ol.c.store_id),  # (for Citus: each table names the store)
            ol.c.store_id == p.c.store_id,
            ol.c.product_id == p.c.id,
            ol.c.backordered > 0,
        )
        .lateral("waiting")
    )
    return (
        select(
            p.c.store_id,
            p.c.id.label("product_id"),
            p.c.restock_date,
            lines.c.line_ids,
            lines.c.units,
        )
        .select_from(p.join(lines, true()))
        .where(where)
    )


_WAITING_ARRAYS = Scoped(t.products, joined=_waiting_arrays)


async def waiting_lines(
    conn: AsyncConnection, keys: Iterable[tuple[int, int]]
) -> dict[tuple[int, int], Waiting]:
    """Each (store id, product id)'s restock date and waiting lines in fill order (as
    `receiveStock` fills them), in one statement; a product that does not exist is absent."""
    if conn.dialect.name == "postgresql":
        return {
            (row["store_id"], row["product_id"]): Waiting(
                row["restock_date"],
                list(
                    zip(
                        row["line_ids"] or (),
                        row["units"] or (),
                        strict=True,
                    )
                ),
            )
            for row in await _WAITING_ARRAYS.rows(conn, keys)
        }
    statement = _WAITING.statement(keys)
    found: dict[tuple[int, int], Waiting] = {}
    if statement is None:
        return found
    rows = await conn.execute(*statement)
    for store_id, product_id, restock, line_id, backordered in rows:
        waiting = found.get((store_id, product_id))
        if waiting is None:
            waiting = found[(store_id, product_id)] = Waiting(restock)
        if line_id is not None:
            waiting.lines.append((line_id, backordered))
    return found

"""Orders and their lines: by id, by number, a filtered and sorted page, the backorder
queue of a product. An order always comes with its lines (one more statement per batch)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Date, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ordergraph.domain.model import Order, OrderLine
from ordergraph.domain.paging import Page, PageRequest
from ordergraph.domain.reads import OrderFilter, OrderSort
from ordergraph.storage import tables as t
from ordergraph.storage.mapping import line_from, order_from
from ordergraph.storage.paging import fetch_page
from ordergraph.storage.queries.scoping import Scoped

FAR_FUTURE = dt.date(9999, 12, 31)


LINES_BY_ORDER = Scoped(
    t.order_lines,
    lambda where: select(t.order_lines).where(where).order_by(t.order_lines.c.id),
    "order_id",
)
ORDERS_BY_ID = Scoped(t.orders, lambda where: select(t.orders).where(where))
_LINES_BY_ID = Scoped(t.order_lines, lambda where: select(t.order_lines).where(where))


async def lines_by_order(
    conn: AsyncConnection, keys: Iterable[tuple[int, int]]
) -> dict[tuple[int, int], list[OrderLine]]:
    result: dict[tuple[int, int], list[OrderLine]] = {}
    for row in await LINES_BY_ORDER.rows(conn, keys):
        line = line_from(row)
        result.setdefault((line.store_id, line.order_id), []).append(line)
    return result


async def _orders_from_rows(conn: AsyncConnection, rows: Sequence[Any]) -> list[Order]:
    lines = await lines_by_order(conn, [(r["store_id"], r["id"]) for r in rows])
    return [order_from(r, lines.get((r["store_id"], r["id"]), [])) for r in rows]


async def orders_by_id(
    conn: AsyncConnection, keys: Iterable[tuple[int, int]]
) -> dict[tuple[int, int], Order]:
    rows = await ORDERS_BY_ID.rows(conn, keys)
    return {(order.store_id, order.id): order for order in await _orders_from_rows(conn, rows)}


async def order_by_number(conn: AsyncConnection, store_id: int, number: int) -> Order | None:
    o = t.orders
    rows = list(
        (
            await conn.execute(select(o).where(o.c.store_id == store_id, o.c.number == number))
        ).mappings()
    )
    found = await _orders_from_rows(conn, rows)
    return found[0] if found else None


async def lines_by_id(
    conn: AsyncConnection, keys: Iterable[tuple[int, int]]
) -> dict[tuple[int, int], OrderLine]:
    rows = await _LINES_BY_ID.rows(conn, keys)
    return {(row["store_id"], row["id"]): line_from(row) for row in rows}


def _overdue_clauses(is_overdue: bool, now: dt.datetime) -> tuple[Any, ...]:
    o = t.orders
    if is_overdue:
        return (o.c.in_backlog.is_(True), o.c.overdue_at <= now)
    # spelled out: NOT(...) would drop orders without a requested date (NULL)
    return (or_(o.c.in_backlog.is_(False), o.c.overdue_at.is_(None), o.c.overdue_at > now),)


def _where_state(query: Any, flt: OrderFilter, now: dt.datetime) -> Any:
    """The filters on an order's status flags."""
    o = t.orders
    if flt.status:
        query = query.where(o.c.status.in_(list(flt.status)))
    if flt.stock_status:
        query = query.where(o.c.stock_status.in_(list(flt.stock_status)))
    if flt.in_backlog is not None:
        query = query.where(o.c.in_backlog.is_(flt.in_backlog))
    if flt.is_backordered is not None:
        query = query.where(o.c.is_backordered.is_(flt.is_backordered))
    if flt.is_overdue is not None:
        query = query.where(*_overdue_clauses(flt.is_overdue, now))
    return query


def _where_content(query: Any, flt: OrderFilter) -> Any:
    """The filters on what an order holds and when it was placed."""
    o = t.orders
    if flt.sku is not None:
        ol = t.order_lines
        query = query.where(
            select(ol.c.id)
            .where(ol.c.store_id == o.c.store_id, ol.c.order_id == o.c.id, ol.c.sku == flt.sku)
            .exists()
        )
    if flt.placed_after is not None:
        query = query.where(o.c.placed_at > flt.placed_after)
    if flt.placed_before is not None:
        query = query.where(o.c.placed_at < flt.placed_before)
    if flt.external_id is not None:
        query = query.where(o.c.external_id == flt.external_id)
    return query


def _order_query(store_id: int, flt: OrderFilter, now: dt.datetime) -> Any:
    o = t.orders
    query = select(o).where(o.c.store_id == store_id)
    query = _where_state(query, flt, now)
    return _where_content(query, flt)


def _order_keys(sort: OrderSort) -> tuple[list[Any], Any]:
    o = t.orders
    if sort is OrderSort.NUMBER:
        return [o.c.number], lambda r: [r["number"]]
    if sort is OrderSort.REQUESTED_SHIP_DATE:
        ship = func.coalesce(o.c.requested_ship_date, literal(FAR_FUTURE, Date))
        return [ship, o.c.number], lambda r: [r["requested_ship_date"] or FAR_FUTURE, r["number"]]
    return [o.c.placed_at, o.c.number], lambda r: [r["placed_at"], r["number"]]


async def orders_page(
    conn: AsyncConnection,
    store_id: int,
    flt: OrderFilter,
    sort: OrderSort,
    request: PageRequest,
    now: dt.datetime,
) -> Page:
    keys, key_of = _order_keys(sort)
    page = await fetch_page(conn, _order_query(store_id, flt, now), keys, key_of, request)
    page.rows = await _orders_from_rows(conn, page.rows)
    return page


async def orders_count(
    conn: AsyncConnection, store_id: int, flt: OrderFilter, now: dt.datetime
) -> int:
    query = _order_query(store_id, flt, now).with_only_columns(func.count())
    return int((await conn.execute(query)).scalar_one())


def _queue_query(store_id: int, product_id: int) -> Any:
    ol = t.order_lines
    return select(ol).where(
        ol.c.store_id == store_id, ol.c.product_id == product_id, ol.c.backordered > 0
    )


async def backorder_queue_page(
    conn: AsyncConnection, store_id: int, product_id: int, request: PageRequest
) -> Page:
    ol = t.order_lines
    page = await fetch_page(
        conn,
        _queue_query(store_id, product_id),
        [ol.c.placed_at, ol.c.order_number, ol.c.id],
        lambda r: [r["placed_at"], r["order_number"], r["id"]],
        request,
    )
    page.rows = [line_from(row) for row in page.rows]
    return page


async def backorder_queue_count(conn: AsyncConnection, store_id: int, product_id: int) -> int:
    query = _queue_query(store_id, product_id).with_only_columns(func.count())
    return int((await conn.execute(query)).scalar_one())

"""The read side: lookups, lists and pages, each one SQL statement or a fixed few."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Date, and_, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ordergraph.domain.model import Order, OrderLine, Product, Store
from ordergraph.storage import tables as t
from ordergraph.storage.mapping import line_from, order_from, product_from, store_from
from ordergraph.storage.paging import Page, PageRequest, fetch_page

FAR_FUTURE = dt.date(9999, 12, 31)


class OrderSort(StrEnum):
    PLACED_AT = "PLACED_AT"
    NUMBER = "NUMBER"
    REQUESTED_SHIP_DATE = "REQUESTED_SHIP_DATE"


@dataclass(frozen=True)
class OrderFilter:
    status: Sequence[str] | None = None
    stock_status: Sequence[str] | None = None
    in_backlog: bool | None = None
    is_backordered: bool | None = None
    is_overdue: bool | None = None
    sku: str | None = None
    placed_after: dt.datetime | None = None
    placed_before: dt.datetime | None = None
    external_id: str | None = None


# -- stores and keys ----------------------------------------------------------


async def stores_by_id(conn: AsyncConnection, ids: Iterable[int]) -> dict[int, Store]:
    rows = await conn.execute(select(t.stores).where(t.stores.c.id.in_(set(ids))))
    return {row["id"]: store_from(row) for row in rows.mappings()}


async def store_by_handle(conn: AsyncConnection, handle: str) -> Store | None:
    row = (
        (await conn.execute(select(t.stores).where(t.stores.c.handle == handle))).mappings().first()
    )
    return store_from(row) if row else None


async def stores_page(conn: AsyncConnection, allowed: Iterable[int], request: PageRequest) -> Page:
    query = select(t.stores).where(t.stores.c.id.in_(set(allowed)))
    return await fetch_page(conn, query, [t.stores.c.id], lambda r: [r["id"]], request)


@dataclass(frozen=True)
class KeyRecord:
    id: int
    name: str
    scopes: frozenset[str]
    store_ids: frozenset[int]
    created_at: dt.datetime
    revoked_at: dt.datetime | None


async def api_keys_by_id(conn: AsyncConnection, ids: Iterable[int]) -> dict[int, KeyRecord]:
    wanted = set(ids)
    rows = (await conn.execute(select(t.api_keys).where(t.api_keys.c.id.in_(wanted)))).mappings()
    links = await conn.execute(
        select(t.api_key_stores).where(t.api_key_stores.c.api_key_id.in_(wanted))
    )
    stores: dict[int, set[int]] = {}
    for link in links.mappings():
        stores.setdefault(link["api_key_id"], set()).add(link["store_id"])
    return {
        row["id"]: KeyRecord(
            id=row["id"],
            name=row["name"],
            scopes=frozenset(s for s in row["scopes"].split(",") if s),
            store_ids=frozenset(stores.get(row["id"], ())),
            created_at=row["created_at"],
            revoked_at=row["revoked_at"],
        )
        for row in rows
    }


async def api_key_by_token_hash(conn: AsyncConnection, token_hash: str) -> KeyRecord | None:
    key_id = (
        await conn.execute(
            select(t.api_keys.c.id).where(
                t.api_keys.c.token_hash == token_hash, t.api_keys.c.revoked_at.is_(None)
            )
        )
    ).scalar()
    if key_id is None:
        return None
    return (await api_keys_by_id(conn, [key_id])).get(key_id)


async def revoked_key_ids(conn: AsyncConnection, ids: Iterable[int]) -> set[int]:
    """Of these key ids, the ones revoked or gone: one statement for any number of keys."""
    wanted = set(ids)
    if not wanted:
        return set()
    k = t.api_keys
    live = await conn.execute(select(k.c.id).where(k.c.id.in_(wanted), k.c.revoked_at.is_(None)))
    return wanted - {row[0] for row in live}


# -- products -----------------------------------------------------------------


async def products_by_id(
    conn: AsyncConnection, keys: Iterable[tuple[int, int]]
) -> dict[tuple[int, int], Product]:
    by_store: dict[int, set[int]] = {}
    for store_id, product_id in keys:
        by_store.setdefault(store_id, set()).add(product_id)
    if not by_store:
        return {}
    p = t.products
    clause = or_(*(and_(p.c.store_id == s, p.c.id.in_(ids)) for s, ids in by_store.items()))
    rows = await conn.execute(select(p).where(clause))
    return {(row["store_id"], row["id"]): product_from(row) for row in rows.mappings()}


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


# -- orders and lines -----------------------------------------------------------


async def lines_by_order(
    conn: AsyncConnection, keys: Iterable[tuple[int, int]]
) -> dict[tuple[int, int], list[OrderLine]]:
    by_store: dict[int, set[int]] = {}
    for store_id, order_id in keys:
        by_store.setdefault(store_id, set()).add(order_id)
    result: dict[tuple[int, int], list[OrderLine]] = {}
    if not by_store:
        return result
    ol = t.order_lines
    clause = or_(*(and_(ol.c.store_id == s, ol.c.order_id.in_(ids)) for s, ids in by_store.items()))
    rows = await conn.execute(select(ol).where(clause).order_by(ol.c.id))
    for row in rows.mappings():
        line = line_from(row)
        result.setdefault((line.store_id, line.order_id), []).append(line)
    return result


async def _orders_from_rows(conn: AsyncConnection, rows: Sequence[Any]) -> list[Order]:
    lines = await lines_by_order(conn, [(r["store_id"], r["id"]) for r in rows])
    return [order_from(r, lines.get((r["store_id"], r["id"]), [])) for r in rows]


async def orders_by_id(
    conn: AsyncConnection, keys: Iterable[tuple[int, int]]
) -> dict[tuple[int, int], Order]:
    by_store: dict[int, set[int]] = {}
    for store_id, order_id in keys:
        by_store.setdefault(store_id, set()).add(order_id)
    if not by_store:
        return {}
    o = t.orders
    clause = or_(*(and_(o.c.store_id == s, o.c.id.in_(ids)) for s, ids in by_store.items()))
    rows = list((await conn.execute(select(o).where(clause))).mappings())
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
    by_store: dict[int, set[int]] = {}
    for store_id, line_id in keys:
        by_store.setdefault(store_id, set()).add(line_id)
    if not by_store:
        return {}
    ol = t.order_lines
    clause = or_(*(and_(ol.c.store_id == s, ol.c.id.in_(ids)) for s, ids in by_store.items()))
    rows = await conn.execute(select(ol).where(clause))
    return {(row["store_id"], row["id"]): line_from(row) for row in rows.mappings()}


def _order_query(store_id: int, flt: OrderFilter, now: dt.datetime) -> Any:
    o = t.orders
    query = select(o).where(o.c.store_id == store_id)
    if flt.status:
        query = query.where(o.c.status.in_(list(flt.status)))
    if flt.stock_status:
        query = query.where(o.c.stock_status.in_(list(flt.stock_status)))
    if flt.in_backlog is not None:
        query = query.where(o.c.in_backlog.is_(flt.in_backlog))
    if flt.is_backordered is not None:
        query = query.where(o.c.is_backordered.is_(flt.is_backordered))
    if flt.is_overdue is not None:
        if flt.is_overdue:
            query = query.where(o.c.in_backlog.is_(True), o.c.overdue_at <= now)
        else:  # spelled out: NOT(...) would drop orders without a requested date (NULL)
            query = query.where(
                or_(o.c.in_backlog.is_(False), o.c.overdue_at.is_(None), o.c.overdue_at > now)
            )
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


# -- events -------------------------------------------------------------------


@dataclass(frozen=True)
class EventRecord:
    store_id: int
    seq: int
    stream: str
    type: str
    occurred_at: dt.datetime
    order_id: int | None
    product_id: int | None
    data: dict[str, Any]


def event_from(row: Any) -> EventRecord:
    return EventRecord(
        store_id=row["store_id"],
        seq=row["seq"],
        stream=row["stream"],
        type=row["type"],
        occurred_at=row["occurred_at"],
        order_id=row["order_id"],
        product_id=row["product_id"],
        data=row["data"],
    )


async def order_events_page(
    conn: AsyncConnection, store_id: int, order_id: int, request: PageRequest
) -> Page:
    e = t.events
    query = select(e).where(e.c.store_id == store_id, e.c.order_id == order_id)
    page = await fetch_page(conn, query, [e.c.seq], lambda r: [r["seq"]], request)
    page.rows = [event_from(row) for row in page.rows]
    return page

"""The event log as read models: a row as an EventRecord, a page of an order's events."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from ordergraph.domain.paging import Page, PageRequest
from ordergraph.domain.reads import EventRecord
from ordergraph.storage import tables as t
from ordergraph.storage.paging import fetch_page


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

"""The event log as read models: a row as an EventRecord, a page of an order's events."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from ordergraph.domain.paging import Page, PageRequest
from ordergraph.storage import tables as t
from ordergraph.storage.mapping import event_from
from ordergraph.storage.paging import fetch_page


async def order_events_page(
    conn: AsyncConnection, store_id: int, order_id: int, request: PageRequest
) -> Page:
    e = t.events
    query = select(e).where(e.c.store_id == store_id, e.c.order_id == order_id)
    page = await fetch_page(conn, query, [e.c.seq], lambda r: [r["seq"]], request)
    page.rows = [event_from(row) for row in page.rows]
    return page

"""The event log as read models: a row as an EventRecord, a page of an order's events,
a page of the store's feed."""

from __future__ import annotations

from sqlalchemy import and_, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncConnection

from ordergraph.domain.feed import FEED_SCAN, EventSelection, FeedPage, cut_page
from ordergraph.domain.paging import Page, PageRequest
from ordergraph.storage import tables as t
from ordergraph.storage.mapping import event_from
from ordergraph.storage.paging import fetch_page

MAX_POSITION = 2**63 - 1


async def order_events_page(
    conn: AsyncConnection, store_id: int, order_id: int, request: PageRequest
) -> Page:
    e = t.events
    query = select(e).where(e.c.store_id == store_id, e.c.order_id == order_id)
    page = await fetch_page(conn, query, [e.c.seq], lambda r: [r["seq"]], request)
    page.rows = [event_from(row) for row in page.rows]
    return page


async def store_events_page(
    conn: AsyncConnection,
    store_id: int,
    after: int,
    first: int,
    selection: EventSelection,
    scan: int = FEED_SCAN,
) -> FeedPage:
    """A page of the store's feed after position `after` (domain/feed.py): one statement,
    so the events found and the log's last position come from one snapshot.

    The wanted events are looked for among positions (after, after + scan] only, on the
    primary key's (store_id, seq) order: with filters that skip most events, a page still
    reads at most `scan` rows, and no further index is needed.
    """
    e = t.events
    last = select(func.max(e.c.seq).label("last_seq")).where(e.c.store_id == store_id)
    last_sub = last.subquery("log_end")
    upto = min(after + scan, MAX_POSITION)  # a cursor may name any position (BIGINT)
    wanted = select(e).where(e.c.store_id == store_id, e.c.seq > after, e.c.seq <= upto)
    if not selection.everything:
        wanted = wanted.where(
            or_(
                *(
                    and_(e.c.stream == stream, e.c.type.in_(sorted(types)))
                    for stream, types in selection.streams().items()
                )
            )
        )
    page = wanted.order_by(e.c.seq).limit(first + 1).subquery("page")
    query = (
        select(last_sub.c.last_seq, page)
        .select_from(last_sub.outerjoin(page, true()))
        .order_by(page.c.seq)
    )
    rows = list((await conn.execute(query)).mappings())
    last_seq = int(rows[0]["last_seq"] or 0) if rows else 0
    matching = [event_from(row) for row in rows if row["seq"] is not None]
    return cut_page(matching, first, after, last_seq, scan)

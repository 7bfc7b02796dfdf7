"""The overdue sweep: one OVERDUE event per order once its requested ship date has ended.

Every process may sweep; the store lock and the order's `overdue_notified` flag,
checked again under the lock, make each event happen exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable

from sqlalchemy import select

from ordergraph.domain import services
from ordergraph.storage import tables as t
from ordergraph.storage.db import Database
from ordergraph.storage.uow import store_session

log = logging.getLogger("ordergraph.overdue")


async def sweep_overdue(db: Database, clock: Callable[[], dt.datetime]) -> int:
    """Flag every order that has become overdue; returns how many were flagged."""
    o = t.orders
    async with db.read() as conn:
        store_ids = list(
            (
                await conn.execute(
                    select(o.c.store_id)
                    .where(o.c.overdue_at <= clock())
                    .where(o.c.in_backlog.is_(True), o.c.overdue_notified.is_(False))
                    .distinct()
                )
            ).scalars()
        )
    flagged = 0
    for store_id in store_ids:
        async with store_session(db, store_id, clock) as session:
            flagged += len(await services.mark_overdue(session))
    return flagged


async def run_sweeper(
    db: Database, clock: Callable[[], dt.datetime], every_seconds: float, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        try:
            flagged = await sweep_overdue(db, clock)
            if flagged:
                log.info("flagged %d overdue orders", flagged)
        except Exception:
            log.exception("overdue sweep failed; retrying next round")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every_seconds)

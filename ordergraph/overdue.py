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
    """Flag every order that has become overdue; returns how many were flagged.

    The stores to visit are those whose overdue alarm has rung (`overdue_alarms`, one
    small table: no store's orders are read to find them). Each visit flags the store's
    orders due by now and sets its alarm to the next one to fall due, under its lock."""
    a = t.overdue_alarms
    async with db.read() as conn:
        rung = select(a.c.store_id).where(a.c.due_at <= clock()).order_by(a.c.due_at)
        store_ids = list((await conn.execute(rung)).scalars())
    flagged = 0
    for store_id in store_ids:
        async with store_session(db, store_id, clock) as session:
            flagged += len(await services.mark_overdue(session))
            await session.rearm_overdue_alarm()
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

"""A store's consecutive demo operations in one unit of work, each at its own instant.

`store_session` opens a transaction, locks the store and reads its counters for every
operation, and writes the changes of each with a dozen statements: that is most of the
cost of seeding. Here, operations that follow each other share one `SqlStoreSession`
(the same class, used as `store_session` uses it) until `close`: the services run on
it one after another, each with the session's clock set to its own instant, and the
changes of all of them are written together, each event with the instant of its own
operation.

What stays exactly as if each operation had its own session: ids, order numbers, event
positions and every event's instant (`close` stamps each with the instant of the
operation that emitted it), orders, lines, products, and the store's counters. What is
coarser: the history (`tally_points`, `overdue_points`) gets a point per unit of work
instead of one per operation; each point holds the same totals as the one-by-one
history at the same event position, so the figures read at the end of every unit of
work, and the figures now, are the same. (An overdue instant whose orders came and went
within one unit gets no `overdue_totals` row and no point: its totals would be zero.)

Whoever reads the database for a decision must `close` first, or add what the session
holds: the session's unwritten changes are not in the database (nor in its transaction:
a unit writes everything at its commit).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import AsyncExitStack, asynccontextmanager

from ordergraph.domain.commands import NO_READS, Reads
from ordergraph.storage.db import Database
from ordergraph.storage.uow import OpenUnit, SqlStoreSession, open_unit


async def preload_orders(session: SqlStoreSession, ids: Collection[int]) -> None:
    """Load these orders into the session in two queries rather than two per order, where
    the session can (an optimization only: the services load what is missing anyway)."""
    load = getattr(session, "_load_orders", None)
    if load is not None:
        await load(ids)


class Units:
    """Opens a store's sessions for the demo: one per operation, or (`batched`) one for
    each run of operations until `close`."""

    def __init__(
        self,
        db: Database,
        store_id: int,
        clock: Callable[[], dt.datetime],
        *,
        batched: bool,
        catalogue: Collection[str] = (),
        before_close: Callable[[SqlStoreSession], None] | None = None,
    ) -> None:
        self.db = db
        self.before_close = before_close  # sees each session before its changes are written
        self.catalogue = catalogue  # skus loaded when a unit opens (with the store's lock)
        self.store_id = store_id
        self.clock = clock
        self.batched = batched
        self._stack: AsyncExitStack | None = None
        self._unit: OpenUnit | None = None
        self._instants: list[dt.datetime] = []  # of each event of the session, in order
        # Kept by the caller for the open unit of work, forgotten when it closes: the
        # orders placed in it, and the first day whose sweep may flag one of them.
        self.placed: list[int] = []
        self.first_due: int | None = None

    async def _open(self) -> SqlStoreSession:
        """The session, as `store_session` opens it (`open_unit`): store locked, counters
        read, time never before the store's last event; batched, the catalogue read too."""
        if self._unit is not None:
            return self._unit.session
        reads = Reads(skus=tuple(self.catalogue)) if self.batched else NO_READS
        stack = AsyncExitStack()
        unit = await stack.enter_async_context(open_unit(self.db, self.store_id, self.clock, reads))
        self._stack, self._unit, self._instants = stack, unit, []
        return unit.session

    @asynccontextmanager
    async def session(self) -> AsyncIterator[SqlStoreSession]:
        """The session for one operation at the clock's instant (never before the one
        before); a failure rolls back the whole unit of work and is raised."""
        try:
            session = await self._open()
        except BaseException as err:
            await self._abandon(err)
            raise
        session.now = max(self.clock(), session.now)
        try:
            yield session
        except BaseException as err:
            await self._abandon(err)
            raise
        session.settle_outcomes()  # its backorder facts at its own instant
        self._instants.extend([session.now] * (len(session.events) - len(self._instants)))
        if not self.batched:
            await self.close()

    async def _abandon(self, err: BaseException) -> None:
        stack, self._stack, self._unit = self._stack, None, None
        self.placed, self.first_due = [], None
        if stack is not None:
            await stack.__aexit__(type(err), err, err.__traceback__)

    async def close(self) -> None:
        """Write the session's changes, each event at its operation's instant, and commit."""
        unit, stack = self._unit, self._stack
        if unit is None or stack is None:
            return
        session = unit.session
        try:
            if self.before_close is not None:
                self.before_close(session)
            if self._instants:  # the store's last event, and the history point, at the last
                session.now = self._instants[-1]
            writes = session.writes()
            for row, at in zip(writes.events, self._instants, strict=True):
                row["occurred_at"] = at
            await unit.commit(writes)
        except BaseException as err:
            await self._abandon(err)
            raise
        self._stack = self._unit = None
        self.placed, self.first_due = [], None
        await stack.aclose()
        if session.events:
            self.db.committed(self.store_id)

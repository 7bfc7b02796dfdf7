"""The unit-of-work ports (domain.ports) over SQL: what `ctx.units` is in the app.

`SqlUnits.store(store_id)` opens the store's locked session (storage/uow.py) with its
idempotency records; `SqlUnits.admin` creates stores and keys (storage/admin.py);
`is_contention` tells the resolvers which database errors are worth a retry.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy.exc import DBAPIError

from ordergraph.domain.commands import NO_READS, Reads
from ordergraph.storage import idempotency
from ordergraph.storage.admin import SqlAdmin
from ordergraph.storage.db import Database
from ordergraph.storage.uow import Clock, SqlStoreSession, store_session

# Serialization failure, deadlock; and a unique violation: a store's unit inserts rows
# whose keys come from the store's counters, read under its row lock, so a duplicate
# means another unit read the same counters, which happens only when the lock did not
# hold (on Citus, a unit that locked the store's row on its old worker while a shard
# move switched it to the new one). Run again, the unit reads the counters anew.
_RETRYABLE_SQLSTATES = {"40001", "40P01", "23505"}


class SqlStoreUnit:
    """The StoreUnit port: a locked store session and the store's idempotency records."""

    def __init__(self, session: SqlStoreSession, ttl: dt.timedelta) -> None:
        self.session = session
        self.ttl = ttl

    async def recall(
        self, operation: str, key: str, request: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        digest = idempotency.request_hash(dict(request))
        return await idempotency.recall(
            self.session, operation=operation, key=key, digest=digest, ttl=self.ttl
        )

    async def remember(
        self, operation: str, key: str, request: Mapping[str, Any], result: Mapping[str, Any]
    ) -> None:
        digest = idempotency.request_hash(dict(request))
        idempotency.remember(
            self.session,
            operation=operation,
            key=key,
            digest=digest,
            result=dict(result),
            ttl=self.ttl,
        )


def _sqlstate(error: DBAPIError) -> str | None:
    orig = getattr(error, "orig", None)
    return getattr(orig, "sqlstate", None) or getattr(
        getattr(orig, "__cause__", None), "sqlstate", None
    )


class SqlUnits:
    """The Units port (domain.ports) over one request's view of the database."""

    def __init__(self, db: Database, clock: Clock, *, idempotency_ttl: dt.timedelta) -> None:
        self.db = db
        self.clock = clock
        self.idempotency_ttl = idempotency_ttl
        self.admin = SqlAdmin(db, clock)

    @asynccontextmanager
    async def store(self, store_id: int, reads: Reads = NO_READS) -> AsyncIterator[SqlStoreUnit]:
        async with store_session(self.db, store_id, self.clock, reads) as session:
            yield SqlStoreUnit(session, self.idempotency_ttl)

    def is_contention(self, error: Exception) -> bool:
        if isinstance(error, asyncpg.PostgresError):  # the PostgreSQL unit's own statements
            return error.sqlstate in _RETRYABLE_SQLSTATES
        return isinstance(error, DBAPIError) and _sqlstate(error) in _RETRYABLE_SQLSTATES

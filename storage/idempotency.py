"""Idempotency keys: the first result of a keyed mutation, kept for retries."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from ordergraph.domain.errors import DomainError, ErrorCode
from ordergraph.storage import tables as t

if TYPE_CHECKING:  # the unit of work uses this module
    from ordergraph.storage.uow import SqlStoreSession


def request_hash(payload: dict[str, Any]) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def recall(
    session: SqlStoreSession, *, operation: str, key: str, digest: str, ttl: dt.timedelta
) -> dict[str, Any] | None:
    """The stored result for this key, None if unseen or expired; raises if the input differs.

    Runs under the store's lock, so a concurrent duplicate waits for the first
    request to commit and then finds its result here. An expired record is deleted
    with the change that remembers the key again (`remember` forgets expired ones).
    """
    if (operation, key) in session.prefetched_keys:
        row = session.prefetched_keys[(operation, key)]
    else:
        k = t.idempotency_keys
        found = (
            (
                await session.conn.execute(
                    select(k).where(
                        k.c.store_id == session.store.id, k.c.operation == operation, k.c.key == key
                    )
                )
            )
            .mappings()
            .first()
        )
        row = dict(found) if found is not None else None
    if row is None or row["created_at"] < session.now - ttl:
        return None
    if row["request_hash"] != digest:
        raise DomainError.one(
            ErrorCode.IDEMPOTENCY_KEY_REUSED,
            "this idempotencyKey was used earlier with a different input",
            ["idempotencyKey"],
        )
    result: dict[str, Any] = row["result"]
    return result


def remember(
    session: SqlStoreSession,
    *,
    operation: str,
    key: str,
    digest: str,
    result: dict[str, Any],
    ttl: dt.timedelta,
) -> None:
    """Keep the result with the change; the store's expired keys are forgotten with it
    (the index keeps that cheap), an expired record of this key among them."""
    session.remember(
        {
            "store_id": session.store.id,
            "operation": operation,
            "key": key,
            "request_hash": digest,
            "result": result,
            "created_at": session.now,
        },
        forget_before=session.now - ttl,
    )

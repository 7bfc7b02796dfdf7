"""API keys as stored: by id, by token hash, and which of some keys are revoked."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from ordergraph.domain.reads import KeyRecord
from ordergraph.storage import tables as t


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

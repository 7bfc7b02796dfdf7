"""API keys as stored: by id, by token hash, and which of some keys are revoked."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ordergraph.domain.reads import KeyRecord
from ordergraph.storage import tables as t

# Built once: a key is looked up again whenever its entry in the process's short cache
# has expired (resolvers/keyguard.py), and building a statement costs more than running it.
_KEYS = select(t.api_keys).where(t.api_keys.c.id.in_(bindparam("ids", expanding=True)))
_KEY_STORES = select(t.api_key_stores).where(
    t.api_key_stores.c.api_key_id.in_(bindparam("ids", expanding=True))
)
_LIVE_KEY_ID = select(t.api_keys.c.id).where(
    t.api_keys.c.token_hash == bindparam("token_hash"), t.api_keys.c.revoked_at.is_(None)
)


async def api_keys_by_id(conn: AsyncConnection, ids: Iterable[int]) -> dict[int, KeyRecord]:
    wanted = sorted(set(ids))
    rows = (await conn.execute(_KEYS, {"ids": wanted})).mappings()
    links = await conn.execute(_KEY_STORES, {"ids": wanted})
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
    key_id = (await conn.execute(_LIVE_KEY_ID, {"token_hash": token_hash})).scalar()
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

"""Stores and API keys: created by the admin token, outside any store's lock."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable

from sqlalchemy import RowMapping, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ordergraph.domain.commands import (
    API_SCOPES,
    CreateApiKey,
    CreateStore,
    KeyCreated,
    StoreCreated,
)
from ordergraph.domain.errors import DomainError, ErrorCode
from ordergraph.domain.keys import hash_token, new_token
from ordergraph.domain.model import BackorderPolicy, Store
from ordergraph.domain.reads import KeyRecord
from ordergraph.storage import tables as t
from ordergraph.storage.db import Database
from ordergraph.storage.mapping import store_from
from ordergraph.storage.queries import api_keys_by_id

Clock = Callable[[], dt.datetime]

SCOPES = API_SCOPES


async def create_store(
    db: Database,
    *,
    handle: str,
    name: str,
    currency_code: str,
    timezone: str,
    default_policy: BackorderPolicy,
    now: dt.datetime,
    key_name: str | None = None,
) -> tuple[Store, tuple[KeyRecord, str] | None]:
    """A new store and, when `key_name` is given, a key with every scope for it, atomically."""
    cmd = CreateStore(
        handle=handle,
        name=name,
        currency_code=currency_code,
        timezone=timezone,
        default_policy=default_policy,
    ).checked()
    taken = DomainError.one(ErrorCode.DUPLICATE, f"handle {handle!r} is taken", ["handle"])
    try:
        async with db.write() as conn:
            if await _handle_taken(conn, handle):
                raise taken
            row = await _insert_store(conn, cmd, now)
            key = None
            if key_name is not None:
                first = CreateApiKey(name=key_name, store_ids=[row["id"]], scopes=list(SCOPES))
                key = await _insert_key(conn, first.checked(), now)
    except IntegrityError:  # another store took the handle first: the directory's unique
        raise taken from None
    return store_from(row), key


# The reads before an admin write go to the directory, never to the stores' rows: on
# Citus a read of every store's shard would forbid the writes to the reference tables
# (api_keys, store_directory, api_key_stores) that follow in the same transaction.


async def _handle_taken(conn: AsyncConnection, handle: str) -> bool:
    d = t.store_directory
    found = await conn.execute(select(d.c.store_id).where(d.c.handle == handle))
    return found.first() is not None


async def _insert_store(conn: AsyncConnection, cmd: CreateStore, now: dt.datetime) -> RowMapping:
    """Insert a checked store (CreateStore.checked) and its directory entry, whose unique
    handle refuses a second store of one handle; returns the store's row as stored."""
    values = {
        "handle": cmd.handle,
        "name": cmd.name,
        "currency_code": cmd.currency_code,
        "timezone": cmd.timezone,
        "default_backorder_policy": cmd.default_policy.value,
        "created_at": now,
    }
    row = (
        (await conn.execute(insert(t.stores).values(values).returning(*t.stores.c)))
        .mappings()
        .one()
    )
    await conn.execute(insert(t.store_directory).values(store_id=row["id"], handle=cmd.handle))
    return row


async def create_api_key(
    db: Database,
    *,
    name: str,
    store_ids: Iterable[int],
    scopes: Iterable[str],
    now: dt.datetime,
) -> tuple[KeyRecord, str]:
    """A new key and its token; only the token's hash is stored."""
    async with db.write() as conn:
        cmd = CreateApiKey(name=name, store_ids=list(store_ids), scopes=list(scopes))
        return await _insert_key(conn, cmd.checked(), now)


async def _insert_key(
    conn: AsyncConnection, key: CreateApiKey, now: dt.datetime
) -> tuple[KeyRecord, str]:
    """Insert a checked key (CreateApiKey.checked) if all its stores exist."""
    ids = set(key.store_ids)
    d = t.store_directory
    found = set((await conn.execute(select(d.c.store_id).where(d.c.store_id.in_(ids)))).scalars())
    if found != ids:
        raise DomainError.one(ErrorCode.NOT_FOUND, "store not found", ["storeIds"])
    token = new_token()
    key_id = (
        await conn.execute(
            insert(t.api_keys)
            .values(
                name=key.name,
                token_hash=hash_token(token),
                scopes=",".join(key.scopes),
                created_at=now,
            )
            .returning(t.api_keys.c.id)
        )
    ).scalar_one()
    await conn.execute(
        insert(t.api_key_stores), [{"store_id": s, "api_key_id": key_id} for s in key.store_ids]
    )
    record = (await api_keys_by_id(conn, [key_id]))[key_id]
    return record, token


async def revoke_api_key(db: Database, key_id: int, now: dt.datetime) -> KeyRecord:
    async with db.write() as conn:
        k = t.api_keys
        await conn.execute(
            update(k).where(k.c.id == key_id, k.c.revoked_at.is_(None)).values(revoked_at=now)
        )
        record = (await api_keys_by_id(conn, [key_id])).get(key_id)
    if record is None:
        raise DomainError.one(ErrorCode.NOT_FOUND, "api key not found", ["id"])
    return record


class SqlAdmin:
    """The AdminUnit port (domain.ports) over the database."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def create_store(self, cmd: CreateStore) -> StoreCreated:
        store, created = await create_store(
            self.db,
            handle=cmd.handle,
            name=cmd.name,
            currency_code=cmd.currency_code,
            timezone=cmd.timezone,
            default_policy=cmd.default_policy,
            now=self.clock(),
            key_name=cmd.key_name,
        )
        assert created is not None
        key, token = created
        return StoreCreated(store_id=store.id, api_key_id=key.id, token=token)

    async def create_api_key(self, cmd: CreateApiKey) -> KeyCreated:
        key, token = await create_api_key(
            self.db, name=cmd.name, store_ids=cmd.store_ids, scopes=cmd.scopes, now=self.clock()
        )
        return KeyCreated(api_key_id=key.id, token=token)

    async def revoke_api_key(self, key_id: int) -> int:
        return (await revoke_api_key(self.db, key_id, self.clock())).id

    async def api_key(self, key_id: int) -> KeyRecord | None:
        async with self.db.read() as conn:
            return (await api_keys_by_id(conn, [key_id])).get(key_id)

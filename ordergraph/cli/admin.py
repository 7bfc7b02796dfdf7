"""`ordergraph create-store`, `create-key` and `revoke-key`: they act on the database
directly, and refuse one whose schema is not current."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from ordergraph.cli.common import (
    AddCommand,
    CliError,
    add_database_url,
    key_gid,
    now,
    settings_of,
    store_gid,
    with_db,
)
from ordergraph.domain.model import BackorderPolicy, Store
from ordergraph.storage.db import Database

SHOWN_ONCE = "The token is shown only now: keep it somewhere safe."


def cmd_create_store(args: argparse.Namespace) -> int:
    from ordergraph.storage import admin

    async def create(db: Database) -> tuple[Store, Any]:
        return await admin.create_store(
            db,
            handle=args.handle,
            name=args.name,
            currency_code=args.currency,
            timezone=args.timezone,
            default_policy=BackorderPolicy(args.default_backorder_policy),
            now=now(),
            key_name=f"{args.handle} (created with the store)",
        )

    store, created = asyncio.run(with_db(settings_of(args), create))
    key, token = created
    print(f"store:   {store.handle} {store_gid(store.id)}")
    print(f"api key: {key_gid(key.id)} (scopes {', '.join(sorted(key.scopes))})")
    print(f"token:   {token}")
    print(SHOWN_ONCE, file=sys.stderr)
    return 0


async def _stores_by_handle(db: Database, handles: list[str]) -> dict[str, int]:
    from ordergraph.storage.queries import store_ids_by_handle

    async with db.read() as conn:
        found = await store_ids_by_handle(conn, handles)
    for handle in handles:
        if handle not in found:
            raise CliError(f"no store with handle {handle!r}")
    return found


def cmd_create_key(args: argparse.Namespace) -> int:
    from ordergraph.storage import admin

    async def create(db: Database) -> Any:
        stores = await _stores_by_handle(db, args.store)
        return await admin.create_api_key(
            db,
            name=args.name,
            store_ids=stores.values(),
            scopes=[s.upper() for s in args.scope],
            now=now(),
        )

    key, token = asyncio.run(with_db(settings_of(args), create))
    print(f"api key: {key_gid(key.id)} (scopes {', '.join(sorted(key.scopes))})")
    print(f"token:   {token}")
    print(SHOWN_ONCE, file=sys.stderr)
    return 0


def _key_number(value: str) -> int:
    from ordergraph.resolvers import ids

    if value.isdigit():
        return int(value)
    found = ids.decode(value.strip(), "ApiKey")
    if found is None:
        raise CliError(f"{value!r} is not an api key id (give the id the API shows, or a number)")
    return found[1][0]


def cmd_revoke_key(args: argparse.Namespace) -> int:
    from ordergraph.storage import admin
    from ordergraph.storage.queries import api_keys_by_id

    key_id = _key_number(args.key_id)

    async def revoke(db: Database) -> tuple[bool, Any]:
        async with db.read() as conn:
            before = (await api_keys_by_id(conn, [key_id])).get(key_id)
        if before is None:
            raise CliError(f"no api key {args.key_id}")
        if before.revoked_at is not None:
            return False, before
        return True, await admin.revoke_api_key(db, key_id, now())

    changed, key = asyncio.run(with_db(settings_of(args), revoke))
    when = key.revoked_at.isoformat(timespec="seconds")
    if changed:
        print(f"revoked api key {key_gid(key.id)} ({key.name}) at {when}")
    else:
        print(f"api key {key_gid(key.id)} ({key.name}) was already revoked at {when}")
    return 0


def _register_create_store(add_command: AddCommand) -> None:
    command = add_command(
        "create-store",
        help="create a store and print a token with every scope for it (shown once)",
        description="Create a store and an API key with every scope for it. "
        "The token is printed once.",
    )
    command.add_argument("--handle", required=True, help="2 to 40 of a-z, 0-9 and '-'")
    command.add_argument("--name", required=True, help="the store's display name")
    command.add_argument("--currency", required=True, help="ISO 4217 code, e.g. EUR")
    command.add_argument("--timezone", required=True, help="IANA name, e.g. Europe/Berlin")
    command.add_argument(
        "--default-backorder-policy",
        type=str.upper,
        choices=[p.value for p in BackorderPolicy],
        default=BackorderPolicy.DENY.value,
        help="policy of new products (default DENY)",
    )
    add_database_url(command)
    command.set_defaults(func=cmd_create_store)


def _register_create_key(add_command: AddCommand) -> None:
    from ordergraph.storage.admin import SCOPES

    command = add_command(
        "create-key",
        help="create an API key and print its token (shown once)",
        description="Create an API key for one or more stores. The token is printed once.",
    )
    command.add_argument(
        "--store", action="append", required=True, metavar="HANDLE", help="repeatable"
    )
    command.add_argument(
        "--scope",
        action="append",
        required=True,
        type=str.upper,
        choices=list(SCOPES),
        help="repeatable",
    )
    command.add_argument("--name", required=True, help="what the key is for")
    add_database_url(command)
    command.set_defaults(func=cmd_create_key)


def _register_revoke_key(add_command: AddCommand) -> None:
    command = add_command(
        "revoke-key",
        help="revoke an API key",
        description="Revoke an API key: its token stops working at once.",
    )
    command.add_argument(
        "key_id", metavar="KEY_ID", help="the key's id as the API shows it, or its number"
    )
    add_database_url(command)
    command.set_defaults(func=cmd_revoke_key)


def register(add_command: AddCommand) -> None:
    _register_create_store(add_command)
    _register_create_key(add_command)
    _register_revoke_key(add_command)

"""PostgreSQL for the benches: a database of their own, made and dropped through an admin
DSN, and the few reads of its rows they check."""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

DEFAULT_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def add_server_options(parser: argparse.ArgumentParser) -> None:
    """--log-dir, --server-env and --pg-dsn, for the benches that start a server."""
    parser.add_argument("--log-dir", type=Path, help="keep the server's log in this folder")
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the server (repeatable)",
    )
    add_pg_dsn(parser)


def add_pg_dsn(parser: argparse.ArgumentParser) -> None:
    """The benches' --pg-dsn: the admin DSN (ORDERGRAPH_BENCH_PG_DSN by default)."""
    parser.add_argument(
        "--pg-dsn",
        default=os.environ.get("ORDERGRAPH_BENCH_PG_DSN", DEFAULT_ADMIN_DSN),
        help="a PostgreSQL database to connect to for CREATE/DROP DATABASE",
    )


def with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, ""))


def safe_dsn(dsn: str) -> str:
    """The DSN without its password."""
    parts = urlsplit(dsn)
    netloc = parts.netloc.rpartition("@")
    user = netloc[0].partition(":")[0]
    host = f"{user}@{netloc[2]}" if netloc[1] else netloc[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


async def admin_execute(admin_dsn: str, statement: str) -> None:
    conn = await asyncpg.connect(admin_dsn, timeout=10)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def create_database(admin_dsn: str, name: str) -> None:
    await admin_execute(admin_dsn, f'CREATE DATABASE "{name}"')


async def drop_database(admin_dsn: str, name: str) -> None:
    await admin_execute(admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def scratch(admin_dsn: str, label: str) -> Iterator[tuple[str, Path]]:
    """A fresh database (its DSN) and a folder for the servers' logs, both gone after."""
    name = f"ordergraph_bench_{label}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    asyncio.run(create_database(admin_dsn, name))
    try:
        with tempfile.TemporaryDirectory(prefix=f"ordergraph-{label}-") as logs:
            yield with_database(admin_dsn, name), Path(logs)
    finally:
        asyncio.run(drop_database(admin_dsn, name))


async def store_id_of(dsn: str, handle: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        value = await conn.fetchval("SELECT id FROM stores WHERE handle = $1", handle)
    finally:
        await conn.close()
    return int(value)


async def last_seq(dsn: str, store_id: int) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        value = await conn.fetchval("SELECT last_event_seq FROM stores WHERE id = $1", store_id)
    finally:
        await conn.close()
    return int(value)

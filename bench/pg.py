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


def citus_workers(raw: str | None = None) -> list[tuple[str, int]]:
    """The Citus workers ("host:port,...", ORDERGRAPH_CITUS_WORKERS by default): when set,
    the admin DSN names a Citus coordinator and each new database is made on every node
    (docs/citus.md)."""
    text = os.environ.get("ORDERGRAPH_CITUS_WORKERS", "") if raw is None else raw
    found = []
    for item in text.split(","):
        host, _, port = item.strip().rpartition(":")
        if host:
            found.append((host, int(port)))
    return found


def _on_node(admin_dsn: str, host: str, port: int, database: str = "") -> str:
    parts = urlsplit(admin_dsn)
    user = parts.netloc.rpartition("@")[0]
    netloc = f"{user}@{host}:{port}" if user else f"{host}:{port}"
    path = "/" + database if database else parts.path
    return urlunsplit((parts.scheme, netloc, path, parts.query, ""))


async def create_database(
    admin_dsn: str, name: str, workers: list[tuple[str, int]] | None = None
) -> None:
    """CREATE DATABASE; on a Citus coordinator (`workers`, default citus_workers()) also on
    every worker, with the citus extension everywhere and the nodes registered."""
    await admin_execute(admin_dsn, f'CREATE DATABASE "{name}"')
    workers = citus_workers() if workers is None else workers
    if not workers:
        return
    for host, port in workers:
        await admin_execute(_on_node(admin_dsn, host, port), f'CREATE DATABASE "{name}"')
        await admin_execute(_on_node(admin_dsn, host, port, name), "CREATE EXTENSION citus")
    coordinator = urlsplit(admin_dsn)
    here = with_database(admin_dsn, name)
    await admin_execute(here, "CREATE EXTENSION citus")
    await admin_execute(
        here,
        f"SELECT citus_set_coordinator_host('{coordinator.hostname}', {coordinator.port or 5432})",
    )
    for host, port in workers:
        await admin_execute(here, f"SELECT citus_add_node('{host}', {port})")


async def drop_database(
    admin_dsn: str, name: str, workers: list[tuple[str, int]] | None = None
) -> None:
    """DROP DATABASE, on the Citus workers too (after the coordinator: its connections)."""
    drop = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
    await admin_execute(admin_dsn, drop)
    for host, port in citus_workers() if workers is None else workers:
        await admin_execute(_on_node(admin_dsn, host, port), drop)


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
        value = await conn.fetchval(
            "SELECT store_id FROM store_directory WHERE handle = $1", handle
        )
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

"""Schema migrations (Alembic), applied by `ordergraph migrate` and on `serve`.

On PostgreSQL, `upgrade` also keeps the planner from taking a young table for a tiny one.
A table that was never analyzed (pg_class.reltuples = -1) is planned as at least ten
pages, so the checks of a foreign key (`order_lines` -> `orders`, ...) and the hot
lookups use their indexes. An ANALYZE while the table is empty or holds a few dozen rows
(by hand, or autovacuum's first pass after 50 changes) records it as tiny: every
connection then plans those checks as sequential scans and keeps the plan (generic plans
live until the next ANALYZE of the table), scanning the whole table on every check as it
grows. So, after migrating:

- the tables that grow with trade get `autovacuum_analyze_threshold` = FIRST_ANALYZE_ROWS
  (unless set already): autovacuum's first ANALYZE waits until they hold enough rows that
  index plans win; later passes follow the usual scale factor;
- a database whose tables are all still empty but were analyzed anyway is returned to
  the never-analyzed state (TRUNCATE of the empty tables resets their statistics).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from ordergraph.storage.db import Database
from ordergraph.storage.distribution import before_migrating, distribute
from ordergraph.storage.tables import metadata

MIGRATIONS = Path(__file__).parent / "migrations"


def earlier_migration(prefix: str) -> ModuleType:
    """The revision file `<prefix>_*.py` as a module, for a later revision that restores
    or builds on the SQL it wrote (migration files are not importable by name)."""
    (path,) = (MIGRATIONS / "versions").glob(f"{prefix}_*.py")
    spec = importlib.util.spec_from_file_location(f"og_migration_{prefix}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Serializes concurrent `migrate` runs (several processes starting at once).
_PG_LOCK_ID = 74_220_001
# The tables that grow with every order: autovacuum analyzes them first at this many
# changed rows (measured: analyzed at 50 orders, `orders` is scanned by every check of
# the orders' foreign keys afterwards; at 300 or more, never).
GROWING = (
    "orders",
    "order_lines",
    "events",
    "idempotency_keys",
    "tally_points",
    "overdue_points",
    "overdue_totals",
    "overdue_crossings",  # slower (a row a day per store), but probed by every figure read
)
FIRST_ANALYZE_ROWS = 2000


def _config(connection: Any = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


async def upgrade(db: Database, revision: str = "head") -> None:
    if db.is_sqlite:
        await run_sqlite(db, lambda sync: command.upgrade(_config(sync), revision))
        return
    async with db.engine.begin() as conn:
        await conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_LOCK_ID})
        await before_migrating(conn)
        await conn.run_sync(lambda sync: command.upgrade(_config(sync), revision))
        if revision == "head":
            await distribute(conn)
            await prepare_statistics(conn)


async def downgrade(db: Database, revision: str) -> None:
    """Undo migrations down to `revision` (for tests and for the hand of an operator)."""
    if db.is_sqlite:
        await run_sqlite(db, lambda sync: command.downgrade(_config(sync), revision))
        return
    async with db.engine.begin() as conn:
        await conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_LOCK_ID})
        await before_migrating(conn)
        await conn.run_sync(lambda sync: command.downgrade(_config(sync), revision))


async def run_sqlite(db: Database, migrate: Callable[[Connection], None]) -> None:
    """Run `migrate` in one SQLite transaction with foreign keys off, as SQLite's own
    advice for changing a table goes: a batch alteration copies the table and drops the
    old one, which the rows referencing it would refuse. Before the commit, every
    reference must hold again (PRAGMA foreign_key_check), else nothing is kept."""
    async with db.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        await driver.execute("PRAGMA foreign_keys=OFF")  # no-op inside a transaction
        try:
            async with conn.begin():
                await conn.run_sync(migrate)
                broken = (await conn.exec_driver_sql("PRAGMA foreign_key_check")).all()
                if broken:
                    raise RuntimeError(f"the migration breaks foreign keys: {broken[:5]}")
        finally:
            await driver.execute("PRAGMA foreign_keys=ON")


async def prepare_statistics(conn: AsyncConnection) -> None:
    """Keep the planner from taking young tables for tiny ones (see the module's text)."""
    found = (
        await conn.execute(
            text(
                "SELECT c.relname, c.reltuples, c.reloptions, pg_relation_size(c.oid) AS size"
                " FROM pg_class c WHERE c.relkind = 'r'"
                " AND c.relnamespace = current_schema()::regnamespace"
                " AND c.relname = ANY(:names)"
            ),
            {"names": list(metadata.tables)},
        )
    ).all()
    if all(row.size == 0 for row in found) and any(row.reltuples >= 0 for row in found):
        await _forget_empty_statistics(conn, [row.relname for row in found])
    for row in found:
        options = row.reloptions or []
        if row.relname in GROWING and not any(
            o.startswith("autovacuum_analyze_threshold=") for o in options
        ):
            await conn.execute(
                text(
                    f'ALTER TABLE "{row.relname}"'
                    f" SET (autovacuum_analyze_threshold = {FIRST_ANALYZE_ROWS})"
                )
            )


async def _forget_empty_statistics(conn: AsyncConnection, tables: list[str]) -> None:
    """Return empty tables to "never analyzed" (TRUNCATE resets reltuples to -1). Only
    while they hold no row once locked; a server busy on them: leave them as they are."""
    names = ", ".join(f'"{name}"' for name in tables)
    try:
        async with conn.begin_nested():
            await conn.execute(text("SET LOCAL lock_timeout = '2s'"))
            await conn.execute(text(f"LOCK TABLE {names} IN ACCESS EXCLUSIVE MODE"))
            holding = " OR ".join(f'EXISTS (SELECT FROM "{name}")' for name in tables)
            if not await conn.scalar(text(f"SELECT {holding}")):
                await conn.execute(text(f"TRUNCATE {names}"))
    except DBAPIError:
        pass  # locked by a running server: its tables are in use, not to be emptied
    await conn.execute(text("SET LOCAL lock_timeout TO DEFAULT"))


@dataclass(frozen=True)
class HeadCheck:
    """Where a database's schema stands against this code's migrations."""

    current: tuple[str, ...]  # the revisions the database is at (none: never migrated)
    at_head: bool  # exactly at this code's heads
    pending: list[str]  # this code's revisions the database has not had, sorted
    unknown: list[str]  # the database's revisions this code does not know, sorted

    @property
    def newer(self) -> bool:
        """The database was migrated by a newer release (e.g. during a rolling upgrade)."""
        return bool(self.unknown)


def script_directory(migrations: Path = MIGRATIONS) -> ScriptDirectory:
    return ScriptDirectory(str(migrations))


async def current_heads(db: Database) -> tuple[str, ...]:
    """The revisions the database is at (empty when it was never migrated)."""
    async with db.engine.connect() as conn:
        heads: tuple[str, ...] = await conn.run_sync(
            lambda sync: tuple(MigrationContext.configure(sync).get_current_heads())
        )
    return heads


def check_heads(script: ScriptDirectory, current: tuple[str, ...]) -> HeadCheck:
    """The one migration-head check: the database's revisions against the heads of
    `script` (this code's migrations), for `/readyz` and for the CLI."""
    if set(current) == set(script.get_heads()):
        return HeadCheck(current, at_head=True, pending=[], unknown=[])
    known = {rev.revision for rev in script.walk_revisions()}
    unknown = sorted(set(current) - known)
    if unknown:  # no walking down from a revision the script does not hold
        return HeadCheck(current, at_head=False, pending=[], unknown=unknown)
    applied = {
        rev.revision
        for head in current
        for rev in script.iterate_revisions(head, "base")
        if rev is not None
    }
    return HeadCheck(current, at_head=False, pending=sorted(known - applied), unknown=[])


async def pending(db: Database) -> list[str]:
    """Why the database is not at this code's head: the revisions it has not had, or those
    of a newer release this code does not know; empty when the schema is current."""
    check = check_heads(script_directory(), await current_heads(db))
    if check.at_head:
        return []
    return check.unknown or check.pending or list(check.current)

"""Schema migrations (Alembic), applied by `ordergraph migrate` and on `serve`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from ordergraph.storage.db import Database

MIGRATIONS = Path(__file__).parent / "migrations"
# Serializes concurrent `migrate` runs (several processes starting at once).
_PG_LOCK_ID = 74_220_001


def _config(connection: Any = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


async def upgrade(db: Database, revision: str = "head") -> None:
    async with db.engine.begin() as conn:
        if not db.is_sqlite:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_LOCK_ID})
        await conn.run_sync(lambda sync: command.upgrade(_config(sync), revision))


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

"""Schema migrations (Alembic), applied by `ordergraph migrate` and on `serve`."""

from __future__ import annotations

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


async def pending(db: Database) -> list[str]:
    """Revisions not yet applied; empty when the schema is current."""
    script = ScriptDirectory.from_config(_config())
    async with db.engine.connect() as conn:
        current = await conn.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_heads()
        )
    heads = set(script.get_heads())
    if set(current) == heads:
        return []
    return [rev.revision for rev in script.walk_revisions() if rev.revision not in current]


def autogenerate(db_url_sync: str, message: str) -> None:  # pragma: no cover - dev helper
    from sqlalchemy import create_engine

    engine = create_engine(db_url_sync)
    with engine.begin() as conn:
        command.revision(_config(conn), message=message, autogenerate=True)

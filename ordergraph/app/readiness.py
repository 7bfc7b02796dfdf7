"""Readiness of a process: the database answers and its schema is at this code's migration
head (GET /readyz)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from ordergraph.storage.db import Database
from ordergraph.storage.migrate import MIGRATIONS

log = logging.getLogger("ordergraph.app")
READY_TIMEOUT_SECONDS = 3.0


class Readiness:
    """Ready when the database answers and its schema is at this code's migration head.

    A database migrated further than this code knows (a newer release migrated it during
    a rolling upgrade) is reported but still ready: migrations are written to keep the
    previous release working, and taking every old process out of rotation at once would
    be an outage.
    """

    def __init__(
        self, db: Database, timeout: float = READY_TIMEOUT_SECONDS, migrations: Path = MIGRATIONS
    ) -> None:
        self.db = db
        self.timeout = timeout
        self.migrations = migrations
        self._script: ScriptDirectory | None = None

    def script(self) -> ScriptDirectory:
        if self._script is None:
            self._script = ScriptDirectory(str(self.migrations))
        return self._script

    async def _current(self) -> tuple[str, ...]:
        async with self.db.engine.connect() as conn:
            heads: tuple[str, ...] = await conn.run_sync(
                lambda sync: tuple(MigrationContext.configure(sync).get_current_heads())
            )
        return heads

    async def check(self) -> tuple[bool, dict[str, Any]]:
        try:
            current = await asyncio.wait_for(self._current(), self.timeout)
        except Exception as err:
            log.warning("readiness: the database is unreachable: %s", err)
            reason = "database unreachable" + (
                " (timed out)" if isinstance(err, TimeoutError) else f" ({type(err).__name__})"
            )
            return False, {"status": "unavailable", "reason": reason}
        script = self.script()
        heads = set(script.get_heads())
        if set(current) == heads:
            return True, {"status": "ok", "migrations": "current"}
        known = {rev.revision for rev in script.walk_revisions()}
        if not current:
            reason = "database is not migrated: run `ordergraph migrate`"
            return False, {"status": "unavailable", "reason": reason}
        if not set(current) <= known:
            return True, {"status": "ok", "migrations": "database is newer than this code"}
        behind = sorted(
            rev.revision
            for rev in script.walk_revisions()
            if not _applied(script, rev.revision, current)
        )
        return False, {
            "status": "unavailable",
            "reason": f"migrations pending ({len(behind)}): run `ordergraph migrate`",
            "pending": behind,
        }


def _applied(script: ScriptDirectory, revision: str, current: tuple[str, ...]) -> bool:
    """Whether `revision` is at or below one of the current heads."""
    for head in current:
        for rev in script.iterate_revisions(head, "base"):
            if rev is not None and rev.revision == revision:
                return True
    return False

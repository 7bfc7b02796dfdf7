"""Readiness of a process: the database answers and its schema is at this code's migration
head (GET /readyz)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from alembic.script import ScriptDirectory

from ordergraph.storage.db import Database
from ordergraph.storage.migrate import MIGRATIONS, check_heads, current_heads, script_directory

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
            self._script = script_directory(self.migrations)
        return self._script

    async def check(self) -> tuple[bool, dict[str, Any]]:
        try:
            current = await asyncio.wait_for(current_heads(self.db), self.timeout)
        except Exception as err:
            log.warning("readiness: the database is unreachable: %s", err)
            reason = "database unreachable" + (
                " (timed out)" if isinstance(err, TimeoutError) else f" ({type(err).__name__})"
            )
            return False, {"status": "unavailable", "reason": reason}
        heads = check_heads(self.script(), current)
        if heads.at_head:
            return True, {"status": "ok", "migrations": "current"}
        if not current:
            reason = "database is not migrated: run `ordergraph migrate`"
            return False, {"status": "unavailable", "reason": reason}
        if heads.newer:
            return True, {"status": "ok", "migrations": "database is newer than this code"}
        return False, {
            "status": "unavailable",
            "reason": f"migrations pending ({len(heads.pending)}): run `ordergraph migrate`",
            "pending": heads.pending,
        }

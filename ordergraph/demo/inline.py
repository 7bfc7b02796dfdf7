"""Seeding SQLite without a thread hop per database call.

The SQLite driver (aiosqlite) runs each call on a thread of the connection's own and
wakes the event loop with the result. Seeding makes some 13,000 statements, each several
such calls; on a busy machine the hand-overs cost more than SQLite's own work (measured:
a third of seed-demo's CPU, and more of its time). While the demo seeds, nothing else
uses the database, so `inline_calls` runs those calls on the event loop's thread.

It replaces the driver connection class's `_execute` (aiosqlite 0.20 to 0.22; the class
is found through SQLAlchemy's raw connection) for the duration, and puts it back after;
where there is no such coroutine method, seeding runs as usual, only slower. It is a
driver concern: its place is beside the engine in storage/db.py.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from ordergraph.storage.db import Database


async def _execute_here(_connection: Any, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
    return fn(*args, **kw)


async def _driver_class(db: Database) -> type | None:
    async with db.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
    return None if driver is None else type(driver)


@asynccontextmanager
async def inline_calls(db: Database, enabled: bool = True) -> AsyncIterator[bool]:
    """Within the block, the SQLite driver's connections run their calls on the caller's
    thread; yields whether they do."""
    cls = await _driver_class(db) if enabled and db.is_sqlite else None
    original = None if cls is None else cls.__dict__.get("_execute")
    if cls is None or original is None or not inspect.iscoroutinefunction(original):
        yield False
        return
    setattr(cls, "_execute", _execute_here)  # noqa: B010
    try:
        yield True
    finally:
        setattr(cls, "_execute", original)  # noqa: B010

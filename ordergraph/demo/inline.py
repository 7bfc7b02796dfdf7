"""Seeding SQLite without a thread hop per database call.

aiosqlite runs each call on a thread of the connection's own and wakes the event loop
with the result. Seeding makes some 13,000 statements, each several such calls; on a
busy machine the hand-overs cost more than SQLite's own work (measured: a third of
seed-demo's CPU, and more of its time). While the demo seeds, nothing else uses the
database, so `inline_calls` runs those calls on the event loop's thread instead.

It replaces aiosqlite's `Connection._execute` (aiosqlite 0.20 to 0.22) for the duration
and puts it back after; where that method is missing, seeding runs as usual, slower.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


async def _execute_here(_connection: Any, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
    return fn(*args, **kw)


@contextmanager
def inline_calls(enabled: bool = True) -> Iterator[bool]:
    """Within the block, aiosqlite connections run their calls on the caller's thread;
    yields whether they do."""
    try:
        from aiosqlite.core import Connection
    except ImportError:
        yield False
        return
    original = Connection.__dict__.get("_execute")
    if not enabled or original is None or not inspect.iscoroutinefunction(original):
        yield False
        return
    setattr(Connection, "_execute", _execute_here)  # noqa: B010
    try:
        yield True
    finally:
        setattr(Connection, "_execute", original)  # noqa: B010

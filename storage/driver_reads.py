"""Hot reads on PostgreSQL run by the driver: a Core statement compiled once, executed by
asyncpg on the connection's own pooled driver connection.

SQLAlchemy's execution of a statement (its compiled cache, a greenlet hand-over per call,
the cursor adapter, the result's rows and processors) cost a `store(handle:)` read more
than its GraphQL did (docs/performance.md). For the few statements every request of a
kind runs, `fetch` does that work once per statement: it compiles the statement for the
connection's dialect, and keeps its SQL, the order of its parameters, and the
conversions its columns' types make of parameters and values (the SQLAlchemy types'
own processors: `UtcDateTime`, `Money`, and the dialect's). Then a read is asyncpg's
`fetch` and a conversion per column that has one. The rows are mappings with the
statement's column names, as `Result.mappings()` gives them.

On SQLite, and for a statement with an expanding parameter (`IN` of a list, which
SQLAlchemy renders at execution), it is SQLAlchemy's execution, unchanged.
`tests/api/test_driver_reads.py` checks both give the same rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Select
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import BindParameter

from ordergraph.storage.db import pooled

Convert = Callable[[Any], Any]


class Plan:
    """A statement compiled for PostgreSQL's driver: its SQL with `$n` parameters, how to
    make the arguments from named values, and how to make each row."""

    __slots__ = ("columns", "defaults", "names", "sql", "to_driver")

    def __init__(self, statement: Any, compiled: Any, dialect: Dialect) -> None:
        self.sql = str(compiled)
        self.names: tuple[str, ...] = tuple(compiled.positiontup or ())
        binds: dict[str, BindParameter[Any]] = compiled.binds
        # The values the statement holds itself (a LIMIT, a literal); the others must be
        # given, as SQLAlchemy requires.
        self.defaults = {name: binds[name].value for name in self.names if not binds[name].required}
        self.to_driver: tuple[Convert | None, ...] = tuple(
            _bind_processor(binds[name].type, dialect) for name in self.names
        )
        self.columns: tuple[tuple[str, Convert | None], ...] = tuple(
            (column.key, _result_processor(column.type, dialect))
            for column in statement.selected_columns
        )

    def arguments(self, values: Mapping[str, Any]) -> list[Any]:
        out = []
        for name, convert in zip(self.names, self.to_driver, strict=True):
            value = values[name] if name in values else self.defaults[name]
            out.append(value if convert is None or value is None else convert(value))
        return out

    def row(self, record: Any) -> dict[str, Any]:
        return {
            key: value if convert is None or value is None else convert(value)
            for (key, convert), value in zip(self.columns, record, strict=True)
        }

    @property
    def kept_as_read(self) -> bool:
        """Whether no column's value is converted: the driver's records are the rows."""
        return all(convert is None for _, convert in self.columns)

    def values(self, record: Any) -> tuple[Any, ...]:
        return tuple(
            value if convert is None or value is None else convert(value)
            for (_, convert), value in zip(self.columns, record, strict=True)
        )


def _bind_processor(type_: Any, dialect: Dialect) -> Convert | None:
    processor: Convert | None = dialect.type_descriptor(type_).bind_processor(dialect)
    return processor


def _result_processor(type_: Any, dialect: Dialect) -> Convert | None:
    processor: Convert | None = dialect.type_descriptor(type_).result_processor(dialect, None)
    return processor


# Plans by statement: the statements are built once (the dict keeps each one, so its id
# is never another's). A statement built anew for every call would find no plan; past
# MAX_PLANS statements, the others go SQLAlchemy's way.
MAX_PLANS = 256
_plans: dict[int, tuple[Any, Plan | None]] = {}


def plan_of(statement: Select[Any], dialect: Dialect) -> Plan | None:
    """The statement's plan, or None where the driver cannot run it as compiled (an
    expanding parameter)."""
    found = _plans.get(id(statement))
    if found is not None and found[0] is statement:
        return found[1]
    if len(_plans) >= MAX_PLANS:
        return None
    compiled = statement.compile(dialect=dialect)
    expanding = any(bind.expanding for bind in compiled.binds.values())
    plan = None if expanding else Plan(statement, compiled, dialect)
    _plans[id(statement)] = (statement, plan)
    return plan


# Called with the SQL of each statement the driver runs here, as SQLAlchemy's
# `before_cursor_execute` event is for its own (the tests that count statements watch both).
on_statement: list[Callable[[str], None]] = []


async def _on_driver(
    conn: AsyncConnection, statement: Select[Any], values: Mapping[str, Any]
) -> tuple[Plan, list[Any]] | None:
    """The statement's plan and the driver's records, on PostgreSQL; None where the driver
    does not run it (SQLite, an expanding parameter)."""
    if conn.dialect.name != "postgresql":
        return None
    plan = plan_of(statement, conn.dialect)
    if plan is None:
        return None
    driver = (await pooled(conn)).driver_connection
    for listener in on_statement:
        listener(plan.sql)
    return plan, await driver.fetch(plan.sql, *plan.arguments(values))


async def fetch(
    conn: AsyncConnection, statement: Select[Any], values: Mapping[str, Any]
) -> Sequence[Mapping[Any, Any]]:
    """The rows of `statement` with `values` for its parameters, as mappings."""
    found = await _on_driver(conn, statement, values)
    if found is not None:
        plan, records = found
        return [plan.row(record) for record in records]
    result = await conn.execute(statement, dict(values))
    rows: Sequence[Mapping[Any, Any]] = result.mappings().all()
    return rows


async def fetch_values(
    conn: AsyncConnection, statement: Select[Any], values: Mapping[str, Any]
) -> Sequence[Sequence[Any]]:
    """`fetch`'s rows as sequences of the statement's columns, in their order: for a read
    of many rows read by position (a trend's 1,000 points), without a mapping per row,
    and, where no column is converted, the driver's records themselves."""
    found = await _on_driver(conn, statement, values)
    if found is not None:
        plan, records = found
        return records if plan.kept_as_read else [plan.values(record) for record in records]
    rows: Sequence[Sequence[Any]] = (await conn.execute(statement, dict(values))).all()
    return rows

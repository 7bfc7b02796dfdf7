"""How each table is laid out on Citus, and the migration step that lays them out.

TABLES is the one place that says it: a store-keyed table is distributed by its store
column, co-located with `stores` (all of a store's rows on one worker); a table every
request reads whatever the store (API keys, the store directory) is a reference table,
copied to every node; a table of the migration tool's own stays local. A table missing
from TABLES fails the migration on Citus and the tests everywhere
(tests/unit/test_distribution.py), so a later migration cannot forget it.

On plain PostgreSQL and SQLite nothing here runs.
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

Layout = tuple[Literal["distributed"], str] | Literal["reference", "local"]

# The table every distributed table is co-located with.
ANCHOR = "stores"


def _by_store(column: str = "store_id") -> Layout:
    return ("distributed", column)


TABLES: dict[str, Layout] = {
    # global: read by every request, whatever the store
    "api_keys": "reference",
    "store_directory": "reference",
    "api_key_stores": "reference",
    "overdue_alarms": "reference",  # the overdue sweep's: which stores have work
    # the stores, and everything keyed by store: one store's rows on one worker
    ANCHOR: _by_store("id"),
    "products": _by_store(),
    "orders": _by_store(),
    "order_lines": _by_store(),
    "events": _by_store(),
    "idempotency_keys": _by_store(),
    "incoming_receipts": _by_store(),
    "tally_points": _by_store(),
    "overdue_points": _by_store(),
    "overdue_totals": _by_store(),
    "overdue_crossings": _by_store(),
    "rate_buckets": _by_store(),
    "webhook_subscriptions": _by_store(),
    "webhook_deliveries": _by_store(),
    "backorder_facts": _by_store(),
    "backorder_days": _by_store(),
    "backorder_ages": _by_store(),
    # the migration tool's
    "alembic_version": "local",
}


def unclassified(names: set[str] | list[str]) -> list[str]:
    """Of these table names, those TABLES does not classify, sorted."""
    return sorted(set(names) - set(TABLES))


class DistributionError(RuntimeError):
    """The database's tables do not match TABLES; nothing was distributed."""


async def has_citus(conn: AsyncConnection) -> bool:
    found = await conn.scalar(text("SELECT 1 FROM pg_extension WHERE extname = 'citus'"))
    return found is not None


async def before_migrating(conn: AsyncConnection) -> None:
    """On Citus, let the migrations about to run create a table with foreign keys to
    reference tables and distributed ones alike: it stays a plain local table (Citus
    would otherwise make it a Citus local table at once, which may not reference a
    distributed one) until `distribute`, after the migrations, lays it out. And run their
    statements across shards one connection per worker (sequential mode): a migration
    that reads or fills the stores' rows across shards in parallel (0012's fill) could not
    then create or replace a function in the same transaction, which Citus refuses after
    a parallel operation on a distributed table."""
    if await has_citus(conn):
        await conn.execute(text("SET LOCAL citus.enable_local_reference_table_foreign_keys TO off"))
        await conn.execute(text("SET LOCAL citus.multi_shard_modify_mode TO 'sequential'"))


async def distribute(conn: AsyncConnection) -> list[str]:
    """On a database with the citus extension, lay out every table not yet laid out as
    TABLES says: reference tables, then `stores`, then the store-keyed tables co-located
    with it. Returns the tables it laid out (none when all were: running it again does
    nothing). The foreign keys touching those tables are dropped first and added back
    after (Citus will not distribute a table that a still-local one references, nor the
    other way round), in the caller's transaction, in sequential mode (a distributed
    table referencing a reference table must be created so)."""
    if not await has_citus(conn):
        return []
    await _plan_units_per_call(conn)
    await _catalogue_unfiltered(conn)
    todo = await _to_lay_out(conn)
    if not todo:
        return []
    await conn.execute(text("SET LOCAL citus.multi_shard_modify_mode TO 'sequential'"))
    keys = await _foreign_keys(conn, todo)
    for table, name, _ in keys:
        await conn.execute(text(f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"'))
    for name in todo:
        if TABLES[name] == "reference":
            await conn.execute(text("SELECT create_reference_table(:t)"), {"t": name})
    # stores first: the others are co-located with it
    for name in sorted(todo, key=lambda n: n != ANCHOR):
        if TABLES[name] == "reference":
            continue
        colocate = "default" if name == ANCHOR else ANCHOR
        await conn.execute(
            text("SELECT create_distributed_table(:t, :c, colocate_with => :a)"),
            {"t": name, "c": _column(name), "a": colocate},
        )
    for table, name, definition in keys:
        await conn.execute(text(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {definition}'))
    return todo


async def _plan_units_per_call(conn: AsyncConnection) -> None:
    """The unit's functions (`og_open`, `og_apply`, ...) plan their statements for each
    call's values: with PostgreSQL's generic plan (from a function's sixth call on) Citus
    cannot see which store a statement names and sends it to every shard. Set again on
    every `migrate`, since a migration that re-creates a function drops the setting."""
    functions = await conn.execute(
        text(
            "SELECT proname, pg_get_function_identity_arguments(oid) FROM pg_proc"
            " WHERE proname LIKE 'og\\_%' AND pronamespace = current_schema()::regnamespace"
        )
    )
    for name, arguments in list(functions):
        await conn.execute(
            text(f'ALTER FUNCTION "{name}"({arguments}) SET plan_cache_mode = force_custom_plan')
        )


async def _catalogue_unfiltered(conn: AsyncConnection) -> None:
    """The database's sessions read pg_class without Citus's filter that hides shards
    from applications (`citus.override_table_visibility`): it runs a function per row of
    every scan of pg_class, and asyncpg's look-up of a type it meets for the first time
    on a connection (an array of bigint, of timestamps...) scans pg_class hundreds of
    times: 1.2 s per new connection on the coordinator, 10 s and more when a burst opens
    several at once, which stopped placeOrders at the operation timeout; 25 ms without
    it. The coordinator holds no shards for the filter to hide; ordergraph reads its own
    tables by their names."""
    name = await conn.scalar(text("SELECT current_database()"))
    quoted = '"' + str(name).replace('"', '""') + '"'
    await conn.execute(text(f"ALTER DATABASE {quoted} SET citus.override_table_visibility = off"))


async def _to_lay_out(conn: AsyncConnection) -> list[str]:
    """The tables of the schema still to lay out; DistributionError if a table is not in
    TABLES or is laid out otherwise than it says."""
    present = set(
        (
            await conn.execute(
                text(
                    "SELECT relname FROM pg_class WHERE relkind IN ('r', 'p')"
                    " AND relnamespace = current_schema()::regnamespace"
                    " AND NOT relation_is_a_known_shard(oid)"  # a node's placements
                )
            )
        ).scalars()
    )
    missing = unclassified(present)
    if missing:
        raise DistributionError(
            f"tables not classified in storage/distribution.py TABLES: {', '.join(missing)}"
        )
    done = await _laid_out(conn)
    wrong = [
        f"{name} is {done[name]}, should be {_expected(name)}"
        for name in sorted(done)
        if name in TABLES and _expected(name) != done[name]
    ]
    if wrong:
        raise DistributionError(
            "tables laid out otherwise than storage/distribution.py TABLES says: "
            + ", ".join(wrong)
        )
    return sorted(n for n in present if TABLES[n] != "local" and n not in done)


def _column(name: str) -> str:
    layout = TABLES[name]
    assert not isinstance(layout, str), name
    return layout[1]


def _expected(name: str) -> str:
    layout = TABLES[name]
    return layout if isinstance(layout, str) else f"distributed by {layout[1]}"


async def _laid_out(conn: AsyncConnection) -> dict[str, str]:
    """The tables Citus knows, as 'reference', 'local' or 'distributed by <column>'."""
    rows = await conn.execute(
        text(
            "SELECT c.relname, p.partmethod::text AS partmethod, p.repmodel::text AS repmodel,"
            " column_to_column_name(p.logicalrelid, p.partkey) AS col"
            " FROM pg_dist_partition p JOIN pg_class c ON c.oid = p.logicalrelid"
            " WHERE c.relnamespace = current_schema()::regnamespace"
        )
    )
    found = {}
    for row in rows:
        if row.partmethod == "h":
            found[row.relname] = f"distributed by {row.col}"
        elif row.repmodel == "t":
            found[row.relname] = "reference"
        else:
            found[row.relname] = "local"  # a Citus local table
    return found


async def _foreign_keys(conn: AsyncConnection, tables: list[str]) -> list[tuple[str, str, str]]:
    """(table, constraint, definition) of every foreign key from or to these tables."""
    rows = await conn.execute(
        text(
            "SELECT c.conrelid::regclass::text AS tbl, c.conname,"
            " pg_get_constraintdef(c.oid) AS def"
            " FROM pg_constraint c WHERE c.contype = 'f'"
            " AND c.connamespace = current_schema()::regnamespace"
            " AND (c.conrelid::regclass::text = ANY(:t) OR c.confrelid::regclass::text = ANY(:t))"
            " ORDER BY 1, 2"
        ),
        {"t": tables},
    )
    return [(row[0], row[1], row[2]) for row in rows]

"""Every table is classified for Citus (storage/distribution.py TABLES), and the schema
obeys what Citus demands of that layout: a distributed table's unique keys hold its
distribution column, its foreign keys reach reference tables or co-located distributed
ones through that column, and a reference table references only reference tables."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import (
    ForeignKeyConstraint,
    PrimaryKeyConstraint,
    Table,
    UniqueConstraint,
    select,
)
from sqlalchemy.dialects.postgresql import asyncpg

from ordergraph.domain.webhooks import WebhookTopic
from ordergraph.storage import tables, webhooks
from ordergraph.storage.distribution import ANCHOR, TABLES, unclassified
from ordergraph.storage.queries import receipts
from ordergraph.storage.tables import metadata

OWN_TABLES = {name for name, layout in TABLES.items() if layout != "local"}


def _column(name: str) -> str | None:
    layout = TABLES[name]
    return None if isinstance(layout, str) else layout[1]


def test_every_table_of_the_metadata_is_classified_and_nothing_else_is() -> None:
    assert unclassified(list(metadata.tables)) == []
    assert set(metadata.tables) == OWN_TABLES
    assert {name for name, layout in TABLES.items() if layout == "local"} == {"alembic_version"}


def test_a_table_a_later_migration_forgets_to_classify_is_named() -> None:
    assert unclassified([*metadata.tables, "shipments"]) == ["shipments"]


def test_the_global_tables_are_reference_tables_and_stores_is_distributed_by_id() -> None:
    assert {n for n, layout in TABLES.items() if layout == "reference"} == {
        "api_keys",
        "api_key_stores",
        "store_directory",
        "overdue_alarms",
    }
    assert TABLES[ANCHOR] == ("distributed", "id")


def _tables() -> list[Table]:
    return sorted(metadata.tables.values(), key=lambda table: table.name)


@pytest.mark.parametrize("table", [t for t in _tables() if _column(t.name)], ids=str)
def test_a_distributed_tables_unique_keys_hold_its_distribution_column(table: Table) -> None:
    column = _column(table.name)
    assert column is not None
    assert column in table.c
    keys: list[tuple[object, set[str]]] = [
        (key.name, {c.name for c in key.columns})
        for key in [table.primary_key, *table.constraints]
        if isinstance(key, (PrimaryKeyConstraint, UniqueConstraint))
    ]
    keys += [(ix.name, {c.name for c in ix.columns}) for ix in table.indexes if ix.unique]
    for name, columns in keys:
        assert column in columns, (table.name, name)
    if table.name != ANCHOR:
        assert table.c[column].type.python_type is int


def _foreign_keys() -> list[ForeignKeyConstraint]:
    found = [fk for t in _tables() for fk in t.constraints if isinstance(fk, ForeignKeyConstraint)]
    return sorted(found, key=lambda fk: str(fk.name))  # the same order in every xdist worker


@pytest.mark.parametrize("fk", _foreign_keys(), ids=lambda fk: str(fk.name))
def test_every_foreign_key_is_one_citus_accepts(fk: ForeignKeyConstraint) -> None:
    source, target = fk.table.name, fk.referred_table.name
    if TABLES[target] == "reference":
        return  # anything may reference a reference table
    assert TABLES[source] != "reference", f"{source} (reference) may not reference {target}"
    # distributed -> distributed: co-located (all are, with stores) and through the
    # distribution columns of both
    pairs = {(el.parent.name, el.column.name) for el in fk.elements}
    assert (_column(source), _column(target)) in pairs, fk.name


STORE = 987_654  # a store id no other number in the statements is


def _unpruned(statement: Any) -> list[str]:
    """The distributed tables a statement reads without naming the store itself (Citus
    sends a statement to one shard only when each of them is filtered by the store's
    value, not merely joined to another table's store_id)."""
    dialect = asyncpg.dialect()  # type: ignore[no-untyped-call]
    sql = str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    distributed = {
        table
        for table, layout in TABLES.items()
        if not isinstance(layout, str) and re.search(rf"\b{table}\.\w+", sql)
    }
    named = {t for t in distributed if re.search(rf"\b{t}\.{_column(t)} = {STORE}\b", sql)}
    return sorted(distributed - named)


def test_the_reads_that_join_a_stores_tables_name_the_store_in_each() -> None:
    """The fill-date walk's waiting lines (a LATERAL on order_lines under products) and a
    SKU-filtered webhook subscription's events (EXISTS on order_lines and products):
    both once reached every shard on Citus."""
    found = receipts._WAITING_ARRAYS.statement([(STORE, 3), (STORE, 4)])
    assert found is not None
    waiting: Any = found[0]
    assert _unpruned(waiting.params(scope_store_id=STORE, scope_ids=[3, 4])) == []
    e = tables.events
    topics = [WebhookTopic.ORDER_PLACED, WebhookTopic.INVENTORY_RECEIVED]
    events = select(e.c.seq).where(
        e.c.store_id == STORE, webhooks._event_filter(e, STORE, topics, ["A"])
    )
    assert "order_lines" in str(events)
    assert "products" in str(events)
    assert _unpruned(events) == []
    # What the check catches: a table joined only on another one's store_id.
    lines = tables.order_lines
    joined = select(e.c.seq).where(e.c.store_id == STORE, lines.c.store_id == e.c.store_id)
    assert _unpruned(joined) == ["order_lines"]

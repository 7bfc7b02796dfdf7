"""the unit's set-based UPDATEs name the store, so each goes to one shard (PostgreSQL)

`og_apply`, `og_apply_receipts` and `og_apply_outcomes` update the rows a unit changed
with `UPDATE t ... FROM jsonb_populate_recordset(...) x WHERE t.store_id = x.store_id
AND ...`: on one PostgreSQL that is an index probe per row, but on Citus the store comes
only from the recordset, so the UPDATE went to every shard of the table (all of them
locked, a two-phase commit, and distributed deadlocks between stores). Each such UPDATE
now also says `t.store_id = <the document's store>`, so Citus sends it to the store's
shard alone; on plain PostgreSQL nothing changes but the extra (true) condition.
Nothing is done on SQLite.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 04:50:00.000000
"""

from __future__ import annotations

import re

from alembic import op

from ordergraph.storage.migrate import earlier_migration

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

THE_STORE = "(w->>'store_id')::bigint"


def _before() -> list[str]:
    """The three functions as migrations 0008, 0006 and 0007 left them."""
    apply: str = earlier_migration("0008")._apply_for_citus()
    receipts: str = earlier_migration("0006").APPLY_RECEIPTS
    outcomes: str = earlier_migration("0007").APPLY_OUTCOMES
    return [apply, receipts, outcomes]


# `WHERE p.store_id = x.store_id` (any alias) in an UPDATE ... FROM the recordset.
_JOINED = re.compile(r"WHERE (\w+)\.store_id = x\.store_id AND")


def _named(text: str) -> str:
    named, count = _JOINED.subn(
        lambda m: (
            f"WHERE {m.group(1)}.store_id = {THE_STORE} AND {m.group(1)}.store_id = x.store_id AND"
        ),
        text,
    )
    assert count > 0, "no UPDATE joined on the recordset's store"
    return named


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for text in _before():
            op.execute(_named(text))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for text in _before():
            op.execute(text)

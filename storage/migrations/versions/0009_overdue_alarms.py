"""overdue alarms: the sweep finds the stores with work without reading their orders

`overdue_alarms (store_id, due_at)`: per store, an instant at or before the earliest
`overdue_at` of its orders in the backlog not yet flagged overdue (no row: nothing
will fall due). `stores.overdue_alarm_at` holds the same instant, so a unit reads it
with the store and moves it only when it must. The overdue sweep (ordergraph/overdue.py)
reads `overdue_alarms` alone to find the stores to visit; on Citus it is a reference
table (storage/distribution.py), so the sweep touches no shard to find them. On
PostgreSQL a unit that moves the alarm writes it with `og_apply_alarm`, sent in the
same simple query as `og_apply` (storage/pg_unit.py). Both are filled from the orders
as they stand.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 03:50:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ordergraph.storage.tables

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# The due time is cast into a variable first: Citus refuses a cast that is not
# immutable (text -> timestamptz) inside an UPDATE of a distributed table.
APPLY_ALARM = """
CREATE OR REPLACE FUNCTION og_apply_alarm(w jsonb) RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE
    s bigint := (w->>'store_id')::bigint;
    due timestamptz := (w->'alarm'->>'due_at')::timestamptz;
BEGIN
    UPDATE stores SET overdue_alarm_at = due WHERE id = s;
    IF due IS NULL THEN
        DELETE FROM overdue_alarms WHERE store_id = s;
    ELSE
        INSERT INTO overdue_alarms (store_id, due_at) VALUES (s, due)
        ON CONFLICT (store_id) DO UPDATE SET due_at = EXCLUDED.due_at;
    END IF;
END
$fn$;
"""

# What is pending now, per store.
PENDING = """
SELECT store_id, min(overdue_at) AS due_at FROM orders
WHERE overdue_at IS NOT NULL AND in_backlog AND NOT overdue_notified
GROUP BY store_id
"""


def upgrade() -> None:
    op.create_table(
        "overdue_alarms",
        sa.Column("store_id", Id, nullable=False, autoincrement=False),
        sa.Column("due_at", ordergraph.storage.tables.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["store_directory.store_id"],
            name=op.f("fk_overdue_alarms_store_id_store_directory"),
        ),
        sa.PrimaryKeyConstraint("store_id", name=op.f("pk_overdue_alarms")),
    )
    op.create_index("ix_overdue_alarms_due", "overdue_alarms", ["due_at"])
    op.add_column(
        "stores",
        sa.Column(
            "overdue_alarm_at",
            ordergraph.storage.tables.UtcDateTime(timezone=True),
            nullable=True,
        ),
    )
    op.execute(f"INSERT INTO overdue_alarms (store_id, due_at) {PENDING}")
    op.execute(
        "UPDATE stores SET overdue_alarm_at = (SELECT a.due_at FROM overdue_alarms a"
        " WHERE a.store_id = stores.id)"
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(APPLY_ALARM)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS og_apply_alarm(jsonb)")
    op.drop_column("stores", "overdue_alarm_at")
    op.drop_index("ix_overdue_alarms_due", table_name="overdue_alarms")
    op.drop_table("overdue_alarms")

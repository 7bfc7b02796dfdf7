"""incoming receipts: stock on its way, and og_apply_receipts to write them (PostgreSQL)

A store's scheduled receipts (domain/model.py Receipt). On PostgreSQL a unit of work
that changes receipts writes them with `og_apply_receipts`, sent in the same simple
query as `og_apply` (storage/pg_unit.py), so the commit stays one round trip.

`events.type` grows to 32 characters (EXPECTED_SHIP_DATE_CHANGED has 26). On
PostgreSQL a longer varchar is a change of the catalog only (no rewrite); SQLite does
not enforce the length, so its table is left as it is rather than copied.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 21:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ordergraph.storage.tables

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

APPLY_RECEIPTS = """
CREATE OR REPLACE FUNCTION og_apply_receipts(w jsonb) RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
    IF w ? 'new_receipts' THEN
        INSERT INTO incoming_receipts (store_id, id, product_id, quantity, received,
                                       expected_at, reference, status, created_at)
        SELECT store_id, id, product_id, quantity, received, expected_at, reference,
               status, created_at
        FROM jsonb_populate_recordset(NULL::incoming_receipts, w->'new_receipts');
    END IF;
    IF w ? 'receipts' THEN
        UPDATE incoming_receipts r
        SET quantity = x.quantity, received = x.received, expected_at = x.expected_at,
            reference = x.reference, status = x.status
        FROM jsonb_populate_recordset(NULL::incoming_receipts, w->'receipts') x
        WHERE r.store_id = x.store_id AND r.id = x.id;
    END IF;
END
$fn$;
"""


def upgrade() -> None:
    op.create_table(
        "incoming_receipts",
        sa.Column("store_id", Id, nullable=False),
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("product_id", sa.BigInteger(), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("received", sa.BigInteger(), nullable=False),
        sa.Column("expected_at", sa.Date(), nullable=False),
        sa.Column("reference", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column(
            "created_at", ordergraph.storage.tables.UtcDateTime(timezone=True), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["store_id", "product_id"],
            ["products.store_id", "products.id"],
            name=op.f("fk_incoming_receipts_store_id_product_id_products"),
        ),
        sa.PrimaryKeyConstraint("store_id", "id", name=op.f("pk_incoming_receipts")),
    )
    op.create_index(
        "ix_incoming_receipts_open",
        "incoming_receipts",
        ["store_id", "product_id", "expected_at", "id"],
        postgresql_where=sa.text("status = 'OPEN'"),
        sqlite_where=sa.text("status = 'OPEN'"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(APPLY_RECEIPTS)
        op.alter_column(
            "events", "type", type_=sa.String(length=32), existing_type=sa.String(length=24)
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # Refused while the log holds a longer type (an EXPECTED_SHIP_DATE_CHANGED event).
        op.alter_column(
            "events", "type", type_=sa.String(length=24), existing_type=sa.String(length=32)
        )
        op.execute("DROP FUNCTION IF EXISTS og_apply_receipts(jsonb)")
    op.drop_index("ix_incoming_receipts_open", table_name="incoming_receipts")
    op.drop_table("incoming_receipts")

"""store handles unique through a directory: ready for distribution by store

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 03:30:00.000000

`store_directory (store_id, handle)` takes over the uniqueness of handles from `stores`
(a distributed table may not be unique without its distribution column), filled from
the existing stores; `api_key_stores` references it instead of `stores` (a reference
table may not reference a distributed one). storage/distribution.py says how each table
is laid out on Citus. On SQLite the batch alterations copy `stores` and `api_key_stores`
(storage/migrate.py runs them with foreign keys checked at the end).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ordergraph.storage.migrate import earlier_migration

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _apply_of_0003() -> str:
    text: str = earlier_migration("0003").APPLY
    return text


# og_apply (migration 0003) as it was, but for the store's last event time: Citus refuses
# a function that is not immutable (the text -> timestamptz cast) inside a COALESCE of
# an UPDATE on a distributed table, so the cast is made into a variable first.
_LAST_EVENT_AT = """last_event_at = coalesce((w->'counters'->>'last_event_at')::timestamptz,
                                     last_event_at)"""


def _apply_for_citus() -> str:
    before = _apply_of_0003()
    assert _LAST_EVENT_AT in before
    after = before.replace(_LAST_EVENT_AT, "last_event_at = coalesce(last_at, last_event_at)")
    declared = "    last_at timestamptz := (w->'counters'->>'last_event_at')::timestamptz;\n"
    after = after.replace("    oldest timestamptz;\n", "    oldest timestamptz;\n" + declared)
    assert "last_at timestamptz :=" in after
    return after


def upgrade() -> None:
    op.create_table(
        "store_directory",
        sa.Column("store_id", Id, autoincrement=False, nullable=False),
        sa.Column("handle", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("store_id", name=op.f("pk_store_directory")),
        sa.UniqueConstraint("handle", name=op.f("uq_store_directory_handle")),
    )
    op.execute("INSERT INTO store_directory (store_id, handle) SELECT id, handle FROM stores")
    with op.batch_alter_table("api_key_stores") as batch:
        batch.drop_constraint("fk_api_key_stores_store_id_stores", type_="foreignkey")
        batch.create_foreign_key(
            "fk_api_key_stores_store_id_store_directory",
            "store_directory",
            ["store_id"],
            ["store_id"],
        )
    with op.batch_alter_table("stores") as batch:
        batch.drop_constraint("uq_stores_handle", type_="unique")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_apply_for_citus())


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_apply_of_0003())
    with op.batch_alter_table("stores") as batch:
        batch.create_unique_constraint("uq_stores_handle", ["handle"])
    with op.batch_alter_table("api_key_stores") as batch:
        batch.drop_constraint("fk_api_key_stores_store_id_store_directory", type_="foreignkey")
        batch.create_foreign_key(
            "fk_api_key_stores_store_id_stores", "stores", ["store_id"], ["id"]
        )
    op.drop_table("store_directory")

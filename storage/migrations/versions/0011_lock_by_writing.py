"""og_open takes the store's lock with a write, which a shard move waits for (PostgreSQL)

`og_open` took the store's row lock with `SELECT ... FOR NO KEY UPDATE`. On Citus a
shard move switches a shard group to its new worker once the writes in flight on the
old one are done, but a row lock taken by a read is not a write in flight: a unit that
had locked the store on the old worker and a unit that locked it on the new one read the
same counters, and the second insert failed on the primary key. `og_open` now takes the
same lock (FOR NO KEY UPDATE strength: inserts that only reference the store go on)
with an UPDATE that changes nothing, so the move waits for the unit. On one PostgreSQL
the lock and its waits are the same; the row gets one more (HOT) version per unit.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 05:05:00.000000
"""

from __future__ import annotations

from alembic import op

from ordergraph.storage.migrate import earlier_migration

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_READ_LOCK = "PERFORM 1 FROM stores WHERE id = s FOR NO KEY UPDATE;"
_WRITE_LOCK = "UPDATE stores SET next_id = next_id WHERE id = s;"


def _open_of_0003() -> str:
    text: str = earlier_migration("0003").OPEN
    assert _READ_LOCK in text
    return text


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_open_of_0003().replace(_READ_LOCK, _WRITE_LOCK))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_open_of_0003())

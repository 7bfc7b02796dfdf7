"""webhook subscriptions: SKU filters, and the cursor to return to after a resend

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 20:50:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_subscriptions") as batch:
        batch.add_column(sa.Column("skus", sa.Text(), nullable=True))
        batch.add_column(sa.Column("resume_position", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("webhook_subscriptions") as batch:
        batch.drop_column("resume_position")
        batch.drop_column("skus")

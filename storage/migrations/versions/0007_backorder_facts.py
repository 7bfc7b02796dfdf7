"""backorder facts: what waiting costs, and og_apply_outcomes to write them (PostgreSQL)

`backorder_facts` keeps one row per line and kind of each change that moved a line's
backordered units (domain/outcomes.py); `orders.backordered_since` and
`order_lines.waiting_since` keep when the waiting began. On PostgreSQL a unit of work
that writes them sends `og_apply_outcomes` in the same simple query as `og_apply`
(storage/pg_unit.py), so the commit stays one round trip.

Lines waiting when this revision runs get a START fact at their placement (their waits
are counted from it: a null `waiting_since` means that), and their orders' episodes
open at their placement too; what happened before this revision has no other facts.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 00:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ordergraph.storage.tables

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Utc = ordergraph.storage.tables.UtcDateTime

APPLY_OUTCOMES = """
CREATE OR REPLACE FUNCTION og_apply_outcomes(w jsonb) RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
    IF w ? 'outcome_orders' THEN
        UPDATE orders o SET backordered_since = x.backordered_since
        FROM jsonb_populate_recordset(NULL::orders, w->'outcome_orders') x
        WHERE o.store_id = x.store_id AND o.id = x.id;
    END IF;
    IF w ? 'outcome_lines' THEN
        UPDATE order_lines l SET waiting_since = x.waiting_since
        FROM jsonb_populate_recordset(NULL::order_lines, w->'outcome_lines') x
        WHERE l.store_id = x.store_id AND l.id = x.id;
    END IF;
    IF w ? 'facts' THEN
        INSERT INTO backorder_facts (store_id, seq, n, kind, product_id, order_id, line_id,
                                     at, since, units, value, reason, line_episode,
                                     order_episode, at_placement, overdue_at, wait_bucket)
        SELECT store_id, seq, n, kind, product_id, order_id, line_id, at, since, units,
               value, reason, line_episode, order_episode, at_placement, overdue_at,
               wait_bucket
        FROM jsonb_populate_recordset(NULL::backorder_facts, w->'facts');
    END IF;
    IF w ? 'order_closings' THEN
        UPDATE backorder_facts b SET closed_at = x.closed_at
        FROM jsonb_populate_recordset(NULL::backorder_facts, w->'order_closings') x
        WHERE b.store_id = x.store_id AND b.order_id = x.order_id AND b.kind = 'START'
          AND b.order_episode = x.order_episode;
    END IF;
    IF w ? 'line_closings' THEN
        UPDATE backorder_facts b SET line_closed_at = x.line_closed_at
        FROM jsonb_populate_recordset(NULL::backorder_facts, w->'line_closings') x
        WHERE b.store_id = x.store_id AND b.order_id = x.order_id AND b.line_id = x.line_id
          AND b.kind = 'START' AND b.line_episode = x.line_episode;
    END IF;
    IF w ? 'fact_days' THEN
        INSERT INTO backorder_days AS d (store_id, product_id, day, kind, reason,
                                         wait_bucket, units, value, episodes, short,
                                         max_wait)
        SELECT store_id, product_id, day, kind, reason, wait_bucket, units, value,
               episodes, short, max_wait
        FROM jsonb_populate_recordset(NULL::backorder_days, w->'fact_days')
        ON CONFLICT (store_id, product_id, day, kind, reason, wait_bucket) DO UPDATE SET
            units = d.units + EXCLUDED.units,
            value = d.value + EXCLUDED.value,
            episodes = d.episodes + EXCLUDED.episodes,
            short = d.short + EXCLUDED.short,
            max_wait = greatest(d.max_wait, EXCLUDED.max_wait);
    END IF;
END
$fn$;
"""

# Lines waiting now: a START at placement (position 0, numbered by line id), the line's
# episode opening with it, and the order's with its first waiting line.
BACKFILL = """
INSERT INTO backorder_facts (store_id, seq, n, kind, product_id, order_id, line_id, at,
                             since, units, value, reason, line_episode, order_episode,
                             at_placement, overdue_at, wait_bucket)
SELECT l.store_id, 0, l.id, 'START', l.product_id, l.order_id, l.id, l.placed_at,
       l.placed_at, l.backordered, l.backordered * l.unit_price, NULL, l.placed_at,
       CASE WHEN l.id = (SELECT min(w.id) FROM order_lines w
                         WHERE w.store_id = l.store_id AND w.order_id = l.order_id
                           AND w.backordered > 0)
            THEN l.placed_at END,
       true, o.overdue_at, NULL
FROM order_lines l JOIN orders o ON o.store_id = l.store_id AND o.id = l.order_id
WHERE l.backordered > 0
"""


def _backfill_days(dialect: str) -> list[str]:
    """The day sums of what is already there: the orders placed (per store and per
    product) and the START facts of the lines waiting now."""
    pg = dialect == "postgresql"
    day = "CAST(placed_at AT TIME ZONE 'UTC' AS date)" if pg else "date(placed_at)"
    fact_day = "CAST(at AT TIME ZONE 'UTC' AS date)" if pg else "date(at)"
    columns = (
        "store_id, product_id, day, kind, reason, wait_bucket, units, value, episodes, "
        "short, max_wait"
    )
    return [
        f"""INSERT INTO backorder_days ({columns})
        SELECT store_id, 0, {day}, 'PLACED', '', -1, 0, 0, count(*), 0, NULL
        FROM orders GROUP BY store_id, {day}""",
        f"""INSERT INTO backorder_days ({columns})
        SELECT store_id, product_id, {day}, 'PLACED', '', -1, 0, 0, count(*), 0, NULL
        FROM order_lines GROUP BY store_id, product_id, {day}""",
        f"""INSERT INTO backorder_days ({columns})
        SELECT store_id, 0, {fact_day}, 'START', '', -1, sum(units), sum(value),
               count(order_episode), count(order_episode), NULL
        FROM backorder_facts GROUP BY store_id, {fact_day}""",
        f"""INSERT INTO backorder_days ({columns})
        SELECT store_id, product_id, {fact_day}, 'START', '', -1, sum(units), sum(value),
               count(line_episode), count(line_episode), NULL
        FROM backorder_facts GROUP BY store_id, product_id, {fact_day}""",
    ]


def upgrade() -> None:
    op.add_column("orders", sa.Column("backordered_since", Utc(timezone=True), nullable=True))
    op.add_column("order_lines", sa.Column("waiting_since", sa.Text(), nullable=True))
    op.execute("UPDATE orders SET backordered_since = placed_at WHERE is_backordered")
    op.create_table(
        "backorder_facts",
        sa.Column("store_id", Id, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("product_id", sa.BigInteger(), nullable=False),
        sa.Column("order_id", sa.BigInteger(), nullable=False),
        sa.Column("line_id", sa.BigInteger(), nullable=False),
        sa.Column("at", Utc(timezone=True), nullable=False),
        sa.Column("since", Utc(timezone=True), nullable=False),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.Column("value", ordergraph.storage.tables.Money(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("line_episode", Utc(timezone=True), nullable=True),
        sa.Column("order_episode", Utc(timezone=True), nullable=True),
        sa.Column("at_placement", sa.Boolean(), nullable=False),
        sa.Column("overdue_at", Utc(timezone=True), nullable=True),
        sa.Column("wait_bucket", sa.Integer(), nullable=True),
        sa.Column("closed_at", Utc(timezone=True), nullable=True),
        sa.Column("line_closed_at", Utc(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("store_id", "seq", "n", name=op.f("pk_backorder_facts")),
    )
    for name, columns in (
        ("ix_backorder_facts_at", ["store_id", "at"]),
        ("ix_backorder_facts_product_at", ["store_id", "product_id", "at"]),
        ("ix_backorder_facts_since", ["store_id", "since"]),
        ("ix_backorder_facts_product_since", ["store_id", "product_id", "since"]),
        ("ix_backorder_facts_order", ["store_id", "order_id"]),
    ):
        op.create_index(name, "backorder_facts", columns)
    op.create_index(
        "ix_backorder_facts_due_starts",
        "backorder_facts",
        ["store_id", "at"],
        postgresql_where=sa.text("kind = 'START' AND overdue_at IS NOT NULL"),
        sqlite_where=sa.text("kind = 'START' AND overdue_at IS NOT NULL"),
    )
    op.create_index(
        "ix_order_lines_product_placed", "order_lines", ["store_id", "product_id", "placed_at"]
    )
    op.create_table(
        "backorder_days",
        sa.Column("store_id", Id, nullable=False),
        sa.Column("product_id", sa.BigInteger(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("wait_bucket", sa.Integer(), nullable=False),
        sa.Column("units", sa.BigInteger(), nullable=False),
        sa.Column("value", ordergraph.storage.tables.Money(), nullable=False),
        sa.Column("episodes", sa.BigInteger(), nullable=False),
        sa.Column("short", sa.BigInteger(), nullable=False),
        sa.Column("max_wait", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint(
            "store_id",
            "product_id",
            "day",
            "kind",
            "reason",
            "wait_bucket",
            name=op.f("pk_backorder_days"),
        ),
    )
    op.execute(BACKFILL)
    for statement in _backfill_days(op.get_bind().dialect.name):
        op.execute(statement)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(APPLY_OUTCOMES)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS og_apply_outcomes(jsonb)")
    op.drop_index("ix_order_lines_product_placed", table_name="order_lines")
    op.drop_index("ix_backorder_facts_due_starts", table_name="backorder_facts")
    for name in (
        "ix_backorder_facts_order",
        "ix_backorder_facts_product_since",
        "ix_backorder_facts_since",
        "ix_backorder_facts_product_at",
        "ix_backorder_facts_at",
    ):
        op.drop_index(name, table_name="backorder_facts")
    op.drop_table("backorder_days")
    op.drop_table("backorder_facts")
    with op.batch_alter_table("order_lines") as batch:
        batch.drop_column("waiting_since")
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("backordered_since")

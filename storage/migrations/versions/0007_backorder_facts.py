"""backorder facts: what waiting costs, and og_apply_outcomes to write them (PostgreSQL)

`backorder_facts` keeps one row per line and kind of each change that moved a line's
backordered units (domain/outcomes.py), `backorder_days` their sums per day of the
store's calendar, `backorder_ages` what waits by the day it began and the day it moved; `orders.backordered_since` and
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

import datetime as dt
from collections import defaultdict
from typing import Any
from zoneinfo import ZoneInfo

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
                                         max_wait, due, early)
        SELECT store_id, product_id, day, kind, reason, wait_bucket, units, value,
               episodes, short, max_wait, due, early
        FROM jsonb_populate_recordset(NULL::backorder_days, w->'fact_days')
        ON CONFLICT (store_id, product_id, day, kind, reason, wait_bucket) DO UPDATE SET
            units = d.units + EXCLUDED.units,
            value = d.value + EXCLUDED.value,
            episodes = d.episodes + EXCLUDED.episodes,
            short = d.short + EXCLUDED.short,
            max_wait = greatest(d.max_wait, EXCLUDED.max_wait),
            due = d.due + EXCLUDED.due,
            early = d.early + EXCLUDED.early;
    END IF;
    IF w ? 'fact_ages' THEN
        INSERT INTO backorder_ages AS a (store_id, product_id, kind, start_day, at_day,
                                         units, value, episodes)
        SELECT store_id, product_id, kind, start_day, at_day, units, value, episodes
        FROM jsonb_populate_recordset(NULL::backorder_ages, w->'fact_ages')
        ON CONFLICT (store_id, product_id, kind, start_day, at_day) DO UPDATE SET
            units = a.units + EXCLUDED.units,
            value = a.value + EXCLUDED.value,
            episodes = a.episodes + EXCLUDED.episodes;
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


Days = dict[tuple[int, int, dt.date, str], list[int]]
Ages = dict[tuple[int, int, str, dt.date, dt.date], list[int]]


def _backfill_sums() -> None:
    """The day sums and age sums of what is already there, by the store's calendar (which
    SQL cannot reach on SQLite, so in Python): the orders (and lines) placed per day, and
    the START facts of the lines waiting now."""
    bind = op.get_bind()
    zones = {
        int(store): ZoneInfo(zone)
        for store, zone in bind.execute(sa.text("SELECT id, timezone FROM stores"))
    }

    def day_of(store: int, at: Any) -> dt.date:
        if isinstance(at, str):
            at = dt.datetime.fromisoformat(at)
        if at.tzinfo is None:
            at = at.replace(tzinfo=dt.UTC)
        return at.astimezone(zones[store]).date()

    days: Days = defaultdict(lambda: [0, 0, 0, 0, 0])
    ages: Ages = defaultdict(lambda: [0, 0, 0])
    for store, at in bind.execute(sa.text("SELECT store_id, placed_at FROM orders")):
        days[(int(store), 0, day_of(int(store), at), "PLACED")][2] += 1
    lines = bind.execute(sa.text("SELECT store_id, product_id, placed_at FROM order_lines"))
    for store, product, at in lines:
        days[(int(store), int(product), day_of(int(store), at), "PLACED")][2] += 1
    starts = bind.execute(
        sa.text("SELECT store_id, product_id, at, units, value, order_episode FROM backorder_facts")
    )
    for store, product, at, units, value, order_episode in starts:
        day = day_of(int(store), at)
        for scope, opened in ((0, order_episode is not None), (int(product), True)):
            _add(days[(int(store), scope, day, "START")], units, value, opened, opened)
            _add(ages[(int(store), scope, "U", day, day)], units, value)
            if opened:
                _add(ages[(int(store), scope, "E", day, day)], 0, 0, True)
    _insert_sums(bind, days, ages)


def _add(row: list[int], units: Any, value: Any, *counted: bool) -> None:
    row[0] += int(units)
    row[1] += int(value)
    for at, flag in enumerate(counted, start=2):
        row[at] += int(flag)


def _insert_sums(bind: Any, days: Days, ages: Ages) -> None:
    if days:
        bind.execute(
            sa.text(
                "INSERT INTO backorder_days (store_id, product_id, day, kind, reason,"
                " wait_bucket, units, value, episodes, short, max_wait, due, early) VALUES"
                " (:s, :p, :d, :k, '', -1, :u, :v, :e, :sh, NULL, :due, 0)"
            ),
            [
                dict(zip(("s", "p", "d", "k", "u", "v", "e", "sh", "due"), (*k, *v), strict=True))
                for k, v in days.items()
            ],
        )
    if ages:
        bind.execute(
            sa.text(
                "INSERT INTO backorder_ages (store_id, product_id, kind, start_day, at_day,"
                " units, value, episodes) VALUES (:s, :p, :k, :sd, :ad, :u, :v, :e)"
            ),
            [
                dict(zip(("s", "p", "k", "sd", "ad", "u", "v", "e"), (*k, *v), strict=True))
                for k, v in ages.items()
            ],
        )


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
        "ix_backorder_facts_due",
        "backorder_facts",
        ["store_id", "overdue_at"],
        postgresql_where=sa.text("kind = 'START' AND overdue_at IS NOT NULL"),
        sqlite_where=sa.text("kind = 'START' AND overdue_at IS NOT NULL"),
    )
    op.create_index(
        "ix_backorder_facts_due_starts",
        "backorder_facts",
        ["store_id", "at"],
        postgresql_where=sa.text("kind = 'START' AND overdue_at IS NOT NULL"),
        sqlite_where=sa.text("kind = 'START' AND overdue_at IS NOT NULL"),
        postgresql_include=[
            "overdue_at",
            "order_episode",
            "line_episode",
            "closed_at",
            "line_closed_at",
            "product_id",
        ],
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
        sa.Column("due", sa.BigInteger(), nullable=False),
        sa.Column("early", sa.BigInteger(), nullable=False),
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
    op.create_table(
        "backorder_ages",
        sa.Column("store_id", Id, nullable=False),
        sa.Column("product_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=1), nullable=False),
        sa.Column("start_day", sa.Date(), nullable=False),
        sa.Column("at_day", sa.Date(), nullable=False),
        sa.Column("units", sa.BigInteger(), nullable=False),
        sa.Column("value", ordergraph.storage.tables.Money(), nullable=False),
        sa.Column("episodes", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "store_id",
            "product_id",
            "kind",
            "start_day",
            "at_day",
            name=op.f("pk_backorder_ages"),
        ),
    )
    op.execute(BACKFILL)
    _backfill_sums()
    if op.get_bind().dialect.name == "postgresql":
        op.execute(APPLY_OUTCOMES)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS og_apply_outcomes(jsonb)")
    op.drop_index("ix_order_lines_product_placed", table_name="order_lines")
    op.drop_index("ix_backorder_facts_due_starts", table_name="backorder_facts")
    op.drop_index("ix_backorder_facts_due", table_name="backorder_facts")
    for name in (
        "ix_backorder_facts_order",
        "ix_backorder_facts_product_since",
        "ix_backorder_facts_since",
        "ix_backorder_facts_product_at",
        "ix_backorder_facts_at",
    ):
        op.drop_index(name, table_name="backorder_facts")
    op.drop_table("backorder_ages")
    op.drop_table("backorder_days")
    op.drop_table("backorder_facts")
    # Dropped in place (SQLite 3.35 and later can): a batch copy of these tables would
    # drop and recreate them under the foreign keys of the rows that reference them.
    op.execute("ALTER TABLE order_lines DROP COLUMN waiting_since")
    op.execute("ALTER TABLE orders DROP COLUMN backordered_since")

"""the overdue totals at any instant in two probes: crossings and late sums

The overdue totals at an instant t used to be read as one probe of `overdue_points` per
overdue instant up to t (a year of requested ship dates: about 365 probes, for every
`backlog(asOf:)` and every trend). They now come from two running sums kept as the
changes are written:

- `overdue_crossings` (store_id, overdue_at): for each overdue instant d with orders,
  the totals of the orders due then as they stood just before d (changes made before
  d), summed over every overdue instant up to d. It is written by the first tally point
  at or after d, from `overdue_totals` as it stood before that point's change.
- `tally_points.late_*`: the sum of every change made so far to orders already overdue
  (a change at or after its order's overdue instant).

So overdue(t) = the newest crossing row at or before t + the late sums of the newest
point at or before t + the current totals of the instants passed since the store's
newest point (not yet crossed: nothing has changed them since). Both sums are filled
here from the existing `overdue_points`, as the writes would have made them.
`og_apply` (PostgreSQL) writes them from now on; storage/history.py does on SQLite.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ordergraph.storage.migrate import earlier_migration

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Utc = sa.DateTime(timezone=True)  # UtcDateTime in storage/tables.py: naive UTC text on SQLite

NAMES = (
    "backlog_orders",
    "backlog_units",
    "backlog_value",
    "backorder_orders",
    "backorder_units",
    "backorder_value",
)
_TALLY = ", ".join(NAMES)
_LATE = ", ".join(f"late_{name}" for name in NAMES)
_NONZERO = " OR ".join(f"{{x}}.{name} <> 0" for name in NAMES)

# The late sums of every point: the changes to overdue_points at or after their instant
# (a point's delta is its totals minus the instant's previous point's), summed per
# change (seq), then run over the store's points in order.
FILL_LATE = f"""
WITH deltas AS (
    SELECT store_id, seq, at, overdue_at,
           {", ".join(f"{n} - coalesce(lag({n}) OVER w, 0) AS {n}" for n in NAMES)}
    FROM overdue_points
    WHERE store_id = {{store}}
    WINDOW w AS (PARTITION BY store_id, overdue_at ORDER BY at, seq)
), late AS (
    SELECT store_id, seq, {", ".join(f"sum({n}) AS {n}" for n in NAMES)}
    FROM deltas WHERE at >= overdue_at GROUP BY store_id, seq
), running AS (
    SELECT p.store_id, p.seq,
           {
    ", ".join(
        f"sum(coalesce(l.{n}, 0)) OVER (PARTITION BY p.store_id ORDER BY p.at, p.seq "
        f"ROWS UNBOUNDED PRECEDING) AS {n}"
        for n in NAMES
    )
}
    FROM tally_points p
    LEFT JOIN late l ON l.store_id = p.store_id AND l.seq = p.seq
    WHERE p.store_id = {{store}}
)
UPDATE tally_points
SET {", ".join(f"late_{n} = r.{n}" for n in NAMES)}
FROM running r
WHERE tally_points.store_id = {{store}} AND tally_points.store_id = r.store_id
  AND tally_points.seq = r.seq
  AND ({_NONZERO.format(x="r")})
"""

# The crossing rows: per overdue instant d passed by the store's newest point, its newest
# point before d, when not all zero, run over the store's instants in order.
FILL_CROSSINGS = f"""
WITH newest AS (
    SELECT store_id, max(at) AS at FROM tally_points WHERE store_id = {{store}}
    GROUP BY store_id
), before AS (
    SELECT o.store_id, o.overdue_at, {", ".join(f"o.{n}" for n in NAMES)},
           row_number() OVER (PARTITION BY o.store_id, o.overdue_at
                              ORDER BY o.at DESC, o.seq DESC) AS newest_first
    FROM overdue_points o JOIN newest ON newest.store_id = o.store_id
    WHERE o.store_id = {{store}} AND o.overdue_at <= newest.at AND o.at < o.overdue_at
)
INSERT INTO overdue_crossings (store_id, overdue_at, {_TALLY})
SELECT store_id, overdue_at,
       {
    ", ".join(
        f"sum({n}) OVER (PARTITION BY store_id ORDER BY overdue_at ROWS UNBOUNDED PRECEDING)"
        for n in NAMES
    )
}
FROM before
WHERE newest_first = 1 AND ({_NONZERO.format(x="before")})
"""


def fill_statements(store_id: int) -> list[str]:
    """The statements that fill a store's crossings and late sums from its
    `overdue_points` (also for a bulk load that wrote the points directly,
    bench/figures_load.py). The store's crossing rows must not exist yet, and its late
    sums must be zero. Each names the store on every table it reads or writes, so that
    on Citus each goes to the store's shard alone."""
    store = int(store_id)
    return [FILL_LATE.format(store=store), FILL_CROSSINGS.format(store=store)]


def fill(connection: sa.Connection, store_id: int | None = None) -> None:
    """Fill one store's, or (None) every store's, one store at a time."""
    if store_id is None:
        stores = connection.execute(sa.text("SELECT id FROM stores ORDER BY id")).scalars()
    else:
        stores = iter([store_id])
    for store in list(stores):
        for statement in fill_statements(store):
            connection.execute(sa.text(statement))


def apply_before() -> str:
    """og_apply as migrations 0008 and 0010 left it."""
    text: str = earlier_migration("0010")._named(earlier_migration("0008")._apply_for_citus())
    return text


_PREVIOUS = """        SELECT * INTO prev FROM tally_points
        WHERE store_id = s ORDER BY at DESC, seq DESC LIMIT 1;
"""

# Before this change moves overdue_totals: the instants passed since the previous point.
_CROSS = f"""        INSERT INTO overdue_crossings (store_id, overdue_at, {_TALLY})
        SELECT s, o.overdue_at,
               {
    ", ".join(
        f"coalesce(c.{n}, 0) + sum(o.{n}) OVER (ORDER BY o.overdue_at ROWS UNBOUNDED PRECEDING)"
        for n in NAMES
    )
}
        FROM overdue_totals o
        LEFT JOIN LATERAL (SELECT * FROM overdue_crossings x WHERE x.store_id = s
                           ORDER BY x.overdue_at DESC LIMIT 1) c ON true
        WHERE o.store_id = s AND o.overdue_at <= point_at
          AND o.overdue_at > coalesce(prev.at, '-infinity'::timestamptz)
          AND ({_NONZERO.format(x="o")});
"""

_POINT = f"""        INSERT INTO tally_points (store_id, seq, at, oldest_backorder_placed_at, {_TALLY})
        SELECT s, (t->>'seq')::bigint, (t->>'at')::timestamptz, oldest,
               coalesce(prev.backlog_orders, 0) + d.backlog_orders,
               coalesce(prev.backlog_units, 0) + d.backlog_units,
               coalesce(prev.backlog_value, 0) + d.backlog_value,
               coalesce(prev.backorder_orders, 0) + d.backorder_orders,
               coalesce(prev.backorder_units, 0) + d.backorder_units,
               coalesce(prev.backorder_value, 0) + d.backorder_value
        FROM jsonb_populate_record(NULL::tally_points, t->'delta') d;
"""

_POINT_WITH_LATE = f"""        INSERT INTO tally_points (store_id, seq, at, oldest_backorder_placed_at, {_TALLY},
                                  {_LATE})
        SELECT s, (t->>'seq')::bigint, (t->>'at')::timestamptz, oldest,
               {", ".join(f"coalesce(prev.{n}, 0) + d.{n}" for n in NAMES)},
               {", ".join(f"coalesce(prev.late_{n}, 0) + coalesce(l.{n}, 0)" for n in NAMES)}
        FROM jsonb_populate_record(NULL::tally_points, t->'delta') d,
             jsonb_populate_record(NULL::tally_points, coalesce(t->'late', '{{}}'::jsonb)) l;
"""

_DECLARED = "    oldest timestamptz;\n"
_POINT_AT = "    point_at timestamptz := (w->'tally'->>'at')::timestamptz;\n"


def apply_after() -> str:
    before = apply_before()
    for piece in (_PREVIOUS, _POINT, _DECLARED):
        assert before.count(piece) == 1, piece
    return (
        before.replace(_PREVIOUS, _PREVIOUS + _CROSS)
        .replace(_POINT, _POINT_WITH_LATE)
        .replace(_DECLARED, _DECLARED + _POINT_AT)
    )


def upgrade() -> None:
    op.create_table(
        "overdue_crossings",
        sa.Column("store_id", Id, nullable=False),
        sa.Column("overdue_at", Utc, nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in NAMES),
        sa.ForeignKeyConstraint(
            ["store_id"], ["stores.id"], name=op.f("fk_overdue_crossings_store_id_stores")
        ),
        sa.PrimaryKeyConstraint("store_id", "overdue_at", name=op.f("pk_overdue_crossings")),
    )
    with op.batch_alter_table("tally_points") as batch:
        for name in NAMES:
            batch.add_column(
                sa.Column(f"late_{name}", sa.BigInteger(), nullable=False, server_default="0")
            )
    fill(op.get_bind())
    if op.get_bind().dialect.name == "postgresql":
        op.execute(apply_after())


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(apply_before())
    with op.batch_alter_table("tally_points") as batch:
        for name in NAMES:
            batch.drop_column(f"late_{name}")
    op.drop_table("overdue_crossings")

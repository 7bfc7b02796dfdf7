"""og_write: a unit's writes in one call, its document parsed once (PostgreSQL)

A unit's commit sent its writes' document to `og_apply`, and again to
`og_apply_receipts`, `og_apply_outcomes` and `og_apply_alarm` when it had rows for
them: each call a statement of its own in the one simple query, and the document (a few
kilobytes of JSON) read and parsed once per call. A placeOrder had two. `og_write`
takes the document once and calls the four in the same order, each when the document
has its keys, as storage/pg_unit.py chose them before.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 00:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

WRITE = """
CREATE OR REPLACE FUNCTION og_write(w jsonb) RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM og_apply(w);
    IF w ?| ARRAY['new_receipts', 'receipts'] THEN
        PERFORM og_apply_receipts(w);
    END IF;
    -- (closings and age sums come only with facts, and facts only with day sums)
    IF w ?| ARRAY['facts', 'outcome_orders', 'outcome_lines', 'fact_days'] THEN
        PERFORM og_apply_outcomes(w);
    END IF;
    IF w ? 'alarm' THEN
        PERFORM og_apply_alarm(w);
    END IF;
END
$fn$;
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(WRITE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION og_write(jsonb)")

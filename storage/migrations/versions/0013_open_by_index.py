"""og_open reads what it is asked by index, planned once per connection (PostgreSQL)

`og_open` read a unit's products with one condition, `sku = ANY(skus) OR id =
ANY(product_ids) OR id IN (the products of the orders' lines)`: no index serves an OR
of three sets, so the store's products were scanned, every unit, under the store's
lock (a store of 2,000 products: about 0.3 ms per unit; of 20,000, ten times that).
And the one statement that read the store, the idempotency record, the products, the
orders and their lines was planned anew at every call: its generic plan (a scan) cost
more than a plan for the call's values, so PostgreSQL kept making those, about 0.2 ms
of planning per unit.

Now each read is its own statement with an index to follow, and the orders and lines
are read only when the unit names orders: the products' ids are gathered from the
skus (the unique (store_id, sku) index), the ids given and the orders' lines, then the
products are read by primary key. Each statement's generic plan is as cheap as a
custom one, so a connection plans each once. The document returned holds the same rows.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 23:40:00.000000
"""

from __future__ import annotations

from alembic import op

from ordergraph.storage.migrate import earlier_migration

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

OPEN = """
CREATE OR REPLACE FUNCTION og_open(
    s bigint, op text, k text, skus text[], product_ids bigint[], order_ids bigint[]
) RETURNS jsonb
LANGUAGE plpgsql AS $fn$
DECLARE
    wanted bigint[] := coalesce(product_ids, '{}');
    ids bigint[];
    found_orders jsonb := '[]'::jsonb;
    found_lines jsonb := '[]'::jsonb;
    found_products jsonb := '[]'::jsonb;
BEGIN
    -- NO KEY UPDATE strength, taken by a write (migration 0011): units on the store
    -- wait for each other, while inserts that only reference the store go on.
    UPDATE stores SET next_id = next_id WHERE id = s;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF cardinality(order_ids) > 0 THEN
        SELECT coalesce(jsonb_agg(to_jsonb(o)), '[]'::jsonb) INTO found_orders
        FROM orders o WHERE o.store_id = s AND o.id = ANY(order_ids);
        SELECT coalesce(jsonb_agg(to_jsonb(l)), '[]'::jsonb), array_agg(l.product_id)
        INTO found_lines, ids
        FROM order_lines l WHERE l.store_id = s AND l.order_id = ANY(order_ids);
        wanted := wanted || coalesce(ids, '{}');
    END IF;
    IF cardinality(skus) > 0 THEN
        SELECT array_agg(p.id) INTO ids
        FROM products p WHERE p.store_id = s AND p.sku = ANY(skus);
        wanted := wanted || coalesce(ids, '{}');
    END IF;
    IF cardinality(wanted) > 0 THEN
        SELECT coalesce(jsonb_agg(to_jsonb(p)), '[]'::jsonb) INTO found_products
        FROM products p WHERE p.store_id = s AND p.id = ANY(wanted);
    END IF;
    RETURN jsonb_build_object(
        'store', (SELECT to_jsonb(x) FROM stores x WHERE x.id = s),
        'idempotency', (SELECT to_jsonb(i) FROM idempotency_keys i
                        WHERE i.store_id = s AND i.operation = op AND i.key = k),
        'products', found_products,
        'orders', found_orders,
        'lines', found_lines
    );
END
$fn$;
"""


def _before() -> str:
    """og_open as migration 0011 left it."""
    module = earlier_migration("0011")
    text: str = module._open_of_0003().replace(module._READ_LOCK, module._WRITE_LOCK)
    return text


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(OPEN)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_before())

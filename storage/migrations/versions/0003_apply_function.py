"""og_open and og_apply: a store change's reads and writes in one call each (PostgreSQL)

og_open takes the store's lock, then reads (each statement of the function sees what
committed before the lock was granted) the store row and what the unit will read first,
as one JSON document. The unit of work (storage/uow.py) then decides every row in
Python, through the domain services, and sends them as one JSON document to og_apply,
which only carries the decisions out, in the order the SQLite path runs its
statements: products, orders, lines, events, the figures' running totals, idempotency
records, the wake-up and the store's counters. It decides nothing: the running totals
are the previous point plus the change the unit computed (storage/history.py does the
same on SQLite).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 12:30:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_TALLY = (
    "backlog_orders, backlog_units, backlog_value, "
    "backorder_orders, backorder_units, backorder_value"
)

OPEN = """
CREATE OR REPLACE FUNCTION og_open(
    s bigint, op text, k text, skus text[], product_ids bigint[], order_ids bigint[]
) RETURNS jsonb
LANGUAGE plpgsql AS $fn$
BEGIN
    -- NO KEY UPDATE: units on the store wait for each other, while inserts that only
    -- reference the store (their foreign-key checks take KEY SHARE) go on.
    PERFORM 1 FROM stores WHERE id = s FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    RETURN jsonb_build_object(
        'store', (SELECT to_jsonb(x) FROM stores x WHERE x.id = s),
        'idempotency', (SELECT to_jsonb(i) FROM idempotency_keys i
                        WHERE i.store_id = s AND i.operation = op AND i.key = k),
        'products', (SELECT coalesce(jsonb_agg(to_jsonb(p)), '[]'::jsonb) FROM products p
                     WHERE p.store_id = s
                       AND (p.sku = ANY(skus) OR p.id = ANY(product_ids)
                            OR p.id IN (SELECT l.product_id FROM order_lines l
                                        WHERE l.store_id = s AND l.order_id = ANY(order_ids)))),
        'orders', (SELECT coalesce(jsonb_agg(to_jsonb(o)), '[]'::jsonb) FROM orders o
                   WHERE o.store_id = s AND o.id = ANY(order_ids)),
        'lines', (SELECT coalesce(jsonb_agg(to_jsonb(l)), '[]'::jsonb) FROM order_lines l
                  WHERE l.store_id = s AND l.order_id = ANY(order_ids))
    );
END
$fn$;
"""

APPLY = f"""
CREATE OR REPLACE FUNCTION og_apply(w jsonb) RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE
    s bigint := (w->>'store_id')::bigint;
    t jsonb := w->'tally';
    prev tally_points%ROWTYPE;
    oldest timestamptz;
BEGIN
    IF w ? 'new_products' THEN
        INSERT INTO products (store_id, id, sku, title, price, backorder_policy,
                              backorder_limit, restock_date, on_hand, allocated,
                              backordered, created_at)
        SELECT store_id, id, sku, title, price, backorder_policy, backorder_limit,
               restock_date, on_hand, allocated, backordered, created_at
        FROM jsonb_populate_recordset(NULL::products, w->'new_products');
    END IF;
    IF w ? 'products' THEN
        UPDATE products p
        SET title = x.title, price = x.price, backorder_policy = x.backorder_policy,
            backorder_limit = x.backorder_limit, restock_date = x.restock_date,
            on_hand = x.on_hand, allocated = x.allocated, backordered = x.backordered
        FROM jsonb_populate_recordset(NULL::products, w->'products') x
        WHERE p.store_id = x.store_id AND p.id = x.id;
    END IF;
    IF w ? 'new_orders' THEN
        INSERT INTO orders (store_id, id, number, external_id, customer_ref, placed_at,
                            requested_ship_date, overdue_at, status, stock_status,
                            in_backlog, is_backordered, overdue_notified)
        SELECT store_id, id, number, external_id, customer_ref, placed_at,
               requested_ship_date, overdue_at, status, stock_status, in_backlog,
               is_backordered, overdue_notified
        FROM jsonb_populate_recordset(NULL::orders, w->'new_orders');
        INSERT INTO order_lines (store_id, id, order_id, product_id, sku, quantity,
                                 unit_price, allocated, backordered, shipped, cancelled,
                                 placed_at, order_number)
        SELECT store_id, id, order_id, product_id, sku, quantity, unit_price, allocated,
               backordered, shipped, cancelled, placed_at, order_number
        FROM jsonb_populate_recordset(NULL::order_lines, w->'new_lines');
    END IF;
    IF w ? 'orders' THEN
        UPDATE orders o
        SET status = x.status, stock_status = x.stock_status, in_backlog = x.in_backlog,
            is_backordered = x.is_backordered, overdue_notified = x.overdue_notified
        FROM jsonb_populate_recordset(NULL::orders, w->'orders') x
        WHERE o.store_id = x.store_id AND o.id = x.id;
    END IF;
    IF w ? 'lines' THEN
        UPDATE order_lines l
        SET allocated = x.allocated, backordered = x.backordered, shipped = x.shipped,
            cancelled = x.cancelled
        FROM jsonb_populate_recordset(NULL::order_lines, w->'lines') x
        WHERE l.store_id = x.store_id AND l.id = x.id;
    END IF;
    IF w ? 'events' THEN
        INSERT INTO events (store_id, seq, stream, type, occurred_at, order_id,
                            product_id, data)
        SELECT store_id, seq, stream, type, occurred_at, order_id, product_id, data
        FROM jsonb_populate_recordset(NULL::events, w->'events');
    END IF;
    IF t IS NOT NULL THEN
        SELECT * INTO prev FROM tally_points
        WHERE store_id = s ORDER BY at DESC, seq DESC LIMIT 1;
        oldest := prev.oldest_backorder_placed_at;
        IF (t->>'recount_oldest')::boolean THEN
            SELECT min(placed_at) INTO oldest FROM orders
            WHERE store_id = s AND is_backordered;
        END IF;
        INSERT INTO tally_points (store_id, seq, at, oldest_backorder_placed_at, {_TALLY})
        SELECT s, (t->>'seq')::bigint, (t->>'at')::timestamptz, oldest,
               coalesce(prev.backlog_orders, 0) + d.backlog_orders,
               coalesce(prev.backlog_units, 0) + d.backlog_units,
               coalesce(prev.backlog_value, 0) + d.backlog_value,
               coalesce(prev.backorder_orders, 0) + d.backorder_orders,
               coalesce(prev.backorder_units, 0) + d.backorder_units,
               coalesce(prev.backorder_value, 0) + d.backorder_value
        FROM jsonb_populate_record(NULL::tally_points, t->'delta') d;
        IF t ? 'overdue' THEN
            WITH moved AS (
                INSERT INTO overdue_totals AS o (store_id, overdue_at, {_TALLY})
                SELECT s, x.overdue_at, x.backlog_orders, x.backlog_units, x.backlog_value,
                       x.backorder_orders, x.backorder_units, x.backorder_value
                FROM jsonb_populate_recordset(NULL::overdue_totals, t->'overdue') x
                ON CONFLICT (store_id, overdue_at) DO UPDATE SET
                    backlog_orders = o.backlog_orders + EXCLUDED.backlog_orders,
                    backlog_units = o.backlog_units + EXCLUDED.backlog_units,
                    backlog_value = o.backlog_value + EXCLUDED.backlog_value,
                    backorder_orders = o.backorder_orders + EXCLUDED.backorder_orders,
                    backorder_units = o.backorder_units + EXCLUDED.backorder_units,
                    backorder_value = o.backorder_value + EXCLUDED.backorder_value
                RETURNING o.*
            )
            INSERT INTO overdue_points (store_id, overdue_at, seq, at, {_TALLY})
            SELECT store_id, overdue_at, (t->>'seq')::bigint, (t->>'at')::timestamptz,
                   {_TALLY}
            FROM moved;
        END IF;
    END IF;
    IF w ? 'forget_before' THEN
        DELETE FROM idempotency_keys
        WHERE store_id = s AND created_at < (w->>'forget_before')::timestamptz;
    END IF;
    IF w ? 'remember' THEN
        INSERT INTO idempotency_keys (store_id, operation, key, request_hash, result,
                                      created_at)
        SELECT store_id, operation, key, request_hash, result, created_at
        FROM jsonb_populate_recordset(NULL::idempotency_keys, w->'remember');
    END IF;
    IF w ? 'notify' THEN
        PERFORM pg_notify(w->'notify'->>'channel', w->'notify'->>'payload');
    END IF;
    IF w ? 'counters' THEN
        UPDATE stores SET
            next_id = (w->'counters'->>'next_id')::bigint,
            next_order_number = (w->'counters'->>'next_order_number')::bigint,
            last_event_seq = (w->'counters'->>'last_event_seq')::bigint,
            last_event_at = coalesce((w->'counters'->>'last_event_at')::timestamptz,
                                     last_event_at)
        WHERE id = s;
    END IF;
END
$fn$;
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(OPEN)
        op.execute(APPLY)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS og_apply(jsonb)")
        op.execute(
            "DROP FUNCTION IF EXISTS og_open(bigint, text, text, text[], bigint[], bigint[])"
        )

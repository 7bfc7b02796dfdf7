"""The bulk load's SQL: INSERT ... SELECT statements that write exactly the rows the
application writes for a history of order lives (see bench/figures_load.py)."""

from __future__ import annotations

SQL_FUNCTIONS = [
    # datetime.isoformat() of a UTC instant, as the event payloads show it.
    """CREATE FUNCTION pg_temp.iso(t timestamptz) RETURNS text LANGUAGE sql STABLE AS $$
        SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
            || CASE WHEN date_part('microseconds', t)::bigint % 1000000 <> 0
                    THEN to_char(t AT TIME ZONE 'UTC', '.US') ELSE '' END
            || '+00:00' $$""",
    # A JSON string or null.
    """CREATE FUNCTION pg_temp.str(v text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
        SELECT coalesce('"' || v || '"', 'null') $$""",
    # Order.snapshot() of a one-line order as JSON text, left open for more keys. Built as
    # text and parsed once: much faster than jsonb_build_object. The values need no
    # escaping (numbers, SKUs, enum names, ISO dates).
    """CREATE FUNCTION pg_temp.snap(
            p_number bigint, p_placed timestamptz, p_rsd date, p_overdue timestamptz,
            p_status text, p_stock text, p_line bigint, p_product bigint, p_sku text,
            p_qty int, p_price text, p_al int, p_bo int, p_sh int, p_ca int)
            RETURNS text LANGUAGE sql STABLE AS $$
        SELECT '{"number": ' || p_number
            || ', "placedAt": ' || pg_temp.str(pg_temp.iso(p_placed))
            || ', "requestedShipDate": ' || pg_temp.str(to_char(p_rsd, 'YYYY-MM-DD'))
            || ', "overdueAt": ' || pg_temp.str(pg_temp.iso(p_overdue))
            || ', "status": ' || pg_temp.str(p_status)
            || ', "stockStatus": ' || pg_temp.str(p_stock)
            || ', "lines": [{"id": ' || p_line || ', "productId": ' || p_product
            || ', "sku": ' || pg_temp.str(p_sku) || ', "quantity": ' || p_qty
            || ', "unitPrice": ' || pg_temp.str(p_price) || ', "allocated": ' || p_al
            || ', "backordered": ' || p_bo || ', "shipped": ' || p_sh
            || ', "cancelled": ' || p_ca || '}]' $$""",
    """CREATE TEMP TABLE life (
        number bigint PRIMARY KEY, order_id bigint, line_id bigint, product_id bigint,
        qty int, placed_at timestamptz, rsd date, overdue_at timestamptz,
        fill_at timestamptz, cancel_at timestamptz, cancel_reason text,
        ship_at timestamptz, sweep_at timestamptz, fill_bucket int)""",
    """CREATE TEMP TABLE prod (
        id bigint PRIMARY KEY, sku text, title text, price_units bigint, price_text text,
        policy text, stocked boolean, initial bigint, created_at timestamptz)""",
    # The events each kind of change writes, in order: (kind, slot, stream, type, which
    # products). 0 place, 1 fill (a receipt of exactly the order's units), 2 cancel,
    # 3 ship, 4 overdue sweep.
    """CREATE TEMP TABLE slots AS SELECT * FROM (VALUES
        (0, 0, 'order', 'PLACED', 'any'),
        (0, 1, 'order', 'BACKORDERED', 'zero'),
        (0, 1, 'inventory', 'ALLOCATED', 'stocked'),
        (1, 0, 'inventory', 'RECEIVED', 'any'),
        (1, 1, 'order', 'BACKORDER_FILLED', 'any'),
        (1, 2, 'inventory', 'ALLOCATED', 'any'),
        (2, 0, 'order', 'CANCELLED', 'any'),
        (2, 1, 'inventory', 'RELEASED', 'stocked'),
        (3, 0, 'order', 'SHIPPED', 'any'),
        (3, 1, 'inventory', 'SHIPPED', 'any'),
        (4, 0, 'order', 'OVERDUE', 'any')) v(kind, slot, stream, type, products)""",
]

# Every change: its event positions, how it moves the tallies, and the product's stock
# right after it. Setup events take the first positions.
CHANGES_SQL = """
CREATE TEMP TABLE chg AS
SELECT s.*, s.seq_last - s.n_events + 1 AS seq_first,
       s.initial + sum(s.d_on) OVER w AS on_after,
       sum(s.d_al) OVER w AS al_after,
       sum(s.d_bo) OVER w AS bo_after
FROM (
    SELECT k.*, {base}::bigint
               + sum(k.n_events) OVER (ORDER BY k.at, k.kind, k.number ROWS UNBOUNDED PRECEDING)
               AS seq_last
    FROM (
        SELECT c.number, c.kind, c.at, l.product_id, l.qty, l.overdue_at, p.stocked, p.initial,
               l.qty * p.price_units AS val,
               CASE c.kind WHEN 0 THEN 2 WHEN 1 THEN 3 WHEN 3 THEN 2 WHEN 4 THEN 1
                           ELSE CASE WHEN p.stocked THEN 2 ELSE 1 END END AS n_events,
               CASE c.kind WHEN 0 THEN 1 WHEN 2 THEN -1 WHEN 3 THEN -1 ELSE 0 END AS bl,
               CASE WHEN p.stocked THEN 0 WHEN c.kind = 0 THEN 1
                    WHEN c.kind IN (1, 2) THEN -1 ELSE 0 END AS bo,
               CASE c.kind WHEN 1 THEN l.qty WHEN 3 THEN -l.qty ELSE 0 END AS d_on,
               CASE WHEN c.kind = 1 OR (c.kind = 0 AND p.stocked) THEN l.qty
                    WHEN c.kind = 3 OR (c.kind = 2 AND p.stocked) THEN -l.qty
                    ELSE 0 END AS d_al,
               CASE WHEN p.stocked THEN 0 WHEN c.kind = 0 THEN l.qty
                    WHEN c.kind IN (1, 2) THEN -l.qty ELSE 0 END AS d_bo
        FROM (
            SELECT number, 0 AS kind, placed_at AS at FROM life
            UNION ALL SELECT number, 1, fill_at FROM life WHERE fill_at IS NOT NULL
            UNION ALL SELECT number, 2, cancel_at FROM life WHERE cancel_at IS NOT NULL
            UNION ALL SELECT number, 3, ship_at FROM life WHERE ship_at IS NOT NULL
            UNION ALL SELECT number, 4, sweep_at FROM life WHERE sweep_at IS NOT NULL
        ) c
        JOIN life l ON l.number = c.number
        JOIN prod p ON p.id = l.product_id
    ) k
) s
WINDOW w AS (PARTITION BY s.product_id ORDER BY s.seq_last ROWS UNBOUNDED PRECEDING)
"""

EVENTS_SQL = """
INSERT INTO events (store_id, seq, stream, type, occurred_at, order_id, product_id, data)
SELECT {store}, c.seq_first + s.slot, s.stream, s.type, c.at,
       CASE WHEN s.stream = 'order' THEN l.order_id END,
       CASE WHEN s.stream = 'inventory' THEN l.product_id END,
       (CASE WHEN s.stream = 'order' THEN
            pg_temp.snap(l.number, l.placed_at, l.rsd, l.overdue_at, o.status, o.stock,
                         l.line_id, l.product_id, p.sku, l.qty, p.price_text,
                         o.al, o.bo, o.sh, o.ca)
            || CASE s.type
                   WHEN 'CANCELLED' THEN ', "reason": ' || pg_temp.str(l.cancel_reason)
                        || ', "cancelled": {{"' || l.line_id || '": ' || l.qty || '}}'
                   WHEN 'SHIPPED' THEN ', "trackingNumber": null, "shipped": {{"'
                        || l.line_id || '": ' || l.qty || '}}'
                   ELSE '' END
       ELSE
            '{{"sku": ' || pg_temp.str(p.sku) || ', "onHand": ' || c.on_after
            || ', "allocated": ' || i.al || ', "available": ' || c.on_after - i.al
            || ', "backordered": ' || i.bo || ', "quantity": ' || l.qty
            || CASE WHEN s.type = 'RECEIVED' THEN ', "note": null'
                    WHEN s.type = 'ALLOCATED' AND c.kind = 1 THEN ''
                    ELSE ', "orderId": ' || l.order_id END
       END || '}}')::jsonb
FROM (SELECT * FROM chg ORDER BY seq_last) c
JOIN life l ON l.number = c.number
JOIN prod p ON p.id = l.product_id
JOIN slots s ON s.kind = c.kind
    AND (s.products = 'any' OR (s.products = 'stocked') = c.stocked)
CROSS JOIN LATERAL (
    -- the order's line right after the change, and the status it gives the order
    SELECT a.*,
           CASE WHEN a.al + a.bo > 0 THEN 'OPEN'
                WHEN a.sh > 0 THEN 'SHIPPED' ELSE 'CANCELLED' END AS status,
           CASE WHEN a.al + a.bo = 0 THEN NULL
                WHEN a.bo = 0 THEN 'ALLOCATED' ELSE 'BACKORDERED' END AS stock
    FROM (
        SELECT CASE WHEN c.kind = 1 OR (c.kind IN (0, 4) AND w.waiting = 0)
                    THEN l.qty ELSE 0 END AS al,
               w.waiting AS bo,
               CASE WHEN c.kind = 3 THEN l.qty ELSE 0 END AS sh,
               CASE WHEN c.kind = 2 THEN l.qty ELSE 0 END AS ca
        FROM (SELECT CASE WHEN c.kind IN (0, 4) AND NOT p.stocked
                           AND NOT coalesce(l.fill_at <= c.at, false)
                          THEN l.qty ELSE 0 END AS waiting) w
    ) a
) o
CROSS JOIN LATERAL (
    -- the product's stock as the event shows it; a receipt comes before its fill
    SELECT CASE WHEN s.type = 'RECEIVED' THEN c.al_after - l.qty ELSE c.al_after END AS al,
           CASE WHEN s.type = 'RECEIVED' THEN c.bo_after + l.qty ELSE c.bo_after END AS bo
) i
"""

# Running totals after each change that moved them. The oldest waiting order after
# change s: waiting orders start waiting when placed and stop once (filled or
# cancelled); walking them in placement order, the oldest still waiting is the first
# whose stop comes after s, which is always a "record" (an order that stops later than
# every order placed before it). Count the records stopped by s; the next record, if
# already placed by s, is the oldest.
TALLY_SQL = """
WITH waits AS (
    SELECT number,
           min(seq_last) FILTER (WHERE kind = 0) AS place_seq,
           coalesce(min(seq_last) FILTER (WHERE kind IN (1, 2)), {no_end}) AS end_seq
    FROM chg WHERE NOT stocked GROUP BY number
), records AS (
    SELECT row_number() OVER (ORDER BY number) AS rk, number, place_seq, end_seq
    FROM (
        SELECT *, max(end_seq) OVER (ORDER BY number ROWS BETWEEN UNBOUNDED PRECEDING
                                     AND 1 PRECEDING) AS stopped_before
        FROM waits
    ) y
    WHERE stopped_before IS NULL OR end_seq > stopped_before
), marks AS (
    SELECT seq_last AS seq, 0 AS is_end FROM chg WHERE kind < 4
    UNION ALL SELECT end_seq, 1 FROM records WHERE end_seq < {no_end}
), counted AS (
    SELECT seq, is_end,
           sum(is_end) OVER (ORDER BY seq, is_end DESC ROWS UNBOUNDED PRECEDING) AS stopped
    FROM marks
), oldest AS (
    SELECT m.seq, CASE WHEN r.place_seq <= m.seq THEN l.placed_at END AS placed_at
    FROM counted m
    LEFT JOIN records r ON r.rk = m.stopped + 1
    LEFT JOIN life l ON l.number = r.number
    WHERE m.is_end = 0
), totals AS (
    SELECT seq_last, at,
           sum(bl) OVER w AS backlog_orders, sum(bl * qty) OVER w AS backlog_units,
           sum(bl * val) OVER w AS backlog_value,
           sum(bo) OVER w AS backorder_orders, sum(bo * qty) OVER w AS backorder_units,
           sum(bo * val) OVER w AS backorder_value
    FROM chg WHERE kind < 4
    WINDOW w AS (ORDER BY seq_last ROWS UNBOUNDED PRECEDING)
)
INSERT INTO tally_points (store_id, seq, at, backlog_orders, backlog_units, backlog_value,
                          backorder_orders, backorder_units, backorder_value,
                          oldest_backorder_placed_at)
SELECT {store}, t.seq_last, t.at, t.backlog_orders, t.backlog_units, t.backlog_value,
       t.backorder_orders, t.backorder_units, t.backorder_value, o.placed_at
FROM totals t JOIN oldest o ON o.seq = t.seq_last
ORDER BY t.seq_last
"""

# Per overdue instant, the totals of its orders after each change to one of them.
OVERDUE_POINTS_SQL = """
INSERT INTO overdue_points (store_id, overdue_at, seq, at, backlog_orders, backlog_units,
                            backlog_value, backorder_orders, backorder_units, backorder_value)
SELECT {store}, overdue_at, seq_last, at,
       sum(bl) OVER w, sum(bl * qty) OVER w, sum(bl * val) OVER w,
       sum(bo) OVER w, sum(bo * qty) OVER w, sum(bo * val) OVER w
FROM chg WHERE kind < 4 AND overdue_at IS NOT NULL
WINDOW w AS (PARTITION BY overdue_at ORDER BY seq_last ROWS UNBOUNDED PRECEDING)
ORDER BY seq_last
"""

OVERDUE_TOTALS_SQL = """
INSERT INTO overdue_totals (store_id, overdue_at, backlog_orders, backlog_units, backlog_value,
                            backorder_orders, backorder_units, backorder_value)
SELECT DISTINCT ON (overdue_at) store_id, overdue_at, backlog_orders, backlog_units,
       backlog_value, backorder_orders, backorder_units, backorder_value
FROM overdue_points WHERE store_id = {store}
ORDER BY overdue_at, seq DESC
"""

# What waiting costs (domain/outcomes.py): a zero-stock order's line waits from its
# placement (a START opening the line's and the order's episodes, with the order's overdue
# instant) until a receipt fills it or the customer cancels (a FILL or CANCEL closing both,
# since = placement). One fact per change, keyed by the change's last event position; the
# fill's wait bucket is computed in Python (domain.outcomes.wait_bucket).
FACTS_SQL = """
INSERT INTO backorder_facts (store_id, seq, n, kind, product_id, order_id, line_id, at, since,
                             units, value, reason, line_episode, order_episode, at_placement,
                             overdue_at, wait_bucket, closed_at, line_closed_at)
SELECT {store}, c.seq_last, 0,
       CASE c.kind WHEN 0 THEN 'START' WHEN 1 THEN 'FILL' ELSE 'CANCEL' END,
       l.product_id, l.order_id, l.line_id, c.at, l.placed_at, l.qty, c.val,
       CASE WHEN c.kind = 2 THEN l.cancel_reason END,
       l.placed_at, l.placed_at, c.kind = 0,
       l.overdue_at,
       CASE WHEN c.kind = 1 THEN l.fill_bucket END,
       CASE WHEN c.kind = 0 THEN coalesce(l.fill_at, l.cancel_at) END,
       CASE WHEN c.kind = 0 THEN coalesce(l.fill_at, l.cancel_at) END
FROM chg c JOIN life l ON l.number = c.number
WHERE NOT c.stocked AND c.kind IN (0, 1, 2)
ORDER BY c.seq_last
"""

# The facts summed per day of the store's calendar ({tz}), for the store (product 0: its
# order episodes) and per product (its line episodes; one line per order here, so the
# same counts), and the orders (a product's: lines) placed per day; and what waits by
# the day it began and the day it moved (units by `since`, episodes by their opening), as
# the unit of work adds them up.
DAYS_SQL = """
INSERT INTO backorder_days (store_id, product_id, day, kind, reason, wait_bucket, units,
                            value, episodes, short, max_wait, due, early)
SELECT {store}, p.product_id, (f.at AT TIME ZONE '{tz}')::date, f.kind,
       coalesce(f.reason, ''), coalesce(f.wait_bucket, -1), sum(f.units), sum(f.value),
       count(*) FILTER (WHERE f.order_episode IS NOT NULL),
       count(*) FILTER (WHERE f.at_placement AND f.order_episode IS NOT NULL),
       max(extract(epoch FROM f.at - f.since)) FILTER (WHERE f.kind = 'FILL'),
       count(*) FILTER (WHERE f.kind = 'START' AND f.order_episode IS NOT NULL
                          AND f.overdue_at IS NOT NULL),
       count(*) FILTER (WHERE f.kind = 'START' AND f.order_episode IS NOT NULL
                          AND f.closed_at <= f.overdue_at)
FROM backorder_facts f CROSS JOIN LATERAL (VALUES (0), (f.product_id)) p(product_id)
WHERE f.store_id = {store}
GROUP BY 2, 3, 4, 5, 6;
INSERT INTO backorder_days (store_id, product_id, day, kind, reason, wait_bucket, units,
                            value, episodes, short, max_wait, due, early)
SELECT {store}, p.product_id, (l.placed_at AT TIME ZONE '{tz}')::date, 'PLACED', '', -1, 0,
       0, count(*), 0, NULL, 0, 0
FROM order_lines l CROSS JOIN LATERAL (VALUES (0), (l.product_id)) p(product_id)
WHERE l.store_id = {store}
GROUP BY 2, 3;
INSERT INTO backorder_ages (store_id, product_id, kind, start_day, at_day, units, value,
                            episodes)
SELECT {store}, p.product_id, 'U', (f.since AT TIME ZONE '{tz}')::date,
       (f.at AT TIME ZONE '{tz}')::date,
       sum(CASE WHEN f.kind = 'START' THEN f.units ELSE -f.units END),
       sum(CASE WHEN f.kind = 'START' THEN f.value ELSE -f.value END), 0
FROM backorder_facts f CROSS JOIN LATERAL (VALUES (0), (f.product_id)) p(product_id)
WHERE f.store_id = {store}
GROUP BY 2, 4, 5;
INSERT INTO backorder_ages (store_id, product_id, kind, start_day, at_day, units, value,
                            episodes)
SELECT {store}, p.product_id, 'E', (p.episode AT TIME ZONE '{tz}')::date,
       (f.at AT TIME ZONE '{tz}')::date, 0, 0,
       sum(CASE WHEN f.kind = 'START' THEN 1 ELSE -1 END)
FROM backorder_facts f
CROSS JOIN LATERAL (VALUES (0, f.order_episode), (f.product_id, f.line_episode))
    p(product_id, episode)
WHERE f.store_id = {store} AND p.episode IS NOT NULL
GROUP BY 2, 4, 5;
"""

# The final state of each order and its line; an order waiting at the end has waited
# since its placement (backordered_since); its line's waiting_since stays null (all its
# units began to wait at placement).
ORDERS_SQL = """
INSERT INTO orders (store_id, id, number, external_id, customer_ref, placed_at,
                    requested_ship_date, overdue_at, status, stock_status, in_backlog,
                    is_backordered, overdue_notified, backordered_since)
SELECT {store}, l.order_id, l.number, NULL, NULL, l.placed_at, l.rsd, l.overdue_at,
       CASE WHEN l.ship_at IS NOT NULL THEN 'SHIPPED'
            WHEN l.cancel_at IS NOT NULL THEN 'CANCELLED' ELSE 'OPEN' END,
       CASE WHEN l.ship_at IS NOT NULL OR l.cancel_at IS NOT NULL THEN NULL
            WHEN p.stocked OR l.fill_at IS NOT NULL THEN 'ALLOCATED' ELSE 'BACKORDERED' END,
       l.ship_at IS NULL AND l.cancel_at IS NULL, x.is_backordered,
       l.sweep_at IS NOT NULL,
       CASE WHEN x.is_backordered THEN l.placed_at END
FROM life l JOIN prod p ON p.id = l.product_id
CROSS JOIN LATERAL (
    SELECT l.ship_at IS NULL AND l.cancel_at IS NULL AND NOT p.stocked
           AND l.fill_at IS NULL AS is_backordered
) x
ORDER BY l.number
"""

LINES_SQL = """
INSERT INTO order_lines (store_id, id, order_id, product_id, sku, quantity, unit_price,
                         allocated, backordered, shipped, cancelled, placed_at, order_number)
SELECT {store}, l.line_id, l.order_id, l.product_id, p.sku, l.qty, p.price_units,
       CASE WHEN x.is_open AND (p.stocked OR l.fill_at IS NOT NULL) THEN l.qty ELSE 0 END,
       CASE WHEN x.is_open AND NOT p.stocked AND l.fill_at IS NULL THEN l.qty ELSE 0 END,
       CASE WHEN l.ship_at IS NOT NULL THEN l.qty ELSE 0 END,
       CASE WHEN l.cancel_at IS NOT NULL THEN l.qty ELSE 0 END,
       l.placed_at, l.number
FROM life l JOIN prod p ON p.id = l.product_id
CROSS JOIN LATERAL (SELECT l.ship_at IS NULL AND l.cancel_at IS NULL AS is_open) x
ORDER BY l.number
"""

PRODUCTS_SQL = """
INSERT INTO products (store_id, id, sku, title, price, backorder_policy, backorder_limit,
                      restock_date, on_hand, allocated, backordered, created_at)
SELECT {store}, p.id, p.sku, p.title, p.price_units, p.policy, NULL, NULL,
       coalesce(f.on_after, p.initial), coalesce(f.al_after, 0), coalesce(f.bo_after, 0),
       p.created_at
FROM prod p LEFT JOIN (
    SELECT DISTINCT ON (product_id) product_id, on_after, al_after, bo_after
    FROM chg ORDER BY product_id, seq_last DESC
) f ON f.product_id = p.id
"""

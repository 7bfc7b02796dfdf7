-- The bench's own copy of one placeOrder's transaction, as one PL/pgSQL function, for
-- pgbench (bench/pgbench_place.py). It is created in the bench's database only and is no
-- part of the product. One call places a one-line order of an in-stock product and writes
-- what ordergraph writes for it (storage/uow.py, storage/history.py):
--   the store row locked (FOR UPDATE) and its counters read; the product read by sku and
--   its allocated units advanced; one orders row and one order_lines row; the PLACED
--   (order) and ALLOCATED (inventory) events at the next two positions; the next
--   tally_points row (backlog +1 order, +quantity units, +value); the store's counters
--   (next_id, next_order_number, last_event_seq, last_event_at) advanced; pg_notify on
--   the channel live delivery listens to. Money is in 1/10,000 units, as in the tables.
CREATE OR REPLACE FUNCTION bench_place_order(p_store bigint, p_sku text, p_quantity integer)
RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
    s stores%ROWTYPE;
    p products%ROWTYPE;
    prev tally_points%ROWTYPE;
    v_now timestamptz := clock_timestamp();
    v_order bigint;
    v_line bigint;
    v_seq bigint;
    v_allocated bigint;
BEGIN
    SELECT * INTO s FROM stores WHERE id = p_store FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'store % not found', p_store;
    END IF;
    IF s.last_event_at IS NOT NULL AND v_now < s.last_event_at THEN
        v_now := s.last_event_at;  -- a store's time never runs backwards
    END IF;
    SELECT * INTO p FROM products WHERE store_id = p_store AND sku = p_sku;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no product with sku %', p_sku;
    END IF;
    IF p.on_hand - p.allocated < p_quantity THEN
        RAISE EXCEPTION 'only % of % available', p.on_hand - p.allocated, p_sku;
    END IF;
    v_order := s.next_id;
    v_line := v_order + 1;
    v_seq := s.last_event_seq;
    v_allocated := p.allocated + p_quantity;

    UPDATE products SET allocated = v_allocated WHERE store_id = p_store AND id = p.id;
    INSERT INTO orders (store_id, id, number, placed_at, status, stock_status, in_backlog,
                        is_backordered)
    VALUES (p_store, v_order, s.next_order_number, v_now, 'OPEN', 'ALLOCATED', true, false);
    INSERT INTO order_lines (store_id, id, order_id, product_id, sku, quantity, unit_price,
                             allocated, backordered, shipped, cancelled, placed_at, order_number)
    VALUES (p_store, v_line, v_order, p.id, p_sku, p_quantity, p.price, p_quantity, 0, 0, 0,
            v_now, s.next_order_number);
    INSERT INTO events (store_id, seq, stream, type, occurred_at, order_id, product_id, data)
    VALUES
        (p_store, v_seq + 1, 'order', 'PLACED', v_now, v_order, NULL,
         jsonb_build_object(
             'number', s.next_order_number, 'placedAt', v_now, 'requestedShipDate', NULL,
             'overdueAt', NULL, 'status', 'OPEN', 'stockStatus', 'ALLOCATED',
             'lines', jsonb_build_array(jsonb_build_object(
                 'id', v_line, 'productId', p.id, 'sku', p_sku, 'quantity', p_quantity,
                 'unitPrice', to_char(p.price / 10000.0, 'FM999999999990.0000'),
                 'allocated', p_quantity, 'backordered', 0, 'shipped', 0, 'cancelled', 0)))),
        (p_store, v_seq + 2, 'inventory', 'ALLOCATED', v_now, NULL, p.id,
         jsonb_build_object(
             'sku', p_sku, 'onHand', p.on_hand, 'allocated', v_allocated,
             'available', p.on_hand - v_allocated, 'backordered', p.backordered,
             'quantity', p_quantity, 'orderId', v_order));
    SELECT * INTO prev FROM tally_points WHERE store_id = p_store
        ORDER BY at DESC, seq DESC LIMIT 1;
    INSERT INTO tally_points (store_id, seq, at, backlog_orders, backlog_units, backlog_value,
                              backorder_orders, backorder_units, backorder_value,
                              oldest_backorder_placed_at)
    VALUES (p_store, v_seq + 2, v_now,
            coalesce(prev.backlog_orders, 0) + 1,
            coalesce(prev.backlog_units, 0) + p_quantity,
            coalesce(prev.backlog_value, 0) + p_quantity * p.price,
            coalesce(prev.backorder_orders, 0),
            coalesce(prev.backorder_units, 0),
            coalesce(prev.backorder_value, 0),
            prev.oldest_backorder_placed_at);
    UPDATE stores SET next_id = v_line + 1, next_order_number = s.next_order_number + 1,
                      last_event_seq = v_seq + 2, last_event_at = v_now
    WHERE id = p_store;
    PERFORM pg_notify('ordergraph_events', p_store || ':' || (v_seq + 2));
    RETURN v_order;
END;
$$;

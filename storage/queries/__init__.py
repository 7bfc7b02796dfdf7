"""The read side: lookups, lists and pages, each one SQL statement or a fixed few.

One module per concern (stores, API keys, products, orders and lines, events); the
functions are gathered here so callers write `queries.orders_by_id(...)`. What they
return besides domain objects (KeyRecord, EventRecord, Page) is in ordergraph.domain."""

from __future__ import annotations

from ordergraph.storage.queries.apikeys import (
    api_key_by_token_hash,
    api_keys_by_id,
    revoked_key_ids,
)
from ordergraph.storage.queries.events import order_events_page, store_events_page
from ordergraph.storage.queries.export import (
    ExportBounds,
    export_bounds,
    export_orders_page,
    export_products_page,
)
from ordergraph.storage.queries.orders import (
    backorder_queue_count,
    backorder_queue_page,
    lines_by_id,
    lines_by_order,
    order_by_number,
    orders_by_id,
    orders_count,
    orders_page,
)
from ordergraph.storage.queries.products import (
    backordered_products,
    product_by_sku,
    products_by_id,
    products_count,
    products_page,
)
from ordergraph.storage.queries.receipts import (
    Waiting,
    open_receipts,
    receipts_by_id,
    waiting_lines,
)
from ordergraph.storage.queries.stores import (
    any_store,
    store_by_handle,
    store_ids_by_handle,
    stores_by_id,
    stores_page,
)

__all__ = [
    "ExportBounds",
    "Waiting",
    "any_store",
    "api_key_by_token_hash",
    "api_keys_by_id",
    "backorder_queue_count",
    "backorder_queue_page",
    "backordered_products",
    "export_bounds",
    "export_orders_page",
    "export_products_page",
    "lines_by_id",
    "lines_by_order",
    "open_receipts",
    "order_by_number",
    "order_events_page",
    "orders_by_id",
    "orders_count",
    "orders_page",
    "product_by_sku",
    "products_by_id",
    "products_count",
    "products_page",
    "receipts_by_id",
    "revoked_key_ids",
    "store_by_handle",
    "store_events_page",
    "store_ids_by_handle",
    "stores_by_id",
    "stores_page",
    "waiting_lines",
]

"""The bare baseline: one HTTP endpoint doing exactly the database writes of one placeOrder.

No GraphQL, no ORM, no authentication: Starlette + asyncpg, one transaction per
request against ordergraph's own tables. It places a one-line order of an
in-stock product as ordergraph does:

1. lock the store row (SELECT ... FOR UPDATE) and read its counters;
2. select the product by sku;
3. update the product's stock columns;
4. insert the orders row and its order_lines row;
5. insert the PLACED (order) and ALLOCATED (inventory) events;
6. read the store's latest running totals and insert the next `tally_points` row
   (the backlog grows by the order);
7. update the store's counters (next id, next order number, last event seq and time);
8. pg_notify on the channel ordergraph's live delivery listens to, as ordergraph does.

It also answers three reads of bench/reads.py with the very JSON ordergraph returns for
the same GraphQL query (POST with {"handle": ...}; no authentication, no GraphQL):

- POST /reads/store: `{ store(handle:) { handle } }`, one query;
- POST /reads/orders: the store's first 50 orders by placement with their lines and each
  line's product, three queries in one read-only transaction;
- POST /reads/backlog: the store's backlog, backorder and overdue tallies now (the latest
  running totals and the overdue instants passed), in one read-only transaction.

Run: python bench/baseline_app.py --dsn postgresql://postgres@127.0.0.1:5432/db --port 8001
POST /orders {"storeId": 1, "sku": "BENCH-1", "quantity": 1} -> {"orderId": .., "number": ..}
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import asyncpg
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

MONEY_SCALE = 10_000

LOCK_STORE = "SELECT * FROM stores WHERE id = $1 FOR UPDATE"
SELECT_PRODUCT = "SELECT * FROM products WHERE store_id = $1 AND sku = $2"
UPDATE_PRODUCT = """
UPDATE products SET title = $3, price = $4, backorder_policy = $5, backorder_limit = $6,
    restock_date = $7, on_hand = $8, allocated = $9, backordered = $10
WHERE store_id = $1 AND id = $2
"""
INSERT_ORDER = """
INSERT INTO orders (store_id, id, number, external_id, customer_ref, placed_at,
    requested_ship_date, overdue_at, status, stock_status, in_backlog, is_backordered)
VALUES ($1, $2, $3, NULL, NULL, $4, NULL, NULL, 'OPEN', $5, true, $6)
"""
INSERT_LINE = """
INSERT INTO order_lines (store_id, id, order_id, product_id, sku, quantity, unit_price,
    allocated, backordered, shipped, cancelled, placed_at, order_number)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, 0, $10, $11)
"""
INSERT_EVENTS = """
INSERT INTO events (store_id, seq, stream, type, occurred_at, order_id, product_id, data)
VALUES ($1, $2, 'order', 'PLACED', $3, $4, NULL, $5::jsonb),
       ($1, $6, 'inventory', 'ALLOCATED', $3, NULL, $7, $8::jsonb)
"""
LATEST_TALLY = """
SELECT * FROM tally_points WHERE store_id = $1 ORDER BY at DESC, seq DESC LIMIT 1
"""
INSERT_TALLY = """
INSERT INTO tally_points (store_id, seq, at, backlog_orders, backlog_units, backlog_value,
    backorder_orders, backorder_units, backorder_value, oldest_backorder_placed_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
"""
UPDATE_STORE = """
UPDATE stores SET next_id = $2, next_order_number = $3, last_event_seq = $4, last_event_at = $5
WHERE id = $1
"""
NOTIFY = "SELECT pg_notify('ordergraph_events', $1)"  # live delivery's wake-up, as ordergraph
TALLY_COLUMNS = (
    "backlog_orders",
    "backlog_units",
    "backlog_value",
    "backorder_orders",
    "backorder_units",
    "backorder_value",
)


class Refused(Exception):
    """The order cannot be placed here (unknown store or sku, or not enough stock)."""


async def place_order(pool: asyncpg.Pool, store_id: int, sku: str, quantity: int) -> dict[str, int]:
    now = dt.datetime.now(dt.UTC)
    async with pool.acquire() as conn, conn.transaction():
        store = await conn.fetchrow(LOCK_STORE, store_id)
        if store is None:
            raise Refused("store not found")
        if store["last_event_at"] is not None and now < store["last_event_at"]:
            now = store["last_event_at"]  # a store's time never runs backwards
        product = await conn.fetchrow(SELECT_PRODUCT, store_id, sku)
        if product is None:
            raise Refused(f"no product with sku {sku!r}")
        on_hand, allocated = product["on_hand"], product["allocated"]
        if on_hand - allocated < quantity:
            raise Refused(f"only {on_hand - allocated} of {sku!r} available")
        order_id = store["next_id"]
        line_id = order_id + 1
        number = store["next_order_number"]
        seq = store["last_event_seq"]
        allocated += quantity

        await conn.execute(
            UPDATE_PRODUCT,
            store_id,
            product["id"],
            product["title"],
            product["price"],
            product["backorder_policy"],
            product["backorder_limit"],
            product["restock_date"],
            on_hand,
            allocated,
            product["backordered"],
        )
        await conn.execute(INSERT_ORDER, store_id, order_id, number, now, "ALLOCATED", False)
        price = product["price"]
        await conn.execute(
            INSERT_LINE,
            store_id,
            line_id,
            order_id,
            product["id"],
            sku,
            quantity,
            price,
            quantity,
            0,
            now,
            number,
        )
        placed = _order_snapshot(number, now, line_id, product["id"], sku, quantity, price)
        stock = {
            "sku": sku,
            "onHand": on_hand,
            "allocated": allocated,
            "available": on_hand - allocated,
            "backordered": product["backordered"],
            "quantity": quantity,
            "orderId": order_id,
        }
        await conn.execute(
            INSERT_EVENTS,
            store_id,
            seq + 1,
            now,
            order_id,
            json.dumps(placed),
            seq + 2,
            product["id"],
            json.dumps(stock),
        )
        previous = await conn.fetchrow(LATEST_TALLY, store_id)
        totals = {name: previous[name] if previous else 0 for name in TALLY_COLUMNS}
        totals["backlog_orders"] += 1
        totals["backlog_units"] += quantity
        totals["backlog_value"] += quantity * price
        await conn.execute(
            INSERT_TALLY,
            store_id,
            seq + 2,
            now,
            *(totals[name] for name in TALLY_COLUMNS),
            previous["oldest_backorder_placed_at"] if previous else None,
        )
        await conn.execute(UPDATE_STORE, store_id, line_id + 1, number + 1, seq + 2, now)
        await conn.execute(NOTIFY, f"{store_id}:{seq + 2}")
    return {"orderId": order_id, "number": number}


def _order_snapshot(
    number: int,
    now: dt.datetime,
    line_id: int,
    product_id: int,
    sku: str,
    quantity: int,
    price: int,
) -> dict[str, Any]:
    """The order state stored with its event, shaped like ordergraph's."""
    return {
        "number": number,
        "placedAt": now.isoformat(),
        "requestedShipDate": None,
        "overdueAt": None,
        "status": "OPEN",
        "stockStatus": "ALLOCATED",
        "lines": [
            {
                "id": line_id,
                "productId": product_id,
                "sku": sku,
                "quantity": quantity,
                "unitPrice": f"{price / MONEY_SCALE:.4f}",
                "allocated": quantity,
                "backordered": 0,
                "shipped": 0,
                "cancelled": 0,
            }
        ],
    }


# -- reads ------------------------------------------------------------------------

STORE_BY_HANDLE = "SELECT id, handle, currency_code FROM stores WHERE handle = $1"
ORDERS_PAGE = """
SELECT id, number, placed_at, status, stock_status FROM orders
WHERE store_id = $1 ORDER BY placed_at, number LIMIT $2
"""
LINES_OF = """
SELECT l.id, l.order_id, l.sku, l.quantity, l.allocated, l.backordered, l.unit_price,
       p.id AS product_id, p.sku AS product_sku, p.title
FROM order_lines l JOIN products p ON p.store_id = l.store_id AND p.id = l.product_id
WHERE l.store_id = $1 AND l.order_id = ANY($2::bigint[])
ORDER BY l.order_id, l.id
"""
OVERDUE_NOW = """
SELECT coalesce(sum(backlog_orders), 0) AS backlog_orders,
       coalesce(sum(backlog_units), 0) AS backlog_units,
       coalesce(sum(backlog_value), 0) AS backlog_value
FROM overdue_totals WHERE store_id = $1 AND overdue_at <= $2
"""
PAGE_SIZE = 50
CENT = Decimal("0.01")


def global_id(kind: str, *parts: int) -> str:
    """ordergraph's opaque ID of a row (resolvers/ids.py: base64url of "Kind:1:2")."""
    raw = ":".join([kind, *(str(p) for p in parts)])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def money(units: int, currency: str) -> dict[str, str]:
    """As ordergraph shows money: two decimals, more only where the amount has them."""
    amount = Decimal(int(units)) / MONEY_SCALE
    cents = amount.quantize(CENT)
    return {
        "amount": str(cents if amount == cents else amount.normalize()),
        "currencyCode": currency,
    }


async def read_store(conn: Any, handle: str) -> dict[str, Any]:
    store = await conn.fetchrow("SELECT handle FROM stores WHERE handle = $1", handle)
    return {"data": {"store": None if store is None else {"handle": store["handle"]}}}


async def read_orders(conn: Any, handle: str) -> dict[str, Any]:
    store = await conn.fetchrow(STORE_BY_HANDLE, handle)
    if store is None:
        return {"data": {"store": None}}
    nodes = await orders_of(conn, store["id"], store["currency_code"])
    return {"data": {"store": {"orders": {"nodes": nodes}}}}


async def orders_of(conn: Any, sid: int, currency: str) -> list[dict[str, Any]]:
    """The store's first 50 orders by placement, with their lines and each line's product."""
    orders = await conn.fetch(ORDERS_PAGE, sid, PAGE_SIZE)
    lines: dict[int, list[dict[str, Any]]] = {row["id"]: [] for row in orders}
    for line in await conn.fetch(LINES_OF, sid, list(lines)):
        lines[line["order_id"]].append(
            {
                "id": global_id("OrderLine", sid, line["id"]),
                "sku": line["sku"],
                "quantity": line["quantity"],
                "allocated": line["allocated"],
                "backordered": line["backordered"],
                "unitPrice": money(line["unit_price"], currency),
                "product": {
                    "id": global_id("Product", sid, line["product_id"]),
                    "sku": line["product_sku"],
                    "title": line["title"],
                },
            }
        )
    return [
        {
            "id": global_id("Order", sid, row["id"]),
            "number": row["number"],
            "placedAt": row["placed_at"].isoformat(),
            "status": row["status"],
            "stockStatus": row["stock_status"],
            "lines": lines[row["id"]],
        }
        for row in orders
    ]


def _tally(row: Any, prefix: str, currency: str) -> dict[str, Any]:
    if row is None:
        return {"orders": 0, "units": 0, "value": money(0, currency)}
    return {
        "orders": int(row[f"{prefix}_orders"]),
        "units": int(row[f"{prefix}_units"]),
        "value": money(row[f"{prefix}_value"], currency),
    }


async def read_backlog(conn: Any, handle: str) -> dict[str, Any]:
    store = await conn.fetchrow(STORE_BY_HANDLE, handle)
    if store is None:
        return {"data": {"store": None}}
    backlog = await backlog_of(conn, store["id"], store["currency_code"])
    return {"data": {"store": {"backlog": backlog}}}


async def backlog_of(conn: Any, sid: int, currency: str) -> dict[str, Any]:
    """The store's backlog, backorder and overdue tallies now."""
    point = await conn.fetchrow(LATEST_TALLY, sid)
    overdue = await conn.fetchrow(OVERDUE_NOW, sid, dt.datetime.now(dt.UTC))
    return {
        "backlog": _tally(point, "backlog", currency),
        "backorders": _tally(point, "backorder", currency),
        "overdue": _tally(overdue, "backlog", currency),
    }


READS = {"store": read_store, "orders": read_orders, "backlog": read_backlog}


def pooled_app(
    dsn: str, pool_size: int, routes: list[Route], pools: list[asyncpg.Pool]
) -> Starlette:
    """A Starlette app of these routes and GET /healthz whose lifespan holds an asyncpg
    pool of `pool_size` connections, put in `pools` (the routes read it there)."""

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        pools.append(await asyncpg.create_pool(dsn, min_size=pool_size, max_size=pool_size))
        yield
        await pools[0].close()

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[*routes, Route("/healthz", healthz)], lifespan=lifespan)


def create_app(dsn: str, pool_size: int) -> Starlette:
    pools: list[asyncpg.Pool] = []

    async def orders(request: Request) -> Response:
        body = await request.json()
        try:
            result = await place_order(
                pools[0], int(body["storeId"]), str(body["sku"]), int(body["quantity"])
            )
        except Refused as err:
            return JSONResponse({"error": str(err)}, status_code=422)
        return JSONResponse(result)

    async def reads(request: Request) -> Response:
        read = READS[request.path_params["what"]]
        handle = str((await request.json())["handle"])
        async with pools[0].acquire() as conn:
            if read is read_store:
                return JSONResponse(await read_store(conn, handle))
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                return JSONResponse(await read(conn, handle))

    routes = [
        Route("/orders", orders, methods=["POST"]),
        Route("/reads/{what:str}", reads, methods=["POST"]),
    ]
    return pooled_app(dsn, pool_size, routes, pools)


def server_arguments(description: str, port: int) -> argparse.ArgumentParser:
    """The command line of a bench server: its database, address and pool."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--dsn", required=True, help="postgresql://user@host:port/database")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=port)
    parser.add_argument("--pool-size", type=int, default=20, help="database connections")
    return parser


def serve(app: Starlette, args: argparse.Namespace) -> None:
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


def main() -> None:
    args = server_arguments("Bare placeOrder baseline (Starlette + asyncpg)", 8001).parse_args()
    serve(create_app(args.dsn, args.pool_size), args)


if __name__ == "__main__":
    main()

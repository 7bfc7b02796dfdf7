"""Benchmark: the backlog figures over HTTP on stores of 1,000 to 1,000,000 orders.

It creates a fresh PostgreSQL database, runs the migrations, and fills one store per
size N with N orders spread over the past 365 days. The rows are loaded in bulk SQL
(INSERT ... SELECT with window functions for the running totals), not through the API,
but they are exactly the rows the application writes for that history: orders and
lines, the event log with its payloads, the figures' history (tally_points,
overdue_points, overdue_totals), the products' stock and the stores' counters.

Each order has one line and a short fixed life, drawn at random in Python: placed at
p; on a product at zero stock (policy ALLOW) it waits until a receipt of exactly its
units fills it at p + the product's lead time, unless the customer cancels first;
then it ships a little later, or not at all; orders on stocked products ship or are
cancelled. Half ask for a ship date a few days out; the overdue sweep flags them once
that date has ended (New York time) while they are still open. Lead times are fixed
per product, so receipts fill strictly oldest first, as the application would.

Before measuring it checks the load two ways and prints "consistency: ok":
- replay: a separate store of 300 orders is loaded the same way, and its order lives are
  applied again through the application's own services (one locked unit of work per
  change, the clock at the change's time) into a twin store; every row of every table
  must equal the bulk load;
- HTTP: `backlog(asOf)` at a dozen instants, now, and a 30-day trend, on every store,
  must equal the figures computed directly from the order lives in Python.

Then it starts `python -m ordergraph serve` on the database, creates a READ key with
the admin `createApiKey` mutation, and times sequential requests (after warm-up) of
`backlog(asOf: null)`, `backlog(asOf: <182 days ago>)` and a 30-point DAY
`backlogTrend`, and prints the median per store size and the ratio to the smallest.

Run from the repository root, in the project's environment:

    python bench/figures.py                       # N = 1,000, 100,000, 1,000,000
    python bench/figures.py --sizes 1000,20000 --samples 10
    python bench/figures.py --smoke               # N = 200 and 2,000, 5 samples
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import functools
import json
import os
import random
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import asyncpg
import httpx

from ordergraph.domain import services
from ordergraph.domain.model import BackorderPolicy, CancelReason, overdue_instant
from ordergraph.resolvers import ids
from ordergraph.storage import admin
from ordergraph.storage.db import Database
from ordergraph.storage.migrate import upgrade
from ordergraph.storage.tables import MONEY_SCALE
from ordergraph.storage.uow import SqlStoreSession, store_session

TIMEZONE = "America/New_York"
TZ = ZoneInfo(TIMEZONE)
HISTORY = dt.timedelta(days=365)
PAST = dt.timedelta(days=182)  # the past instant measured: about half a year back
TREND_POINTS = 30
SWEEP_DELAY = dt.timedelta(seconds=17)  # the overdue sweep runs within a minute
INITIAL_STOCK = 1_000_000  # per stocked product: never runs out
NO_END = 2**62  # "never stops waiting" in seq terms
TABLES = (
    "products",
    "orders",
    "order_lines",
    "events",
    "tally_points",
    "overdue_points",
    "overdue_totals",
)
BULK_TABLES = TABLES[1:]  # their keys and indexes are dropped during the load

# -- the catalogue ------------------------------------------------------------


@dataclass(frozen=True)
class ProductSpec:
    id: int
    sku: str
    title: str
    price: Decimal
    policy: BackorderPolicy
    stocked: bool
    lead_time: dt.timedelta  # zero-stock products: receipt after placement

    @property
    def price_units(self) -> int:
        return int(self.price * MONEY_SCALE)

    @property
    def price_text(self) -> str:
        """The unit price as an event payload shows it (a Decimal read back from the table)."""
        return str(Decimal(self.price_units) / MONEY_SCALE)


def catalogue() -> list[ProductSpec]:
    """50 products: 1-10 DENY and 11-25 ALLOW with ample stock; 26-50 ALLOW at zero stock."""
    specs = []
    for k in range(1, 51):
        cents = 499 + (k * 7919) % 9000
        lead_days = (2, 3, 5, 8, 13, 21)[k % 6]
        specs.append(
            ProductSpec(
                id=k,
                sku=f"BENCH-{k:03d}",
                title=f"Bench item {k}",
                price=Decimal(cents) / 100,
                policy=BackorderPolicy.DENY if k <= 10 else BackorderPolicy.ALLOW,
                stocked=k <= 25,
                lead_time=dt.timedelta(days=lead_days, minutes=k),
            )
        )
    return specs


PRODUCTS = catalogue()
BY_ID = {p.id: p for p in PRODUCTS}
STOCKED = [p for p in PRODUCTS if p.stocked]
ZERO_STOCK = [p for p in PRODUCTS if not p.stocked]
FIRST_ORDER_ID = len(PRODUCTS) + 1  # products take ids 1..50, then order id, line id, ...


# -- order lives ----------------------------------------------------------------


class Life(NamedTuple):
    """One order's history; a time is None when that step has not happened by the end."""

    number: int
    product: int
    qty: int
    placed_at: dt.datetime
    rsd: dt.date | None
    overdue_at: dt.datetime | None
    fill_at: dt.datetime | None
    cancel_at: dt.datetime | None
    cancel_reason: str | None
    ship_at: dt.datetime | None
    sweep_at: dt.datetime | None

    @property
    def order_id(self) -> int:
        return FIRST_ORDER_ID + 2 * (self.number - 1001)

    @property
    def line_id(self) -> int:
        return self.order_id + 1


@dataclass(frozen=True)
class Timeline:
    """A store's setup before its first order, and the span of its orders."""

    start: dt.datetime
    end: dt.datetime

    @property
    def created_at(self) -> dt.datetime:
        return self.start - dt.timedelta(days=2)

    def product_created_at(self, spec: ProductSpec) -> dt.datetime:
        return self.created_at + dt.timedelta(seconds=spec.id)

    def received_at(self, spec: ProductSpec) -> dt.datetime:
        return self.start - dt.timedelta(days=1) + dt.timedelta(seconds=spec.id)


def make_lives(n: int, timeline: Timeline, seed: int) -> list[Life]:
    rng = random.Random(seed)
    start, end = timeline.start, timeline.end
    step_us = (end - start) / dt.timedelta(microseconds=1) / n
    lives = []
    for i in range(n):
        placed = start + dt.timedelta(microseconds=int((i + rng.random()) * step_us))
        qty = 1 + int(rng.random() ** 2 * 6)
        zero_stock = rng.random() < 0.3
        spec = rng.choice(ZERO_STOCK if zero_stock else STOCKED)
        rsd = overdue_at = None
        if rng.random() < 0.5:
            rsd = placed.astimezone(TZ).date() + dt.timedelta(days=rng.randint(2, 7))
            overdue_at = overdue_instant(rsd, TZ)
        fill = cancel = ship = None
        reason = None
        if zero_stock:
            if rng.random() < 0.12:
                cancel = placed + spec.lead_time * rng.uniform(0.05, 0.95)
                reason = CancelReason.CUSTOMER_DECLINED_BACKORDER.value
            else:
                fill = placed + spec.lead_time
                if rng.random() < 0.97:
                    ship = fill + dt.timedelta(hours=rng.uniform(2, 72))
        else:
            fate = rng.random()
            if fate < 0.06:
                cancel = placed + dt.timedelta(minutes=rng.uniform(10, 2 * 24 * 60))
                reason = CancelReason.CUSTOMER_REQUEST.value
            elif fate < 0.98:
                ship = placed + dt.timedelta(hours=rng.uniform(1, 9 * 24))
        fill, cancel, ship = (
            t if t is not None and t <= end else None for t in (fill, cancel, ship)
        )
        if cancel is None:
            reason = None
        sweep = None
        if overdue_at is not None and overdue_at + SWEEP_DELAY <= end:
            closed = ship or cancel
            if closed is None or closed > overdue_at + SWEEP_DELAY:
                sweep = overdue_at + SWEEP_DELAY
        lives.append(
            Life(1001 + i, spec.id, qty, placed, rsd, overdue_at, fill, cancel, reason, ship, sweep)
        )
    return lives


# Changes in the order the application applies them; ties in time go by this rank.
PLACE, FILL, CANCEL, SHIP, SWEEP = range(5)


def changes(lives: Iterable[Life]) -> list[tuple[dt.datetime, int, int]]:
    """(time, kind, order number) of every change, in application order."""
    found = []
    for life in lives:
        for kind, at in (
            (PLACE, life.placed_at),
            (FILL, life.fill_at),
            (CANCEL, life.cancel_at),
            (SHIP, life.ship_at),
            (SWEEP, life.sweep_at),
        ):
            if at is not None:
                found.append((at, kind, life.number))
    found.sort()
    return found


# -- the figures, straight from the lives -------------------------------------------


@dataclass
class Tally:
    orders: int = 0
    units: int = 0
    value: Decimal = Decimal(0)

    def add(self, units: int, value: Decimal) -> None:
        self.orders += 1
        self.units += units
        self.value += value

    def as_tuple(self) -> tuple[int, int, Decimal]:
        return (self.orders, self.units, self.value)


@dataclass
class Expected:
    backlog: Tally = field(default_factory=Tally)
    backorders: Tally = field(default_factory=Tally)
    overdue: Tally = field(default_factory=Tally)
    overdue_backorders: Tally = field(default_factory=Tally)
    oldest_backorder: dt.datetime | None = None


def expected_at(lives: list[Life], at: dt.datetime) -> Expected:
    """The figures at `at` by their definition: the open orders and their state then."""
    fig = Expected()
    for life in lives:
        if life.placed_at > at:
            break
        if (life.ship_at is not None and life.ship_at <= at) or (
            life.cancel_at is not None and life.cancel_at <= at
        ):
            continue
        value = life.qty * BY_ID[life.product].price
        waiting = not BY_ID[life.product].stocked and not (
            life.fill_at is not None and life.fill_at <= at
        )
        overdue = life.overdue_at is not None and life.overdue_at <= at
        fig.backlog.add(life.qty, value)
        if waiting:
            fig.backorders.add(life.qty, value)
            if fig.oldest_backorder is None:
                fig.oldest_backorder = life.placed_at
        if overdue:
            fig.overdue.add(life.qty, value)
            if waiting:
                fig.overdue_backorders.add(life.qty, value)
    return fig


# -- bulk load --------------------------------------------------------------------

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
        ship_at timestamptz, sweep_at timestamptz)""",
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

# The final state of each order and its line.
ORDERS_SQL = """
INSERT INTO orders (store_id, id, number, external_id, customer_ref, placed_at,
                    requested_ship_date, overdue_at, status, stock_status, in_backlog,
                    is_backordered, overdue_notified)
SELECT {store}, l.order_id, l.number, NULL, NULL, l.placed_at, l.rsd, l.overdue_at,
       CASE WHEN l.ship_at IS NOT NULL THEN 'SHIPPED'
            WHEN l.cancel_at IS NOT NULL THEN 'CANCELLED' ELSE 'OPEN' END,
       CASE WHEN l.ship_at IS NOT NULL OR l.cancel_at IS NOT NULL THEN NULL
            WHEN p.stocked OR l.fill_at IS NOT NULL THEN 'ALLOCATED' ELSE 'BACKORDERED' END,
       l.ship_at IS NULL AND l.cancel_at IS NULL,
       l.ship_at IS NULL AND l.cancel_at IS NULL AND NOT p.stocked AND l.fill_at IS NULL,
       l.sweep_at IS NOT NULL
FROM life l JOIN prod p ON p.id = l.product_id
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


def _inventory_state(spec: ProductSpec, on_hand: int, **extra: Any) -> str:
    state = {
        "sku": spec.sku,
        "onHand": on_hand,
        "allocated": 0,
        "available": on_hand,
        "backordered": 0,
        **extra,
    }
    return json.dumps(state)


@dataclass
class Loaded:
    store_id: int
    handle: str
    orders: int
    events: int
    tally_points: int
    overdue_points: int
    seconds: float


async def prepare_session(conn: asyncpg.Connection) -> None:
    for setting in (
        "SET synchronous_commit = off",
        "SET work_mem = '256MB'",
        "SET maintenance_work_mem = '1GB'",
        "SET temp_buffers = '1GB'",
    ):
        await conn.execute(setting)
    for statement in SQL_FUNCTIONS:
        await conn.execute(statement)


async def load_store(
    conn: asyncpg.Connection,
    lives: list[Life],
    timeline: Timeline,
    handle: str,
    verbose: bool = False,
) -> Loaded:
    """Write one store's rows for these order lives, as the application would have."""
    began = time.perf_counter()
    n = len(lives)
    store_id = int(
        await conn.fetchval(
            "INSERT INTO stores (handle, name, currency_code, timezone, default_backorder_policy,"
            " created_at, next_id, next_order_number) VALUES ($1, $2, 'USD', $3, 'ALLOW', $4,"
            " $5, $6) RETURNING id",
            handle,
            f"Figures benchmark, {n:,} orders",
            TIMEZONE,
            timeline.created_at,
            FIRST_ORDER_ID + 2 * n,
            1001 + n,
        )
    )
    await conn.execute("TRUNCATE life, prod")
    await conn.execute("DROP TABLE IF EXISTS chg")
    await conn.copy_records_to_table(
        "prod",
        records=[
            (
                p.id,
                p.sku,
                p.title,
                p.price_units,
                p.price_text,
                p.policy.value,
                p.stocked,
                INITIAL_STOCK if p.stocked else 0,
                timeline.product_created_at(p),
            )
            for p in PRODUCTS
        ],
    )
    await conn.copy_records_to_table(
        "life",
        records=[
            (
                life.number,
                life.order_id,
                life.line_id,
                life.product,
                life.qty,
                life.placed_at,
                life.rsd,
                life.overdue_at,
                life.fill_at,
                life.cancel_at,
                life.cancel_reason,
                life.ship_at,
                life.sweep_at,
            )
            for life in lives
        ],
    )
    await conn.execute("ANALYZE life")
    await conn.execute("ANALYZE prod")
    # Setup: each stocked product receives its stock (RECEIVED, then BACK_IN_STOCK).
    setup: list[tuple[int, str, dt.datetime, int, str]] = []
    for spec in STOCKED:
        at = timeline.received_at(spec)
        state = _inventory_state(spec, INITIAL_STOCK)
        received = _inventory_state(spec, INITIAL_STOCK, quantity=INITIAL_STOCK, note=None)
        setup.append((len(setup) + 1, "RECEIVED", at, spec.id, received))
        setup.append((len(setup) + 1, "BACK_IN_STOCK", at, spec.id, state))
    steps = {
        "changes": CHANGES_SQL.format(base=len(setup)),
        "analyze": "ANALYZE chg",
        "products": PRODUCTS_SQL.format(store=store_id),
        "orders": ORDERS_SQL.format(store=store_id),
        "order_lines": LINES_SQL.format(store=store_id),
        "events": EVENTS_SQL.format(store=store_id),
        "tally_points": TALLY_SQL.format(store=store_id, no_end=NO_END),
        "overdue_points": OVERDUE_POINTS_SQL.format(store=store_id),
        "overdue_totals": OVERDUE_TOTALS_SQL.format(store=store_id),
    }
    took = {}
    for step, statement in steps.items():
        step_began = time.perf_counter()
        await conn.execute(statement)
        took[step] = time.perf_counter() - step_began
    if verbose:
        print("  " + ", ".join(f"{k} {v:.1f} s" for k, v in took.items()), flush=True)
    await conn.executemany(
        "INSERT INTO events (store_id, seq, stream, type, occurred_at, product_id, data)"
        " VALUES ($1, $2, 'inventory', $3, $4, $5, $6::jsonb)",
        [(store_id, *row) for row in setup],
    )
    last = await conn.fetchrow(
        "SELECT seq, occurred_at FROM events WHERE store_id = $1 ORDER BY seq DESC LIMIT 1",
        store_id,
    )
    await conn.execute(
        "UPDATE stores SET last_event_seq = $2, last_event_at = $3 WHERE id = $1",
        store_id,
        last["seq"],
        last["occurred_at"],
    )
    counts = {
        table: int(
            await conn.fetchval(f"SELECT count(*) FROM {table} WHERE store_id = $1", store_id)
        )
        for table in ("events", "tally_points", "overdue_points")
    }
    if counts["events"] != last["seq"]:
        raise SystemExit(f"store {handle}: {counts['events']} events but last seq {last['seq']}")
    return Loaded(
        store_id,
        handle,
        n,
        counts["events"],
        counts["tally_points"],
        counts["overdue_points"],
        time.perf_counter() - began,
    )


# -- keys and indexes around the load -------------------------------------------------


async def schema_objects(conn: asyncpg.Connection) -> list[tuple[str, str, str, str]]:
    """(kind, table, name, definition) of the bulk tables' constraints and indexes."""
    constraints = await conn.fetch(
        "SELECT contype::text AS kind, conrelid::regclass::text AS tbl, conname AS name,"
        " pg_get_constraintdef(oid) AS def FROM pg_constraint"
        " WHERE conrelid::regclass::text = ANY($1::text[]) AND contype IN ('p', 'u', 'f')",
        list(BULK_TABLES),
    )
    indexes = await conn.fetch(
        "SELECT 'i' AS kind, tablename AS tbl, indexname AS name, indexdef AS def"
        " FROM pg_indexes WHERE schemaname = 'public' AND tablename = ANY($1::text[])"
        " AND indexname NOT IN (SELECT conname FROM pg_constraint)",
        list(BULK_TABLES),
    )
    return sorted((r["kind"], r["tbl"], r["name"], r["def"]) for r in [*constraints, *indexes])


async def drop_keys(conn: asyncpg.Connection) -> list[tuple[str, str, str, str]]:
    """Drop the bulk tables' keys and indexes (a bulk load builds them faster afterwards)."""
    objects = await schema_objects(conn)
    for kind in ("f", "i", "u", "p"):
        for k, table, name, _ in objects:
            if k != kind:
                continue
            if kind == "i":
                await conn.execute(f'DROP INDEX "{name}"')
            else:
                await conn.execute(f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"')
    return objects


async def restore_keys(conn: asyncpg.Connection, objects: list[tuple[str, str, str, str]]) -> None:
    for kind in ("p", "u", "i", "f"):
        for k, table, name, definition in objects:
            if k != kind:
                continue
            if kind == "i":
                await conn.execute(definition)
            else:
                await conn.execute(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {definition}')
    if await schema_objects(conn) != objects:
        raise SystemExit("the restored keys and indexes differ from the migration's")


# -- replay through the application ---------------------------------------------------


Action = Callable[[SqlStoreSession], Awaitable[object]]


def _step(kind: int, life: Life) -> Action:
    """The service call that makes this change to this order."""
    spec = BY_ID[life.product]

    async def place(session: SqlStoreSession) -> object:
        lines = [services.LineRequest(spec.sku, life.qty)]
        command = services.PlaceOrder(lines=lines, requested_ship_date=life.rsd)
        return await services.place_order(session, command)

    async def fill(session: SqlStoreSession) -> object:
        return await services.receive_stock(session, spec.sku, life.qty)

    async def cancel(session: SqlStoreSession) -> object:
        reason = CancelReason(life.cancel_reason or "")
        return await services.cancel_order(session, life.order_id, reason, None)

    async def ship(session: SqlStoreSession) -> object:
        return await services.ship_order(session, life.order_id, None)

    steps: dict[int, Action] = {PLACE: place, FILL: fill, CANCEL: cancel, SHIP: ship}
    return steps.get(kind, services.mark_overdue)


async def _apply(db: Database, store_id: int, at: dt.datetime, action: Action) -> None:
    async with store_session(db, store_id, lambda: at) as session:
        await action(session)


async def replay(url: str, lives: list[Life], timeline: Timeline, handle: str) -> int:
    """Apply the lives again through the domain services, each change in its own locked unit
    of work with the clock at the change's time; returns the twin store's id."""
    db = Database(url)
    try:
        store, _ = await admin.create_store(
            db,
            handle=handle,
            name="Figures benchmark, replayed",
            currency_code="USD",
            timezone=TIMEZONE,
            default_policy=BackorderPolicy.ALLOW,
            now=timeline.created_at,
        )
        for spec in PRODUCTS:
            command = services.UpsertProduct(
                sku=spec.sku, title=spec.title, price=spec.price, backorder_policy=spec.policy
            )
            upsert = functools.partial(services.upsert_product, cmd=command)
            await _apply(db, store.id, timeline.product_created_at(spec), upsert)
        for spec in STOCKED:
            receive = functools.partial(
                services.receive_stock, sku=spec.sku, quantity=INITIAL_STOCK
            )
            await _apply(db, store.id, timeline.received_at(spec), receive)
        by_number = {life.number: life for life in lives}
        last_sweep = None
        for at, kind, number in changes(lives):
            if kind == SWEEP:
                if at == last_sweep:
                    continue  # one sweep flags every order due then
                last_sweep = at
            await _apply(db, store.id, at, _step(kind, by_number[number]))
        return store.id
    finally:
        await db.dispose()


_ORDER_BY = {
    "products": "id",
    "orders": "id",
    "order_lines": "id",
    "events": "seq",
    "tally_points": "seq",
    "overdue_points": "overdue_at, seq",
    "overdue_totals": "overdue_at",
}


async def compare_stores(conn: asyncpg.Connection, bulk: int, twin: int) -> list[str]:
    """What differs between two stores' rows (store ids aside); empty when all equal."""
    problems = []
    counters = (
        "SELECT currency_code, timezone, default_backorder_policy, created_at, next_id,"
        " next_order_number, last_event_seq, last_event_at FROM stores WHERE id = $1"
    )
    a, b = await conn.fetchrow(counters, bulk), await conn.fetchrow(counters, twin)
    if dict(a) != dict(b):
        problems.append(f"stores: bulk {dict(a)} != replayed {dict(b)}")
    for table in TABLES:
        query = f"SELECT * FROM {table} WHERE store_id = $1 ORDER BY {_ORDER_BY[table]}"

        def rows(found: list[asyncpg.Record]) -> list[dict[str, Any]]:
            out = []
            for record in found:
                row = dict(record)
                row.pop("store_id")
                if "data" in row:
                    row["data"] = json.loads(row["data"])
                out.append(row)
            return out

        mine, theirs = rows(await conn.fetch(query, bulk)), rows(await conn.fetch(query, twin))
        if len(mine) != len(theirs):
            problems.append(f"{table}: {len(mine)} bulk rows, {len(theirs)} replayed")
            continue
        for x, y in zip(mine, theirs, strict=True):
            if x != y:
                problems.append(f"{table}: bulk {x}\n    != replayed {y}")
                break
    return problems


# -- HTTP ---------------------------------------------------------------------------

TALLY = "orders units value { amount }"
SUMMARY = (
    f"asOf backlog {{ {TALLY} }} backorders {{ {TALLY} }} overdue {{ {TALLY} }}"
    f" overdueBackorders {{ {TALLY} }} oldestBackorderPlacedAt"
)
BACKLOG_QUERY = (
    "query($h: String!, $t: DateTime) { store(handle: $h) {"
    f" backlog(asOf: $t) {{ {SUMMARY} }} }} }}"
)
TREND_QUERY = (
    "query($h: String!, $from: DateTime!, $to: DateTime!) { store(handle: $h) {"
    " backlogTrend(from: $from, to: $to, interval: DAY) {"
    f" at backlog {{ {TALLY} }} backorders {{ {TALLY} }} overdue {{ {TALLY} }} }} }} }}"
)


class Client:
    def __init__(self, url: str, token: str) -> None:
        self.http = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120
        )

    def post(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        response = self.http.post("/graphql", json={"query": query, "variables": variables})
        body: dict[str, Any] = response.json()
        if response.status_code != 200 or body.get("errors"):
            raise SystemExit(f"request failed ({response.status_code}): {response.text[:500]}")
        return body

    def close(self) -> None:
        self.http.close()


def trend_window(end: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """From the local midnight 29 days before the last one up to `end`: 30 DAY points."""
    last_midnight = end.astimezone(TZ).replace(hour=0, minute=0, second=0, microsecond=0)
    first_day = last_midnight.date() - dt.timedelta(days=TREND_POINTS - 1)
    first = dt.datetime.combine(first_day, dt.time(0), tzinfo=TZ).astimezone(dt.UTC)
    return first, end


def _tally(found: dict[str, Any]) -> tuple[int, int, Decimal]:
    return (found["orders"], found["units"], Decimal(found["value"]["amount"]))


def summary_problems(found: dict[str, Any], want: Expected) -> list[str]:
    problems = []
    for name, tally in (
        ("backlog", want.backlog),
        ("backorders", want.backorders),
        ("overdue", want.overdue),
        ("overdueBackorders", want.overdue_backorders),
    ):
        if name in found and _tally(found[name]) != tally.as_tuple():
            problems.append(f"{name}: got {_tally(found[name])}, expected {tally.as_tuple()}")
    if "oldestBackorderPlacedAt" in found:
        raw = found["oldestBackorderPlacedAt"]
        got = dt.datetime.fromisoformat(raw) if raw else None
        if got != want.oldest_backorder:
            problems.append(f"oldestBackorderPlacedAt: got {got}, expected {want.oldest_backorder}")
    return problems


def check_instants(lives: list[Life], timeline: Timeline) -> list[dt.datetime]:
    """Instants to check: before the first order, exactly at changes and overdue instants
    (the history includes what happened at the instant), just before one, and more."""
    start, end = timeline.start, timeline.end
    instants = [start - dt.timedelta(hours=1), lives[0].placed_at, end, end - PAST]
    fills = [life.fill_at for life in lives if life.fill_at is not None]
    ships = [life.ship_at for life in lives if life.ship_at is not None]
    dues = [life.overdue_at for life in lives if life.overdue_at and life.overdue_at < end]
    for found in (fills, ships, dues):
        if found:
            instants.append(found[len(found) // 2])
    if dues:
        instants.append(dues[len(dues) // 3] - dt.timedelta(microseconds=1))
    for days in (40, 100, 250, 330):
        instants.append(start + dt.timedelta(days=days, microseconds=12_345))
    return sorted(set(instants))


def check_http(client: Client, handle: str, lives: list[Life], timeline: Timeline) -> list[str]:
    problems = []
    for at in [*check_instants(lives, timeline), None]:
        variables = {"h": handle, "t": at.isoformat() if at else None}
        found = client.post(BACKLOG_QUERY, variables)["data"]["store"]["backlog"]
        as_of = dt.datetime.fromisoformat(found["asOf"])
        problems += [
            f"asOf {at or 'null'}: {p}" for p in summary_problems(found, expected_at(lives, as_of))
        ]
    start, end = trend_window(timeline.end)
    points = client.post(
        TREND_QUERY, {"h": handle, "from": start.isoformat(), "to": end.isoformat()}
    )["data"]["store"]["backlogTrend"]
    if len(points) != TREND_POINTS:
        problems.append(f"trend: {len(points)} points, expected {TREND_POINTS}")
    for point in points:
        at = dt.datetime.fromisoformat(point["at"])
        problems += [f"trend at {at}: {p}" for p in summary_problems(point, expected_at(lives, at))]
    return problems


def medians_ms(
    client: Client, requests: list[tuple[str, dict[str, Any]]], warmup: int, samples: int
) -> list[float]:
    """Median time of each request; rounds go through all of them in turn, so that a load
    elsewhere on the machine weighs on every store size alike."""
    for query, variables in requests:
        for _ in range(warmup):
            client.post(query, variables)
    took: list[list[float]] = [[] for _ in requests]
    for _ in range(samples):
        for index, (query, variables) in enumerate(requests):
            began = time.perf_counter()
            client.post(query, variables)
            took[index].append(time.perf_counter() - began)
    return [statistics.median(t) * 1000 for t in took]


# -- processes and databases ----------------------------------------------------------


def with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, ""))


async def admin_execute(admin_dsn: str, statement: str) -> None:
    conn = await asyncpg.connect(admin_dsn, timeout=10)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    database_url: str, admin_token: str, log: Path
) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    env = {
        **os.environ,
        "ORDERGRAPH_DATABASE_URL": database_url,
        "ORDERGRAPH_ADMIN_TOKEN": admin_token,
        "ORDERGRAPH_LOG_LEVEL": "WARNING",
        "ORDERGRAPH_OVERDUE_SWEEP_SECONDS": "0",  # nothing writes while we measure
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "ordergraph", "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited early:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return url, process
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    stop(process)
    raise SystemExit(f"the server did not start within 60 s:\n{log.read_text()}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def read_key(url: str, admin_token: str, store_ids: list[int]) -> str:
    response = httpx.post(
        f"{url}/graphql",
        json={
            "query": """mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) {
                token userErrors { code message } } }""",
            "variables": {
                "input": {
                    "name": "figures benchmark",
                    "storeIds": [ids.encode("Store", s) for s in store_ids],
                    "scopes": ["READ"],
                }
            },
        },
        headers={"Authorization": f"Bearer {admin_token}"},
        timeout=30,
    )
    body = response.json()
    payload = (body.get("data") or {}).get("createApiKey") or {}
    if body.get("errors") or payload.get("userErrors") or not payload.get("token"):
        raise SystemExit(f"createApiKey failed: {body}")
    return str(payload["token"])


# -- the run ---------------------------------------------------------------------------


@dataclass
class Measured:
    orders: int
    now_ms: float
    past_ms: float
    trend_ms: float


def table(rows: list[Measured], samples: int, warmup: int) -> str:
    base = rows[0]
    head = (
        f"{'orders':>10}  {'backlog now':>12} {'ratio':>6}  {'backlog past':>12} {'ratio':>6}"
        f"  {'trend 30 days':>13} {'ratio':>6}"
    )
    lines = [
        f"median latency over HTTP ({samples} sequential requests each, after {warmup} warm-up);"
        f" ratio to {base.orders:,} orders",
        head,
        "-" * len(head),
    ]
    for r in rows:
        lines.append(
            f"{r.orders:>10,}  {r.now_ms:>9.2f} ms {r.now_ms / base.now_ms:>6.2f}"
            f"  {r.past_ms:>9.2f} ms {r.past_ms / base.past_ms:>6.2f}"
            f"  {r.trend_ms:>10.2f} ms {r.trend_ms / base.trend_ms:>6.2f}"
        )
    top = rows[-1]
    lines.append("")
    lines.append(f"goals at {top.orders:,} orders (ratio to {base.orders:,}):")
    for name, ratio, goal in (
        ("backlog(asOf: null)", top.now_ms / base.now_ms, 1.5),
        ("backlog(asOf: 182 days ago)", top.past_ms / base.past_ms, 3.0),
        ("backlogTrend, 30 DAY points", top.trend_ms / base.trend_ms, 10.0),
    ):
        verdict = "met" if ratio <= goal else "MISSED"
        lines.append(f"  {name:<30} {ratio:>6.2f} <= {goal:<4g} {verdict}")
    return "\n".join(lines)


@dataclass
class Store:
    loaded: Loaded
    lives: list[Life]

    @property
    def orders(self) -> int:
        return self.loaded.orders

    @property
    def handle(self) -> str:
        return self.loaded.handle


async def load_all(
    dsn: str, plan: list[tuple[str, int]], timeline: Timeline, seed: int, verbose: bool = False
) -> list[Store]:
    """Load a store per (name, orders) in the plan; keys and indexes are rebuilt once at the end."""
    conn = await asyncpg.connect(dsn)
    try:
        await prepare_session(conn)
        objects = await drop_keys(conn)
        stores = []
        for name, n in plan:
            began = time.perf_counter()
            lives = make_lives(n, timeline, seed + n)
            made = time.perf_counter() - began
            handle = f"{name}-{n}-{uuid.uuid4().hex[:6]}"
            result = await load_store(conn, lives, timeline, handle, verbose)
            print(
                f"store {handle}: {n:,} orders, {result.events:,} events,"
                f" {result.tally_points:,} tally points, {result.overdue_points:,} overdue points;"
                f" lives drawn in {made:.1f} s, loaded in {result.seconds:.1f} s",
                flush=True,
            )
            stores.append(Store(result, lives))
        began = time.perf_counter()
        await restore_keys(conn, objects)
        restored = time.perf_counter() - began
        began = time.perf_counter()
        await conn.execute("VACUUM (ANALYZE)")
        print(
            f"keys and indexes rebuilt in {restored:.1f} s; vacuum analyze in"
            f" {time.perf_counter() - began:.1f} s",
            flush=True,
        )
        return stores
    finally:
        await conn.close()


async def check_replay(dsn: str, url: str, store: Store, timeline: Timeline) -> list[str]:
    began = time.perf_counter()
    twin = await replay(url, store.lives, timeline, f"replayed-{uuid.uuid4().hex[:8]}")
    conn = await asyncpg.connect(dsn)
    try:
        problems = await compare_stores(conn, store.loaded.store_id, twin)
    finally:
        await conn.close()
    if not problems:
        print(
            f"replay: {store.orders:,} orders replayed through the application's services in"
            f" {time.perf_counter() - began:.1f} s; the stores row and every row of"
            f" {len(TABLES)} tables equal the bulk load",
            flush=True,
        )
    return [f"replay: {p}" for p in problems]


def check_all_http(client: Client, stores: list[Store], timeline: Timeline) -> list[str]:
    problems = []
    for store in stores:
        began = time.perf_counter()
        found = check_http(client, store.handle, store.lives, timeline)
        problems += [f"N={store.orders:,}: {p}" for p in found]
        if not found:
            print(
                f"checked N={store.orders:,} over HTTP: backlog at"
                f" {len(check_instants(store.lives, timeline)) + 1} instants and a"
                f" {TREND_POINTS}-day trend equal the order lives"
                f" ({time.perf_counter() - began:.1f} s)",
                flush=True,
            )
    return problems


def measure(
    client: Client, stores: list[Store], timeline: Timeline, warmup: int, samples: int
) -> list[Measured]:
    past = (timeline.end - PAST).isoformat()
    trend_from, trend_to = trend_window(timeline.end)
    trend = {"from": trend_from.isoformat(), "to": trend_to.isoformat()}
    columns = [
        medians_ms(
            client, [(query, {"h": store.handle, **extra}) for store in stores], warmup, samples
        )
        for query, extra in (
            (BACKLOG_QUERY, {"t": None}),
            (BACKLOG_QUERY, {"t": past}),
            (TREND_QUERY, trend),
        )
    ]
    return [
        Measured(store.orders, now, then, over)
        for store, now, then, over in zip(stores, *columns, strict=True)
    ]


def run(args: argparse.Namespace, dsn: str, logs: Path) -> int:
    url = dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
    asyncio.run(upgrade_database(url))
    end = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)).replace(microsecond=0)
    timeline = Timeline(start=end - HISTORY, end=end)
    began = time.perf_counter()
    plan = [("replay", args.replay_orders)] + [("figures", n) for n in args.sizes]
    replayed, *stores = asyncio.run(load_all(dsn, plan, timeline, args.seed, args.verbose))
    total = sum(n for _, n in plan)
    print(f"loaded {total:,} orders in {time.perf_counter() - began:.1f} s", flush=True)

    problems = asyncio.run(check_replay(dsn, url, replayed, timeline))
    admin_token = "og_admin_bench_" + secrets.token_urlsafe(16)
    server_url, process = start_server(url, admin_token, logs / "server.log")
    try:
        token = read_key(server_url, admin_token, [s.loaded.store_id for s in stores])
        client = Client(server_url, token)
        try:
            problems += check_all_http(client, stores, timeline)
            if problems:
                print("consistency: FAILED", *problems[:20], sep="\n  ", file=sys.stderr)
                return 1
            print("consistency: ok", flush=True)
            rows = measure(client, stores, timeline, args.warmup, args.samples)
            print()
            print(table(rows, args.samples, args.warmup), flush=True)
        finally:
            client.close()
    finally:
        stop(process)
    return 0


async def upgrade_database(url: str) -> None:
    db = Database(url)
    try:
        await upgrade(db)
    finally:
        await db.dispose()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        type=lambda raw: sorted({int(s.replace("_", "")) for s in raw.split(",")}),
        default=[1_000, 100_000, 1_000_000],
        help="orders per store, comma-separated; ratios are to the smallest",
    )
    parser.add_argument("--samples", type=int, default=30, help="timed requests per query")
    parser.add_argument("--warmup", type=int, default=5, help="untimed requests first")
    parser.add_argument("--seed", type=int, default=20_270_124)
    parser.add_argument(
        "--replay-orders",
        type=int,
        default=300,
        help="orders of the store loaded in bulk and replayed through the services to compare",
    )
    parser.add_argument(
        "--smoke", action="store_true", help="a quick run: N = 200 and 2,000, 5 samples"
    )
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--verbose", action="store_true", help="time each step of the load")
    parser.add_argument(
        "--pg-dsn",
        default=os.environ.get(
            "ORDERGRAPH_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="a PostgreSQL database to connect to for CREATE/DROP DATABASE",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.sizes, args.samples, args.warmup, args.replay_orders = [200, 2_000], 5, 2, 150
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if (
        args.samples < 1
        or args.warmup < 0
        or not args.sizes
        or min(args.sizes[0], args.replay_orders) < 10
    ):
        print("need --samples >= 1, --warmup >= 0 and sizes of at least 10", file=sys.stderr)
        return 2
    name = f"ordergraph_figures_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    dsn = with_database(args.pg_dsn, name)
    asyncio.run(admin_execute(args.pg_dsn, f'CREATE DATABASE "{name}"'))
    print(f"database: {dsn}", flush=True)
    try:
        with tempfile.TemporaryDirectory(prefix="ordergraph-figures-") as logs:
            return run(args, dsn, Path(logs))
    finally:
        if args.keep:
            print(f"kept database {name}")
        else:
            asyncio.run(
                admin_execute(args.pg_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            )


if __name__ == "__main__":
    sys.exit(main())

"""The tables. Every store-owned row carries store_id first in its primary and foreign keys."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

MONEY_SCALE = 10_000


class UtcDateTime(TypeDecorator[dt.datetime]):
    """Aware UTC datetimes on every backend (SQLite keeps them as naive UTC text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        parsed: dt.datetime = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=dt.UTC)
        return parsed.astimezone(dt.UTC)


class Money(TypeDecorator[Decimal]):
    """A decimal amount kept exactly as an integer count of 1/10,000 units."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        return int(Decimal(value) * MONEY_SCALE)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return Decimal(int(value)) / MONEY_SCALE


Id = BigInteger().with_variant(Integer(), "sqlite")
Payload = JSON().with_variant(JSONB(), "postgresql")

stores = Table(
    "stores",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    # Unique through store_directory (a table keyed by store may not be unique without it).
    Column("handle", String(40), nullable=False),
    Column("name", String(255), nullable=False),
    Column("currency_code", String(3), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("default_backorder_policy", String(8), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    # Counters, taken under the store's row lock.
    Column("next_id", BigInteger, nullable=False, server_default=text("1")),
    Column("next_order_number", BigInteger, nullable=False, server_default=text("1001")),
    Column("last_event_seq", BigInteger, nullable=False, server_default=text("0")),
    # Business time never runs backwards within a store (the history relies on it).
    Column("last_event_at", UtcDateTime, nullable=True),
    # The store's overdue alarm, as `overdue_alarms` has it (written together, under the
    # store's lock): read with the store, so a unit knows without asking when to move it.
    Column("overdue_alarm_at", UtcDateTime, nullable=True),
)

# Every store's handle, written with the store: handles are unique here, and a handle is
# found here without asking every store's rows (a reference table on Citus:
# storage/distribution.py). No foreign key to `stores`: a reference table may not
# reference a distributed one.
store_directory = Table(
    "store_directory",
    metadata,
    Column("store_id", Id, primary_key=True, autoincrement=False),
    Column("handle", String(40), nullable=False, unique=True),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("scopes", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime, nullable=True),
)

api_key_stores = Table(
    "api_key_stores",
    metadata,
    Column("store_id", Id, ForeignKey("store_directory.store_id"), nullable=False),
    Column("api_key_id", Id, ForeignKey("api_keys.id"), nullable=False),
    PrimaryKeyConstraint("store_id", "api_key_id"),
    Index("ix_api_key_stores_key", "api_key_id"),
)

products = Table(
    "products",
    metadata,
    Column("store_id", Id, ForeignKey("stores.id"), nullable=False),
    Column("id", BigInteger, nullable=False),
    Column("sku", String(64), nullable=False),
    Column("title", String(255), nullable=False),
    Column("price", Money, nullable=False),
    Column("backorder_policy", String(8), nullable=False),
    Column("backorder_limit", BigInteger, nullable=True),
    Column("restock_date", Date, nullable=True),
    Column("on_hand", BigInteger, nullable=False),
    Column("allocated", BigInteger, nullable=False),
    Column("backordered", BigInteger, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("store_id", "id"),
    UniqueConstraint("store_id", "sku"),
)

orders = Table(
    "orders",
    metadata,
    Column("store_id", Id, ForeignKey("stores.id"), nullable=False),
    Column("id", BigInteger, nullable=False),
    Column("number", BigInteger, nullable=False),
    Column("external_id", String(255), nullable=True),
    Column("customer_ref", String(255), nullable=True),
    Column("placed_at", UtcDateTime, nullable=False),
    Column("requested_ship_date", Date, nullable=True),
    Column("overdue_at", UtcDateTime, nullable=True),
    # Derived from the lines, kept for filtering and sorting.
    Column("status", String(20), nullable=False),
    Column("stock_status", String(24), nullable=True),
    Column("in_backlog", Boolean, nullable=False),
    Column("is_backordered", Boolean, nullable=False),
    Column("overdue_notified", Boolean, nullable=False, server_default=text("false")),
    # When it last became backordered, while it is (domain/outcomes.py).
    Column("backordered_since", UtcDateTime, nullable=True),
    PrimaryKeyConstraint("store_id", "id"),
    UniqueConstraint("store_id", "number"),
    Index("ix_orders_placed", "store_id", "placed_at", "number"),
    Index("ix_orders_external", "store_id", "external_id"),
    Index("ix_orders_ship_date", "store_id", "requested_ship_date", "number"),
    Index(
        "ix_orders_backordered",
        "store_id",
        "placed_at",
        postgresql_where=text("is_backordered"),
        sqlite_where=text("is_backordered"),
    ),
    Index(
        "ix_orders_overdue_due",
        "overdue_at",
        "store_id",
        postgresql_where=text("in_backlog AND NOT overdue_notified"),
        sqlite_where=text("in_backlog AND NOT overdue_notified"),
    ),
)

order_lines = Table(
    "order_lines",
    metadata,
    Column("store_id", Id, nullable=False),
    Column("id", BigInteger, nullable=False),
    Column("order_id", BigInteger, nullable=False),
    Column("product_id", BigInteger, nullable=False),
    Column("sku", String(64), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("unit_price", Money, nullable=False),
    Column("allocated", Integer, nullable=False),
    Column("backordered", Integer, nullable=False),
    Column("shipped", Integer, nullable=False),
    Column("cancelled", Integer, nullable=False),
    # Copied from the order: the fill-order key lives on the line for its index.
    Column("placed_at", UtcDateTime, nullable=False),
    Column("order_number", BigInteger, nullable=False),
    # When its waiting units began to wait, if not all at placement (domain/outcomes.py).
    Column("waiting_since", Text, nullable=True),
    PrimaryKeyConstraint("store_id", "id"),
    ForeignKeyConstraint(["store_id", "order_id"], ["orders.store_id", "orders.id"]),
    ForeignKeyConstraint(["store_id", "product_id"], ["products.store_id", "products.id"]),
    Index("ix_order_lines_order", "store_id", "order_id"),
    # A product's orders placed in a period (what waiting costs, per product).
    Index("ix_order_lines_product_placed", "store_id", "product_id", "placed_at"),
    Index("ix_order_lines_sku", "store_id", "sku", "order_id"),
    Index(
        "ix_order_lines_queue",
        "store_id",
        "product_id",
        "placed_at",
        "order_number",
        "id",
        postgresql_where=text("backordered > 0"),
        sqlite_where=text("backordered > 0"),
    ),
    Index(
        "ix_order_lines_allocated",
        "store_id",
        "product_id",
        "placed_at",
        "order_number",
        "id",
        postgresql_where=text("allocated > 0"),
        sqlite_where=text("allocated > 0"),
    ),
)

events = Table(
    "events",
    metadata,
    Column("store_id", Id, ForeignKey("stores.id"), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("stream", String(10), nullable=False),  # "order" or "inventory"
    Column("type", String(32), nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("order_id", BigInteger, nullable=True),
    Column("product_id", BigInteger, nullable=True),
    Column("data", Payload, nullable=False),
    PrimaryKeyConstraint("store_id", "seq"),
    ForeignKeyConstraint(["store_id", "order_id"], ["orders.store_id", "orders.id"]),
    ForeignKeyConstraint(["store_id", "product_id"], ["products.store_id", "products.id"]),
    Index("ix_events_order", "store_id", "order_id", "seq"),
    Index("ix_events_product", "store_id", "product_id", "seq"),
    Index("ix_events_time", "store_id", "occurred_at"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("store_id", Id, ForeignKey("stores.id"), nullable=False),
    Column("operation", String(32), nullable=False),
    Column("key", String(255), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("result", Payload, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("store_id", "operation", "key"),
    Index("ix_idempotency_keys_age", "store_id", "created_at"),
)


# Stock on its way (domain/model.py Receipt): `quantity` still expected on
# `expected_at`, `received` already arrived against it; status OPEN, CLOSED or CANCELLED.
incoming_receipts = Table(
    "incoming_receipts",
    metadata,
    Column("store_id", Id, nullable=False),
    Column("id", BigInteger, nullable=False),
    Column("product_id", BigInteger, nullable=False),
    Column("quantity", BigInteger, nullable=False),
    Column("received", BigInteger, nullable=False),
    Column("expected_at", Date, nullable=False),
    Column("reference", String(255), nullable=True),
    Column("status", String(10), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("store_id", "id"),
    ForeignKeyConstraint(["store_id", "product_id"], ["products.store_id", "products.id"]),
    Index(
        "ix_incoming_receipts_open",
        "store_id",
        "product_id",
        "expected_at",
        "id",
        postgresql_where=text("status = 'OPEN'"),
        sqlite_where=text("status = 'OPEN'"),
    ),
)


def _tally_columns(prefix: str = "") -> list[Column[Any]]:
    # The prefixed (running sums added later) default to zero for rows written before them.
    default = text("0") if prefix else None
    return [
        Column(f"{prefix}backlog_orders", BigInteger, nullable=False, server_default=default),
        Column(f"{prefix}backlog_units", BigInteger, nullable=False, server_default=default),
        Column(f"{prefix}backlog_value", Money, nullable=False, server_default=default),
        Column(f"{prefix}backorder_orders", BigInteger, nullable=False, server_default=default),
        Column(f"{prefix}backorder_units", BigInteger, nullable=False, server_default=default),
        Column(f"{prefix}backorder_value", Money, nullable=False, server_default=default),
    ]


# The figures' history, a projection of the event log written in the same
# transaction: the store's running totals after each change that moved them...
tally_points = Table(
    "tally_points",
    metadata,
    Column("store_id", Id, ForeignKey("stores.id"), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("at", UtcDateTime, nullable=False),
    *_tally_columns(),
    Column("oldest_backorder_placed_at", UtcDateTime, nullable=True),
    # The changes made so far to orders already overdue (a change at or after its order's
    # overdue instant), summed: with `overdue_crossings`, the overdue totals at any instant
    # in two probes (storage/history.py).
    *_tally_columns("late_"),
    PrimaryKeyConstraint("store_id", "seq"),
    Index("ix_tally_points_at", "store_id", "at", "seq"),
)

# ...and, per overdue instant (the end of a requested ship date), the running
# totals of the orders due then; overdue at t sums the instants up to t.
overdue_points = Table(
    "overdue_points",
    metadata,
    Column("store_id", Id, ForeignKey("stores.id"), nullable=False),
    Column("overdue_at", UtcDateTime, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("at", UtcDateTime, nullable=False),
    *_tally_columns(),
    PrimaryKeyConstraint("store_id", "overdue_at", "seq"),
    Index("ix_overdue_points_at", "store_id", "overdue_at", "at", "seq"),
)

overdue_totals = Table(
    "overdue_totals",
    metadata,
    Column("store_id", Id, ForeignKey("stores.id"), nullable=False),
    Column("overdue_at", UtcDateTime, nullable=False),
    *_tally_columns(),
    PrimaryKeyConstraint("store_id", "overdue_at"),
)

# The overdue instants as they passed, as one running sum per store: the row of instant d
# holds the totals, summed over every overdue instant up to d, of the orders due then as
# they stood just before their instant (changes made before it). The unit of work writing
# a store's first tally point after d writes d's row (only instants with orders). With
# the `late_` sums of `tally_points`, overdue(t) = the newest row at or before t + the
# newest point's late sums + the instants passed since the store's newest point.
overdue_crossings = Table(
    "overdue_crossings",
    metadata,
    Column("store_id", Id, ForeignKey("stores.id"), nullable=False),
    Column("overdue_at", UtcDateTime, nullable=False),
    *_tally_columns(),
    PrimaryKeyConstraint("store_id", "overdue_at"),
)

# When each store next needs the overdue sweep: at or before the earliest `overdue_at`
# of its orders in the backlog not yet flagged overdue (no row: none). The sweep reads
# this table alone to find the stores with work (a reference table on Citus, so it
# touches no shard); a unit placing an order due earlier moves the alarm earlier, the
# sweep moves it on after flagging (ordergraph/overdue.py). An early alarm costs a
# visit that flags nothing; it is never late.
overdue_alarms = Table(
    "overdue_alarms",
    metadata,
    Column(
        "store_id",
        Id,
        ForeignKey("store_directory.store_id"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("due_at", UtcDateTime, nullable=False),
    Index("ix_overdue_alarms_due", "due_at"),
)

# Rate limits shared by every server process (ordergraph.throttle): each API key's
# leaky bucket, under the first store it may use. `level` is the points in the bucket
# at `updated_at`; they leak at the configured restore rate.
rate_buckets = Table(
    "rate_buckets",
    metadata,
    Column("store_id", Id, ForeignKey("stores.id"), nullable=False),
    Column("api_key_id", Id, ForeignKey("api_keys.id"), nullable=False),
    Column("level", Float, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("store_id", "api_key_id"),
)

# Webhook subscriptions (domain/webhooks.py, storage/webhooks.py). `position` is the
# subscription's cursor in the store's log (two slots per seq: the event, then the
# figures change of the same commit): everything at or before it was delivered and
# acknowledged. attempts / next_attempt_at / first_failure_at / last_status describe the
# head (the next slot after the position). A worker holds `claimed_by` until
# `claimed_until` while it sends; an expired claim is free to take.
webhook_subscriptions = Table(
    "webhook_subscriptions",
    metadata,
    Column("store_id", Id, ForeignKey("stores.id"), nullable=False),
    Column("id", BigInteger, nullable=False),
    Column("url", String(2048), nullable=False),
    Column("topics", String(512), nullable=False),  # comma-separated WebhookTopic values
    Column("state", String(10), nullable=False),
    Column("secret", String(80), nullable=False),
    Column("previous_secret", String(80), nullable=True),
    Column("previous_secret_until", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", UtcDateTime, nullable=True),
    Column("first_failure_at", UtcDateTime, nullable=True),
    Column("last_status", Integer, nullable=True),
    Column("last_error", String(500), nullable=True),
    Column("last_success_at", UtcDateTime, nullable=True),
    Column("last_failure_at", UtcDateTime, nullable=True),
    Column("log_serial", BigInteger, nullable=False, server_default=text("0")),
    Column("claimed_by", String(64), nullable=True),
    Column("claimed_until", UtcDateTime, nullable=True),
    # Comma-separated SKUs the order and inventory events must concern; null = all.
    Column("skus", Text, nullable=True),
    # After a single event is sent again (redeliverWebhookEvent), the cursor goes back here.
    Column("resume_position", BigInteger, nullable=True),
    PrimaryKeyConstraint("store_id", "id"),
)

# One row per delivery attempt, numbered per subscription (its log_serial).
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("store_id", Id, nullable=False),
    Column("subscription_id", BigInteger, nullable=False),
    Column("id", BigInteger, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("topic", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("latency_ms", Integer, nullable=True),
    Column("error", String(500), nullable=True),
    Column("at", UtcDateTime, nullable=False),
    Column("next_attempt_at", UtcDateTime, nullable=True),
    PrimaryKeyConstraint("store_id", "subscription_id", "id"),
    ForeignKeyConstraint(
        ["store_id", "subscription_id"],
        ["webhook_subscriptions.store_id", "webhook_subscriptions.id"],
    ),
    Index("ix_webhook_deliveries_at", "at"),
)


# What waiting costs (domain/outcomes.py): one row per line and kind of each change that
# moved the line's backordered units, written with the change. Keyed by the change's last
# event position and the fact's place in it.
_DUE_COLUMNS = [
    "overdue_at",
    "order_episode",
    "line_episode",
    "closed_at",
    "line_closed_at",
    "product_id",
]
backorder_facts = Table(
    "backorder_facts",
    metadata,
    Column("store_id", Id, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("n", Integer, nullable=False),
    Column("kind", String(8), nullable=False),  # START, FILL, CANCEL
    Column("product_id", BigInteger, nullable=False),
    Column("order_id", BigInteger, nullable=False),
    Column("line_id", BigInteger, nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("since", UtcDateTime, nullable=False),
    Column("units", Integer, nullable=False),
    Column("value", Money, nullable=False),
    Column("reason", String(32), nullable=True),
    Column("line_episode", UtcDateTime, nullable=True),
    Column("order_episode", UtcDateTime, nullable=True),
    Column("at_placement", Boolean, nullable=False),
    Column("overdue_at", UtcDateTime, nullable=True),
    Column("wait_bucket", Integer, nullable=True),  # FILL: the wait's histogram bucket
    # A START that opened the order's (line's) episode: when that episode closed, set by
    # the change that closed it (the overdue share reads it).
    Column("closed_at", UtcDateTime, nullable=True),
    Column("line_closed_at", UtcDateTime, nullable=True),
    PrimaryKeyConstraint("store_id", "seq", "n"),
    Index("ix_backorder_facts_at", "store_id", "at"),
    Index("ix_backorder_facts_product_at", "store_id", "product_id", "at"),
    Index("ix_backorder_facts_since", "store_id", "since"),
    Index("ix_backorder_facts_product_since", "store_id", "product_id", "since"),
    Index("ix_backorder_facts_order", "store_id", "order_id"),
    # the STARTs the overdue share reads: by when they began, and by their overdue instant
    Index(
        "ix_backorder_facts_due",
        "store_id",
        "overdue_at",
        postgresql_where=text("kind = 'START' AND overdue_at IS NOT NULL"),
        sqlite_where=text("kind = 'START' AND overdue_at IS NOT NULL"),
    ),
    Index(
        "ix_backorder_facts_due_starts",
        "store_id",
        "at",
        postgresql_where=text("kind = 'START' AND overdue_at IS NOT NULL"),
        sqlite_where=text("kind = 'START' AND overdue_at IS NOT NULL"),
        # PostgreSQL answers the overdue share from the index alone
        postgresql_include=_DUE_COLUMNS,
    ),
)


# The backorder facts summed per day of the store's calendar (what a long period reads
# instead of its facts),
# per product and for the whole store (product_id 0), written with the facts. Kinds:
# those of the facts, and PLACED (orders placed; a product's: its lines). `episodes`:
# the store's order episodes opened or closed (its PLACED: orders), a product's line
# episodes (its PLACED: lines); `short`: of those opened, placed short.
backorder_days = Table(
    "backorder_days",
    metadata,
    Column("store_id", Id, nullable=False),
    Column("product_id", BigInteger, nullable=False),
    Column("day", Date, nullable=False),
    Column("kind", String(8), nullable=False),
    Column("reason", String(32), nullable=False),  # '' unless CANCEL
    Column("wait_bucket", Integer, nullable=False),  # -1 unless FILL
    Column("units", BigInteger, nullable=False),
    Column("value", Money, nullable=False),
    Column("episodes", BigInteger, nullable=False),
    Column("short", BigInteger, nullable=False),
    Column("max_wait", Float, nullable=True),  # FILL: the longest wait, seconds
    # START: of the episodes opened that day, those with an overdue instant (due) and,
    # added when they close, those closed at or before it (early)
    Column("due", BigInteger, nullable=False),
    Column("early", BigInteger, nullable=False),
    PrimaryKeyConstraint("store_id", "product_id", "day", "kind", "reason", "wait_bucket"),
)


# What waits, by the day (the store's calendar) it began and the day it moved: kind U,
# units and value by the day those units began to wait (START +, FILL and CANCEL -);
# kind E, episodes by the day they opened (+1 opening, -1 closing). What waited at a
# day's start, by age, is the sum of the rows of the 15 days before it that moved before
# it (storage/queries/outcomes.py).
backorder_ages = Table(
    "backorder_ages",
    metadata,
    Column("store_id", Id, nullable=False),
    Column("product_id", BigInteger, nullable=False),  # 0: the whole store
    Column("kind", String(1), nullable=False),
    Column("start_day", Date, nullable=False),
    Column("at_day", Date, nullable=False),
    Column("units", BigInteger, nullable=False),
    Column("value", Money, nullable=False),
    Column("episodes", BigInteger, nullable=False),
    PrimaryKeyConstraint("store_id", "product_id", "kind", "start_day", "at_day"),
)

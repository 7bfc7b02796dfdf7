"""Bulk export: what may be asked for (resources, formats, filters, checked) and how an
order or a product becomes an NDJSON object or CSV rows. Plain Python: the HTTP endpoint
(ordergraph/app/export.py) parses the request with `parse_request`, storage reads the
pages, and the functions below shape them.

- NDJSON: one JSON object per line; an order carries its lines nested.
- CSV (RFC 4180, CRLF line ends, quoted where a value holds a comma, a quote or a line
  break): orders are flat, one row per order line with the order's columns repeated,
  so a spreadsheet or a `COPY` loads them without a second file; products one row each.

"Updated since T" means: the order has an event in the store's event log at or after T
(placing it, an allocation, a shipment, a cancellation, a new expected date...). The
event log is the truth behind every change of an order, so nothing that changes one is
missed, and nothing else counts.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any

from ordergraph.domain.model import Order, OrderLine, OrderStatus, Product
from ordergraph.domain.validation import HANDLE_RE, MAX_DAY, MIN_DAY

RESOURCES = ("orders", "products")
FORMATS = ("ndjson", "csv")
MEDIA_TYPES = {
    "ndjson": "application/x-ndjson; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
}
#: Query parameters each resource takes.
PARAMETERS = {
    "orders": frozenset({"store", "status", "placed_since", "updated_since"}),
    "products": frozenset({"store"}),
}
MAX_STORE_PARAMETER = 200
CENT = Decimal("0.01")
PRODUCT_IDS_KEPT = 4096

ORDER_COLUMNS = (
    "order_id",
    "order_number",
    "external_id",
    "customer_ref",
    "placed_at",
    "requested_ship_date",
    "status",
    "stock_status",
    "in_backlog",
    "is_backordered",
    "is_overdue",
    "currency_code",
    "line_id",
    "product_id",
    "sku",
    "quantity",
    "unit_price",
    "allocated",
    "backordered",
    "shipped",
    "cancelled",
)
PRODUCT_COLUMNS = (
    "product_id",
    "sku",
    "title",
    "price",
    "currency_code",
    "backorder_policy",
    "backorder_limit",
    "restock_date",
    "on_hand",
    "allocated",
    "available",
    "backordered",
    "available_to_sell",
)

#: Makes a global ID (the GraphQL API's) from a kind, a store id and a row id.
GlobalId = Callable[[str, int, int], str]


class BadExportRequest(ValueError):
    """A request the export cannot serve; `parameter` names the culprit."""

    def __init__(self, message: str, parameter: str | None = None) -> None:
        super().__init__(message)
        self.parameter = parameter


@dataclass(frozen=True)
class ExportRequest:
    resource: str
    format: str
    store: str  # a handle or a store's global ID, as given
    statuses: frozenset[str] | None = None
    placed_since: dt.datetime | None = None
    updated_since: dt.datetime | None = None

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.format]

    @property
    def filename(self) -> str:
        return f"{self.resource}.{self.format}"


def parse_request(name: str, params: Sequence[tuple[str, str]]) -> ExportRequest:
    """The export named by the path's last part (`orders.csv`) with its query parameters
    (all values, in order); BadExportRequest for anything it cannot serve."""
    resource, dot, fmt = name.partition(".")
    if resource not in RESOURCES or not dot or fmt not in FORMATS:
        raise BadExportRequest(
            f"there is no export {name[:60]!r}: use "
            + ", ".join(f"{r}.{f}" for r in RESOURCES for f in FORMATS),
        )
    allowed = PARAMETERS[resource]
    values: dict[str, list[str]] = {}
    for key, value in params:
        if key not in allowed:
            raise BadExportRequest(
                f"unknown parameter {key[:40]!r}; {resource} exports take "
                + ", ".join(sorted(allowed)),
                key[:40],
            )
        values.setdefault(key, []).append(value)
    for key, given in values.items():
        if key != "status" and len(given) > 1:
            raise BadExportRequest(f"{key} is given more than once", key)
    store = (values.get("store") or [""])[0].strip()
    if not store:
        raise BadExportRequest("store is required: a store's handle or ID", "store")
    if len(store) > MAX_STORE_PARAMETER:
        raise BadExportRequest("store is too long to be a handle or an ID", "store")
    statuses = _statuses(values["status"]) if "status" in values else None
    since = {
        name: _instant(values[name][0], name)
        for name in ("placed_since", "updated_since")
        if name in values
    }
    return ExportRequest(
        resource, fmt, store, statuses, since.get("placed_since"), since.get("updated_since")
    )


def looks_like_handle(value: str) -> bool:
    return HANDLE_RE.fullmatch(value) is not None


def _statuses(given: Iterable[str]) -> frozenset[str]:
    """`status=OPEN&status=SHIPPED` or `status=OPEN,SHIPPED` (any case)."""
    wanted: set[str] = set()
    known = [s.value for s in OrderStatus]
    for value in given:
        for part in value.split(","):
            name = part.strip().upper()
            if name not in known:
                raise BadExportRequest(
                    f"unknown status {part.strip()[:40]!r}: use {', '.join(known)}", "status"
                )
            wanted.add(name)
    if not wanted:
        raise BadExportRequest(f"status needs at least one of {', '.join(known)}", "status")
    return frozenset(wanted)


def _instant(value: str, parameter: str) -> dt.datetime:
    """An ISO 8601 instant with its offset (`2026-01-24T00:00:00Z`), or a date (its
    midnight, UTC)."""
    text = value.strip()
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            instant = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
        else:
            instant = dt.datetime.fromisoformat(text)
    except ValueError:
        raise BadExportRequest(
            f"{parameter} must be an ISO 8601 instant such as 2026-01-24T00:00:00Z "
            "or a date such as 2026-01-24",
            parameter,
        ) from None
    if instant.tzinfo is None:
        raise BadExportRequest(
            f"{parameter} needs a UTC offset (Z or +hh:mm): an instant without one is ambiguous",
            parameter,
        )
    if not MIN_DAY <= instant.astimezone(dt.UTC).date() <= MAX_DAY:
        raise BadExportRequest(f"{parameter} must lie between {MIN_DAY} and {MAX_DAY}", parameter)
    return instant.astimezone(dt.UTC)


# -- shaping ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Shaper:
    """Turns a page of orders or products into the bytes of the export."""

    format: str
    currency_code: str
    now: dt.datetime
    gid: GlobalId

    def __post_init__(self) -> None:
        # The IDs of the products ordered recur from line to line: made once each, for the
        # most recent PRODUCT_IDS_KEPT products (bounded, whatever the store's size).
        object.__setattr__(self, "product_gid", lru_cache(PRODUCT_IDS_KEPT)(self._product_gid))

    def _product_gid(self, store_id: int, product_id: int) -> str:
        return self.gid("Product", store_id, product_id)

    def header(self, resource: str) -> bytes:
        if self.format != "csv":
            return b""
        columns = ORDER_COLUMNS if resource == "orders" else PRODUCT_COLUMNS
        return _csv([columns])

    def orders(self, orders: Iterable[Order]) -> bytes:
        if self.format == "csv":
            return _csv(row for order in orders for row in self.order_rows(order))
        return _ndjson(self.order_object(order) for order in orders)

    def products(self, products: Iterable[Product]) -> bytes:
        if self.format == "csv":
            return _csv(self.product_row(product) for product in products)
        return _ndjson(self.product_object(product) for product in products)

    # NDJSON objects: the GraphQL API's field names and value shapes (IDs, money as a
    # decimal string, instants in UTC ISO 8601).
    def order_object(self, order: Order) -> dict[str, Any]:
        shaped = self._order_head(order)
        shaped["lines"] = [self.line_object(line) for line in order.lines]
        return shaped

    def _order_head(self, order: Order) -> dict[str, Any]:
        stock = order.stock_status
        return {
            "id": self.gid("Order", order.store_id, order.id),
            "number": order.number,
            "externalId": order.external_id,
            "customerRef": order.customer_ref,
            "placedAt": _when(order.placed_at),
            "requestedShipDate": _day(order.requested_ship_date),
            "status": order.status.value,
            "stockStatus": stock.value if stock is not None else None,
            "inBacklog": order.in_backlog,
            "isBackordered": order.is_backordered,
            "isOverdue": order.is_overdue(self.now),
            "currencyCode": self.currency_code,
        }

    def line_object(self, line: OrderLine) -> dict[str, Any]:
        return {
            "id": self.gid("OrderLine", line.store_id, line.id),
            "productId": self.product_gid(line.store_id, line.product_id),  # type: ignore[attr-defined]
            "sku": line.sku,
            "quantity": line.quantity,
            "unitPrice": _amount(line.unit_price),
            "allocated": line.allocated,
            "backordered": line.backordered,
            "shipped": line.shipped,
            "cancelled": line.cancelled,
        }

    def product_object(self, product: Product) -> dict[str, Any]:
        return {
            "id": self.gid("Product", product.store_id, product.id),
            "sku": product.sku,
            "title": product.title,
            "price": _amount(product.price),
            "currencyCode": self.currency_code,
            "backorderPolicy": product.backorder_policy.value,
            "backorderLimit": product.backorder_limit,
            "restockDate": _day(product.restock_date),
            "onHand": product.on_hand,
            "allocated": product.allocated,
            "available": product.available,
            "backordered": product.backordered,
            "availableToSell": product.available_to_sell,
        }

    # CSV rows: the same values, flat; an empty field is null, booleans are true/false.
    def order_rows(self, order: Order) -> list[list[str]]:
        head = self._order_head(order)
        common = [
            head["id"],
            str(order.number),
            _text(order.external_id),
            _text(order.customer_ref),
            head["placedAt"],
            _text(head["requestedShipDate"]),
            head["status"],
            _text(head["stockStatus"]),
            _flag(head["inBacklog"]),
            _flag(head["isBackordered"]),
            _flag(head["isOverdue"]),
            self.currency_code,
        ]
        return [
            [
                *common,
                self.gid("OrderLine", line.store_id, line.id),
                self.product_gid(line.store_id, line.product_id),  # type: ignore[attr-defined]
                line.sku,
                str(line.quantity),
                _amount(line.unit_price),
                str(line.allocated),
                str(line.backordered),
                str(line.shipped),
                str(line.cancelled),
            ]
            for line in order.lines
        ]

    def product_row(self, product: Product) -> list[str]:
        shaped = self.product_object(product)
        return [_text(shaped[name]) for name in _PRODUCT_KEYS]


_PRODUCT_KEYS = (
    "id",
    "sku",
    "title",
    "price",
    "currencyCode",
    "backorderPolicy",
    "backorderLimit",
    "restockDate",
    "onHand",
    "allocated",
    "available",
    "backordered",
    "availableToSell",
)


def _csv(rows: Iterable[Sequence[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue().encode("utf-8")


def _ndjson(objects: Iterable[Mapping[str, Any]]) -> bytes:
    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    return "".join(encode(o) + "\n" for o in objects).encode("utf-8")


def _amount(value: Decimal) -> str:
    """As the GraphQL API writes money: at least two decimals, more only when it has them."""
    exact = value.quantize(CENT) if value == value.quantize(CENT) else value.normalize()
    return str(exact)


def _when(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _day(value: dt.date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _flag(value: bool) -> str:
    return "true" if value else "false"

"""Rows to domain objects and read models, and back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ordergraph.domain.model import (
    BackorderPolicy,
    Order,
    OrderLine,
    Product,
    Receipt,
    ReceiptStatus,
    Store,
)
from ordergraph.domain.reads import EventRecord


def store_from(row: Mapping[Any, Any]) -> Store:
    return Store(
        id=row["id"],
        handle=row["handle"],
        name=row["name"],
        currency_code=row["currency_code"],
        timezone=row["timezone"],
        default_backorder_policy=BackorderPolicy(row["default_backorder_policy"]),
        created_at=row["created_at"],
    )


def product_from(row: Mapping[Any, Any]) -> Product:
    return Product(
        store_id=row["store_id"],
        id=row["id"],
        sku=row["sku"],
        title=row["title"],
        price=row["price"],
        backorder_policy=BackorderPolicy(row["backorder_policy"]),
        backorder_limit=row["backorder_limit"],
        restock_date=row["restock_date"],
        on_hand=row["on_hand"],
        allocated=row["allocated"],
        backordered=row["backordered"],
    )


def product_values(product: Product) -> dict[str, Any]:
    return {
        "store_id": product.store_id,
        "id": product.id,
        "sku": product.sku,
        "title": product.title,
        "price": product.price,
        "backorder_policy": product.backorder_policy.value,
        "backorder_limit": product.backorder_limit,
        "restock_date": product.restock_date,
        "on_hand": product.on_hand,
        "allocated": product.allocated,
        "backordered": product.backordered,
    }


def line_from(row: Mapping[Any, Any]) -> OrderLine:
    return OrderLine(
        store_id=row["store_id"],
        id=row["id"],
        order_id=row["order_id"],
        product_id=row["product_id"],
        sku=row["sku"],
        quantity=row["quantity"],
        unit_price=row["unit_price"],
        placed_at=row["placed_at"],
        order_number=row["order_number"],
        allocated=row["allocated"],
        backordered=row["backordered"],
        shipped=row["shipped"],
        cancelled=row["cancelled"],
        waiting_since=row.get("waiting_since"),
    )


def line_values(line: OrderLine) -> dict[str, Any]:
    return {
        "store_id": line.store_id,
        "id": line.id,
        "order_id": line.order_id,
        "product_id": line.product_id,
        "sku": line.sku,
        "quantity": line.quantity,
        "unit_price": line.unit_price,
        "allocated": line.allocated,
        "backordered": line.backordered,
        "shipped": line.shipped,
        "cancelled": line.cancelled,
        "placed_at": line.placed_at,
        "order_number": line.order_number,
        "waiting_since": line.waiting_since,
    }


def order_from(row: Mapping[Any, Any], lines: list[OrderLine]) -> Order:
    return Order(
        store_id=row["store_id"],
        id=row["id"],
        number=row["number"],
        placed_at=row["placed_at"],
        requested_ship_date=row["requested_ship_date"],
        external_id=row["external_id"],
        customer_ref=row["customer_ref"],
        overdue_at=row["overdue_at"],
        overdue_notified=row["overdue_notified"],
        lines=sorted(lines, key=lambda line: line.id),
        backordered_since=row.get("backordered_since"),
    )


def order_values(order: Order) -> dict[str, Any]:
    stock = order.stock_status
    return {
        "store_id": order.store_id,
        "id": order.id,
        "number": order.number,
        "external_id": order.external_id,
        "customer_ref": order.customer_ref,
        "placed_at": order.placed_at,
        "requested_ship_date": order.requested_ship_date,
        "overdue_at": order.overdue_at,
        "status": order.status.value,
        "stock_status": stock.value if stock else None,
        "in_backlog": order.in_backlog,
        "is_backordered": order.is_backordered,
        "overdue_notified": order.overdue_notified,
        "backordered_since": order.backordered_since,
    }


def receipt_from(row: Mapping[Any, Any]) -> Receipt:
    return Receipt(
        store_id=row["store_id"],
        id=row["id"],
        product_id=row["product_id"],
        quantity=row["quantity"],
        received=row["received"],
        expected_at=row["expected_at"],
        reference=row["reference"],
        status=ReceiptStatus(row["status"]),
        created_at=row["created_at"],
    )


def receipt_values(receipt: Receipt) -> dict[str, Any]:
    return {
        "store_id": receipt.store_id,
        "id": receipt.id,
        "product_id": receipt.product_id,
        "quantity": receipt.quantity,
        "received": receipt.received,
        "expected_at": receipt.expected_at,
        "reference": receipt.reference,
        "status": receipt.status.value,
        "created_at": receipt.created_at,
    }


def event_from(row: Any) -> EventRecord:
    return EventRecord(
        store_id=row["store_id"],
        seq=row["seq"],
        stream=row["stream"],
        type=row["type"],
        occurred_at=row["occurred_at"],
        order_id=row["order_id"],
        product_id=row["product_id"],
        data=row["data"],
    )

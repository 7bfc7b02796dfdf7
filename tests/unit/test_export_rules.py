"""What a bulk export request may ask for, and how rows are shaped (domain/export.py)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from decimal import Decimal

import pytest

from ordergraph.domain.export import BadExportRequest, Shaper, parse_request
from ordergraph.domain.model import BackorderPolicy, Order, OrderLine, Product
from ordergraph.settings import MAX_EXPORT_PAGE, Settings

NOW = dt.datetime(2026, 1, 31, tzinfo=dt.UTC)


def gid(kind: str, store: int, row: int) -> str:
    return f"{kind}:{store}:{row}"


def an_order() -> Order:
    placed = dt.datetime(2026, 1, 24, 9, 30, tzinfo=dt.UTC)
    order = Order(
        store_id=1,
        id=7,
        number=1001,
        placed_at=placed,
        requested_ship_date=dt.date(2026, 1, 30),
        customer_ref='Smith, "J"\nsecond line',
        overdue_at=dt.datetime(2026, 1, 31, tzinfo=dt.UTC),
    )
    for n, (sku, allocated, backordered) in enumerate([("MUG-1", 2, 0), ("PLATE", 0, 3)]):
        order.lines.append(
            OrderLine(
                1,
                10 + n,
                7,
                20 + n,
                sku,
                allocated + backordered,
                Decimal("12.5"),
                placed,
                1001,
                allocated=allocated,
                backordered=backordered,
            )
        )
    return order


def test_parses_resource_format_store_statuses_and_instants() -> None:
    wanted = parse_request(
        "orders.csv",
        [
            ("store", " my-store "),
            ("status", "open,Shipped"),
            ("status", "CANCELLED"),
            ("placed_since", "2026-01-24"),
            ("updated_since", "2026-01-24T09:00:00+09:00"),
        ],
    )
    assert (wanted.resource, wanted.format, wanted.store) == ("orders", "csv", "my-store")
    assert wanted.statuses == frozenset({"OPEN", "SHIPPED", "CANCELLED"})
    assert wanted.placed_since == dt.datetime(2026, 1, 24, tzinfo=dt.UTC)
    assert wanted.updated_since == dt.datetime(2026, 1, 24, 0, 0, tzinfo=dt.UTC)
    assert wanted.media_type.startswith("text/csv")


@pytest.mark.parametrize(
    ("name", "params", "parameter"),
    [
        ("orders.json", [("store", "s")], None),
        ("orders.csv", [("store", "s"), ("store", "t")], "store"),
        ("orders.csv", [("store", "s"), ("placed_since", "2026-01-24T00:00:00")], "placed_since"),
        ("orders.csv", [("store", "s"), ("updated_since", "soon")], "updated_since"),
        ("orders.csv", [("store", "s"), ("status", "LOST")], "status"),
        ("products.ndjson", [("store", "s"), ("placed_since", "2026-01-24")], "placed_since"),
        ("products.ndjson", [], "store"),
    ],
)
def test_refuses_what_it_cannot_serve_naming_the_parameter(
    name: str, params: list[tuple[str, str]], parameter: str | None
) -> None:
    with pytest.raises(BadExportRequest) as refused:
        parse_request(name, params)
    assert refused.value.parameter == parameter


def test_an_order_is_one_ndjson_line_with_its_lines_nested() -> None:
    shaper = Shaper("ndjson", "EUR", NOW, gid)
    text = shaper.orders([an_order()]).decode()
    assert text.count("\n") == 1  # the line break inside customerRef is escaped
    shaped = json.loads(text)
    assert shaped["id"] == "Order:1:7"
    assert shaped["placedAt"] == "2026-01-24T09:30:00Z"
    assert (shaped["status"], shaped["stockStatus"]) == ("OPEN", "PARTIALLY_BACKORDERED")
    assert shaped["isOverdue"] is True
    assert [line["unitPrice"] for line in shaped["lines"]] == ["12.50", "12.50"]
    assert [line["productId"] for line in shaped["lines"]] == ["Product:1:20", "Product:1:21"]


def test_csv_repeats_the_order_on_each_line_and_quotes_what_needs_it() -> None:
    shaper = Shaper("csv", "EUR", NOW, gid)
    text = (shaper.header("orders") + shaper.orders([an_order()])).decode()
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert [(r["order_number"], r["line_id"], r["sku"]) for r in rows] == [
        ("1001", "OrderLine:1:10", "MUG-1"),
        ("1001", "OrderLine:1:11", "PLATE"),
    ]
    assert rows[0]["customer_ref"] == 'Smith, "J"\nsecond line'
    assert '"Smith, ""J""\nsecond line"' in text
    assert rows[1]["backordered"] == "3"
    assert rows[0]["external_id"] == ""


def test_products_show_their_stock_and_what_is_left_to_sell() -> None:
    product = Product(
        1,
        3,
        "MUG-1",
        "Mug",
        Decimal("4.1234"),
        BackorderPolicy.LIMIT,
        5,
        None,
        on_hand=4,
        allocated=4,
        backordered=2,
    )
    shaped = json.loads(Shaper("ndjson", "EUR", NOW, gid).products([product]))
    assert (shaped["available"], shaped["availableToSell"], shaped["price"]) == (0, 3, "4.1234")
    row = Shaper("csv", "EUR", NOW, gid).products([product]).decode()
    assert row == "Product:1:3,MUG-1,Mug,4.1234,EUR,LIMIT,5,,4,4,0,2,3\r\n"


def test_export_settings_have_defaults_are_read_from_the_environment_and_bounded() -> None:
    defaults = Settings.from_env({})
    assert (
        defaults.export_page_size,
        defaults.export_max_concurrent,
        defaults.export_rows_per_point,
    ) == (500, 2, 20)
    given = Settings.from_env(
        {
            "ORDERGRAPH_EXPORT_PAGE_SIZE": "100000",
            "ORDERGRAPH_EXPORT_MAX_CONCURRENT": "5",
            "ORDERGRAPH_EXPORT_ROWS_PER_POINT": "100",
        }
    )
    assert given.export_page_size == MAX_EXPORT_PAGE
    assert (given.export_max_concurrent, given.export_rows_per_point) == (5, 100)

"""Placing, filling, shipping and cancelling orders through the HTTP API."""

from __future__ import annotations

from tests.client import Api


async def test_places_order_at_zero_stock_as_backorder_and_fills_it_on_receipt(api: Api) -> None:
    store = await api.create_store()
    await api.upsert(store, "MUG", backorderPolicy="ALLOW")
    placed = await api.place(store, [("MUG", 3)], requestedShipDate="2027-01-30")
    assert placed["userErrors"] == []
    order = placed["order"]
    assert order["number"] == 1001
    assert order["status"] == "OPEN"
    assert order["stockStatus"] == "BACKORDERED"
    assert order["isBackordered"] is True
    assert order["lines"][0]["backordered"] == 3

    received = await api.receive(store, "MUG", 2)
    assert received["userErrors"] == []
    assert received["product"]["onHand"] == 2
    assert received["product"]["allocated"] == 2
    assert received["product"]["backordered"] == 1
    assert [line["backordered"] for line in received["filledLines"]] == [1]

    after = await api.order(store, 1001)
    assert after["stockStatus"] == "PARTIALLY_BACKORDERED"
    assert [e["type"] for e in after["events"]["nodes"]] == [
        "PLACED",
        "BACKORDERED",
        "BACKORDER_FILLED",
    ]

"""Idempotency keys: a partner's retry returns the first result and changes nothing again."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from ordergraph.clock import Clock
from tests.client import Api, StoreHandle


def codes(payload: dict[str, Any]) -> list[str]:
    return [e["code"] for e in payload["userErrors"]]


async def stocked_store(api: Api, on_hand: int = 10, policy: str = "DENY") -> StoreHandle:
    store = await api.create_store(policy=policy)
    await api.upsert(store, "KEY", backorderPolicy=policy)
    await api.receive(store, "KEY", on_hand)
    return store


async def order_count(api: Api, store: StoreHandle) -> int:
    data = await api.gql(
        "query($h: String!) { store(handle: $h) { orders(first: 1) { totalCount } } }",
        {"h": store.handle},
        token=store.token,
    )
    count: int = data["store"]["orders"]["totalCount"]
    return count


# -- same key, same input: the first result -----------------------------------------


async def test_places_one_order_when_the_same_request_is_sent_twice(api: Api) -> None:
    store = await stocked_store(api)

    first = await api.place(store, [("KEY", 2)], idempotencyKey="order-1", externalId="PO-1")
    again = await api.place(store, [("KEY", 2)], idempotencyKey="order-1", externalId="PO-1")

    assert first["userErrors"] == again["userErrors"] == []
    assert again["order"]["id"] == first["order"]["id"]
    assert again["order"]["number"] == first["order"]["number"] == 1001
    assert await order_count(api, store) == 1
    assert (await api.product(store, "KEY"))["allocated"] == 2


async def test_receives_stock_once_when_a_receipt_is_retried(api: Api) -> None:
    store = await stocked_store(api, on_hand=0, policy="ALLOW")
    waiting = await api.place(store, [("KEY", 3)])

    first = await api.receive(store, "KEY", 5, key="asn-77")
    again = await api.receive(store, "KEY", 5, key="asn-77")

    assert first["userErrors"] == again["userErrors"] == []
    assert again["product"]["id"] == first["product"]["id"]
    assert again["product"]["onHand"] == 5
    assert [line["id"] for line in again["filledLines"]] == [waiting["order"]["lines"][0]["id"]]
    product = await api.product(store, "KEY")
    assert (product["onHand"], product["allocated"], product["backordered"]) == (5, 3, 0)


async def test_adjusts_stock_once_when_an_adjustment_is_retried(api: Api) -> None:
    store = await stocked_store(api, on_hand=10)

    first = await api.adjust(store, "KEY", delta=-4, reason="damaged", idempotencyKey="adj-1")
    again = await api.adjust(store, "KEY", delta=-4, reason="damaged", idempotencyKey="adj-1")

    assert first["userErrors"] == again["userErrors"] == []
    assert again["product"]["onHand"] == 6
    assert (await api.product(store, "KEY"))["onHand"] == 6


async def test_ships_once_when_a_shipment_is_retried(api: Api) -> None:
    store = await stocked_store(api, on_hand=10)
    order = (await api.place(store, [("KEY", 3)]))["order"]
    line = order["lines"][0]["id"]

    first = await api.ship(store, order["id"], [(line, 1)], idempotencyKey="ship-1")
    again = await api.ship(store, order["id"], [(line, 1)], idempotencyKey="ship-1")

    assert first["userErrors"] == again["userErrors"] == []
    assert again["order"]["id"] == order["id"]
    assert again["order"]["lines"][0]["shipped"] == 1
    assert again["order"]["status"] == "PARTIALLY_SHIPPED"
    product = await api.product(store, "KEY")
    assert (product["onHand"], product["allocated"]) == (9, 2)


async def test_ships_everything_once_when_a_full_shipment_is_retried(api: Api) -> None:
    store = await stocked_store(api, on_hand=10)
    order = (await api.place(store, [("KEY", 3)]))["order"]

    first = await api.ship(store, order["id"], idempotencyKey="ship-all")
    again = await api.ship(store, order["id"], idempotencyKey="ship-all")

    # Without the key the retry would be refused: nothing is left to ship.
    assert first["userErrors"] == again["userErrors"] == []
    assert again["order"]["status"] == "SHIPPED"
    assert (await api.product(store, "KEY"))["onHand"] == 7


async def test_cancels_once_when_a_cancellation_is_retried(api: Api) -> None:
    store = await stocked_store(api, on_hand=10)
    order = (await api.place(store, [("KEY", 3)]))["order"]
    line = order["lines"][0]["id"]

    first = await api.cancel(store, order["id"], lines=[(line, 1)], idempotencyKey="cx-1")
    again = await api.cancel(store, order["id"], lines=[(line, 1)], idempotencyKey="cx-1")

    assert first["userErrors"] == again["userErrors"] == []
    assert again["order"]["lines"][0]["cancelled"] == 1
    assert again["order"]["lines"][0]["allocated"] == 2
    assert (await api.product(store, "KEY"))["allocated"] == 2


async def test_returns_one_order_to_duplicates_that_arrive_at_the_same_moment(api: Api) -> None:
    store = await stocked_store(api, on_hand=10)

    results = await asyncio.gather(
        *(api.place(store, [("KEY", 1)], idempotencyKey="burst") for _ in range(12))
    )

    assert all(r["userErrors"] == [] for r in results)
    assert len({r["order"]["id"] for r in results}) == 1
    assert await order_count(api, store) == 1
    assert (await api.product(store, "KEY"))["allocated"] == 1


# -- same key, different input -------------------------------------------------------


async def test_refuses_a_key_reused_for_a_different_order_and_changes_nothing(api: Api) -> None:
    store = await stocked_store(api)
    await api.place(store, [("KEY", 2)], idempotencyKey="order-1")

    other_quantity = await api.place(store, [("KEY", 3)], idempotencyKey="order-1")
    other_details = await api.place(
        store, [("KEY", 2)], idempotencyKey="order-1", customerRef="someone else"
    )

    for payload in (other_quantity, other_details):
        assert payload["order"] is None
        assert payload["userErrors"] == [
            {
                "field": ["input", "idempotencyKey"],
                "message": payload["userErrors"][0]["message"],
                "code": "IDEMPOTENCY_KEY_REUSED",
            }
        ]
    assert await order_count(api, store) == 1
    assert (await api.product(store, "KEY"))["allocated"] == 2


async def test_refuses_a_key_reused_for_other_stock_changes_and_changes_nothing(
    api: Api,
) -> None:
    store = await stocked_store(api, on_hand=10)
    await api.receive(store, "KEY", 5, key="asn-1")
    await api.adjust(store, "KEY", delta=-1, idempotencyKey="adj-1")
    order = (await api.place(store, [("KEY", 4)]))["order"]
    line = order["lines"][0]["id"]
    await api.ship(store, order["id"], [(line, 1)], idempotencyKey="ship-1")
    await api.cancel(store, order["id"], lines=[(line, 1)], idempotencyKey="cx-1")

    refused = [
        await api.receive(store, "KEY", 6, key="asn-1"),
        await api.adjust(store, "KEY", delta=-2, idempotencyKey="adj-1"),
        await api.adjust(store, "KEY", delta=-1, reason="theft", idempotencyKey="adj-1"),
        await api.ship(store, order["id"], [(line, 2)], idempotencyKey="ship-1"),
        await api.cancel(store, order["id"], lines=[(line, 2)], idempotencyKey="cx-1"),
        await api.cancel(store, order["id"], "FRAUD", lines=[(line, 1)], idempotencyKey="cx-1"),
    ]

    assert [codes(p) for p in refused] == [["IDEMPOTENCY_KEY_REUSED"]] * len(refused)
    product = await api.product(store, "KEY")
    assert (product["onHand"], product["allocated"]) == (13, 2)
    line_now = (await api.order(store, order["number"]))["lines"][0]
    assert (line_now["shipped"], line_now["cancelled"], line_now["allocated"]) == (1, 1, 2)


# -- the scope of a key ----------------------------------------------------------------


async def test_keeps_keys_apart_per_store(api: Api) -> None:
    north = await stocked_store(api)
    south = await stocked_store(api)

    in_north = await api.place(north, [("KEY", 1)], idempotencyKey="shared")
    in_south = await api.place(south, [("KEY", 1)], idempotencyKey="shared")
    different_in_south = await api.place(south, [("KEY", 4)], idempotencyKey="north-only")
    await api.place(north, [("KEY", 2)], idempotencyKey="north-only")

    assert in_north["userErrors"] == in_south["userErrors"] == []
    assert in_north["order"]["id"] != in_south["order"]["id"]
    assert different_in_south["userErrors"] == []
    assert await order_count(api, north) == 2
    assert await order_count(api, south) == 2
    assert (await api.product(south, "KEY"))["allocated"] == 5


async def test_keeps_keys_apart_per_operation(api: Api) -> None:
    store = await stocked_store(api, on_hand=10)

    received = await api.receive(store, "KEY", 5, key="same-key")
    adjusted = await api.adjust(store, "KEY", delta=5, idempotencyKey="same-key")
    placed = await api.place(store, [("KEY", 3)], idempotencyKey="same-key")
    line = placed["order"]["lines"][0]["id"]
    shipped = await api.ship(store, placed["order"]["id"], [(line, 1)], idempotencyKey="same-key")
    cancelled = await api.cancel(
        store, placed["order"]["id"], lines=[(line, 1)], idempotencyKey="same-key"
    )

    for payload in (received, adjusted, placed, shipped, cancelled):
        assert payload["userErrors"] == []
    product = await api.product(store, "KEY")
    assert (product["onHand"], product["allocated"]) == (19, 1)


# -- how long a key lasts ------------------------------------------------------------


async def test_still_deduplicates_a_retry_within_the_retention(api: Api, clock: Clock) -> None:
    store = await stocked_store(api)
    first = await api.place(store, [("KEY", 1)], idempotencyKey="late-retry")

    clock.advance(dt.timedelta(hours=23))
    again = await api.place(store, [("KEY", 1)], idempotencyKey="late-retry")

    assert again["order"]["id"] == first["order"]["id"]
    assert await order_count(api, store) == 1


async def test_forgets_a_key_older_than_the_retention(api: Api, clock: Clock) -> None:
    store = await stocked_store(api)
    first = await api.place(store, [("KEY", 1)], idempotencyKey="old-key")
    await api.receive(store, "KEY", 5, key="old-asn")

    clock.advance(dt.timedelta(hours=25))
    again = await api.place(store, [("KEY", 1)], idempotencyKey="old-key")
    other_input = await api.receive(store, "KEY", 7, key="old-asn")

    assert again["userErrors"] == []
    assert again["order"]["id"] != first["order"]["id"]
    assert other_input["userErrors"] == []
    assert await order_count(api, store) == 2
    assert (await api.product(store, "KEY"))["onHand"] == 10 + 5 + 7
    # The renewed key deduplicates again from now on.
    retry = await api.place(store, [("KEY", 1)], idempotencyKey="old-key")
    assert retry["order"]["id"] == again["order"]["id"]


# -- the key itself ------------------------------------------------------------------------


async def test_refuses_an_over_long_key_as_invalid_and_changes_nothing(api: Api) -> None:
    store = await stocked_store(api)
    order = (await api.place(store, [("KEY", 2)]))["order"]
    too_long = "k" * 256

    refused = [
        await api.place(store, [("KEY", 1)], idempotencyKey=too_long),
        await api.receive(store, "KEY", 5, key=too_long),
        await api.adjust(store, "KEY", delta=1, idempotencyKey=too_long),
        await api.ship(store, order["id"], idempotencyKey=too_long),
        await api.cancel(store, order["id"], idempotencyKey=too_long),
    ]

    for payload in refused:
        assert payload["userErrors"] == [
            {
                "field": ["input", "idempotencyKey"],
                "message": payload["userErrors"][0]["message"],
                "code": "INVALID",
            }
        ]
    assert await order_count(api, store) == 1
    product = await api.product(store, "KEY")
    assert (product["onHand"], product["allocated"]) == (10, 2)
    longest = await api.place(store, [("KEY", 1)], idempotencyKey="k" * 255)
    assert longest["userErrors"] == []

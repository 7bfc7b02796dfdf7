"""The stock, order and status rules of domain/, run on an in-memory store (no database)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ordergraph.domain import services
from ordergraph.domain.errors import DomainError
from ordergraph.domain.events import InventoryEvent, OrderEvent
from ordergraph.domain.model import (
    BackorderPolicy,
    CancelReason,
    Order,
    OrderLine,
    OrderStatus,
    Product,
    StockStatus,
)
from ordergraph.domain.services import LineQuantity, LineRequest, PlaceOrder
from tests.memory_session import MemorySession

T = TypeVar("T")
ALLOW = BackorderPolicy.ALLOW
DENY = BackorderPolicy.DENY
LIMIT = BackorderPolicy.LIMIT


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Drive a service to completion; the in-memory session never has to wait."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coro.close()
    raise AssertionError("the service waited on something the memory session never provides")


def place(session: MemorySession, *lines: tuple[str, int], ship_by: dt.date | None = None) -> Order:
    order = run(
        services.place_order(
            session,
            PlaceOrder([LineRequest(sku, qty) for sku, qty in lines], requested_ship_date=ship_by),
        )
    )
    session.check_consistency()
    return order


def receive(session: MemorySession, sku: str, quantity: int) -> list[OrderLine]:
    _, filled = run(services.receive_stock(session, sku, quantity))
    session.check_consistency()
    return filled


def adjust(
    session: MemorySession, sku: str, *, delta: int | None = None, set_on_hand: int | None = None
) -> Product:
    product = run(
        services.adjust_stock(session, sku, delta=delta, set_on_hand=set_on_hand, reason="count")
    )
    session.check_consistency()
    return product


def ship(session: MemorySession, order: Order, *lines: tuple[OrderLine, int]) -> Order:
    wanted = [LineQuantity(line.id, qty) for line, qty in lines] or None
    shipped = run(services.ship_order(session, order.id, wanted))
    session.check_consistency()
    return shipped


def cancel(
    session: MemorySession,
    order: Order,
    *lines: tuple[OrderLine, int],
    reason: CancelReason = CancelReason.CUSTOMER_REQUEST,
) -> Order:
    wanted = [LineQuantity(line.id, qty) for line, qty in lines] or None
    cancelled = run(services.cancel_order(session, order.id, reason, wanted))
    session.check_consistency()
    return cancelled


def refused(session: MemorySession, coro: Coroutine[Any, Any, object]) -> list[tuple[str, ...]]:
    """Run a service that must fail; check nothing changed; return (code, *field) per problem."""
    before = session.state()
    with pytest.raises(DomainError) as failure:
        run(coro)
    assert session.state() == before, "a refused change must leave everything as it was"
    return [(p.code.value, *(p.field or ())) for p in failure.value.problems]


def counts(line: OrderLine) -> tuple[int, int, int, int]:
    """(allocated, backordered, shipped, cancelled)"""
    return (line.allocated, line.backordered, line.shipped, line.cancelled)


def stock(product: Product) -> tuple[int, int, int, int]:
    """(onHand, allocated, available, backordered)"""
    return (product.on_hand, product.allocated, product.available, product.backordered)


def order_request(*lines: tuple[str, int]) -> PlaceOrder:
    return PlaceOrder([LineRequest(sku, qty) for sku, qty in lines])


@pytest.fixture
def session() -> MemorySession:
    return MemorySession()


# -- placing an order ---------------------------------------------------------


def test_allocates_what_is_available_and_backorders_the_rest(session: MemorySession) -> None:
    mug = session.add_stocked_product("MUG", 5, policy=ALLOW)
    order = place(session, ("MUG", 8))
    assert counts(order.lines[0]) == (5, 3, 0, 0)
    assert stock(mug) == (5, 5, 0, 3)
    assert order.stock_status is StockStatus.PARTIALLY_BACKORDERED


def test_allocates_the_whole_line_when_stock_suffices(session: MemorySession) -> None:
    mug = session.add_stocked_product("MUG", 10)
    order = place(session, ("MUG", 4))
    assert counts(order.lines[0]) == (4, 0, 0, 0)
    assert stock(mug) == (10, 4, 6, 0)
    assert order.stock_status is StockStatus.ALLOCATED
    assert not order.is_backordered


def test_refuses_an_order_beyond_stock_under_deny_and_changes_nothing(
    session: MemorySession,
) -> None:
    session.add_stocked_product("CUP", 5)
    session.add_stocked_product("MUG", 2)
    problems = refused(
        session, services.place_order(session, order_request(("CUP", 1), ("MUG", 3)))
    )
    assert problems == [("INSUFFICIENT_STOCK", "lines", "1", "quantity")]
    assert session.orders == {}


def test_deny_accepts_an_order_for_exactly_the_available_stock(session: MemorySession) -> None:
    mug = session.add_stocked_product("MUG", 3)
    place(session, ("MUG", 3))
    assert stock(mug) == (3, 3, 0, 0)
    assert refused(session, services.place_order(session, order_request(("MUG", 1)))) == [
        ("INSUFFICIENT_STOCK", "lines", "0", "quantity")
    ]


def test_backorder_limit_allows_backorders_up_to_the_limit_and_not_one_more(
    session: MemorySession,
) -> None:
    mug = session.add_stocked_product("MUG", 1, policy=LIMIT, limit=5)
    place(session, ("MUG", 4))
    assert stock(mug) == (1, 1, 0, 3)
    assert mug.available_to_sell == 2
    place(session, ("MUG", 2))
    assert stock(mug) == (1, 1, 0, 5)
    assert mug.available_to_sell == 0
    problems = refused(session, services.place_order(session, order_request(("MUG", 1))))
    assert problems == [("BACKORDER_LIMIT_EXCEEDED", "lines", "0", "quantity")]


def test_backorder_limit_counts_only_the_units_beyond_stock(session: MemorySession) -> None:
    mug = session.add_stocked_product("MUG", 3, policy=LIMIT, limit=0)
    assert mug.available_to_sell == 3
    place(session, ("MUG", 3))
    problems = refused(session, services.place_order(session, order_request(("MUG", 1))))
    assert problems == [("BACKORDER_LIMIT_EXCEEDED", "lines", "0", "quantity")]


def test_allow_backorders_without_limit(session: MemorySession) -> None:
    mug = session.add_stocked_product("MUG", 0, policy=ALLOW)
    for _ in range(5):
        place(session, ("MUG", 10_000))
    assert stock(mug) == (0, 0, 0, 50_000)
    assert mug.available_to_sell is None


def test_an_order_is_all_or_nothing_across_its_lines(session: MemorySession) -> None:
    session.add_stocked_product("CUP", 5)
    session.add_stocked_product("MUG", 0, policy=LIMIT, limit=1)
    session.add_stocked_product("PEN", 0)
    problems = refused(
        session,
        services.place_order(
            session, order_request(("CUP", 2), ("MUG", 2), ("PEN", 1), ("INK", 1))
        ),
    )
    assert problems == [
        ("BACKORDER_LIMIT_EXCEEDED", "lines", "1", "quantity"),
        ("INSUFFICIENT_STOCK", "lines", "2", "quantity"),
        ("NOT_FOUND", "lines", "3", "sku"),
    ]


def test_merges_lines_of_the_same_sku(session: MemorySession) -> None:
    session.add_stocked_product("MUG", 10)
    session.add_stocked_product("CUP", 10)
    order = place(session, ("MUG", 2), ("CUP", 1), ("MUG", 3))
    assert [(line.sku, line.quantity) for line in order.lines] == [("MUG", 5), ("CUP", 1)]
    assert session.sku("MUG").allocated == 5


def test_merged_lines_may_not_exceed_the_line_maximum(session: MemorySession) -> None:
    session.add_stocked_product("MUG", 0, policy=ALLOW)
    problems = refused(
        session, services.place_order(session, order_request(("MUG", 6_000), ("MUG", 5_000)))
    )
    assert problems == [("INVALID", "lines")]


@pytest.mark.parametrize("quantity", [0, -1, 10_001])
def test_line_quantity_must_be_between_1_and_10000(session: MemorySession, quantity: int) -> None:
    session.add_stocked_product("MUG", 0, policy=ALLOW)
    problems = refused(
        session, services.place_order(session, order_request(("MUG", 1), ("MUG", quantity)))
    )
    assert problems == [("INVALID", "lines", "1", "quantity")]


def test_a_line_of_10000_units_is_accepted(session: MemorySession) -> None:
    session.add_stocked_product("MUG", 0, policy=ALLOW)
    assert place(session, ("MUG", 10_000)).lines[0].backordered == 10_000


def test_an_order_has_one_to_100_lines(session: MemorySession) -> None:
    for n in range(101):
        session.add_stocked_product(f"SKU-{n}", 1)
    hundred = place(session, *[(f"SKU-{n}", 1) for n in range(100)])
    assert len(hundred.lines) == 100
    too_many = order_request(*[(f"SKU-{n}", 1) for n in range(101)])
    assert refused(session, services.place_order(session, too_many)) == [("INVALID", "lines")]
    assert refused(session, services.place_order(session, order_request())) == [
        ("INVALID", "lines")
    ]


def test_unknown_and_malformed_skus_are_reported_at_their_line(session: MemorySession) -> None:
    session.add_stocked_product("MUG", 5)
    problems = refused(
        session,
        services.place_order(session, order_request(("MUG", 1), ("NOPE", 1), ("BAD SKU", 1))),
    )
    assert problems == [("INVALID", "lines", "2", "sku")]
    problems = refused(
        session, services.place_order(session, order_request(("MUG", 1), ("NOPE", 1)))
    )
    assert problems == [("NOT_FOUND", "lines", "1", "sku")]


def test_numbers_orders_from_1001(session: MemorySession) -> None:
    session.add_stocked_product("MUG", 5)
    assert [place(session, ("MUG", 1)).number for _ in range(3)] == [1001, 1002, 1003]


def test_a_new_order_gets_no_stock_while_an_older_one_waits(session: MemorySession) -> None:
    mug = session.add_stocked_product("MUG", 0, policy=ALLOW)
    first = place(session, ("MUG", 3))
    receive(session, "MUG", 2)
    second = place(session, ("MUG", 1))
    assert counts(first.lines[0]) == (2, 1, 0, 0)
    assert counts(second.lines[0]) == (0, 1, 0, 0)
    assert stock(mug) == (2, 2, 0, 2)


# -- receiving and adjusting ----------------------------------------------------


def test_receipt_fills_backorders_oldest_first_and_partially(session: MemorySession) -> None:
    mug = session.add_stocked_product("MUG", 0, policy=ALLOW)
    orders = []
    for quantity in (2, 3, 4):
        orders.append(place(session, ("MUG", quantity)))
        session.advance(minutes=5)
    filled = receive(session, "MUG", 4)
    assert [line.order_id for line in filled] == [orders[0].id, orders[1].id]
    assert [counts(o.lines[0]) for o in orders] == [(2, 0, 0, 0), (2, 1, 0, 0), (0, 4, 0, 0)]
    assert stock(mug) == (4, 4, 0, 5)

    filled = receive(session, "MUG", 10)
    assert [line.order_id for line in filled] == [orders[1].id, orders[2].id]
    assert [counts(o.lines[0]) for o in orders] == [(2, 0, 0, 0), (3, 0, 0, 0), (4, 0, 0, 0)]
    assert stock(mug) == (14, 9, 5, 0)


def test_fill_order_follows_placed_time_before_order_number(session: MemorySession) -> None:
    session.add_stocked_product("MUG", 0, policy=ALLOW)
    later = place(session, ("MUG", 1))
    session.advance(minutes=-10)  # a second process whose clock is behind
    earlier = place(session, ("MUG", 1))
    assert earlier.number > later.number
    filled = receive(session, "MUG", 1)
    assert [line.order_id for line in filled] == [earlier.id]


def test_fill_order_breaks_a_time_tie_by_order_number(session: MemorySession) -> None:
    session.add_stocked_product("MUG", 0, policy=ALLOW)
    session.add_stocked_product("CUP", 0, policy=ALLOW)
    first = place(session, ("CUP", 1), ("MUG", 1))
    second = place(session, ("MUG", 1))
    assert first.placed_at == second.placed_at
    filled = receive(session, "MUG", 1)
    assert [line.order_id for line in filled] == [first.id]


def test_receive_refuses_a_nonpositive_quantity_and_an_unknown_sku(
    session: MemorySession,
) -> None:
    session.add_stocked_product("MUG", 0)
    assert refused(session, services.receive_stock(session, "MUG", 0)) == [("INVALID", "quantity")]
    assert refused(session, services.receive_stock(session, "NOPE", 1)) == [("NOT_FOUND", "sku")]


def test_adjusting_up_fills_backorders_like_a_receipt(session: MemorySession) -> None:
    mug = session.add_stocked_product("MUG", 0, policy=ALLOW)
    first = place(session, ("MUG", 3))
    second = place(session, ("MUG", 2))
    adjust(session, "MUG", delta=4)
    assert counts(first.lines[0]) == (3, 0, 0, 0)
    assert counts(second.lines[0]) == (1, 1, 0, 0)
    assert stock(mug) == (4, 4, 0, 1)
    adjust(session, "MUG", set_on_hand=9)
    assert counts(second.lines[0]) == (2, 0, 0, 0)
    assert stock(mug) == (9, 5, 4, 0)


def test_adjusting_below_allocation_takes_it_back_from_the_newest_lines_whatever_the_policy(
    session: MemorySession,
) -> None:
    mug = session.add_stocked_product("MUG", 10, policy=DENY)
    orders = []
    for quantity in (4, 3, 2):
        orders.append(place(session, ("MUG", quantity)))
        session.advance(minutes=1)
    session.take_events()
    adjust(session, "MUG", set_on_hand=4)
    assert [counts(o.lines[0]) for o in orders] == [(4, 0, 0, 0), (0, 3, 0, 0), (0, 2, 0, 0)]
    assert stock(mug) == (4, 4, 0, 5)
    assert [o.stock_status for o in orders] == [
        StockStatus.ALLOCATED,
        StockStatus.BACKORDERED,
        StockStatus.BACKORDERED,
    ]
    events = session.take_events()
    assert [(type(e).__name__, e.type.value) for e in events] == [
        ("OrderEvent", "BACKORDERED"),
        ("OrderEvent", "BACKORDERED"),
        ("InventoryEvent", "ADJUSTED"),
        ("InventoryEvent", "RELEASED"),
        ("InventoryEvent", "OUT_OF_STOCK"),
    ]
    assert [e.order_id for e in events if isinstance(e, OrderEvent)] == [
        orders[2].id,
        orders[1].id,
    ]
    assert events[2].data["quantity"] == -6
    assert events[3].data["quantity"] == 5


def test_adjusting_below_allocation_can_split_a_line(session: MemorySession) -> None:
    mug = session.add_stocked_product("MUG", 6)
    first = place(session, ("MUG", 3))
    second = place(session, ("MUG", 3))
    adjust(session, "MUG", delta=-4)
    assert counts(first.lines[0]) == (2, 1, 0, 0)
    assert counts(second.lines[0]) == (0, 3, 0, 0)
    assert stock(mug) == (2, 2, 0, 4)


def test_adjusting_down_within_free_stock_touches_no_line(session: MemorySession) -> None:
    mug = session.add_stocked_product("MUG", 10)
    order = place(session, ("MUG", 4))
    session.take_events()
    adjust(session, "MUG", delta=-6)
    assert counts(order.lines[0]) == (4, 0, 0, 0)
    assert stock(mug) == (4, 4, 0, 0)
    assert session.event_types() == ["stock:ADJUSTED", "stock:OUT_OF_STOCK"]


@pytest.mark.parametrize(
    ("delta", "set_on_hand", "reason", "expected"),
    [
        (-11, None, "count", ("INVALID", "delta")),
        (None, -1, "count", ("INVALID", "setOnHand")),
        (0, None, "count", ("INVALID", "delta")),
        (1, 5, "count", ("INVALID", "delta")),
        (None, None, "count", ("INVALID", "delta")),
        (1, None, "   ", ("INVALID", "reason")),
    ],
)
def test_adjust_refuses_impossible_counts_and_bad_arguments(
    session: MemorySession,
    delta: int | None,
    set_on_hand: int | None,
    reason: str,
    expected: tuple[str, ...],
) -> None:
    session.add_stocked_product("MUG", 10)
    problems = refused(
        session,
        services.adjust_stock(session, "MUG", delta=delta, set_on_hand=set_on_hand, reason=reason),
    )
    assert problems == [expected]


# -- shipping -------------------------------------------------------------------


def test_ships_only_allocated_units(session: MemorySession) -> None:
    mug = session.add_stocked_product("MUG", 2, policy=ALLOW)
    order = place(session, ("MUG", 5))
    line = order.lines[0]
    problems = refused(session, services.ship_order(session, order.id, [LineQuantity(line.id, 3)]))
    assert problems == [("NOT_SHIPPABLE", "lines", "0", "quantity")]
    ship(session, order, (line, 2))
    assert counts(line) == (0, 3, 2, 0)
    assert stock(mug) == (0, 0, 0, 3)
    assert order.status is OrderStatus.PARTIALLY_SHIPPED
    assert order.stock_status is StockStatus.BACKORDERED


def test_shipping_every_allocated_unit_leaves_the_backorder_waiting(
    session: MemorySession,
) -> None:
    mug = session.add_stocked_product("MUG", 2, policy=ALLOW)
    session.add_stocked_product("CUP", 4)
    order = place(session, ("MUG", 5), ("CUP", 1))
    ship(session, order)
    assert [counts(line) for line in order.lines] == [(0, 3, 2, 0), (0, 0, 1, 0)]
    assert stock(mug) == (0, 0, 0, 3)
    assert stock(session.sku("CUP")) == (3, 0, 3, 0)
    assert order.in_backlog


def test_partial_shipments_lower_on_hand_and_allocated_together(session: MemorySession) -> None:
    mug = session.add_stocked_product("MUG", 10)
    order = place(session, ("MUG", 6))
    line = order.lines[0]
    ship(session, order, (line, 2))
    assert (stock(mug), order.status) == ((8, 4, 4, 0), OrderStatus.PARTIALLY_SHIPPED)
    ship(session, order, (line, 1), (line, 3))  # two entries of one line add up
    assert counts(line) == (0, 0, 6, 0)
    assert (stock(mug), order.status) == ((4, 0, 4, 0), OrderStatus.SHIPPED)


def test_shipping_an_order_with_nothing_allocated_is_not_shippable(
    session: MemorySession,
) -> None:
    session.add_stocked_product("MUG", 0, policy=ALLOW)
    order = place(session, ("MUG", 2))
    assert refused(session, services.ship_order(session, order.id, None)) == [
        ("NOT_SHIPPABLE", "orderId")
    ]


def test_unknown_orders_and_lines_are_not_found(session: MemorySession) -> None:
    session.add_stocked_product("MUG", 5)
    order = place(session, ("MUG", 2))
    assert refused(session, services.ship_order(session, 999, None)) == [("NOT_FOUND", "orderId")]
    assert refused(session, services.ship_order(session, order.id, [LineQuantity(999, 1)])) == [
        ("NOT_FOUND", "lines", "0", "lineId")
    ]
    assert refused(
        session,
        services.cancel_order(session, order.id, CancelReason.OTHER, [LineQuantity(999, 1)]),
    ) == [("NOT_FOUND", "lines", "0", "lineId")]


def test_closed_orders_refuse_shipping_and_cancelling(session: MemorySession) -> None:
    session.add_stocked_product("MUG", 5)
    shipped = place(session, ("MUG", 2))
    cancelled = place(session, ("MUG", 2))
    ship(session, shipped)
    cancel(session, cancelled)
    for order in (shipped, cancelled):
        line = order.lines[0]
        assert refused(session, services.ship_order(session, order.id, None)) == [
            ("ALREADY_CLOSED", "orderId")
        ]
        assert refused(
            session, services.ship_order(session, order.id, [LineQuantity(line.id, 1)])
        ) == [("ALREADY_CLOSED", "orderId")]
        assert refused(
            session, services.cancel_order(session, order.id, CancelReason.OTHER, None)
        ) == [("ALREADY_CLOSED", "orderId")]


# -- cancelling -------------------------------------------------------------------


def test_cancelling_takes_backordered_units_first_then_allocated(session: MemorySession) -> None:
    mug = session.add_stocked_product("MUG", 3, policy=ALLOW)
    first = place(session, ("MUG", 5))
    second = place(session, ("MUG", 4))
    session.take_events()
    cancel(session, first, (first.lines[0], 3))
    assert counts(first.lines[0]) == (2, 0, 0, 3)
    # the allocated unit released by the cancellation goes to the waiting order at once
    assert counts(second.lines[0]) == (1, 3, 0, 0)
    assert stock(mug) == (3, 3, 0, 3)
    assert session.event_types() == [
        "order:CANCELLED",
        "stock:RELEASED",
        "order:BACKORDER_FILLED",
        "stock:ALLOCATED",
    ]


def test_cancelling_a_whole_order_releases_its_stock_to_the_queue(session: MemorySession) -> None:
    mug = session.add_stocked_product("MUG", 3, policy=ALLOW)
    first = place(session, ("MUG", 3))
    second = place(session, ("MUG", 2))
    session.take_events()
    cancel(session, first, reason=CancelReason.CUSTOMER_DECLINED_BACKORDER)
    assert counts(first.lines[0]) == (0, 0, 0, 3)
    assert first.status is OrderStatus.CANCELLED
    assert first.stock_status is None
    assert counts(second.lines[0]) == (2, 0, 0, 0)
    assert stock(mug) == (3, 2, 1, 0)
    events = session.take_events()
    assert [e.type.value for e in events] == [
        "CANCELLED",
        "RELEASED",
        "BACKORDER_FILLED",
        "ALLOCATED",
        "BACK_IN_STOCK",
    ]
    assert events[0].data["reason"] == "CUSTOMER_DECLINED_BACKORDER"
    assert events[1].data["quantity"] == 3
    assert events[3].data["quantity"] == 2


def test_cancelling_more_units_than_are_left_is_invalid(session: MemorySession) -> None:
    session.add_stocked_product("MUG", 5)
    order = place(session, ("MUG", 3))
    line = order.lines[0]
    ship(session, order, (line, 1))
    problems = refused(
        session,
        services.cancel_order(session, order.id, CancelReason.OTHER, [LineQuantity(line.id, 3)]),
    )
    assert problems == [("INVALID", "lines", "0", "quantity")]
    cancel(session, order, (line, 2))
    assert order.status is OrderStatus.SHIPPED


# -- derived status -------------------------------------------------------------


def test_status_follows_the_lines(session: MemorySession) -> None:
    session.add_stocked_product("MUG", 10)
    order = place(session, ("MUG", 4))
    assert (order.status, order.in_backlog) == (OrderStatus.OPEN, True)
    ship(session, order, (order.lines[0], 1))
    assert (order.status, order.in_backlog) == (OrderStatus.PARTIALLY_SHIPPED, True)
    cancel(session, order, (order.lines[0], 1))
    assert order.status is OrderStatus.PARTIALLY_SHIPPED
    ship(session, order)
    assert (order.status, order.in_backlog, order.stock_status) == (
        OrderStatus.SHIPPED,
        False,
        None,
    )

    untouched = place(session, ("MUG", 2))
    cancel(session, untouched)
    assert (untouched.status, untouched.in_backlog, untouched.stock_status) == (
        OrderStatus.CANCELLED,
        False,
        None,
    )


def test_stock_status_describes_the_units_left_to_ship(session: MemorySession) -> None:
    session.add_stocked_product("MUG", 2, policy=ALLOW)
    session.add_stocked_product("CUP", 0, policy=ALLOW)
    order = place(session, ("MUG", 2), ("CUP", 1))
    assert (order.stock_status, order.is_backordered) == (StockStatus.PARTIALLY_BACKORDERED, True)
    ship(session, order)
    assert (order.stock_status, order.is_backordered) == (StockStatus.BACKORDERED, True)
    receive(session, "CUP", 1)
    assert (order.stock_status, order.is_backordered) == (StockStatus.ALLOCATED, False)


def test_becomes_overdue_when_the_requested_ship_date_ends_in_the_store_timezone() -> None:
    session = MemorySession(timezone="America/New_York")
    session.add_stocked_product("MUG", 0, policy=ALLOW)
    order = place(session, ("MUG", 1), ship_by=dt.date(2027, 1, 30))
    deadline = dt.datetime(2027, 1, 31, 5, 0, tzinfo=dt.UTC)
    assert order.overdue_at == deadline
    assert not order.is_overdue(dt.datetime(2027, 1, 30, 23, 59, 59, tzinfo=dt.UTC))
    assert not order.is_overdue(deadline - dt.timedelta(microseconds=1))
    assert order.is_overdue(deadline)
    receive(session, "MUG", 1)
    ship(session, order)
    assert not order.is_overdue(deadline + dt.timedelta(days=1))


@pytest.mark.parametrize(
    ("timezone", "ship_by", "deadline"),
    [
        ("UTC", dt.date(2027, 1, 30), dt.datetime(2027, 1, 31, 0, 0, tzinfo=dt.UTC)),
        ("Asia/Tokyo", dt.date(2027, 1, 30), dt.datetime(2027, 1, 30, 15, 0, tzinfo=dt.UTC)),
        ("America/New_York", dt.date(2027, 7, 4), dt.datetime(2027, 7, 5, 4, 0, tzinfo=dt.UTC)),
    ],
)
def test_overdue_instant_is_local_midnight_after_the_requested_date(
    timezone: str, ship_by: dt.date, deadline: dt.datetime
) -> None:
    session = MemorySession(timezone=timezone)
    session.add_stocked_product("MUG", 1)
    order = place(session, ("MUG", 1), ship_by=ship_by)
    assert order.overdue_at == deadline
    assert not order.is_overdue(deadline - dt.timedelta(seconds=1))
    assert order.is_overdue(deadline)


def test_an_overdue_order_is_flagged_once_with_one_overdue_event() -> None:
    session = MemorySession(timezone="America/New_York")
    session.add_stocked_product("MUG", 1, policy=ALLOW)
    shipped = place(session, ("MUG", 1), ship_by=dt.date(2027, 1, 30))
    late = place(session, ("MUG", 2), ship_by=dt.date(2027, 1, 30))
    place(session, ("MUG", 1), ship_by=dt.date(2027, 1, 31))
    ship(session, shipped)
    session.take_events()

    session.now = dt.datetime(2027, 1, 31, 4, 59, 59, tzinfo=dt.UTC)
    assert run(services.mark_overdue(session)) == []
    assert session.take_events() == []

    session.now = dt.datetime(2027, 1, 31, 5, 0, tzinfo=dt.UTC)
    assert run(services.mark_overdue(session)) == [late]
    events = session.take_events()
    assert [(e.type.value, getattr(e, "order_id", None)) for e in events] == [("OVERDUE", late.id)]
    assert events[0].data["stockStatus"] == "BACKORDERED"

    session.advance(minutes=1)
    assert run(services.mark_overdue(session)) == []
    assert session.take_events() == []


def test_an_order_without_requested_ship_date_is_never_overdue(session: MemorySession) -> None:
    session.add_stocked_product("MUG", 0, policy=ALLOW)
    order = place(session, ("MUG", 1))
    assert not order.is_overdue(dt.datetime(2100, 1, 1, tzinfo=dt.UTC))


# -- events ---------------------------------------------------------------------


def test_placing_a_partly_backordered_order_emits_placed_backordered_and_stock_events(
    session: MemorySession,
) -> None:
    session.add_stocked_product("MUG", 2, policy=ALLOW)
    order = place(session, ("MUG", 5))
    events = session.take_events()
    assert [e.type.value for e in events] == ["PLACED", "BACKORDERED", "ALLOCATED", "OUT_OF_STOCK"]
    placed = events[0]
    assert isinstance(placed, OrderEvent)
    assert placed.order_id == order.id
    assert placed.data["status"] == "OPEN"
    assert placed.data["stockStatus"] == "PARTIALLY_BACKORDERED"
    allocated = events[2]
    assert isinstance(allocated, InventoryEvent)
    assert allocated.data["quantity"] == 2
    assert (allocated.data["onHand"], allocated.data["available"]) == (2, 0)


def test_placing_a_fully_allocated_order_emits_no_backorder_event(session: MemorySession) -> None:
    session.add_stocked_product("MUG", 5)
    place(session, ("MUG", 2))
    assert session.event_types() == ["order:PLACED", "stock:ALLOCATED"]


def test_receipt_emits_received_then_the_fills_then_back_in_stock(session: MemorySession) -> None:
    session.add_stocked_product("MUG", 0, policy=ALLOW)
    order = place(session, ("MUG", 3))
    session.take_events()
    receive(session, "MUG", 5)
    events = session.take_events()
    assert [e.type.value for e in events] == [
        "RECEIVED",
        "BACKORDER_FILLED",
        "ALLOCATED",
        "BACK_IN_STOCK",
    ]
    filled = events[1]
    assert isinstance(filled, OrderEvent)
    assert filled.order_id == order.id
    assert filled.data["stockStatus"] == "ALLOCATED"
    assert events[2].data["quantity"] == 3
    assert events[3].data["available"] == 2


def test_shipping_emits_partially_shipped_then_shipped(session: MemorySession) -> None:
    session.add_stocked_product("MUG", 5)
    order = place(session, ("MUG", 3))
    session.take_events()
    ship(session, order, (order.lines[0], 1))
    assert session.event_types() == ["order:PARTIALLY_SHIPPED", "stock:SHIPPED"]
    ship(session, order)
    assert session.event_types() == ["order:SHIPPED", "stock:SHIPPED"]


# -- the fill invariant, on random sequences -------------------------------------

SKUS = ["A", "B"]
operation = st.one_of(
    st.tuples(st.just("place"), st.lists(st.tuples(st.sampled_from(SKUS), st.integers(1, 6)))),
    st.tuples(st.just("receive"), st.sampled_from(SKUS), st.integers(1, 8)),
    st.tuples(st.just("adjust"), st.sampled_from(SKUS), st.integers(0, 12)),
    st.tuples(st.just("ship"), st.integers(0, 50)),
    st.tuples(st.just("cancel"), st.integers(0, 50), st.integers(1, 4)),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(operation, max_size=40), st.sampled_from(list(BackorderPolicy)))
def test_free_stock_never_sits_idle_while_orders_wait(
    ops: list[tuple[Any, ...]], policy: BackorderPolicy
) -> None:
    session = MemorySession()
    for sku in SKUS:
        session.add_stocked_product(
            sku, 3, policy=policy, limit=4 if policy is BackorderPolicy.LIMIT else None
        )
    for op in ops:
        session.advance(seconds=1)
        orders = list(session.orders.values())
        before = session.state()
        try:
            if op[0] == "place":
                run(services.place_order(session, order_request(*op[1])))
            elif op[0] == "receive":
                run(services.receive_stock(session, op[1], op[2]))
            elif op[0] == "adjust":
                run(
                    services.adjust_stock(session, op[1], delta=None, set_on_hand=op[2], reason="x")
                )
            elif orders and op[0] == "ship":
                run(services.ship_order(session, orders[op[1] % len(orders)].id, None))
            elif orders and op[0] == "cancel":
                order = orders[op[1] % len(orders)]
                wanted = [LineQuantity(line.id, op[2]) for line in order.lines[:1]]
                run(services.cancel_order(session, order.id, CancelReason.OTHER, wanted))
        except DomainError:
            assert session.state() == before
        session.check_consistency()

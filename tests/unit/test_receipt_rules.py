"""Scheduling, changing, cancelling and receiving against incoming receipts
(domain/services/receipts.py, stock.py), on an in-memory store."""

from __future__ import annotations

import datetime as dt

import pytest

from ordergraph.domain import services
from ordergraph.domain.commands import (
    UNKNOWN_RECEIPT,
    CancelReceipt,
    ScheduleReceipt,
    UpdateReceipt,
)
from ordergraph.domain.events import OrderEvent, OrderEventType
from ordergraph.domain.model import BackorderPolicy, Receipt, ReceiptStatus
from ordergraph.domain.validation import MAX_STOCK_CHANGE
from tests.memory_session import MemorySession
from tests.unit.test_domain_rules import place, refused, run

CHANGED = OrderEventType.EXPECTED_SHIP_DATE_CHANGED
MAR_3 = dt.date(2027, 3, 3)
MAR_9 = dt.date(2027, 3, 9)


@pytest.fixture
def session() -> MemorySession:
    s = MemorySession()
    s.add_stocked_product("MUG", 0, policy=BackorderPolicy.ALLOW)
    s.add_stocked_product("CUP", 0, policy=BackorderPolicy.ALLOW)
    return s


def schedule(session: MemorySession, quantity: int = 5, reference: str | None = None) -> Receipt:
    return run(
        services.schedule_receipt(session, ScheduleReceipt("MUG", quantity, MAR_3, reference))
    )


def test_scheduling_records_what_is_expected_and_when(session: MemorySession) -> None:
    receipt = schedule(session, 5, "  PO-1  ")
    assert (receipt.quantity, receipt.received, receipt.expected_at) == (5, 0, MAR_3)
    assert receipt.reference == "PO-1"
    assert receipt.status is ReceiptStatus.OPEN
    assert receipt.product_id == session.sku("MUG").id
    assert session.receipts[receipt.id] is receipt
    assert session.take_events() == []  # scheduling moves no stock


def test_scheduling_refuses_bad_quantities_an_unknown_sku_and_a_long_reference(
    session: MemorySession,
) -> None:
    for quantity in (0, -1, MAX_STOCK_CHANGE + 1):
        cmd = ScheduleReceipt("MUG", quantity, MAR_3)
        assert refused(session, services.schedule_receipt(session, cmd)) == [
            ("INVALID", "quantity")
        ]
    cmd = ScheduleReceipt("NOPE", 1, MAR_3)
    assert refused(session, services.schedule_receipt(session, cmd)) == [("NOT_FOUND", "sku")]
    cmd = ScheduleReceipt("MUG", 1, MAR_3, "x" * 256)
    assert refused(session, services.schedule_receipt(session, cmd)) == [("INVALID", "reference")]
    cmd = ScheduleReceipt("MUG", 1, dt.date(1969, 12, 31))
    assert refused(session, services.schedule_receipt(session, cmd)) == [("INVALID", "expectedAt")]


def test_updating_changes_what_was_given_and_a_quantity_of_0_closes_it(
    session: MemorySession,
) -> None:
    receipt = schedule(session, 5, "PO-1")
    run(services.update_receipt(session, UpdateReceipt(receipt.id, expected_at=MAR_9)))
    assert (receipt.quantity, receipt.expected_at, receipt.reference) == (5, MAR_9, "PO-1")
    run(services.update_receipt(session, UpdateReceipt(receipt.id, reference_given=True)))
    assert receipt.reference is None
    run(services.update_receipt(session, UpdateReceipt(receipt.id, quantity=0)))
    assert receipt.status is ReceiptStatus.CLOSED
    cmd = UpdateReceipt(receipt.id, quantity=3)
    assert refused(session, services.update_receipt(session, cmd)) == [("ALREADY_CLOSED", "id")]


def test_updating_refuses_a_negative_quantity_and_an_unknown_receipt(
    session: MemorySession,
) -> None:
    receipt = schedule(session)
    cmd = UpdateReceipt(receipt.id, quantity=-1)
    assert refused(session, services.update_receipt(session, cmd)) == [("INVALID", "quantity")]
    cmd = UpdateReceipt(UNKNOWN_RECEIPT, quantity=1)
    assert refused(session, services.update_receipt(session, cmd)) == [("NOT_FOUND", "id")]


def test_cancelling_twice_is_fine_and_a_cancelled_receipt_cannot_be_changed(
    session: MemorySession,
) -> None:
    receipt = schedule(session)
    run(services.cancel_receipt(session, CancelReceipt(receipt.id)))
    assert receipt.status is ReceiptStatus.CANCELLED
    run(services.cancel_receipt(session, CancelReceipt(receipt.id)))
    assert receipt.status is ReceiptStatus.CANCELLED
    cmd = UpdateReceipt(receipt.id, quantity=1)
    assert refused(session, services.update_receipt(session, cmd)) == [("ALREADY_CLOSED", "id")]
    got = services.receive_stock(session, "MUG", 1, receipt_id=receipt.id)
    assert refused(session, got) == [("ALREADY_CLOSED", "receiptId")]
    cmd_c = CancelReceipt(UNKNOWN_RECEIPT)
    assert refused(session, services.cancel_receipt(session, cmd_c)) == [("NOT_FOUND", "id")]


def test_receiving_against_a_receipt_lowers_what_it_expects_then_closes_it(
    session: MemorySession,
) -> None:
    order = place(session, ("MUG", 4))
    receipt = schedule(session, 5)
    _, filled = run(services.receive_stock(session, "MUG", 3, receipt_id=receipt.id))
    assert [line.order_id for line in filled] == [order.id]  # fills the queue as ever
    assert (receipt.quantity, receipt.received, receipt.status) == (2, 3, ReceiptStatus.OPEN)
    run(services.receive_stock(session, "MUG", 2, receipt_id=receipt.id))
    assert (receipt.quantity, receipt.received, receipt.status) == (0, 5, ReceiptStatus.CLOSED)
    cmd = CancelReceipt(receipt.id)
    assert refused(session, services.cancel_receipt(session, cmd)) == [("ALREADY_CLOSED", "id")]


def test_receiving_more_than_expected_closes_the_receipt_and_keeps_the_rest_as_stock(
    session: MemorySession,
) -> None:
    receipt = schedule(session, 5)
    run(services.receive_stock(session, "MUG", 8, receipt_id=receipt.id))
    assert (receipt.quantity, receipt.received, receipt.status) == (0, 8, ReceiptStatus.CLOSED)
    assert session.sku("MUG").on_hand == 8


def test_receiving_refuses_another_products_receipt_and_an_unknown_one(
    session: MemorySession,
) -> None:
    receipt = schedule(session, 5)
    got = services.receive_stock(session, "CUP", 1, receipt_id=receipt.id)
    assert refused(session, got) == [("INVALID", "receiptId")]
    got = services.receive_stock(session, "MUG", 1, receipt_id=UNKNOWN_RECEIPT)
    assert refused(session, got) == [("NOT_FOUND", "receiptId")]


def ship_date_events(session: MemorySession) -> dict[int, str | None]:
    """Order number -> new expectedShipDate, of the EXPECTED_SHIP_DATE_CHANGED events
    emitted since the last call."""
    found = {}
    for event in session.take_events():
        if isinstance(event, OrderEvent) and event.type is CHANGED:
            found[session.orders[event.order_id].number] = event.data["expectedShipDate"]
    return found  # type: ignore[return-value]


def test_receipts_that_move_a_waiting_orders_ship_date_tell_that_order(
    session: MemorySession,
) -> None:
    first = place(session, ("MUG", 3))  # 1001
    second = place(session, ("MUG", 4), ("CUP", 1))  # 1002: CUP has no date yet
    third = place(session, ("MUG", 2))  # 1003
    session.take_events()
    later = schedule(session, 5)  # MAR_3: covers 1001 and 2 of 1002's 4
    assert ship_date_events(session) == {first.number: "2027-03-03"}
    cmd = ScheduleReceipt("CUP", 1, MAR_9)
    run(services.schedule_receipt(session, cmd))
    assert ship_date_events(session) == {}  # 1002 still waits for 2 MUGs nobody brings
    run(services.schedule_receipt(session, ScheduleReceipt("MUG", 10, MAR_9)))
    assert ship_date_events(session) == {second.number: "2027-03-09", third.number: "2027-03-09"}
    moved = UpdateReceipt(later.id, expected_at=dt.date(2027, 3, 20))  # now after MAR_9
    run(services.update_receipt(session, moved))
    # MAR_9's 10 come first now: 1001 and 1002 take 7, 1003 2; MAR_20 is not needed
    assert ship_date_events(session) == {first.number: "2027-03-09"}
    run(services.cancel_receipt(session, CancelReceipt(later.id)))
    assert ship_date_events(session) == {}  # it covered nobody


def test_receiving_against_a_receipt_re_dates_the_orders_still_waiting(
    session: MemorySession,
) -> None:
    place(session, ("MUG", 2))  # 1001
    second = place(session, ("MUG", 2))  # 1002
    early = schedule(session, 2)  # MAR_3: 1001
    run(services.schedule_receipt(session, ScheduleReceipt("MUG", 2, MAR_9)))  # 1002
    session.take_events()
    run(services.receive_stock(session, "MUG", 2, receipt_id=early.id))
    # 1001 is filled (BACKORDER_FILLED, no date event); 1002 keeps MAR_9
    assert ship_date_events(session) == {}
    run(services.schedule_receipt(session, ScheduleReceipt("MUG", 2, MAR_3)))
    assert ship_date_events(session) == {second.number: "2027-03-03"}

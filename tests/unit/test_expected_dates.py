"""The fill-date walk (domain/expected.py): waiting lines in fill order against the
open receipts in date order, the restock date as a receipt of unknown quantity."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from ordergraph.domain.expected import plan_fills, ship_date
from ordergraph.domain.model import Receipt, ReceiptStatus

START = dt.datetime(2027, 1, 24, tzinfo=dt.UTC)


def day(n: int) -> dt.date:
    return dt.date(2027, 2, 1) + dt.timedelta(days=n)


def receipt(
    rid: int, quantity: int, on: int, status: ReceiptStatus = ReceiptStatus.OPEN
) -> Receipt:
    return Receipt(
        store_id=1,
        id=rid,
        product_id=1,
        quantity=quantity,
        expected_at=day(on),
        created_at=START,
        status=status,
    )


def test_each_line_gets_the_date_of_the_receipt_that_covers_its_last_unit() -> None:
    queue = [(10, 3), (11, 4), (12, 2)]
    plan = plan_fills(queue, [receipt(1, 5, 3), receipt(2, 10, 9)])
    # line 10: units 1-3 by receipt 1; line 11: units 4-5 by 1, 6-7 by 2; line 12 by 2
    assert plan.dates == {10: day(3), 11: day(9), 12: day(9)}
    assert plan.units_to_reorder == 0


def test_receipts_are_walked_in_date_order_not_in_the_order_given() -> None:
    plan = plan_fills([(10, 2), (11, 2)], [receipt(1, 2, 9), receipt(2, 2, 3)])
    assert plan.dates == {10: day(3), 11: day(9)}


def test_same_day_receipts_go_in_the_order_they_were_scheduled() -> None:
    plan = plan_fills([(10, 1), (11, 1)], [receipt(7, 1, 5), receipt(3, 1, 5)])
    assert plan.dates == {10: day(5), 11: day(5)}
    assert plan.units_to_reorder == 0


def test_lines_beyond_the_receipts_have_no_date_and_count_as_units_to_reorder() -> None:
    plan = plan_fills([(10, 3), (11, 4), (12, 5)], [receipt(1, 5, 3)])
    assert plan.dates == {10: day(3), 11: None, 12: None}
    assert plan.units_to_reorder == 2 + 5


def test_cancelled_and_closed_receipts_cover_nothing() -> None:
    receipts = [
        receipt(1, 5, 1, ReceiptStatus.CANCELLED),
        receipt(2, 5, 2, ReceiptStatus.CLOSED),
        receipt(3, 1, 4),
    ]
    plan = plan_fills([(10, 2)], receipts)
    assert plan.dates == {10: None}
    assert plan.units_to_reorder == 1


def test_the_restock_date_covers_every_unit_no_receipt_does() -> None:
    plan = plan_fills([(10, 3), (11, 4), (12, 5)], [receipt(1, 5, 3)], restock_date=day(6))
    assert plan.dates == {10: day(3), 11: day(6), 12: day(6)}
    assert plan.units_to_reorder == 7  # its quantity is unknown: it orders nothing


def test_a_line_partly_covered_by_a_later_receipt_keeps_the_later_date() -> None:
    plan = plan_fills([(10, 3)], [receipt(1, 2, 9)], restock_date=day(2))
    assert plan.dates == {10: day(9)}


def test_without_receipts_every_line_has_the_restock_date_or_none() -> None:
    assert plan_fills([(10, 1), (11, 2)], [], restock_date=day(4)).dates == {
        10: day(4),
        11: day(4),
    }
    plan = plan_fills([(10, 1), (11, 2)], [])
    assert plan.dates == {10: None, 11: None}
    assert plan.units_to_reorder == 3


def test_an_order_ships_on_its_latest_waiting_date_and_not_while_one_is_unknown() -> None:
    assert ship_date([day(3), day(9)]) == day(9)
    assert ship_date([day(3), None]) is None
    assert ship_date([]) is None


@given(
    waiting=st.lists(st.integers(1, 20), max_size=12),
    incoming=st.lists(st.tuples(st.integers(1, 20), st.integers(0, 30)), max_size=6),
)
def test_the_walk_agrees_with_giving_out_each_unit_in_turn(
    waiting: list[int], incoming: list[tuple[int, int]]
) -> None:
    receipts = [receipt(i, q, on) for i, (q, on) in enumerate(incoming)]
    plan = plan_fills(list(enumerate(waiting)), receipts)
    # One unit at a time: each waiting unit takes the next unit of the earliest receipt.
    units = [
        r.expected_at
        for r in sorted(receipts, key=lambda r: (r.expected_at, r.id))
        for _ in range(r.quantity)
    ]
    given_out = 0
    for line_id, count in enumerate(waiting):
        mine = units[given_out : given_out + count]
        given_out += count
        expected = mine[-1] if len(mine) == count else None
        assert plan.dates[line_id] == expected
    assert plan.units_to_reorder == max(0, sum(waiting) - len(units))


@given(
    waiting=st.lists(st.integers(1, 20), max_size=12),
    incoming=st.lists(st.tuples(st.integers(1, 20), st.integers(0, 30)), max_size=6),
    restock=st.none() | st.integers(0, 30),
)
def test_the_runs_cut_the_queue_into_lines_of_one_date_and_source(
    waiting: list[int], incoming: list[tuple[int, int]], restock: int | None
) -> None:
    receipts = [receipt(i, q, on) for i, (q, on) in enumerate(incoming)]
    queue = [(100 + i, units) for i, units in enumerate(waiting)]
    plan = plan_fills(queue, receipts, None if restock is None else day(restock))
    assert plan.positions == {line: i + 1 for i, (line, _) in enumerate(queue)}
    expanded = []
    for run in plan.runs:
        members = queue[run.first_position - 1 : run.first_position - 1 + run.lines]
        assert (members[0][0], members[-1][0]) == (run.first_line_id, run.last_line_id)
        assert run.units == sum(units for _, units in members)
        expanded += [(line, run.date) for line, _ in members]
    assert expanded == list(plan.dates.items())  # the runs hold every line once, in order
    for before, after in zip(plan.runs, plan.runs[1:], strict=False):
        assert (before.receipt_id, before.date) != (after.receipt_id, after.date)
    assert len(plan.runs) <= len(receipts) + 2


def test_a_run_names_the_receipt_completing_its_lines() -> None:
    plan = plan_fills([(10, 3), (11, 4), (12, 2)], [receipt(1, 5, 3), receipt(2, 10, 3)])
    # 11 takes 2 units from receipt 1 and its last 2 from receipt 2 (same day): its run
    # is receipt 2's, with 12.
    assert [(r.receipt_id, r.date, r.first_line_id, r.lines, r.units) for r in plan.runs] == [
        (1, day(3), 10, 1, 3),
        (2, day(3), 11, 2, 6),
    ]

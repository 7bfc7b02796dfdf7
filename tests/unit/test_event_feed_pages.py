"""How a page of the store's event feed is cut (domain/feed.py): where it ends, whether
more follows, and which events the filters keep."""

from __future__ import annotations

import datetime as dt

import pytest

from ordergraph.domain.feed import EventSelection, cut_page, feed_position
from ordergraph.domain.paging import BadPageRequest, encode_cursor
from ordergraph.domain.reads import EventRecord

AT = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def record(seq: int, stream: str = "order", type: str = "PLACED") -> EventRecord:
    return EventRecord(1, seq, stream, type, AT, 1 if stream == "order" else None, None, {})


def test_a_full_page_ends_at_its_last_event_and_says_more_follows() -> None:
    found = [record(s) for s in (3, 5, 8)]  # first + 1 found: the last is not on the page
    page = cut_page(found, 2, after=2, last_seq=100, scan=50)
    assert [r.seq for r in page.records] == [3, 5]
    assert page.through == 5
    assert page.has_next is True


def test_a_short_page_ends_where_it_stopped_looking() -> None:
    # Fewer than `first` in the window (2, 52]: the page ends at the window's end, past
    # events the filters skipped, and more of the log follows.
    page = cut_page([record(7)], 10, after=2, last_seq=100, scan=50)
    assert [r.seq for r in page.records] == [7]
    assert page.through == 52
    assert page.has_next is True
    # The window reaches past the log's end: the page ends at the log's last event.
    page = cut_page([record(7)], 10, after=2, last_seq=40, scan=50)
    assert page.through == 40
    assert page.has_next is False


def test_an_empty_page_still_moves_past_the_events_it_looked_at() -> None:
    page = cut_page([], 10, after=2, last_seq=100, scan=50)
    assert page.records == []
    assert page.through == 52
    assert page.has_next is True


def test_nothing_after_the_cursor_keeps_the_cursor() -> None:
    page = cut_page([], 10, after=40, last_seq=40, scan=50)
    assert page.through == 40
    assert page.has_next is False
    # A cursor past the end of the log (a store that has fewer events) stays put too.
    assert cut_page([], 10, after=90, last_seq=40, scan=50).through == 90
    # An empty log, from the beginning: nothing looked at.
    assert cut_page([], 10, after=0, last_seq=0, scan=50).through == 0


def test_first_zero_gives_no_events_and_does_not_move() -> None:
    page = cut_page([record(9)], 0, after=4, last_seq=100, scan=50)
    assert page.records == []
    assert page.through == 4
    assert page.has_next is True


def test_selection_by_stream_and_type() -> None:
    shipped_order = record(1, "order", "SHIPPED")
    shipped_stock = record(2, "inventory", "SHIPPED")
    received = record(3, "inventory", "RECEIVED")
    everything = EventSelection()
    assert everything.everything
    assert all(everything.wants(r) for r in (shipped_order, shipped_stock, received))
    orders = EventSelection(order_types=frozenset({"SHIPPED"}))
    assert [orders.wants(r) for r in (shipped_order, shipped_stock, received)] == [
        True,
        False,
        False,
    ]
    both = EventSelection(frozenset({"SHIPPED"}), frozenset({"RECEIVED"}))
    assert [both.wants(r) for r in (shipped_order, shipped_stock, received)] == [
        True,
        False,
        True,
    ]
    none_of_the_orders = EventSelection(order_types=frozenset())
    assert not any(none_of_the_orders.wants(r) for r in (shipped_order, shipped_stock, received))


def test_positions_from_cursors() -> None:
    assert feed_position(None) == 0
    assert feed_position(encode_cursor([17])) == 17
    for bad in ("nope", encode_cursor(["17"]), encode_cursor([1, 2]), encode_cursor([1], "x")):
        with pytest.raises(BadPageRequest):
            feed_position(bad)

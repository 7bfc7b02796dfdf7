"""The input rules themselves: handle and SKU patterns, text, dates, cursors, the guard
over every string argument and the strict date scalars."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest
from graphql import GraphQLError, parse

from ordergraph.demo import DEMO_STORES
from ordergraph.domain import validation as check
from ordergraph.domain.errors import DomainError
from ordergraph.domain.paging import BadPageRequest, decode_cursor, encode_cursor
from ordergraph.schema.input_guard import find_forbidden
from ordergraph.schema.scalars import parse_date, parse_datetime
from ordergraph.storage import tables as t
from ordergraph.storage.paging import key_tag, key_types


def refused(call: object, *args: object) -> tuple[str, ...] | None:
    try:
        call(*args)  # type: ignore[operator]
    except DomainError as err:
        return err.problems[0].field
    return None


@pytest.mark.parametrize(
    "value", ["ab", "s-0123456789ab", "demo-new-york", "a" * 40, "0-0", "store-2"]
)
def test_handles_that_are_accepted(value: str) -> None:
    assert check.handle(value) == value


@pytest.mark.parametrize(
    "value",
    [
        "a",  # too short
        "a" * 41,  # too long
        "-ab",
        "ab-",
        "Ab",
        "ab\n",  # trailing newline
        "a\u200bb",  # zero-width space
        "a\u202eb",  # bidi override
        "\uff41\uff42",  # fullwidth
        "\u0430b",  # Cyrillic a
        "a b",
        "a_b",
    ],
)
def test_handles_that_are_refused(value: str) -> None:
    assert refused(check.handle, value) == ("handle",)


def test_demo_data_follows_the_patterns() -> None:
    for spec in DEMO_STORES:
        check.handle(spec.handle)


@pytest.mark.parametrize(
    "value", ["A", "MUG-1", "cli-1", "BENCH-001", "a.b_c-d", "X" * 64, "0", "NYC-BLU-001"]
)
def test_skus_that_are_accepted(value: str) -> None:
    assert check.sku(value) == value


@pytest.mark.parametrize(
    "value",
    ["", "X" * 65, "A\n", "A\u200d", "\u2066A", "\u0410", ".A", "-A", "A B", "A/B", "A\x00"],
)
def test_skus_that_are_refused(value: str) -> None:
    assert refused(check.sku, value, "lines", 0, "sku") == ("lines", "0", "sku")


@pytest.mark.parametrize(
    "value", ["a\x00", "a\nb", "a\tb", "a\x1b", "a\x7f", "a\x85", "\ud800", "a\u202eb", "\u2067"]
)
def test_one_line_text_refuses_controls_and_bidi(value: str) -> None:
    assert refused(check.text, value, "title") == ("title",)


def test_notes_may_span_lines_but_refuse_other_controls() -> None:
    assert check.note("two\nlines\tand\r\n", "note") == "two\nlines\tand\r\n"
    assert refused(check.note, "a\x00", "note") == ("note",)
    assert refused(check.note, "n" * 1001, "note") == ("note",)
    assert check.text("  Café ☕ 東京  ", "name") == "Café ☕ 東京"


def test_dates_and_instants_have_a_range_and_instants_an_offset() -> None:
    assert check.day(dt.date(2027, 1, 24), "requestedShipDate") == dt.date(2027, 1, 24)
    for bad in (dt.date(9999, 12, 31), dt.date(1, 1, 1), dt.date(1969, 12, 31)):
        assert refused(check.day, bad, "requestedShipDate") == ("requestedShipDate",)
    paris = dt.timezone(dt.timedelta(hours=1))
    local = dt.datetime(2027, 1, 24, 10, 30, tzinfo=paris)
    assert check.instant(local, "asOf") == dt.datetime(2027, 1, 24, 9, 30, tzinfo=dt.UTC)
    naive = dt.datetime(2027, 1, 24)  # noqa: DTZ001 - a naive instant is the input refused
    assert refused(check.instant, naive, "asOf") == ("asOf",)
    edge = dt.datetime(1, 1, 1, 0, 30, tzinfo=paris)  # before year 1 in UTC
    assert refused(check.instant, edge, "filter", "placedAfter") == ("filter", "placedAfter")
    late = dt.datetime(9999, 12, 31, 23, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    assert refused(check.instant, late, "to") == ("to",)


def test_date_scalars_need_iso_text_and_an_offset() -> None:
    assert parse_datetime("2027-01-24T09:30:00Z") == dt.datetime(2027, 1, 24, 9, 30, tzinfo=dt.UTC)
    assert parse_date("2027-01-24") == dt.date(2027, 1, 24)
    for bad in (
        "2027-01-24T09:30:00",
        "9999-12-31T24:00:00Z",
        "0001-01-01T00:00:00+01:00",
        "10000-01-01T00:00:00Z",
        "yesterday",
        5,
        None,
        "2" * 100,
    ):
        with pytest.raises(GraphQLError):
            parse_datetime(bad)
    for bad_day in ("0000-01-01", "2027-02-30", "", 20270124, "2027-01-24T00:00"):
        with pytest.raises(GraphQLError):
            parse_date(bad_day)


ORDER_KEYS = [t.orders.c.placed_at, t.orders.c.number]


def test_cursors_round_trip_and_name_their_connection() -> None:
    tag, types = key_tag(ORDER_KEYS), key_types(ORDER_KEYS)
    at = dt.datetime(2027, 1, 24, 9, 30, tzinfo=dt.UTC)
    cursor = encode_cursor([at, 1001], tag)
    assert decode_cursor(cursor, 2, tag, types) == [at, 1001]
    other = key_tag([t.order_lines.c.placed_at, t.order_lines.c.order_number])
    with pytest.raises(BadPageRequest):
        decode_cursor(cursor, 2, other, types)
    assert key_tag([t.stores.c.id]) != key_tag([t.orders.c.number])


def _b64(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode()


@pytest.mark.parametrize(
    "values",
    [
        [{"t": "2027-01-24T09:30:00"}, 1],  # naive
        [{"t": 5}, 1],
        [{"d": "2027-01-24"}, 1],  # a date where an instant belongs
        [{"t": "2027-01-24T09:30:00+00:00"}, -1],
        [{"t": "2027-01-24T09:30:00+00:00"}, 2**63],
        [{"t": "2027-01-24T09:30:00+00:00"}, True],
        [{"t": "2027-01-24T09:30:00+00:00"}, "1001"],
        [{"t": "2027-01-24T09:30:00+00:00"}],
    ],
)
def test_crafted_cursors_are_refused_with_their_argument(values: list[object]) -> None:
    tag, types = key_tag(ORDER_KEYS), key_types(ORDER_KEYS)
    cursor = _b64(json.dumps({"k": tag, "v": values}))
    with pytest.raises(BadPageRequest) as raised:
        decode_cursor(cursor, 2, tag, types, "before")
    assert raised.value.field == "before"


def test_the_guard_finds_forbidden_characters_anywhere_with_their_path() -> None:
    doc = parse(
        """query($a: PlaceOrderInput!, $h: String = "x\\u0000") {
             store(handle: $h) { id } }
           mutation M($a: PlaceOrderInput!) { placeOrder(input: $a) { order { id } } }"""
    )
    found = find_forbidden(doc, {"a": {"lines": [{"sku": "A"}, {"sku": "B\x01"}]}})
    assert found is not None
    assert found[0] == ("handle",)
    doc = parse("mutation M($a: PlaceOrderInput!) { placeOrder(input: $a) { order { id } } }")
    found = find_forbidden(doc, {"a": {"lines": [{"sku": "A"}, {"sku": "B\x01"}]}})
    assert found is not None
    assert found[:2] == (("input", "lines", "1", "sku"), "U+0001")
    assert find_forbidden(doc, {"a": {"lines": [{"sku": "tab\tnew\nline"}]}}) is None
    deep: object = "x\x00"
    for _ in range(100_000):
        deep = [deep]
    found = find_forbidden(doc, {"a": {"lines": deep}})
    assert found is not None
    assert found[0][:2] == ("input", "lines")

"""The four tallies now, as of past instants and over time, on the worked example."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from ordergraph.clock import Clock
from tests.client import Api, GraphQLFailure, StoreHandle

NY = ZoneInfo("America/New_York")
TALLY = "orders units value { amount currencyCode }"
SUMMARY = f"""asOf backlog {{ {TALLY} }} backorders {{ {TALLY} }} overdue {{ {TALLY} }}
  overdueBackorders {{ {TALLY} }} oldestBackorderPlacedAt"""


def at(day: int, hour: int = 12, minute: int = 0) -> dt.datetime:
    """A January 2027 instant in New York."""
    return dt.datetime(2027, 1, day, hour, minute, tzinfo=NY)


async def backlog(api: Api, store: StoreHandle, as_of: dt.datetime | None = None) -> dict[str, Any]:
    data = await api.gql(
        f"""query($h: String!, $t: DateTime) {{ store(handle: $h) {{
              backlog(asOf: $t) {{ {SUMMARY} }} }} }}""",
        {"h": store.handle, "t": as_of.isoformat() if as_of else None},
        token=store.token,
    )
    result: dict[str, Any] = data["store"]["backlog"]
    return result


def counts(summary: dict[str, Any]) -> dict[str, tuple[int, int, str]]:
    return {
        name: (summary[name]["orders"], summary[name]["units"], summary[name]["value"]["amount"])
        for name in ("backlog", "backorders", "overdue", "overdueBackorders")
    }


@pytest.fixture
async def example(api: Api, clock: Clock) -> StoreHandle:
    """DESIGN §1: 3 mugs ordered Jan 24 at zero stock, requested ship date Jan 30;
    2 arrive Jan 27; the order is still unshipped when Jan 30 ends (New York)."""
    clock.freeze(at(20).astimezone(dt.UTC))
    store = await api.create_store(policy="ALLOW", timezone="America/New_York")
    await api.upsert(store, "MUG", price="12.50")
    clock.freeze(at(24, 9, 30).astimezone(dt.UTC))
    placed = await api.place(store, [("MUG", 3)], requestedShipDate="2027-01-30")
    assert placed["order"]["stockStatus"] == "BACKORDERED"
    clock.freeze(at(27, 15).astimezone(dt.UTC))
    await api.receive(store, "MUG", 2)
    clock.freeze(at(31, 10).astimezone(dt.UTC))
    return store


async def test_worked_example_tallies_at_each_step(api: Api, example: StoreHandle) -> None:
    before = counts(await backlog(api, example, at(24, 9)))
    assert before == {name: (0, 0, "0.00") for name in before}
    jan24 = await backlog(api, example, at(24, 10))
    assert counts(jan24) == {
        "backlog": (1, 3, "37.50"),
        "backorders": (1, 3, "37.50"),
        "overdue": (0, 0, "0.00"),
        "overdueBackorders": (0, 0, "0.00"),
    }
    assert jan24["oldestBackorderPlacedAt"] == "2027-01-24T14:30:00+00:00"
    jan28 = counts(await backlog(api, example, at(28)))
    assert jan28["backlog"] == (1, 3, "37.50")
    assert jan28["backorders"] == (1, 1, "12.50")
    assert jan28["overdue"] == (0, 0, "0.00")
    # January 30 ends at midnight in New York (05:00 UTC on the 31st): overdue from then.
    last_moment = counts(await backlog(api, example, at(30, 23, 59)))
    assert last_moment["overdue"] == (0, 0, "0.00")
    ended = counts(await backlog(api, example, at(31, 0, 0)))
    assert ended["overdue"] == (1, 3, "37.50")
    assert ended["overdueBackorders"] == (1, 1, "12.50")
    now = await backlog(api, example)
    assert counts(now) == ended
    assert now["asOf"] == "2027-01-31T15:00:00+00:00"


async def test_shipping_and_cancelling_take_an_order_out_of_the_backlog(
    api: Api, example: StoreHandle, clock: Clock
) -> None:
    order = await api.order(example, 1001)
    await api.ship(example, order["id"])
    clock.advance(dt.timedelta(hours=1))
    shipped = counts(await backlog(api, example))
    assert shipped["backlog"] == (1, 1, "12.50")
    assert shipped["overdueBackorders"] == (1, 1, "12.50")
    clock.advance(dt.timedelta(hours=1))
    await api.cancel(example, order["id"], "CUSTOMER_DECLINED_BACKORDER")
    gone = await backlog(api, example)
    assert counts(gone) == {name: (0, 0, "0.00") for name in counts(gone)}
    assert gone["oldestBackorderPlacedAt"] is None
    # The past is unchanged.
    assert counts(await backlog(api, example, at(31, 0)))["overdue"] == (1, 3, "37.50")


async def test_as_of_in_the_future_is_invalid(api: Api, example: StoreHandle) -> None:
    with pytest.raises(GraphQLFailure) as failure:
        await backlog(api, example, at(31, 11))
    assert failure.value.args[0][0]["extensions"]["code"] == "INVALID"


async def test_daily_trend_points_agree_with_as_of(api: Api, example: StoreHandle) -> None:
    data = await api.gql(
        f"""query($h: String!, $from: DateTime!, $to: DateTime!) {{ store(handle: $h) {{
          backlogTrend(from: $from, to: $to, interval: DAY) {{
            at backlog {{ {TALLY} }} backorders {{ {TALLY} }} overdue {{ {TALLY} }} }} }} }}""",
        {"h": example.handle, "from": at(23, 0).isoformat(), "to": at(31, 5).isoformat()},
        token=example.token,
    )
    points = data["store"]["backlogTrend"]
    assert [p["at"] for p in points] == [
        at(day, 0).astimezone(dt.UTC).isoformat() for day in range(23, 32)
    ]
    for point in points:
        single = await backlog(api, example, dt.datetime.fromisoformat(point["at"]))
        assert point["backlog"] == single["backlog"]
        assert point["backorders"] == single["backorders"]
        assert point["overdue"] == single["overdue"]
    assert [p["backorders"]["units"] for p in points] == [0, 0, 3, 3, 3, 1, 1, 1, 1]
    assert [p["overdue"]["orders"] for p in points] == [0] * 8 + [1]


async def test_trend_refuses_more_than_1000_points(api: Api, example: StoreHandle) -> None:
    with pytest.raises(GraphQLFailure, match="at most 1000 points"):
        await api.gql(
            """query($h: String!, $from: DateTime!, $to: DateTime!) { store(handle: $h) {
              backlogTrend(from: $from, to: $to, interval: HOUR) { at } } }""",
            {"h": example.handle, "from": "2026-12-01T00:00:00+00:00", "to": at(31).isoformat()},
            token=example.token,
        )

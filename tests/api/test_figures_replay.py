"""The backlog figures against a replay of the event log, on generated histories.

The reference here is written from DESIGN §1 alone and shares no code with the
figures: it reads the raw `events` table and, for an instant t, takes each order's
last event at or before t, whose payload is the order's whole state then. From those
states it computes the four tallies and the oldest backorder; the end of a requested
ship date is the next local midnight in the store's zone, found with zoneinfo.

Hypothesis writes the histories: stores in several zones (some crossing a
daylight-saving change), products under every policy, orders placed at zero stock,
partial fills, counts corrected below the allocation, partial shipments and
cancellations, price changes, ship dates around the store's "today", overdue sweeps,
and a clock moved by nothing, minutes, hours, days, or to just around a local midnight.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import event as label
from hypothesis import strategies as st
from sqlalchemy import select

from ordergraph.app import create_app
from ordergraph.clock import Clock
from ordergraph.overdue import sweep_overdue
from ordergraph.settings import Settings
from ordergraph.storage import tables
from ordergraph.storage.db import Database
from tests.client import Api, StoreHandle
from tests.conftest import (
    ADMIN_TOKEN,
)

ZONES = ("UTC", "America/New_York", "Asia/Kolkata", "Pacific/Auckland", "Europe/Berlin")
# Days a little before daylight-saving changes (US, EU, New Zealand) and a quiet one.
BASE_DAYS = (
    dt.date(2028, 3, 10),
    dt.date(2028, 3, 24),
    dt.date(2028, 3, 31),
    dt.date(2028, 6, 14),
    dt.date(2028, 9, 22),
    dt.date(2028, 10, 27),
    dt.date(2028, 11, 3),
)
SKUS = ("A", "B", "C")
MOVES = ("still", "minutes", "minutes", "hours", "days", "midnight", "midnight")
PRICES = ("12.50", "0.99", "3.00", "19.9999", "0", "123456789.0001")
# Requested ship dates in days from the store's local today: mostly soon, some gone.
SHIP_BY = (None, -2, -1, 0, 0, 0, 1, 1, 2, 3)
REASONS = ("CUSTOMER_REQUEST", "CUSTOMER_DECLINED_BACKORDER", "OUT_OF_STOCK")
ACTIONS = (
    *("place",) * 7,
    *("receive",) * 3,
    *("adjust",) * 3,
    *("ship",) * 3,
    *("cancel",) * 2,
    "reprice",
    "sweep",
)
TALLY = "orders units value { amount currencyCode }"
FIGURES = ("backlog", "backorders", "overdue", "overdueBackorders")
MICRO = dt.timedelta(microseconds=1)
QUARTER = dt.timedelta(minutes=15)
HOUR_SPAN = dt.timedelta(days=10)

Tally = tuple[int, int, Decimal]


# -- the reference: a replay of the raw event log ------------------------------------


@dataclass(frozen=True)
class LoggedEvent:
    seq: int
    type: str
    at: dt.datetime
    order_id: int
    data: dict[str, Any]


@dataclass(frozen=True)
class Expected:
    tallies: dict[str, Tally]  # by figure: backlog, backorders, overdue, overdueBackorders
    oldest_backorder_placed_at: dt.datetime | None


def date_ends(day: dt.date, tz: ZoneInfo) -> dt.datetime:
    """The instant `day` has ended in `tz`: the local midnight that starts the next day."""
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=tz).astimezone(dt.UTC)
    assert end.astimezone(tz).date() == day + dt.timedelta(days=1)
    assert (end - MICRO).astimezone(tz).date() == day
    return end


async def order_log(db: Database, store_id: int) -> list[LoggedEvent]:
    e = tables.events
    async with db.read() as conn:
        rows = await conn.execute(
            select(e.c.seq, e.c.type, e.c.occurred_at, e.c.order_id, e.c.data)
            .where(e.c.store_id == store_id, e.c.stream == "order")
            .order_by(e.c.seq)
        )
        return [LoggedEvent(r.seq, r.type, r.occurred_at, r.order_id, r.data) for r in rows]


def states_at(log: list[LoggedEvent], t: dt.datetime) -> dict[int, dict[str, Any]]:
    """Each order's state after its last event at or before t."""
    latest: dict[int, LoggedEvent] = {}
    for event in log:
        if event.at <= t and (
            event.order_id not in latest or event.seq > latest[event.order_id].seq
        ):
            latest[event.order_id] = event
    return {order_id: event.data for order_id, event in latest.items()}


def units(state: dict[str, Any], *kinds: str) -> tuple[int, Decimal]:
    count, value = 0, Decimal(0)
    for line in state["lines"]:
        n = sum(int(line[kind]) for kind in kinds)
        count += n
        value += n * Decimal(line["unitPrice"])
    return count, value


def overdue_by(state: dict[str, Any], t: dt.datetime, tz: ZoneInfo) -> bool:
    ship_by = state["requestedShipDate"]
    return ship_by is not None and t >= date_ends(dt.date.fromisoformat(ship_by), tz)


def replay(log: list[LoggedEvent], t: dt.datetime, tz: ZoneInfo) -> Expected:
    sums: dict[str, Tally] = {name: (0, 0, Decimal(0)) for name in FIGURES}
    oldest: dt.datetime | None = None
    for state in states_at(log, t).values():
        left, left_value = units(state, "allocated", "backordered")
        if left == 0:
            continue
        waiting, waiting_value = units(state, "backordered")
        late = overdue_by(state, t, tz)
        counted = [("backlog", left, left_value)]
        if waiting:
            counted.append(("backorders", waiting, waiting_value))
            placed = dt.datetime.fromisoformat(state["placedAt"])
            oldest = placed if oldest is None else min(oldest, placed)
        if late:
            counted.append(("overdue", left, left_value))
        if late and waiting:
            counted.append(("overdueBackorders", waiting, waiting_value))
        for name, n, value in counted:
            orders, total, worth = sums[name]
            sums[name] = (orders + 1, total + n, worth + value)
    return Expected(sums, oldest)


def tally(found: dict[str, Any]) -> Tally:
    assert found["value"]["currencyCode"] == "USD"
    return (found["orders"], found["units"], Decimal(found["value"]["amount"]))


def as_expected(summary: dict[str, Any]) -> Expected:
    oldest = summary["oldestBackorderPlacedAt"]
    return Expected(
        {name: tally(summary[name]) for name in FIGURES},
        dt.datetime.fromisoformat(oldest) if oldest else None,
    )


def boundaries(start: dt.datetime, end: dt.datetime, tz: ZoneInfo, interval: str) -> list[Any]:
    """Every instant in [start, end] that starts a local hour (or day) in `tz`.

    Walks UTC quarter hours: every zone here is offset from UTC by whole quarters.
    """
    found = []
    cursor = start.replace(minute=start.minute - start.minute % 15, second=0, microsecond=0)
    while cursor <= end:
        local = cursor.astimezone(tz)
        starts_hour = local.minute == 0 and local.second == 0
        if cursor >= start and starts_hour and (interval == "HOUR" or local.hour == 0):
            found.append(cursor)
        cursor += QUARTER
    return found


# -- the API side ----------------------------------------------------------------------


SUMMARY = f"""asOf {" ".join(f"{name} {{ {TALLY} }}" for name in FIGURES)}
  oldestBackorderPlacedAt"""
BATCH = 20  # instants per request, within the API's limit on aliases


async def backlog_at(api: Api, store: StoreHandle, t: dt.datetime | None, tz: ZoneInfo) -> Any:
    data = await api.gql(
        f"""query($h: String!, $t: DateTime) {{ store(handle: $h) {{
              backlog(asOf: $t) {{ {SUMMARY} }} }} }}""",
        {"h": store.handle, "t": None if t is None else t.astimezone(tz).isoformat()},
        token=store.token,
    )
    return data["store"]["backlog"]


async def backlogs_at(
    api: Api, store: StoreHandle, instants: list[dt.datetime], tz: ZoneInfo
) -> list[dict[str, Any]]:
    """`backlog(asOf:)` at each instant, several to a request (as aliases)."""
    found: list[dict[str, Any]] = []
    for chunk in range(0, len(instants), BATCH):
        batch = instants[chunk : chunk + BATCH]
        params = ", ".join(f"$t{i}: DateTime!" for i in range(len(batch)))
        fields = " ".join(f"b{i}: backlog(asOf: $t{i}) {{ {SUMMARY} }}" for i in range(len(batch)))
        # Every other instant is sent with the store's local offset, the rest in UTC.
        values = {
            f"t{i}": (t.astimezone(tz) if i % 2 else t.astimezone(dt.UTC)).isoformat()
            for i, t in enumerate(batch)
        }
        data = await api.gql(
            f"query($h: String!, {params}) {{ store(handle: $h) {{ {fields} }} }}",
            {"h": store.handle, **values},
            token=store.token,
        )
        found.extend(data["store"][f"b{i}"] for i in range(len(batch)))
    return found


async def trend(
    api: Api, store: StoreHandle, start: dt.datetime, end: dt.datetime, interval: str
) -> list[dict[str, Any]]:
    data = await api.gql(
        f"""query($h: String!, $from: DateTime!, $to: DateTime!, $i: TrendInterval!) {{
              store(handle: $h) {{ backlogTrend(from: $from, to: $to, interval: $i) {{
                at backlog {{ {TALLY} }} backorders {{ {TALLY} }} overdue {{ {TALLY} }} }} }} }}""",
        {"h": store.handle, "from": start.isoformat(), "to": end.isoformat(), "i": interval},
        token=store.token,
    )
    points: list[dict[str, Any]] = data["store"]["backlogTrend"]
    return points


STOCK_QUERY = """
query($h: String!) { store(handle: $h) {
  products(first: 50) { nodes {
    sku onHand allocated available backordered availableToSell backorderPolicy backorderLimit
    restockDate backorderQueue(first: 1) { totalCount } } }
  orders(first: 250, sortKey: NUMBER) { nodes {
    number inBacklog isBackordered expectedShipDate lines { sku backordered } } }
} }
"""


async def check_products_agree(api: Api, store: StoreHandle, tz: ZoneInfo) -> dict[str, Any]:
    """Products, orders and the figures tell one story about the units awaiting stock."""
    data: dict[str, Any] = (await api.gql(STOCK_QUERY, {"h": store.handle}, token=store.token))[
        "store"
    ]
    products = {p["sku"]: p for p in data["products"]["nodes"]}
    orders = data["orders"]["nodes"]
    now = await backlog_at(api, store, None, tz)
    assert sum(p["backordered"] for p in products.values()) == now["backorders"]["units"]
    waiting_lines = Counter(
        line["sku"] for order in orders for line in order["lines"] if line["backordered"] > 0
    )
    for sku, product in products.items():
        assert product["backorderQueue"]["totalCount"] == waiting_lines[sku], sku
        assert product["available"] == product["onHand"] - product["allocated"]
        policy = product["backorderPolicy"]
        if policy == "ALLOW":
            assert product["availableToSell"] is None
        elif policy == "LIMIT":
            allowance = max(0, product["backorderLimit"] - product["backordered"])
            assert product["availableToSell"] == product["available"] + allowance
        else:
            assert product["availableToSell"] == product["available"]
    for order in orders:
        awaited = {line["sku"] for line in order["lines"] if line["backordered"] > 0}
        restock = [products[sku]["restockDate"] for sku in awaited]
        expected = None if not restock or None in restock else max(restock)
        assert order["expectedShipDate"] == expected, order
    return data


# -- the generated histories --------------------------------------------------------


class History:
    """One generated history, run against the API while it is drawn."""

    def __init__(self, api: Api, clock: Clock, draw: st.DataObject) -> None:
        self.api = api
        self.clock = clock
        self.draw = draw
        self.store: StoreHandle
        self.tz: ZoneInfo
        self.skus: list[str] = []
        self.numbers: list[int] = []

    def pick(self, strategy: st.SearchStrategy[Any], label: str) -> Any:
        return self.draw.draw(strategy, label=label)

    def local_today(self) -> dt.date:
        return self.clock().astimezone(self.tz).date()

    def move_clock(self) -> None:
        kind = self.pick(st.sampled_from(MOVES), "move")
        now = self.clock()
        if kind == "still":
            return
        if kind == "minutes":
            self.clock.advance(dt.timedelta(seconds=self.pick(st.integers(1, 3 * 3600), "s")))
        elif kind == "hours":
            self.clock.advance(dt.timedelta(seconds=self.pick(st.integers(3600, 30 * 3600), "s")))
        elif kind == "days":
            self.clock.advance(dt.timedelta(days=self.pick(st.integers(1, 3), "days")))
        else:
            ahead = self.pick(st.integers(1, 2), "midnights ahead")
            near = self.pick(st.sampled_from((-61, -1, 0, 1, 59)), "seconds from midnight")
            day = self.local_today() + dt.timedelta(days=ahead - 1)
            target = date_ends(day, self.tz) + dt.timedelta(seconds=near)
            self.clock.freeze(max(target, now + dt.timedelta(seconds=1)))

    async def open(self) -> None:
        api = self.api
        zone = self.pick(st.sampled_from(ZONES), "zone")
        self.tz = ZoneInfo(zone)
        day = self.pick(st.sampled_from(BASE_DAYS), "base day")
        offset = self.pick(st.integers(0, 48 * 60), "minutes after base")
        start = dt.datetime.combine(day, dt.time(0), tzinfo=dt.UTC)
        self.clock.freeze(start + dt.timedelta(minutes=offset))
        self.store = await api.create_store(policy="ALLOW", timezone=zone)
        count = self.pick(st.integers(1, len(SKUS)), "products")
        for sku in SKUS[:count]:
            policy = self.pick(st.sampled_from(("ALLOW", "ALLOW", "LIMIT", "DENY")), "policy")
            fields: dict[str, Any] = {"backorderPolicy": policy}
            if policy == "LIMIT":
                fields["backorderLimit"] = self.pick(st.integers(0, 8), "limit")
            fields["price"] = self.pick(st.sampled_from(PRICES), "price")
            restock = self.pick(st.none() | st.integers(1, 20), "restock in days")
            if restock is not None:
                fields["restockDate"] = (self.local_today() + dt.timedelta(restock)).isoformat()
            assert (await api.upsert(self.store, sku, **fields))["userErrors"] == []
            stock = self.pick(st.sampled_from((0, 0, 1, 3, 6)), "stock")
            if stock:
                await api.receive(self.store, sku, stock)
            self.skus.append(sku)

    async def step(self) -> None:
        self.move_clock()
        action = self.pick(st.sampled_from(ACTIONS), "action")
        if action in ("ship", "cancel") and not self.numbers:
            action = "place"
        await getattr(self, action)()

    async def place(self) -> None:
        lines = self.pick(
            st.lists(
                st.tuples(st.sampled_from(self.skus), st.integers(1, 6)), min_size=1, max_size=3
            ),
            "lines",
        )
        ship_by = self.pick(st.sampled_from(SHIP_BY), "ship by (days from today)")
        fields = {}
        if ship_by is not None:
            fields["requestedShipDate"] = (self.local_today() + dt.timedelta(ship_by)).isoformat()
        placed = await self.api.place(self.store, lines, **fields)
        if placed["order"] is not None:
            self.numbers.append(placed["order"]["number"])

    async def receive(self) -> None:
        sku = self.pick(st.sampled_from(self.skus), "sku")
        await self.api.receive(self.store, sku, self.pick(st.integers(1, 8), "quantity"))

    async def adjust(self) -> None:
        sku = self.pick(st.sampled_from(self.skus), "sku")
        if self.pick(st.booleans(), "set on hand"):
            await self.api.adjust(self.store, sku, setOnHand=self.pick(st.integers(0, 8), "count"))
        else:
            delta = self.pick(st.sampled_from([d for d in range(-6, 7) if d]), "delta")
            await self.api.adjust(self.store, sku, delta=delta)

    async def reprice(self) -> None:
        sku = self.pick(st.sampled_from(self.skus), "sku")
        await self.api.upsert(self.store, sku, price=self.pick(st.sampled_from(PRICES), "price"))

    async def sweep(self) -> None:
        assert self.api.db is not None
        await sweep_overdue(self.api.db, self.clock)

    async def _chosen_order(self) -> dict[str, Any]:
        number = self.pick(st.sampled_from(self.numbers), "order")
        return await self.api.order(self.store, number)

    async def ship(self) -> None:
        order = await self._chosen_order()
        ready = [line for line in order["lines"] if line["allocated"] > 0]
        if not ready or self.pick(st.booleans(), "ship all"):
            await self.api.ship(self.store, order["id"])
            return
        chosen = self.pick(
            st.lists(st.sampled_from(ready), min_size=1, unique_by=lambda line: line["id"]), "ship"
        )
        parts = [
            (line["id"], self.pick(st.integers(1, line["allocated"]), "ship qty"))
            for line in chosen
        ]
        await self.api.ship(self.store, order["id"], parts)

    async def cancel(self) -> None:
        order = await self._chosen_order()
        reason = self.pick(st.sampled_from(REASONS), "reason")
        left = [line for line in order["lines"] if line["allocated"] + line["backordered"] > 0]
        if not left or self.pick(st.booleans(), "cancel all"):
            await self.api.cancel(self.store, order["id"], reason)
            return
        line = self.pick(st.sampled_from(left), "cancel line")
        quantity = self.pick(st.integers(1, line["allocated"] + line["backordered"]), "qty")
        await self.api.cancel(self.store, order["id"], reason, [(line["id"], quantity)])


async def store_id_of(db: Database, store: StoreHandle) -> int:
    s = tables.stores
    async with db.read() as conn:
        found = (await conn.execute(select(s.c.id).where(s.c.handle == store.handle))).scalar_one()
    return int(found)


def instants_to_check(
    history: History, log: list[LoggedEvent], first: dt.datetime, now: dt.datetime
) -> list[dt.datetime]:
    times = sorted({event.at for event in log})
    wanted = {first - dt.timedelta(seconds=1), first, now, *times}
    if times:
        just_before = history.pick(st.sets(st.sampled_from(times), max_size=6), "just before")
        wanted |= {t - MICRO for t in just_before}
    for event in log:
        ship_by = event.data["requestedShipDate"]
        if ship_by is not None:
            end = date_ends(dt.date.fromisoformat(ship_by), history.tz)
            wanted |= {end - MICRO, end, end + dt.timedelta(seconds=1)}
    fractions = history.pick(st.lists(st.floats(0, 1), min_size=3, max_size=6), "random instants")
    wanted |= {first + (now - first) * f for f in fractions}
    return sorted(t for t in wanted if t <= now)


async def run_history(url: str, draw: st.DataObject) -> None:
    clock = Clock()
    db = Database(url, pool_size=2)
    # Whole trends by the hour, many a run: this test checks figures, not cost limits.
    settings = Settings(
        database_url=db.url, admin_token=ADMIN_TOKEN, max_cost=10**9, rate_limit_capacity=10**9
    )
    app = create_app(settings, clock=clock, db=db)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            api = Api(http, ADMIN_TOKEN, db)
            history = History(api, clock, draw)
            await history.open()
            first = clock()
            for _ in range(history.pick(st.integers(4, 14), "steps")):
                await history.step()
            history.move_clock()
            await check_agreement(history, db, first)
    finally:
        await db.dispose()


async def check_agreement(history: History, db: Database, first: dt.datetime) -> None:
    api, store, tz = history.api, history.store, history.tz
    now = history.clock()
    store_id = await store_id_of(db, store)
    log = await order_log(db, store_id)

    seen: set[str] = set()
    instants = instants_to_check(history, log, first, now)
    for t, found in zip(instants, await backlogs_at(api, store, instants, tz), strict=True):
        assert dt.datetime.fromisoformat(found["asOf"]) == t
        expected = replay(log, t, tz)
        assert as_expected(found) == expected, f"asOf {t.isoformat()}"
        seen |= {name for name, value in expected.tallies.items() if value[0]}
    # For --hypothesis-show-statistics: which figures the history made non-zero.
    label(f"non-zero: {', '.join(sorted(seen)) or 'none'}")

    current = await backlog_at(api, store, None, tz)
    assert dt.datetime.fromisoformat(current["asOf"]) == now
    assert as_expected(current) == replay(log, now, tz), "asOf null"

    # From before the first order to past now (no point after now comes back); hours over
    # ten days at most, the last ten when the history is longer.
    start = first - dt.timedelta(hours=2, seconds=history.pick(st.integers(0, 3599), "s"))
    for interval, since, end in (
        ("HOUR", max(start, now - HOUR_SPAN), now + dt.timedelta(hours=5)),
        ("DAY", start, now + dt.timedelta(days=2)),
    ):
        points = await trend(api, store, since, end, interval)
        ats = [dt.datetime.fromisoformat(p["at"]) for p in points]
        assert ats == boundaries(since, min(end, now), tz, interval), interval
        for at, point in zip(ats, points, strict=True):
            expected = replay(log, at, tz)
            for name in ("backlog", "backorders", "overdue"):
                assert tally(point[name]) == expected.tallies[name], (interval, at, name)

    check_overdue_events(log, now, tz, swept=False)
    assert db is api.db
    await sweep_overdue(db, history.clock)
    await sweep_overdue(db, history.clock)
    log = await order_log(db, store_id)
    check_overdue_events(log, now, tz, swept=True)
    # The OVERDUE events leave the figures as they were.
    assert as_expected(await backlog_at(api, store, None, tz)) == replay(log, now, tz)
    await check_products_agree(api, store, tz)


def check_overdue_events(
    log: list[LoggedEvent], now: dt.datetime, tz: ZoneInfo, *, swept: bool
) -> None:
    """At most one OVERDUE event per order, only once it is late; one for each late order
    still in the backlog after a sweep."""
    flagged = Counter(e.order_id for e in log if e.type == "OVERDUE")
    assert all(n == 1 for n in flagged.values()), flagged
    for event in log:
        if event.type == "OVERDUE":
            assert overdue_by(event.data, event.at, tz), event
            assert units(event.data, "allocated", "backordered")[0] > 0, event
    if swept:
        for order_id, state in states_at(log, now).items():
            late = units(state, "allocated", "backordered")[0] > 0 and overdue_by(state, now, tz)
            if late:
                assert flagged[order_id] == 1, state


REPLAY_SETTINGS = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def run_example(
    url: str,
    draw: st.DataObject,
    history: Callable[[str, st.DataObject], Coroutine[Any, Any, None]] | None = None,
) -> None:
    """Each example (a run of `history`, this module's by default) on a loop of its own,
    with its own engine, app and client."""
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete((history or run_history)(url, draw))
    finally:
        loop.close()


@pytest.mark.exhaustive
@REPLAY_SETTINGS
@given(draw=st.data())
def test_figures_agree_with_a_replay_of_the_events_on_sqlite(
    own_sqlite_url: str, draw: st.DataObject
) -> None:
    run_example(own_sqlite_url, draw)


@pytest.mark.postgres
@REPLAY_SETTINGS
@given(draw=st.data())
def test_figures_agree_with_a_replay_of_the_events_on_postgresql(
    own_pg_url: str, draw: st.DataObject
) -> None:
    run_example(own_pg_url, draw)


# -- per-product agreement on a fixed history ----------------------------------------


async def test_products_orders_and_figures_agree_on_the_units_awaiting_stock(
    api: Api, clock: Clock
) -> None:
    berlin = ZoneInfo("Europe/Berlin")
    clock.freeze(dt.datetime(2028, 5, 2, 9, tzinfo=berlin))
    store = await api.create_store(policy="ALLOW", timezone="Europe/Berlin")
    await api.upsert(store, "MUG", backorderPolicy="ALLOW", restockDate="2028-05-10")
    await api.upsert(
        store, "CAP", backorderPolicy="LIMIT", backorderLimit=5, restockDate="2028-05-20"
    )
    await api.upsert(store, "PEN", backorderPolicy="DENY")
    await api.upsert(store, "INK", backorderPolicy="ALLOW")
    await api.upsert(store, "TEE", backorderPolicy="DENY", restockDate="2028-06-01")
    await api.receive(store, "PEN", 10)
    await api.receive(store, "MUG", 2)
    await api.receive(store, "TEE", 5)
    placements = [
        [("MUG", 3), ("CAP", 2)],  # 1001
        [("MUG", 2), ("CAP", 1)],  # 1002
        [("MUG", 1), ("INK", 1)],  # 1003
        [("PEN", 4)],  # 1004
        [("CAP", 2), ("PEN", 1)],  # 1005
        [("MUG", 1)],  # 1006
        [("TEE", 2)],  # 1007
    ]
    ids = {}
    for lines in placements:
        clock.advance(dt.timedelta(minutes=5))
        placed = await api.place(store, lines)
        assert placed["userErrors"] == []
        ids[placed["order"]["number"]] = placed["order"]
    clock.advance(dt.timedelta(hours=1))
    await api.receive(store, "MUG", 2)  # fills 1001's last MUG, then 1 of 1002's 2
    await api.adjust(store, "PEN", setOnHand=3)  # takes 2 back: 1005's PEN, then 1 of 1004's
    order_1004 = await api.order(store, 1004)
    await api.ship(store, order_1004["id"], [(order_1004["lines"][0]["id"], 2)])
    cap_line = next(line for line in ids[1001]["lines"] if line["sku"] == "CAP")
    await api.cancel(store, ids[1001]["id"], "CUSTOMER_DECLINED_BACKORDER", [(cap_line["id"], 1)])

    data = await check_products_agree(api, store, berlin)
    products = {p["sku"]: p for p in data["products"]["nodes"]}
    assert {
        sku: (p["backordered"], p["backorderQueue"]["totalCount"]) for sku, p in products.items()
    } == {
        "MUG": (3, 3),  # 1002, 1003, 1006
        "CAP": (4, 3),  # 1001: 1, 1002: 1, 1005: 2
        "PEN": (2, 2),  # 1004, 1005
        "INK": (1, 1),
        "TEE": (0, 0),
    }
    assert {sku: p["availableToSell"] for sku, p in products.items()} == {
        "MUG": None,
        "CAP": 1,
        "PEN": 0,
        "INK": None,
        "TEE": 3,
    }
    expected_dates = {o["number"]: o["expectedShipDate"] for o in data["orders"]["nodes"]}
    assert expected_dates == {
        1001: "2028-05-20",
        1002: "2028-05-20",  # the later of MUG's and CAP's
        1003: None,  # INK has no restock date
        1004: None,  # nor has PEN
        1005: None,  # PEN has none, though CAP has one
        1006: "2028-05-10",
        1007: None,  # waits for nothing
    }
    figures = await backlog_at(api, store, None, berlin)
    assert tally(figures["backorders"]) == (6, 10, Decimal("100.00"))

"""OVERDUE events: once per order, when its requested ship date has ended unshipped."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import text

from ordergraph.clock import Clock
from ordergraph.overdue import sweep_overdue
from tests.api.test_schema_and_queries_count import counting_statements
from tests.client import Api, StoreHandle
from tests.conftest import ADMIN_TOKEN, start_server

TOKYO = ZoneInfo("Asia/Tokyo")


async def event_types(api: Api, store: object, number: int) -> list[str]:
    order = await api.order(store, number)  # type: ignore[arg-type]
    return [e["type"] for e in order["events"]["nodes"]]


async def test_flags_an_order_once_when_its_date_ends_in_the_store_zone(
    api: Api, clock: Clock
) -> None:
    assert api.db is not None
    clock.freeze(dt.datetime(2027, 3, 1, 9, tzinfo=TOKYO))
    store = await api.create_store(policy="ALLOW", timezone="Asia/Tokyo")
    await api.upsert(store, "A")
    await api.place(store, [("A", 1)], requestedShipDate="2027-03-02")
    await api.place(store, [("A", 1)], requestedShipDate="2027-03-02")
    await api.receive(store, "A", 2)
    shipped = await api.order(store, 1002)
    await api.ship(store, shipped["id"])  # 1002 ships in time; only 1001 becomes overdue

    clock.freeze(dt.datetime(2027, 3, 2, 23, 59, 59, tzinfo=TOKYO))
    await sweep_overdue(api.db, clock)
    assert "OVERDUE" not in await event_types(api, store, 1001)
    assert (await api.order(store, 1001))["isOverdue"] is False

    clock.freeze(dt.datetime(2027, 3, 3, 0, 0, 0, tzinfo=TOKYO))
    assert await sweep_overdue(api.db, clock) >= 1
    assert await event_types(api, store, 1001) == [
        "PLACED",
        "BACKORDERED",
        "BACKORDER_FILLED",
        "OVERDUE",
    ]
    assert (await api.order(store, 1001))["isOverdue"] is True
    assert "OVERDUE" not in await event_types(api, store, 1002)

    clock.advance(dt.timedelta(hours=5))
    await sweep_overdue(api.db, clock)
    assert (await event_types(api, store, 1001)).count("OVERDUE") == 1


async def alarm(api: Api, store: StoreHandle) -> dt.datetime | None:
    """The store's overdue alarm as the sweep sees it (None: no row); the store row's copy
    must agree."""
    assert api.db is not None
    async with api.db.engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT a.due_at, s.overdue_alarm_at FROM store_directory d"
                    " JOIN stores s ON s.id = d.store_id"
                    " LEFT JOIN overdue_alarms a ON a.store_id = d.store_id"
                    " WHERE d.handle = :h"
                ),
                {"h": store.handle},
            )
        ).all()
    ((due, copy),) = rows
    assert str(due) == str(copy) if due is not None else copy is None
    if due is None:
        return None
    found = due if isinstance(due, dt.datetime) else dt.datetime.fromisoformat(due)
    return found if found.tzinfo else found.replace(tzinfo=dt.UTC)


async def test_the_alarm_rings_at_the_earliest_due_order_and_moves_on_after_each_sweep(
    api: Api, clock: Clock
) -> None:
    assert api.db is not None
    clock.freeze(dt.datetime(2027, 5, 1, 9, tzinfo=dt.UTC))
    store = await api.create_store(policy="ALLOW")
    await api.upsert(store, "A")
    assert await alarm(api, store) is None
    await api.place(store, [("A", 1)], requestedShipDate="2027-05-09")  # 1001
    assert await alarm(api, store) == dt.datetime(2027, 5, 10, tzinfo=dt.UTC)
    await api.place(store, [("A", 1)], requestedShipDate="2027-05-04")  # 1002: earlier
    await api.place(store, [("A", 1)], requestedShipDate="2027-05-20")  # 1003: later
    await api.place(store, [("A", 1)])  # 1004: no date
    assert await alarm(api, store) == dt.datetime(2027, 5, 5, tzinfo=dt.UTC)

    clock.freeze(dt.datetime(2027, 5, 5, 0, 0, 1, tzinfo=dt.UTC))
    with counting_statements(api.db) as seen:
        assert await sweep_overdue(api.db, clock) >= 1
    # The stores with work come from the alarms alone: no store's orders are read for it.
    first = next(s for s in seen if s.lstrip().upper().startswith("SELECT"))
    assert "overdue_alarms" in first
    assert "orders" not in first
    assert "OVERDUE" in await event_types(api, store, 1002)
    assert await alarm(api, store) == dt.datetime(2027, 5, 10, tzinfo=dt.UTC)  # 1001 next

    await api.receive(store, "A", 4)
    await api.ship(store, (await api.order(store, 1001))["id"])  # 1001 will not fall due
    clock.freeze(dt.datetime(2027, 5, 10, 0, 0, 1, tzinfo=dt.UTC))
    await sweep_overdue(api.db, clock)  # an early ring: nothing to flag, the alarm moves on
    assert "OVERDUE" not in await event_types(api, store, 1001)
    assert await alarm(api, store) == dt.datetime(2027, 5, 21, tzinfo=dt.UTC)  # 1003
    clock.freeze(dt.datetime(2027, 5, 21, 0, 0, 1, tzinfo=dt.UTC))
    await sweep_overdue(api.db, clock)
    assert "OVERDUE" in await event_types(api, store, 1003)
    assert await alarm(api, store) is None  # nothing more will fall due
    assert (await event_types(api, store, 1002)).count("OVERDUE") == 1


@pytest.mark.e2e  # starts a process
async def test_two_server_processes_flag_each_order_exactly_once(
    pg_url: str, tmp_path: Path
) -> None:
    servers = [
        start_server(pg_url, tmp_path / f"server{i}.log", {"ORDERGRAPH_OVERDUE_SWEEP_SECONDS": "1"})
        for i in range(2)
    ]
    try:
        async with httpx.AsyncClient(base_url=servers[0].url, timeout=30) as http:
            api = Api(http, ADMIN_TOKEN, None)
            store = await api.create_store(policy="ALLOW")
            await api.upsert(store, "A")
            yesterday = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).date().isoformat()
            for _ in range(20):
                placed = await api.place(store, [("A", 1)], requestedShipDate=yesterday)
                assert placed["userErrors"] == []
            deadline = asyncio.get_running_loop().time() + 15
            while True:
                flagged = await api.gql(
                    """query($h: String!) { store(handle: $h) {
                         orders(first: 50, filter: {isOverdue: true}) {
                           nodes { number events { nodes { type } } } } } }""",
                    {"h": store.handle},
                    token=store.token,
                )
                nodes = flagged["store"]["orders"]["nodes"]
                counts = [[e["type"] for e in n["events"]["nodes"]].count("OVERDUE") for n in nodes]
                if len(nodes) == 20 and all(counts):
                    break
                assert asyncio.get_running_loop().time() < deadline, counts
                await asyncio.sleep(0.5)
            await asyncio.sleep(2.5)  # more sweeps by both processes change nothing
            again = await api.gql(
                """query($h: String!) { store(handle: $h) { orders(first: 50) {
                     nodes { events { nodes { type } } } } } }""",
                {"h": store.handle},
                token=store.token,
            )
            final = [
                [e["type"] for e in n["events"]["nodes"]].count("OVERDUE")
                for n in again["store"]["orders"]["nodes"]
            ]
            assert final == [1] * 20
    finally:
        for server in servers:
            server.stop()

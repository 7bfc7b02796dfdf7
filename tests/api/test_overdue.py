"""OVERDUE events: once per order, when its requested ship date has ended unshipped."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from ordergraph.clock import Clock
from ordergraph.overdue import sweep_overdue
from tests.client import Api
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

"""The event-log tail: fan-out to subscribers, and a bounded buffer per subscriber."""

from __future__ import annotations

import asyncio
import datetime as dt

from ordergraph.domain import services
from ordergraph.domain.model import BackorderPolicy
from ordergraph.live.hub import EventHub
from ordergraph.storage.admin import create_store
from ordergraph.storage.db import Database
from ordergraph.storage.uow import store_session


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def test_a_subscriber_that_stops_consuming_is_cut_off_and_others_get_everything(
    database: Database,
) -> None:
    store, _ = await create_store(
        database, handle=f"hub-{id(database) % 10_000}-{now().microsecond}", name="Hub",
        currency_code="USD", timezone="UTC", default_policy=BackorderPolicy.ALLOW, now=now(),
    )  # fmt: skip
    async with store_session(database, store.id, now) as session:
        await services.upsert_product(session, services.UpsertProduct("A", "A", "1.00"))
    hub = EventHub(database, poll_seconds=0.05, buffer=5)
    await hub.start()
    cut_off: list[str] = []
    try:
        stalled = await hub.subscribe(store.id, on_overflow=lambda: cut_off.append("stalled"))
        healthy = hub.stream(store.id, None)
        got = []

        async def consume() -> None:
            async for event in healthy:
                got.append(event)
                if len(got) == 20:
                    return

        consumer = asyncio.create_task(consume())
        await asyncio.sleep(0.1)
        for _ in range(10):  # 20 events: PLACED and BACKORDERED each
            async with store_session(database, store.id, now) as session:
                await services.place_order(
                    session, services.PlaceOrder([services.LineRequest("A", 1)])
                )
            await asyncio.sleep(0.01)  # a steady pace the healthy consumer keeps up with
        await asyncio.wait_for(consumer, 10)
        seqs = [event.record.seq for event in got]
        assert seqs == list(range(seqs[0], seqs[0] + 20))
        assert cut_off == ["stalled"]  # called once, as soon as it was 5 events behind
        assert stalled.overflowed
        assert stalled.queue.qsize() == 1  # only the end marker: nothing more is kept
        await healthy.aclose()  # type: ignore[attr-defined]
        hub.unsubscribe(stalled)
        assert hub.subscriber_count == 0
    finally:
        await hub.stop()

"""Demo data: three stores and ninety days of trade, made by the real services.

The world is laid out on a timeline that starts at S = end - 90 days, where `end`
is the seeding instant (or `--now`). Everything happens at a fixed offset from S
that only the seed decides: the stores' opening stock, every order, the morning
deliveries, the afternoon shipping waves, cancellations and the nightly overdue
sweeps. Purchase orders are scheduled receipts (scheduleReceipt): some move when the
supplier is late, some arrive in two parts, each received against its receipt.
Calendar dates (requested ship dates, expected receipt dates) are whole days after
S's local date in the store's timezone. So the same seed gives the same orders,
lines, quantities and event sequence, with every time shifted by the start instant
(save for a daylight-saving change in a store's timezone moving a local date
near midnight).

Each store's operations run in time order, each in its own `store_session` at the
instant it happens (a session's events share one instant): every order alone, a
day's deliveries in one session, a day's shipments and cancellations in another.
"Day" and the hours in it count from S, not from the stores' local midnights.

The package: world.py lays out the world from the seed (stores, catalogues, order
instants), runner.py runs one store's days through the domain services, and this
module creates the stores and runs them. Only public entry points are used: the
services in a `store_session`, `create_store` and the read queries.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from ordergraph.clock import Clock
from ordergraph.demo.runner import Runner
from ordergraph.demo.world import (
    DAY,
    DAYS,
    DEFAULT_ORDERS,
    DEFAULT_SEED,
    DEMO_HANDLES,
    DEMO_STORES,
    DemoStore,
    plan_for,
    split_orders,
)
from ordergraph.domain.model import Store
from ordergraph.domain.reads import OrderFilter
from ordergraph.overdue import sweep_overdue
from ordergraph.storage.admin import create_store
from ordergraph.storage.db import Database
from ordergraph.storage.queries import orders_count, products_count, store_by_handle
from ordergraph.storage.statistics import run_first_statistics

# How often seeding looks for tables to analyze (storage/statistics.py): it places orders
# far faster than a served store takes them.
SEED_STATS_MS = 200

__all__ = [
    "DAYS",
    "DEFAULT_ORDERS",
    "DEFAULT_SEED",
    "DEMO_HANDLES",
    "DEMO_STORES",
    "DemoError",
    "DemoStore",
    "Progress",
    "SeededStore",
    "demo_stores",
    "seed_demo",
]

Progress = Callable[[int, int], None]


class DemoError(Exception):
    """The demo cannot be seeded here (one line, for the command)."""


@dataclass(frozen=True)
class SeededStore:
    store: Store
    products: int
    orders: int


async def demo_stores(db: Database) -> dict[str, Store]:
    """The demo stores present in the database, by handle."""
    found: dict[str, Store] = {}
    async with db.read() as conn:
        for handle in DEMO_HANDLES:
            store = await store_by_handle(conn, handle)
            if store is not None:
                found[handle] = store
    return found


def _ends(now: dt.datetime | None) -> tuple[dt.datetime, Clock]:
    """The end of the simulated days, and the clock of the final sweep."""
    final_clock = Clock()
    if now is None:
        return final_clock().replace(microsecond=0), final_clock
    end = now.astimezone(dt.UTC)
    final_clock.freeze(end)
    return end, final_clock


async def _open_stores(
    db: Database,
    seed: int,
    orders: int,
    start: dt.datetime,
    tick: Callable[[], None],
    batched: bool,
) -> list[Runner]:
    runners: list[Runner] = []
    plans = [
        plan_for(spec, seed, count, start)
        for spec, count in zip(DEMO_STORES, split_orders(orders), strict=True)
    ]
    for spec, plan in zip(DEMO_STORES, plans, strict=True):
        store, _ = await create_store(
            db,
            handle=spec.handle,
            name=spec.name,
            currency_code=spec.currency,
            timezone=spec.timezone,
            default_policy=spec.default_policy,
            now=start - dt.timedelta(hours=1),
        )
        runners.append(Runner(db, store, plan, tick, batched=batched))
    return runners


async def _seeded(db: Database, runners: list[Runner], now: dt.datetime) -> list[SeededStore]:
    result = []
    async with db.read() as conn:
        for runner in runners:
            sid = runner.store.id
            n_products = await products_count(conn, sid, None)
            n_orders = await orders_count(conn, sid, OrderFilter(), now)
            result.append(SeededStore(runner.store, n_products, n_orders))
    return result


async def seed_demo(
    db: Database,
    *,
    seed: int = DEFAULT_SEED,
    orders: int = DEFAULT_ORDERS,
    now: dt.datetime | None = None,
    progress: Progress | None = None,
    batched: bool = True,
) -> list[SeededStore]:
    """Create the three demo stores and their ninety days; the database must be migrated.

    `now` is the end of the simulated days (default: the current time). The final
    overdue sweep runs at `now`, on the real clock when `now` is not given.
    `batched=False` seeds as it was done before: each operation in a unit of work of its
    own (a history point per operation); slower.
    On a SQLite file the units' calls run on this thread rather than the writer thread
    (`SqliteWriter.on_caller_thread`): nothing else may use `db` while it seeds.
    """
    found = await demo_stores(db)
    if found:
        raise DemoError(
            "the demo stores already exist in this database ("
            + ", ".join(sorted(found))
            + "); seed an empty database"
        )
    end, final_clock = _ends(now)
    done = 0
    total = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    runners = await _open_stores(db, seed, orders, end - DAYS * DAY, tick, batched)
    total = sum(r.steps for r in runners) + 1
    if db.sqlite_writer is not None:  # one writer at a time anyway, and nothing else
        with db.sqlite_writer.on_caller_thread():  # runs meanwhile: no hand-overs
            for runner in runners:
                await runner.run()
    elif db.is_sqlite:
        for runner in runners:
            await runner.run()
    else:  # each store has its own lock: run them side by side
        stop = asyncio.Event()  # and the tables get their statistics as they grow
        looking = asyncio.create_task(run_first_statistics(db, SEED_STATS_MS, stop))
        try:
            await asyncio.gather(*(runner.run() for runner in runners))
        finally:
            stop.set()
            await looking
    await sweep_overdue(db, final_clock)
    tick()
    return await _seeded(db, runners, end)

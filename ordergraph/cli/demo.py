"""`ordergraph seed-demo`, and the demo stores with a key each for `serve --demo`."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
import time
from typing import TextIO

from ordergraph.cli.common import (
    AddCommand,
    CliError,
    add_database_url,
    at_least,
    now,
    settings_of,
    with_db,
)
from ordergraph.domain.model import Store
from ordergraph.settings import Settings
from ordergraph.storage.db import Database


class ProgressBar:
    """A one-line bar on a terminal; a line per tenth when the stream is not one."""

    def __init__(self, label: str, stream: TextIO | None = None, width: int = 30) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = self.stream.isatty()
        self.started = time.monotonic()
        self._drawn = 0.0
        self._tenth = -1

    def __call__(self, done: int, total: int) -> None:
        share = done / total if total else 1.0
        if self.tty:
            now = time.monotonic()
            if done < total and now - self._drawn < 0.1:
                return
            self._drawn = now
            filled = int(share * self.width)
            bar = "#" * filled + "-" * (self.width - filled)
            self.stream.write(
                f"\r{self.label} [{bar}] {share:4.0%} {done}/{total} {now - self.started:5.1f}s"
            )
        else:
            tenth = int(share * 10)
            if tenth == self._tenth:
                return
            self._tenth = tenth
            self.stream.write(f"{self.label}: {share:.0%} ({done}/{total})\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _instant(value: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 instant: {value!r}") from None
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(
            f"give a time and UTC offset, e.g. 2026-07-15T12:00:00Z: {value!r}"
        )
    return parsed


async def seed_and_report(db: Database, seed: int, orders: int, now: dt.datetime | None) -> float:
    from ordergraph import demo

    bar = ProgressBar("seeding the demo")
    started = time.monotonic()
    try:
        result = await demo.seed_demo(db, seed=seed, orders=orders, now=now, progress=bar)
    except demo.DemoError as err:
        raise CliError(str(err)) from None
    finally:
        bar.close()
    took = time.monotonic() - started
    print(f"Seeded {len(result)} demo stores in {took:.1f}s (seed {seed}):", flush=True)
    for item in result:
        s = item.store
        print(
            f"  {s.handle:<14} {s.currency_code}  {s.timezone:<17}"
            f" {item.products} products, {item.orders} orders",
            flush=True,
        )
    return took


def cmd_seed_demo(args: argparse.Namespace) -> int:
    from ordergraph.storage.migrate import upgrade

    async def run(db: Database) -> None:
        await upgrade(db)
        await seed_and_report(db, args.seed, args.orders, args.now)

    asyncio.run(with_db(settings_of(args), run, migrated=False))
    print(
        "Run `ordergraph serve --demo` to get an API key for each store,"
        " or `ordergraph create-key --store demo-new-york --scope READ --name me`."
    )
    return 0


async def _has_stores(db: Database) -> bool:
    """Whether the database holds any store at all."""
    from ordergraph.storage.queries import any_store

    async with db.read() as conn:
        return await any_store(conn)


async def _demo_stores_seeded(db: Database, seed: int, orders: int) -> dict[str, Store]:
    """The demo stores, seeded first into an empty database."""
    from ordergraph import demo

    stores = await demo.demo_stores(db)
    if not stores:
        if await _has_stores(db):
            raise CliError(
                "--demo needs an empty database (or one made by seed-demo);"
                " this one has other stores"
            )
        await seed_and_report(db, seed, orders, None)
        stores = await demo.demo_stores(db)
    elif len(stores) < len(demo.DEMO_HANDLES):
        raise CliError("this database has only some of the demo stores: use an empty database")
    return stores


async def prepare_demo(settings: Settings, seed: int, orders: int) -> list[tuple[Store, str]]:
    """Seed an empty database (or reuse the demo stores), then a fresh key per demo store."""
    from ordergraph import demo
    from ordergraph.storage import admin

    async def run(db: Database) -> list[tuple[Store, str]]:
        stores = await _demo_stores_seeded(db, seed, orders)
        keys = []
        for handle in demo.DEMO_HANDLES:
            store = stores[handle]
            _, token = await admin.create_api_key(
                db,
                name=f"demo key for {handle} (serve --demo)",
                store_ids=[store.id],
                scopes=admin.SCOPES,
                now=now(),
            )
            keys.append((store, token))
        return keys

    return await with_db(settings, run)


def register(add_command: AddCommand) -> None:
    from ordergraph import demo

    command = add_command(
        "seed-demo",
        help="fill an empty database with three demo stores and 90 days of orders",
        description="Create three demo stores (USD/New York, EUR/Berlin, JPY/Tokyo) and "
        "ninety days of trade made by the real services. Deterministic: the same seed "
        "gives the same data, with times relative to the start instant (--now - 90 days).",
    )
    add_database_url(command)
    command.add_argument("--seed", type=int, default=demo.DEFAULT_SEED, help="default 1")
    command.add_argument(
        "--orders",
        type=at_least(1),
        default=demo.DEFAULT_ORDERS,
        help=f"orders in all stores together (default {demo.DEFAULT_ORDERS})",
    )
    command.add_argument(
        "--now",
        type=_instant,
        help="the end of the ninety days, an ISO 8601 instant (default: the current time)",
    )
    command.set_defaults(func=cmd_seed_demo)

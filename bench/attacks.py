"""Replay the attacks of the boundary issue against a real server, and print what each gets.

    .venv/bin/python bench/attacks.py                       # SQLite and PostgreSQL
    .venv/bin/python bench/attacks.py --databases sqlite --orders 1500

For each database: seed the demo stores, make keys with the CLI, start `ordergraph serve`,
then run every attack once and print a table: the attack, what it got (HTTP status,
`extensions.code`, or websocket close code) and how long it took to be answered, in ms.
The flood attack also reports a second store's placeOrder and `stores` latency (p50 / p99)
while a READ key sends its most expensive operations, and the server's CPU seconds.
Nothing here is timed in CI; tests/api/boundary/ and tests/e2e/boundary/ assert the outcomes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.attacks_http import expensive, flood, post, single_requests
from bench.attacks_world import (
    ALLOWED_ORIGIN,
    ATTACKER_STORE,
    DEFAULT_PG,
    VICTIM_STORE,
    Row,
    World,
    cli,
    make_key,
)
from bench.attacks_ws import disconnect, many_subscriptions, revocation
from bench.harness import free_port, serve_command, start
from bench.pg import create_database, drop_database, with_database


async def victim_details(world: World) -> None:
    async with httpx.AsyncClient() as http:
        products = "products(first: 1) { nodes { sku } }"
        query = f"{{ stores(first: 5) {{ nodes {{ id handle {products} }} }} }}"
        response = await post(http, world, query, None, world.victim)
        store = response.json()["data"]["stores"]["nodes"][0]
        world.victim_store_id = store["id"]
        world.victim_sku = store["products"]["nodes"][0]["sku"]
        response = await post(
            http, world, f'{{ store(handle: "{ATTACKER_STORE}") {{ id }} }}', None, world.reader
        )
        world.attacker_store_id = response.json()["data"]["store"]["id"]
        query = f"""{{ store(handle: "{ATTACKER_STORE}") {{
            products(first: 100) {{ nodes {{ sku available }} }} }} }}"""
        response = await post(http, world, query, None, world.reader)
        products = response.json()["data"]["store"]["products"]["nodes"]
        world.attacker_sku = max(products, key=lambda p: p["available"])["sku"]


def run_on(kind: str, args: argparse.Namespace, work: Path) -> list[Row]:
    pg_name = f"attacks_{uuid.uuid4().hex[:8]}"
    if kind == "sqlite":
        database_url = f"sqlite+aiosqlite:///{work / 'attacks.db'}"
    else:
        asyncio.run(create_database(args.pg_dsn, pg_name))
        database_url = with_database(args.pg_dsn, pg_name).replace(
            "postgresql://", "postgresql+asyncpg://", 1
        )
    server = None
    try:
        cli(database_url, "migrate")
        started = time.perf_counter()
        cli(database_url, "seed-demo", "--orders", str(args.orders), "--seed", "1")
        print(f"[{kind}] seeded {args.orders} orders in {time.perf_counter() - started:.0f} s")
        admin = "og_admin_" + secrets.token_urlsafe(16)
        port = free_port()
        env = {
            **os.environ,
            "ORDERGRAPH_ADMIN_TOKEN": admin,
            "ORDERGRAPH_DATABASE_URL": database_url,
            "ORDERGRAPH_LOG_LEVEL": "WARNING",
            "ORDERGRAPH_INTROSPECTION": "false",
            "ORDERGRAPH_CORS_ORIGINS": ALLOWED_ORIGIN,
        }
        server = start(
            serve_command(port),
            port=port,
            log=work / f"{kind}.log",
            env=env,
            name=f"ordergraph-{kind}",
        )
        world = World(
            url=server.url,
            pid=server.process.pid,
            database_url=database_url,
            admin=admin,
            reader=make_key(database_url, ATTACKER_STORE, "READ"),
            writer=make_key(database_url, ATTACKER_STORE, "ORDERS"),
            victim=make_key(database_url, VICTIM_STORE, "READ", "ORDERS", "INVENTORY"),
            attacker_store_id="",
            victim_store_id="",
            victim_sku="",
        )
        asyncio.run(victim_details(world))

        async def everything() -> list[Row]:
            rows: list[Row] = []
            steps: list[Callable[[], Awaitable[list[Row]]]]
            async with httpx.AsyncClient(timeout=120) as http:
                steps = [
                    lambda: expensive(http, world),
                    lambda: flood(http, world, args.flood_seconds),
                    lambda: disconnect(world),
                    lambda: single_requests(http, world),
                    lambda: revocation(world),
                    lambda: many_subscriptions(world),
                ]
                for step in steps:
                    try:
                        rows += await step()
                    except Exception as err:  # report and go on: this is a probe
                        rows.append(
                            Row(
                                getattr(step, "__name__", "step"),
                                f"probe failed: {err!r}"[:120],
                                float("nan"),
                            )
                        )
            return rows

        return asyncio.run(everything())
    finally:
        if server is not None:
            server.stop()
        if kind != "sqlite":
            asyncio.run(drop_database(args.pg_dsn, pg_name))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--orders", type=int, default=3000, help="demo orders to seed")
    parser.add_argument("--flood-seconds", type=float, default=15)
    parser.add_argument("--pg-dsn", default=DEFAULT_PG)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.databases.split(","):
            rows = run_on(kind.strip(), args, Path(tmp))
            print(f"\n## {kind}\n\n| attack | what it gets | ms |\n|---|---|---|")
            for row in rows:
                ms = "" if row.ms != row.ms else f"{row.ms:.0f}"
                print(f"| {row.attack} | {row.outcome} | {ms} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

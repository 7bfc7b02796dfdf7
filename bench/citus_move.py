"""Move a store's shards to the other Citus worker while its orders are being placed, and
check that nothing failed and nothing was lost (docs/citus.md).

    ORDERGRAPH_CITUS_WORKERS=127.0.0.1:5441,127.0.0.1:5442 \\
      python bench/citus_move.py --pg-dsn postgresql://postgres@127.0.0.1:5440/postgres

A scratch database on the cluster (made on every node, migrated: the tables
distributed), one `ordergraph serve`, one store with a product in stock. `--clients`
connections place orders one after another; after `--before` seconds the store's shard
group (the `stores` shard holding it and every co-located shard) moves to the other
worker with `citus_move_shard_placement`, and the clients go on for `--after` seconds
past the move. Then: every placeOrder answered an order (no error), the store's orders
are exactly the ones answered (numbers 1001 on, none missing, none doubled), its event
log has every position from 1 to the store's last once, and the shards are on the
other worker. Prints the orders placed before, during and after the move, the move's
duration and the slowest placeOrder during it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import pg
from bench.api import PLACE_ORDER, SKU, BenchStore, make_store
from bench.harness import ServerFailed, running, start_serve
from ordergraph.storage.db import Database
from ordergraph.storage.migrate import upgrade

SHARD_OF_STORE = """
SELECT s.shardid, s.nodename, s.nodeport FROM citus_shards s
WHERE s.table_name = 'stores'::regclass
  AND s.shardid = get_shard_id_for_distribution_column('stores', $1::bigint)
"""


@dataclass
class Placed:
    numbers: list[int] = field(default_factory=list)
    at: list[float] = field(default_factory=list)  # when each answer came
    took: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def place_until(
    url: str, store_gid: str, token: str, stop: asyncio.Event, out: Placed
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:
        while not stop.is_set():
            key = secrets.token_hex(8)
            variables = {
                "input": {
                    "storeId": store_gid,
                    "lines": [{"sku": SKU, "quantity": 1}],
                    "idempotencyKey": key,
                }
            }
            began = time.perf_counter()
            try:
                response = await http.post(
                    "/graphql", json={"query": PLACE_ORDER, "variables": variables}
                )
                body = response.json()
            except (httpx.HTTPError, ValueError) as err:
                out.errors.append(f"{type(err).__name__}: {err}")
                continue
            ended = time.perf_counter()
            payload = (body.get("data") or {}).get("placeOrder")
            if body.get("errors") or not payload or payload["userErrors"]:
                out.errors.append(str(body.get("errors") or payload))
                continue
            out.numbers.append(int(payload["order"]["number"]))
            out.at.append(ended)
            out.took.append(ended - began)


async def move(dsn: str, store_id: int, workers: list[tuple[str, int]]) -> tuple[str, float, float]:
    """Move the store's shard group to the other worker: (where to, start, end)."""
    conn = await asyncpg.connect(dsn)
    try:
        shard, host, port = await conn.fetchrow(SHARD_OF_STORE, store_id)
        target = next((h, p) for h, p in workers if (h, p) != (host, port))
        began = time.perf_counter()
        await conn.execute(
            "SELECT citus_move_shard_placement($1::bigint, $2::text, $3::int, $4::text, $5::int)",
            shard,
            host,
            port,
            target[0],
            target[1],
        )
        ended = time.perf_counter()
    finally:
        await conn.close()
    return f"shard {shard}: {host}:{port} -> {target[0]}:{target[1]}", began, ended


async def check(dsn: str, store_id: int, placed: Placed, target: str) -> list[str]:
    problems = []
    conn = await asyncpg.connect(dsn)
    try:
        numbers = [
            r[0]
            for r in await conn.fetch(
                "SELECT number FROM orders WHERE store_id = $1 ORDER BY number", store_id
            )
        ]
        seqs = [
            r[0]
            for r in await conn.fetch(
                "SELECT seq FROM events WHERE store_id = $1 ORDER BY seq", store_id
            )
        ]
        last = await conn.fetchval("SELECT last_event_seq FROM stores WHERE id = $1", store_id)
        _, host, port = await conn.fetchrow(SHARD_OF_STORE, store_id)
    finally:
        await conn.close()
    if sorted(placed.numbers) != numbers:
        problems.append(f"the store has {len(numbers)} orders; {len(placed.numbers)} were answered")
    if numbers != list(range(1001, 1001 + len(numbers))):
        problems.append("order numbers are not 1001 on without a gap")
    if seqs != list(range(1, last + 1)):
        problems.append(f"the event log is not every position from 1 to {last} once")
    if not target.endswith(f"{host}:{port}"):
        problems.append(f"the store's shard is on {host}:{port}, not where it moved ({target})")
    return problems


async def scenario(args: argparse.Namespace, url: str, dsn: str, store: BenchStore) -> int:
    store_gid, handle, token = store.gid, store.handle, store.token
    workers = pg.citus_workers()
    store_id = await pg.store_id_of(dsn, handle)
    stop = asyncio.Event()
    placed = [Placed() for _ in range(args.clients)]
    clients = [asyncio.create_task(place_until(url, store_gid, token, stop, out)) for out in placed]
    await asyncio.sleep(args.before)
    target, began, ended = await move(dsn, store_id, workers)
    await asyncio.sleep(args.after)
    stop.set()
    await asyncio.gather(*clients)
    merged = Placed()
    for out in placed:
        merged.numbers += out.numbers
        merged.at += out.at
        merged.took += out.took
        merged.errors += out.errors
    during = [t for at, t in zip(merged.at, merged.took, strict=True) if began <= at <= ended]
    print(f"moved {target} in {ended - began:.2f} s, with {args.clients} clients placing orders")
    print(
        f"orders answered: {sum(at < began for at in merged.at)} before the move,"
        f" {len(during)} during it, {sum(at > ended for at in merged.at)} after;"
        f" errors: {len(merged.errors)}"
    )
    if during:
        print(f"slowest placeOrder answered during the move: {max(during) * 1000:.0f} ms")
    for error in merged.errors[:5]:
        print(f"  error: {error}")
    problems = await check(dsn, store_id, merged, target)
    for problem in problems:
        print(f"PROBLEM: {problem}")
    ok = not problems and not merged.errors and merged.numbers
    print("nothing failed, nothing lost" if ok else "FAILED")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=4, help="connections placing orders")
    parser.add_argument("--before", type=float, default=3.0, help="seconds of orders first")
    parser.add_argument("--after", type=float, default=3.0, help="seconds of orders after")
    pg.add_pg_dsn(parser)
    args = parser.parse_args(argv)
    if len(pg.citus_workers()) < 2:
        print("set ORDERGRAPH_CITUS_WORKERS to the cluster's two workers (host:port,host:port)")
        return 2
    admin_token = "og_admin_bench_" + secrets.token_urlsafe(16)
    with pg.scratch(args.pg_dsn, "move") as (dsn, logs):
        url = dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
        asyncio.run(_migrate(url))
        env = {
            "ORDERGRAPH_DATABASE_URL": url,
            "ORDERGRAPH_ADMIN_TOKEN": admin_token,
            "ORDERGRAPH_RATE_LIMIT_CAPACITY": "1000000000",
            "ORDERGRAPH_RATE_LIMIT_RESTORE_PER_SECOND": "1000000000",
        }
        try:
            server = start_serve(logs / "server.log", env)
        except ServerFailed as err:
            print(err)
            return 1
        with running(server):
            store = make_store(server.url, admin_token)
            status = asyncio.run(scenario(args, server.url, dsn, store))
        if status:
            print("the server's log, its errors:")
            lines = (logs / "server.log").read_text().splitlines()
            print(*(line for line in lines if '"level": "ERROR"' in line), sep="\n")
        return status


async def _migrate(url: str) -> None:
    db = Database(url)
    try:
        await upgrade(db)
    finally:
        await db.dispose()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())

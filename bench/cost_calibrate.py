"""Calibrate the cost table (schema/cost.py): server CPU per operation kind on demo data.

Runs the app in this process (no network), so the CPU measured is the server's own:
Python, the driver and, on SQLite, the database. On PostgreSQL the database's CPU is in
its own processes and is not counted. For each operation it prints the requested cost,
the CPU per request and the ratio (ms per point); the table aims at ~1 ms per point.

    ordergraph seed-demo --database-url sqlite:///demo.db
    ordergraph create-key --database-url sqlite:///demo.db --store demo-new-york \
        --scope READ --scope ORDERS --name calibrate
    python bench/cost_calibrate.py --database-url sqlite:///demo.db --token og_...
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ordergraph.app import create_app
from ordergraph.settings import Settings
from ordergraph.storage.db import Database

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
DAY = dt.timedelta(days=1)


def _iso(value: dt.datetime) -> str:
    return value.isoformat()


def _in_store(body: str) -> str:
    return '{ store(handle: "demo-new-york") { ' + body + " } }"


def operations() -> list[tuple[str, str]]:
    forty = f'from: "{_iso(NOW - 40 * DAY)}", to: "{_iso(NOW)}"'
    ten = f'from: "{_iso(NOW - 10 * DAY)}", to: "{_iso(NOW)}"'
    as_of = _iso(NOW - 20 * DAY)
    return [
        ("store", _in_store("id handle name")),
        ("stores", "{ stores { nodes { id handle } } }"),
        ("orders250 id", _in_store("orders(first: 250) { edges { node { id } } }")),
        (
            "orders250 12 scalars",
            _in_store(
                "orders(first: 250) { nodes { id number status placedAt customerRef "
                "externalId inBacklog isBackordered isOverdue stockStatus "
                "requestedShipDate placedAt } }"
            ),
        ),
        (
            "orders250 money",
            _in_store(
                "orders(first: 250) { nodes { total { amount currencyCode } "
                "backorderedValue { amount } } }"
            ),
        ),
        (
            "orders100 lines product",
            _in_store(
                "orders(first: 100) { nodes { lines { sku quantity "
                "product { sku title onHand } } } }"
            ),
        ),
        (
            "orders50 lines order store",
            _in_store("orders(first: 50) { nodes { store { id } lines { order { id } } } }"),
        ),
        ("orders totalCount", _in_store("orders(first: 1) { totalCount }")),
        (
            "products250",
            _in_store("products(first: 250) { nodes { sku onHand price { amount } } }"),
        ),
        (
            "backordered100 queue10",
            _in_store(
                "backorderedProducts(first: 100) { sku backorderQueue(first: 10) "
                "{ nodes { quantity order { number } } } }"
            ),
        ),
        ("backlog now", _in_store("backlog { backlog { orders units value { amount } } }")),
        ("backlog asOf", _in_store(f'backlog(asOf: "{as_of}") {{ backlog {{ orders }} }}')),
        (
            "trend DAY 40d",
            _in_store(f"backlogTrend({forty}, interval: DAY) {{ at backlog {{ orders }} }}"),
        ),
        (
            "trend HOUR 10d",
            _in_store(f"backlogTrend({ten}, interval: HOUR) {{ at backlog {{ orders }} }}"),
        ),
        (
            "events 250",
            _in_store(
                "orders(first: 5) { nodes { events(first: 50) { nodes { type "
                "occurredAt order { number } } } } }"
            ),
        ),
    ]


PLACE = """mutation($input: PlaceOrderInput!) { placeOrder(input: $input) {
  order { id number status } userErrors { code } } }"""


async def run(url: str, token: str, samples: int) -> list[dict[str, Any]]:
    db = Database(url, pool_size=20)
    settings = Settings(
        database_url=url,
        admin_token="og_admin_calibrate",
        max_cost=10**9,
        rate_limit_capacity=10**9,
        rate_limit_restore_per_second=10**9,
    )
    app = create_app(settings, db=db)
    headers = {"Authorization": f"Bearer {token}"}
    rows = []
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://x", headers=headers
    ) as http:
        found = await http.post(
            "/graphql",
            json={"query": _in_store("id products(first: 3) { nodes { sku } }")},
        )
        store = found.json()["data"]["store"]
        skus = [p["sku"] for p in store["products"]["nodes"]]

        def place() -> tuple[str, dict[str, Any]]:
            variables = {
                "input": {
                    "storeId": store["id"],
                    "lines": [{"sku": skus[0], "quantity": 1}],
                    "idempotencyKey": uuid.uuid4().hex,
                }
            }
            return PLACE, variables

        ops: list[tuple[str, Any]] = [(n, (q, {})) for n, q in operations()]
        ops.append(("placeOrder", None))
        for name, op in ops:
            times = []
            cost = 0  # set by every sample (there is at least one)
            for i in range(samples + 1):
                query, variables = op if op is not None else place()
                started = time.process_time()
                answer = await http.post("/graphql", json={"query": query, "variables": variables})
                took = time.process_time() - started
                body = answer.json()
                if body.get("errors"):
                    raise SystemExit(f"{name}: {json.dumps(body['errors'])[:400]}")
                cost = body["extensions"]["cost"]["requestedQueryCost"]
                if i:
                    times.append(took * 1000)
            ms = statistics.median(times)
            rows.append(
                {
                    "op": name,
                    "cost": cost,
                    "cpu_ms": round(ms, 2),
                    "ms_per_point": round(ms / cost, 3) if cost else None,
                }
            )
            print(
                f"{name:<28} cost {cost:>6}  cpu {ms:8.2f} ms  {ms / max(cost, 1):6.3f} ms/pt",
                flush=True,
            )
    await db.dispose()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--token", required=True, help="a READ+ORDERS key of demo-new-york")
    parser.add_argument("--samples", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(run(args.database_url, args.token, args.samples))
    return 0


if __name__ == "__main__":
    sys.exit(main())

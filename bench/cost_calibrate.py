"""Calibrate the cost table (schema/cost.py): server CPU per operation kind on demo data.

Runs the app in this process and sends each request straight through its ASGI interface
(bench/asgi.py: no HTTP client, no sockets), so the CPU measured is the server's own:
Python, the driver and, on SQLite, the database. On PostgreSQL the database's CPU is in
its own processes: it is printed beside (all PostgreSQL processes of the machine, from
/proc, so run it on an otherwise idle database). For each operation it prints the
requested cost, the CPU per request (the mean of `--samples` requests in a row, after one
untimed) and the ratio (ms per point); the table aims at about 1 ms per point.

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
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.asgi import call, call_raw
from bench.figures_outcomes import OUTCOMES
from bench.proc import database_cpu_seconds
from ordergraph.app import create_app
from ordergraph.settings import Settings
from ordergraph.storage.db import Database

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
DAY = dt.timedelta(days=1)


# An outcomes trend's point, every field.
_POINTS = f"at outcomes {{ {OUTCOMES} }}"
# A trend point's three tallies, every field (as the figures bench reads them).
_TALLIES = " ".join(
    f"{name} {{ orders units value {{ amount }} }}" for name in ("backlog", "backorders", "overdue")
)


def _iso(value: dt.datetime) -> str:
    return value.isoformat()


def _in_store(body: str) -> str:
    return '{ store(handle: "demo-new-york") { ' + body + " } }"


def operations() -> list[tuple[str, str]]:
    forty = f'from: "{_iso(NOW - 40 * DAY)}", to: "{_iso(NOW)}"'
    ten = f'from: "{_iso(NOW - 10 * DAY)}", to: "{_iso(NOW)}"'
    ninety = f'from: "{_iso(NOW - 90 * DAY)}", to: "{_iso(NOW)}"'
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
            "trend HOUR 40d, all fields",
            _in_store(f"backlogTrend({forty}, interval: HOUR) {{ at {_TALLIES} }}"),
        ),
        ("outcomes 90d", _in_store(f"backorderOutcomes({ninety}) {{ {OUTCOMES} }}")),
        (
            "outcomes trend WEEK 90d",
            _in_store(f"backorderOutcomesTrend({ninety}, interval: WEEK) {{ {_POINTS} }}"),
        ),
        (
            "outcomes trend DAY 90d",
            _in_store(f"backorderOutcomesTrend({ninety}, interval: DAY) {{ {_POINTS} }}"),
        ),
        (
            "leaders 10",
            _in_store(
                f"backorderLeaders(by: LOST_REVENUE, {ninety}, first: 10)"
                f" {{ product {{ sku }} outcomes {{ {OUTCOMES} }} }}"
            ),
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
    app: Any = create_app(settings, db=db)
    postgres = url.startswith("postgresql")
    rows = []
    async with app.router.lifespan_context(app):
        found = await call(
            app, {"query": _in_store("id products(first: 3) { nodes { sku } }")}, token
        )
        store = found["data"]["store"]
        skus = [p["sku"] for p in store["products"]["nodes"]]

        def place() -> dict[str, Any]:
            variables = {
                "input": {
                    "storeId": store["id"],
                    "lines": [{"sku": skus[0], "quantity": 1}],
                    "idempotencyKey": uuid.uuid4().hex,
                }
            }
            return {"query": PLACE, "variables": variables}

        ops: list[tuple[str, dict[str, Any] | None]] = [(n, {"query": q}) for n, q in operations()]
        ops.append(("placeOrder", None))
        for name, op in ops:
            bodies = [op if op is not None else place() for _ in range(samples + 1)]
            first = json.loads(await call_raw(app, bodies[0], token))  # warm-up, and the cost
            if first.get("errors"):
                raise SystemExit(f"{name}: {json.dumps(first['errors'])[:400]}")
            cost = first["extensions"]["cost"]["requestedQueryCost"]
            answers = []
            db_before = database_cpu_seconds() if postgres else None
            started = time.process_time()
            for body in bodies[1:]:
                answers.append(await call_raw(app, body, token))
            ms = (time.process_time() - started) * 1000 / samples
            db_after = database_cpu_seconds() if postgres else None
            for raw in answers:
                if json.loads(raw).get("errors"):
                    raise SystemExit(f"{name}: {raw[:400]!r}")
            db_ms = (
                (db_after - db_before) * 1000 / samples
                if db_before is not None and db_after is not None
                else None
            )
            rows.append(
                {
                    "op": name,
                    "cost": cost,
                    "cpu_ms": round(ms, 3),
                    "ms_per_point": round(ms / cost, 3) if cost else None,
                    "db_cpu_ms": None if db_ms is None else round(db_ms, 3),
                }
            )
            db_text = "" if db_ms is None else f"  database {db_ms:7.3f} ms"
            print(
                f"{name:<28} cost {cost:>6}  cpu {ms:8.3f} ms  {ms / max(cost, 1):6.3f} ms/pt"
                + db_text,
                flush=True,
            )
    await db.dispose()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--token", required=True, help="a READ+ORDERS key of demo-new-york")
    parser.add_argument("--samples", type=int, default=40)
    args = parser.parse_args()
    asyncio.run(run(args.database_url, args.token, args.samples))
    return 0


if __name__ == "__main__":
    sys.exit(main())

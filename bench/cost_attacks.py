"""The expensive-query attacks of the "safe to expose" issue against a real server.

Starts `ordergraph serve` (default limits) on a database with the demo data and, with a
READ key of one demo store, sends each attack a few times, printing what it gets
(data, or the error code) and how long the answer took; meanwhile another demo store's
`stores` query is timed, to show what the attack does to a bystander.

    ordergraph seed-demo --database-url sqlite:///demo.db
    ordergraph create-key --database-url sqlite:///demo.db --store demo-new-york \
        --scope READ --name attacker
    ordergraph create-key --database-url sqlite:///demo.db --store demo-berlin \
        --scope READ --name bystander
    python bench/cost_attacks.py --database-url sqlite:///demo.db --token og_... \
        --bystander-token og_...
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import Server, running, start_serve

NOW = dt.datetime.now(dt.UTC)


def trend(days: float, aliases: int = 1) -> str:
    start = (NOW - dt.timedelta(days=days)).isoformat()
    fields = " ".join(
        f'a{i}: backlogTrend(from: "{start}", to: "{NOW.isoformat()}", interval: HOUR) '
        "{ at backlog { orders units value { amount } } backorders { orders } }"
        for i in range(aliases)
    )
    return '{ store(handle: "demo-new-york") { ' + fields + " } }"


NESTED = """{ store(handle: "demo-new-york") { orders(first: 50) { nodes { lines { product {
  backorderQueue(first: 50) { nodes { order { lines { product { sku } } } } } } } } } } }"""

ATTACKS = [
    ("backlogTrend HOUR over 40 days", trend(40)),
    ("the same under 30 aliases", trend(40, aliases=30)),
    ("nested connections, first: 50 each", NESTED),
    ("two of those under aliases", trend(40, aliases=2)),
]


def _serve(url: str, log: Path) -> Server:
    env = {
        "ORDERGRAPH_DATABASE_URL": url,
        "ORDERGRAPH_ADMIN_TOKEN": "og_admin_" + secrets.token_urlsafe(16),
        "ORDERGRAPH_LOG_LEVEL": "WARNING",
    }
    return start_serve(log, env, timeout=30)


def _code(body: dict[str, Any]) -> str:
    errors = body.get("errors")
    if not errors:
        return "data"
    code = errors[0].get("extensions", {}).get("code", "?")
    cost = body.get("extensions", {}).get("cost", {}).get("requestedQueryCost")
    return f"{code} (cost {cost})"


async def _watch(
    http: httpx.AsyncClient, token: str, done: asyncio.Event, waited: list[float]
) -> None:
    """Time another store's `stores` query, again and again, until `done`."""
    while not done.is_set():
        started = time.perf_counter()
        await http.post(
            "/graphql",
            json={"query": "{ stores { nodes { id } } }"},
            headers={"Authorization": f"Bearer {token}"},
        )
        waited.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0.02)


async def run(base: str, token: str, bystander: str, repeat: int) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=120) as http:
        for name, query in ATTACKS:
            took: list[float] = []
            waited: list[float] = []
            answer = ""
            for _ in range(repeat):
                done = asyncio.Event()

                watcher = asyncio.create_task(_watch(http, bystander, done, waited))
                started = time.perf_counter()
                response = await http.post(
                    "/graphql",
                    json={"query": query},
                    headers={"Authorization": f"Bearer {token}"},
                )
                took.append((time.perf_counter() - started) * 1000)
                done.set()
                await watcher
                body = response.json()
                answer = _code(body)
                if answer == "data":
                    answer += f" (cost {body['extensions']['cost']['requestedQueryCost']})"
            print(
                f"{name:<44} {answer:<34} answered in {statistics.median(took):8.1f} ms"
                f" (median of {repeat}); bystander's stores query max {max(waited):6.1f} ms",
                flush=True,
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--token", required=True, help="a READ key of demo-new-york")
    parser.add_argument("--bystander-token", required=True, help="a READ key of another store")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="ordergraph-cost-attacks-") as logs,
        running(_serve(args.database_url, Path(logs) / "server.log")) as server,
    ):
        asyncio.run(run(server.url, args.token, args.bystander_token, args.repeat))
    return 0


if __name__ == "__main__":
    sys.exit(main())

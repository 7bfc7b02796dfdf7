"""The Node.js example client (examples/node/place_and_follow.mjs) against a real server:
it places an order, prints each of the order's events once, in order, with its cursor,
across a server restart, and exits when the order is shipped.

It needs node and npm: the test runs `npm ci` in examples/node when node_modules is
missing. Without node or npm it skips loudly, and fails under CI=true.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests import conftest
from tests.client import Api, StoreHandle
from tests.conftest import ADMIN_TOKEN, IN_CI, LiveServer
from tests.example_clients import PrintingClient, one_line_failure, restart_on_same_port

EXAMPLE_DIR = Path(__file__).resolve().parents[2] / "examples" / "node"
EXAMPLE = EXAMPLE_DIR / "place_and_follow.mjs"
SERVER_ENV = {"ORDERGRAPH_WS_PING_SECONDS": "1", "ORDERGRAPH_TAIL_POLL_MS": "200"}
WAIT = 30.0

Event = tuple[int, str, str, str, str]  # order number, type, status, stockStatus, cursor


@pytest.fixture(scope="module")
def node() -> str:
    """The node executable, with the example's packages installed (`npm ci` if needed)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        message = "node and npm are needed for the Node.js example (examples/node)"
        if IN_CI:
            pytest.fail(message + " (CI=true: this test must run)")
        print("\n" + "!" * 70 + f"\n!! SKIPPING the Node.js example: {message}\n" + "!" * 70)
        pytest.skip(message)
    if not all((EXAMPLE_DIR / "node_modules" / p).is_dir() for p in ("graphql-ws", "graphql-sse")):
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=EXAMPLE_DIR,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"npm ci failed in {EXAMPLE_DIR}:\n{done.stderr}"
    return node


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        url: str = request.getfixturevalue("pg_url")
        return url
    return f"sqlite+aiosqlite:///{tmp_path}/x.db"


@pytest.fixture
def servers(database_url: str, tmp_path: Path) -> Iterator[list[LiveServer]]:
    """A running server; the test may replace it with another on the same port."""
    running = [conftest.start_server(database_url, tmp_path / "server-0.log", SERVER_ENV)]
    yield running
    for server in running:
        if server.process.poll() is None:
            server.stop()


@pytest.fixture
async def api(servers: list[LiveServer]) -> AsyncIterator[Api]:
    no_keepalive = httpx.Limits(max_keepalive_connections=0)  # the server will restart
    url = servers[0].url
    async with httpx.AsyncClient(base_url=url, timeout=WAIT, limits=no_keepalive) as http:
        yield Api(http, ADMIN_TOKEN, None)


class Client(PrintingClient):
    """The example running as a subprocess; its stdout is one event per line."""

    @classmethod
    async def start(cls, node: str, url: str, token: str, log: Path, *args: str) -> Client:
        with log.open("ab") as err:
            process = await asyncio.create_subprocess_exec(
                node,
                str(EXAMPLE),
                *("--url", url + "/graphql", *args),
                env={**os.environ, "ORDERGRAPH_TOKEN": token},
                cwd=EXAMPLE_DIR,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
            )
        return cls(process, log, WAIT)

    async def events(self, count: int) -> list[Event]:
        return [parse(line) for line in await self.lines(count)]

    async def finish(self) -> list[Event]:
        """Wait for the client to exit by itself; the events it printed not read yet."""
        return [parse(line) for line in await self.rest()]


def parse(line: bytes) -> Event:
    _, number, kind, status, stock, cursor = line.decode().split()
    assert number.startswith("#"), line
    assert status.startswith("status="), line
    assert stock.startswith("stockStatus="), line
    assert cursor.startswith("cursor="), line
    return int(number[1:]), kind, value(status), value(stock), value(cursor)


def value(field: str) -> str:
    return field.split("=", 1)[1]


async def shop(api: Api, policy: str) -> StoreHandle:
    store = await api.create_store(policy=policy)
    await api.upsert(store, "MUG")  # no stock yet
    return store


@pytest.fixture(scope="module")
def pg_server(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = conftest.start_server(
        pg_url, tmp_path_factory.mktemp("node") / "server.log", SERVER_ENV
    )
    yield server
    server.stop()


async def subscribed(server: LiveServer) -> None:
    """Wait until the server holds the client's subscription (its /metrics says so)."""
    async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as http:
        for _ in range(int(WAIT * 10)):
            metrics = (await http.get("/metrics")).text
            if re.search(r"^ordergraph_subscriptions_active [1-9]", metrics, re.M):
                return
            await asyncio.sleep(0.1)
    raise AssertionError("the client never subscribed")


async def test_places_an_order_and_prints_its_events_with_cursors_across_a_restart(
    node: str, servers: list[LiveServer], api: Api, database_url: str, tmp_path: Path
) -> None:
    store = await shop(api, "ALLOW")
    other = await api.place(store, [("MUG", 1)])  # 1001, someone else's: not followed
    log = tmp_path / "client.log"
    client = await Client.start(
        node, servers[0].url, store.token, log, "--store-id", store.id, "--sku", "MUG",
        "--quantity", "2",
    )  # fmt: skip
    try:
        placed = await client.events(2)
        assert [(n, kind, status, stock) for n, kind, status, stock, _ in placed] == [
            (1002, "PLACED", "OPEN", "BACKORDERED"),
            (1002, "BACKORDERED", "OPEN", "BACKORDERED"),
        ]
        await subscribed(servers[0])  # the restart must cut a live subscription

        servers[0] = await restart_on_same_port(
            servers[0], database_url, tmp_path / "s-1.log", SERVER_ENV
        )
        await api.receive(store, "MUG", 3)  # fills 1001 first, then 1002, perhaps while away
        await api.ship(store, other["order"]["id"])  # another order's event: not printed
        order = (await api.place(store, [("MUG", 1)]))["order"]  # 1003: not printed either
        assert order["number"] == 1003
        filled = await client.events(1)
        ours = await api.order(store, 1002)
        await api.ship(store, ours["id"])  # surely live on the new connection
        printed = placed + filled + await client.finish()
    finally:
        client.kill()

    history = (await api.order(store, 1002))["events"]["nodes"]
    assert printed == [
        (1002, e["type"], e["status"], e["stockStatus"] or "-", e["cursor"]) for e in history
    ]
    assert [kind for _, kind, *_ in printed] == [
        "PLACED", "BACKORDERED", "BACKORDER_FILLED", "SHIPPED",
    ]  # fmt: skip
    notes = log.read_text()
    assert "placed order #1002" in notes
    assert "connection closed (1012); reconnecting" in notes
    assert f"subscribing after cursor {placed[-1][4]}" in notes
    assert "order #1002 is SHIPPED; done" in notes


@pytest.mark.postgres
async def test_follows_an_earlier_order_from_a_cursor(
    node: str, pg_server: LiveServer, tmp_path: Path
) -> None:
    server = pg_server
    async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as http:
        api = Api(http, ADMIN_TOKEN, None)
        store = await shop(api, "ALLOW")
        order = (await api.place(store, [("MUG", 1)]))["order"]
        await api.receive(store, "MUG", 1)
        [placed, backordered, filled] = (await api.order(store, 1001))["events"]["nodes"]
        client = await Client.start(
            node, server.url, store.token, tmp_path / "client.log", "--store-id", store.id,
            "--order-id", order["id"], "--after", placed["cursor"], "--quiet",
        )  # fmt: skip
        try:
            replayed = await client.events(2)
            await api.cancel(store, order["id"])
            printed = replayed + await client.finish()
        finally:
            client.kill()
    assert [(kind, cursor) for _, kind, _, _, cursor in printed] == [
        ("BACKORDERED", backordered["cursor"]),
        ("BACKORDER_FILLED", filled["cursor"]),
        ("CANCELLED", printed[-1][4]),
    ]
    assert printed[-1][2] == "CANCELLED"
    assert (tmp_path / "client.log").read_text() == ""  # --quiet: events only


@pytest.mark.postgres
async def test_exits_with_a_one_line_error_when_refused(
    node: str, pg_server: LiveServer, tmp_path: Path
) -> None:
    server = pg_server
    async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as http:
        api = Api(http, ADMIN_TOKEN, None)
        store = await shop(api, "DENY")  # no stock, no backorders
        for token, complaint in [
            ("og_not_a_token", "UNAUTHENTICATED"),
            (store.token, "order refused: INSUFFICIENT_STOCK"),
        ]:
            line = await one_line_failure(
                node,
                str(EXAMPLE),
                *("--url", server.url + "/graphql", "--token", token),
                *("--store-id", store.id, "--sku", "MUG"),
                cwd=EXAMPLE_DIR,
                wait=WAIT,
            )
            assert line.startswith("place_and_follow: error:"), line
            assert complaint in line, line
        assert (await api.product(store, "MUG"))["allocated"] == 0


SSE_EXAMPLE = EXAMPLE_DIR / "follow_sse.mjs"


async def test_follows_over_server_sent_events_across_a_restart(
    node: str, servers: list[LiveServer], api: Api, database_url: str, tmp_path: Path
) -> None:
    """examples/node/follow_sse.mjs, on the npm graphql-sse client: a store's order events
    from a cursor, each once and in order, across a server restart."""
    store = await shop(api, "ALLOW")
    await api.place(store, [("MUG", 1)])  # 1001: PLACED, BACKORDERED
    first = (await api.order(store, 1001))["events"]["nodes"][0]["cursor"]
    log = tmp_path / "sse-client.log"
    with log.open("ab") as err:
        process = await asyncio.create_subprocess_exec(
            node, str(SSE_EXAMPLE),
            *("--url", servers[0].url + "/graphql/stream", "--store-id", store.id),
            *("--after", first, "--max-events", "3"),
            env={**os.environ, "ORDERGRAPH_TOKEN": store.token},
            cwd=EXAMPLE_DIR, stdout=asyncio.subprocess.PIPE, stderr=err,
        )  # fmt: skip
    client = PrintingClient(process, log, WAIT)
    try:
        replayed = await client.lines(1)  # 1001's BACKORDERED, after the cursor given
        servers[0] = await restart_on_same_port(
            servers[0], database_url, tmp_path / "s-1.log", SERVER_ENV
        )
        await api.place(store, [("MUG", 1)])  # 1002, perhaps while the client is away
        printed = replayed + await client.rest()
    finally:
        client.kill()

    cursors = [
        e["cursor"] for n in (1001, 1002) for e in (await api.order(store, n))["events"]["nodes"]
    ]
    rows = [line.decode().split() for line in printed]
    assert [(r[1], r[2]) for r in rows] == [
        ("#1001", "BACKORDERED"), ("#1002", "PLACED"), ("#1002", "BACKORDERED"),
    ]  # fmt: skip
    assert [r[4] for r in rows] == [f"cursor={c}" for c in cursors[1:]]
    notes = log.read_text()
    assert "reconnecting" in notes
    assert f"subscribing after cursor {cursors[1]}" in notes

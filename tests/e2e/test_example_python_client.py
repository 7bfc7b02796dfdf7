"""The Python example client (examples/python/follow_orders.py) against a real server:
it prints every order event exactly once, in order, across a server restart and across
its own restart from the state file."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests import conftest
from tests.client import Api, StoreHandle
from tests.conftest import ADMIN_TOKEN, LiveServer
from tests.example_clients import PrintingClient, one_line_failure, restart_on_same_port

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "python" / "follow_orders.py"
SERVER_ENV = {"ORDERGRAPH_WS_PING_SECONDS": "1", "ORDERGRAPH_TAIL_POLL_MS": "200"}
WAIT = 30.0

Event = tuple[int, str, str, str]  # order number, type, status, stockStatus


def sqlite_url(folder: Path) -> str:
    return f"sqlite+aiosqlite:///{folder}/x.db"


@pytest.fixture
def sqlite_server(tmp_path: Path) -> Iterator[list[LiveServer]]:
    """A server on its own SQLite database; the test may replace the running one."""
    servers = [conftest.start_server(sqlite_url(tmp_path), tmp_path / "server-0.log", SERVER_ENV)]
    yield servers
    for server in servers:
        if server.process.poll() is None:
            server.stop()


@pytest.fixture(scope="module")
def pg_server(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = conftest.start_server(
        pg_url, tmp_path_factory.mktemp("example") / "server.log", SERVER_ENV
    )
    yield server
    server.stop()


class Client(PrintingClient):
    """The example running as a subprocess; its stdout is one event per line."""

    running: list[Client] = []

    @classmethod
    async def start(
        cls, name: str, server: LiveServer, store: StoreHandle, state: Path, max_events: int
    ) -> Client:
        """Run the example with the store's token in ORDERGRAPH_TOKEN; stderr goes to a log."""
        log = state.with_name(f"{name}.log")
        with log.open("ab") as err:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                str(EXAMPLE),
                *("--url", server.url.replace("http://", "ws://") + "/graphql"),
                *("--store-id", store.id, "--state-file", str(state)),
                *("--max-events", str(max_events)),
                env={**os.environ, "ORDERGRAPH_TOKEN": store.token},
                cwd=state.parent,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
            )
        client = cls(process, log, WAIT)
        cls.running.append(client)
        return client

    async def events(self, count: int) -> list[Event]:
        return [parse(line) for line in await self.lines(count)]

    async def finish(self) -> list[Event]:
        """Wait for the client to exit by itself; the events it printed not read yet."""
        return [parse(line) for line in await self.rest()]


@pytest.fixture(autouse=True)
def no_client_left_running() -> Iterator[None]:
    yield
    for client in Client.running:
        if client.process.returncode is None:
            client.process.kill()
    Client.running.clear()


def parse(line: bytes) -> Event:
    _, number, kind, status, stock = line.decode().split()
    assert number.startswith("#"), line
    assert status.startswith("status="), line
    return int(number[1:]), kind, status.split("=")[1], stock.split("=")[1]


async def event_log(api: Api, store: StoreHandle, numbers: range) -> dict[int, list[Event]]:
    """Each order's events as the HTTP API reports them, in order."""
    log = {}
    for number in numbers:
        nodes = (await api.order(store, number))["events"]["nodes"]
        log[number] = [(number, e["type"], e["status"], e["stockStatus"] or "-") for e in nodes]
    return log


def by_order(events: list[Event]) -> dict[int, list[Event]]:
    grouped: dict[int, list[Event]] = {}
    for event in events:
        grouped.setdefault(event[0], []).append(event)
    return grouped


async def shop(api: Api) -> StoreHandle:
    store = await api.create_store(policy="ALLOW")
    await api.upsert(store, "A")
    return store


def save_state(state: Path, store: StoreHandle, cursor: str) -> None:
    """Start the client from a known position (the file it writes itself) instead of
    "now", so the test does not race the subscription's start."""
    state.write_text(json.dumps({"storeId": store.id, "after": cursor}))


@pytest.fixture
async def sqlite_api(sqlite_server: list[LiveServer]) -> AsyncIterator[Api]:
    no_keepalive = httpx.Limits(max_keepalive_connections=0)  # the server will restart
    async with httpx.AsyncClient(
        base_url=sqlite_server[0].url, timeout=WAIT, limits=no_keepalive
    ) as http:
        yield Api(http, ADMIN_TOKEN, None)


async def test_prints_each_event_once_in_order_across_a_server_restart(
    sqlite_server: list[LiveServer], sqlite_api: Api, tmp_path: Path
) -> None:
    api = sqlite_api
    store = await shop(api)
    await api.place(store, [("A", 1)])  # 1001: PLACED, BACKORDERED
    placed_1001 = (await api.order(store, 1001))["events"]["nodes"][0]
    state = tmp_path / "state.json"
    save_state(state, store, placed_1001["cursor"])  # as if the client had seen PLACED 1001

    client = await Client.start("client", sqlite_server[0], store, state, max_events=8)
    await api.place(store, [("A", 1)])
    before = await client.events(3)  # replayed BACKORDERED 1001, then 1002 live

    sqlite_server[0] = await restart_on_same_port(
        sqlite_server[0], sqlite_url(tmp_path), tmp_path / "server-1.log", SERVER_ENV
    )
    await api.receive(store, "A", 1)  # fills 1001, perhaps before the client is back
    await api.place(store, [("A", 1)])
    resumed = await client.events(3)
    await api.place(store, [("A", 1)])  # surely live on the new connection
    printed = before + resumed + await client.finish()

    assert [(number, kind) for number, kind, _, _ in printed] == [
        (1001, "BACKORDERED"), (1002, "PLACED"), (1002, "BACKORDERED"),
        (1001, "BACKORDER_FILLED"), (1003, "PLACED"), (1003, "BACKORDERED"),
        (1004, "PLACED"), (1004, "BACKORDERED"),
    ]  # fmt: skip
    log = await event_log(api, store, range(1001, 1005))
    log[1001] = log[1001][1:]  # PLACED 1001 came before the saved cursor
    assert by_order(printed) == log
    assert "connection closed (1012); reconnecting" in client.log.read_text()
    cursor = json.loads(state.read_text())["after"]
    assert cursor == (await api.order(store, 1004))["events"]["nodes"][-1]["cursor"]


async def test_a_restarted_client_resumes_from_its_state_file(
    pg_server: LiveServer, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=pg_server.url, timeout=WAIT) as http:
        api = Api(http, ADMIN_TOKEN, None)
        store = await shop(api)
        await api.place(store, [("A", 1)])
        last_1001 = (await api.order(store, 1001))["events"]["nodes"][-1]
        state = tmp_path / "state.json"
        save_state(state, store, last_1001["cursor"])

        first = await Client.start("first", pg_server, store, state, max_events=100)
        for _ in range(3):
            await api.place(store, [("A", 1)])  # 1002..1004: six events
        seen = await first.events(3)
        first.process.terminate()  # SIGTERM while events are still coming: a clean stop
        seen += await first.finish()
        await api.place(store, [("A", 2)])  # 1005, while no client runs

        second = await Client.start("second", pg_server, store, state, max_events=8 - len(seen))
        printed = seen + await second.finish()

        assert [(number, kind) for number, kind, _, _ in printed] == [
            (n, kind) for n in range(1002, 1006) for kind in ("PLACED", "BACKORDERED")
        ]
        assert by_order(printed) == await event_log(api, store, range(1002, 1006))
        assert "from the saved cursor" in second.log.read_text()


async def test_exits_with_a_one_line_error_on_a_bad_token_or_an_unknown_store(
    pg_server: LiveServer, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=pg_server.url, timeout=WAIT) as http:
        api = Api(http, ADMIN_TOKEN, None)
        mine, theirs = await shop(api), await shop(api)
    url = pg_server.url.replace("http://", "ws://") + "/graphql"
    for token, store_id, complaint in [
        ("og_not_a_token", mine.id, "refused the token (4403)"),
        (mine.token, theirs.id, "store not found"),
    ]:
        line = await one_line_failure(
            sys.executable,
            str(EXAMPLE),
            *("--url", url, "--token", token, "--store-id", store_id),
            *("--state-file", str(tmp_path / "state.json"), "--quiet"),
            wait=WAIT,
        )
        assert line.startswith("follow_orders: error:"), line
        assert complaint in line, line

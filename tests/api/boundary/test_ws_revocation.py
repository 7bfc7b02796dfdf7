"""Revocation reaches open websockets: live subscriptions of a revoked key end with 4403
within 5 s on both protocols, across processes (PostgreSQL, two real servers) and in
process (SQLite); operations started after revocation are refused."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack

import pytest

from ordergraph.settings import Settings
from tests.client import Api
from tests.conftest import ADMIN_TOKEN, LiveServer, start_server
from tests.ws_client import LEGACY, TRANSPORT, WsClient, ws_connect
from tests.ws_support import (
    error_codes,
    http_api,
    live_subscription,
    make_key,
    place_over_ws,
    revoke_by_api,
    revoke_by_cli_async,
    serve_in_process,
    shop,
)

PROTOCOLS = [TRANSPORT, LEGACY]
ORDER_COUNT = """query($h: String!) { store(handle: $h) { orders(first: 5) { totalCount } } }"""
# Seconds from a revocation's commit to the close frame, printed at the end (-s).
MEASURED: list[tuple[str, float]] = []


@pytest.fixture(scope="module")
def pg_pair(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[LiveServer]]:
    """Two `ordergraph serve` processes on one PostgreSQL database, default settings."""
    folder = tmp_path_factory.mktemp("revocation")
    servers = [start_server(pg_url, folder / f"s{i}.log") for i in range(2)]
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def pg_slow_watcher(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server whose watcher looks only once a minute: what refuses an operation on an open
    socket there is the per-operation check (through the 2 s key cache)."""
    folder = tmp_path_factory.mktemp("slow-watcher")
    server = start_server(pg_url, folder / "s.log", {"ORDERGRAPH_REVOCATION_CHECK_MS": "60000"})
    yield server
    server.stop()


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    yield
    if MEASURED:
        print("\nrevocation → close 4403 (seconds):")
        for name, seconds in MEASURED:
            print(f"  {name:<40} {seconds:.2f}")


async def _events(ws: WsClient, count: int) -> list[str]:
    return [(await ws.next_data())["orderEvents"]["type"] for _ in range(count)]


async def _revoke_while_subscribed(
    api: Api, ws_url: str, protocol: str, revoke: str, database_url: str, name: str
) -> float:
    """A subscription of a key and one of a bystander key on `ws_url`; the key is revoked
    through `api` (another process) or `ordergraph revoke-key`. Returns the seconds from
    the revocation's commit to the close frame."""
    store = await shop(api)
    key = await make_key(api, [store], ["READ"], "revoked")
    other = await make_key(api, [store], ["READ"], "bystander")
    async with ws_connect(ws_url, protocol) as ws, ws_connect(ws_url, protocol) as bystander:
        await live_subscription(ws, key.token, store)
        await live_subscription(bystander, other.token, store)
        await asyncio.sleep(0.3)
        await api.place(store, [("A", 1)])
        assert await _events(ws, 2) == ["PLACED", "BACKORDERED"]
        assert await _events(bystander, 2) == ["PLACED", "BACKORDERED"]

        if revoke == "api":
            await revoke_by_api(api, key)
        else:
            await revoke_by_cli_async(database_url, key)
        committed = time.monotonic()
        code = await ws.closed_code(wait=10)
        seconds = time.monotonic() - committed

        assert code == 4403
        assert seconds < 5, seconds
        MEASURED.append((name, seconds))
        # The other key's subscription on the same process goes on.
        await api.place(store, [("A", 1)])
        assert await _events(bystander, 2) == ["PLACED", "BACKORDERED"]
    # A new connection with the revoked key is refused.
    async with ws_connect(ws_url, protocol) as ws:
        await ws.send(
            {"type": "connection_init", "payload": {"authorization": f"Bearer {key.token}"}}
        )
        assert await ws.closed_code() == 4403
    return seconds


@pytest.mark.postgres
@pytest.mark.parametrize("revoke", ["api", "cli"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.e2e  # starts a process
async def test_pg_a_key_revoked_in_another_process_ends_its_subscriptions_with_4403_within_5s(
    pg_pair: list[LiveServer], pg_url: str, protocol: str, revoke: str
) -> None:
    subscribed_on, revoked_on = pg_pair
    async with http_api(revoked_on.url) as api:
        await _revoke_while_subscribed(
            api, subscribed_on.url, protocol, revoke, pg_url, f"postgres {protocol} via {revoke}"
        )


async def _operation_after_revocation_is_refused(
    api: Api, ws_url: str, protocol: str, revoke: str, database_url: str
) -> None:
    """On an open socket, a mutation before revocation runs; one sent after it (past the
    key cache) is refused with UNAUTHENTICATED, the socket closes with 4403, and no order
    was placed."""
    store = await shop(api)
    key = await make_key(api, [store], ["READ", "ORDERS"], "partner")
    async with ws_connect(ws_url, protocol) as ws:
        assert (await ws.init(key.token))["type"] == "connection_ack"
        await place_over_ws(ws, store)
        assert (await ws.next_data())["placeOrder"]["order"] == {"number": 1001}
        assert (await ws.receive())["type"] == "complete"

        if revoke == "api":
            await revoke_by_api(api, key)
        else:
            await revoke_by_cli_async(database_url, key)
        await asyncio.sleep(2.5)  # past auth_cache_seconds (2)
        await place_over_ws(ws, store)
        refused = await ws.receive()
        assert refused["type"] == "error", refused
        assert error_codes(refused) == ["UNAUTHENTICATED"]
        assert await ws.closed_code() == 4403
    counted = await api.gql(ORDER_COUNT, {"h": store.handle}, token=store.token)
    assert counted["store"]["orders"]["totalCount"] == 1


@pytest.mark.postgres
@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.e2e  # starts a process
async def test_pg_a_mutation_on_an_open_socket_after_revocation_is_refused(
    pg_pair: list[LiveServer], pg_slow_watcher: LiveServer, pg_url: str, protocol: str
) -> None:
    async with http_api(pg_pair[1].url) as api:
        await _operation_after_revocation_is_refused(
            api, pg_slow_watcher.url, protocol, "api", pg_url
        )


# -- SQLite, in process ----------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.e2e  # starts a process
async def test_sqlite_revocation_by_another_process_ends_subscriptions_within_5s(
    sqlite_url: str, protocol: str
) -> None:
    settings = Settings(database_url=sqlite_url, admin_token=ADMIN_TOKEN)
    async with serve_in_process(settings) as server, http_api(server.url) as api:
        await _revoke_while_subscribed(
            api, server.url, protocol, "cli", sqlite_url, f"sqlite {protocol} via cli"
        )


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_sqlite_revocation_through_this_process_closes_its_sockets_at_once(
    sqlite_url: str, protocol: str
) -> None:
    settings = Settings(database_url=sqlite_url, admin_token=ADMIN_TOKEN)
    async with serve_in_process(settings) as server, http_api(server.url) as api:
        seconds = await _revoke_while_subscribed(
            api, server.url, protocol, "api", sqlite_url, f"sqlite {protocol} via api (same)"
        )
        assert seconds < 1, seconds
        guard = server.app.state.guard
        assert guard.open_sockets() == 0


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_sqlite_a_mutation_on_an_open_socket_after_revocation_is_refused(
    sqlite_url: str, protocol: str
) -> None:
    settings = Settings(database_url=sqlite_url, admin_token=ADMIN_TOKEN, revocation_check_ms=60000)
    async with serve_in_process(settings) as server, http_api(server.url) as api:
        await _operation_after_revocation_is_refused(api, server.url, protocol, "cli", sqlite_url)


async def test_the_watcher_checks_the_keys_of_all_open_sockets_in_one_query(
    sqlite_url: str,
) -> None:
    from sqlalchemy import event

    settings = Settings(database_url=sqlite_url, admin_token=ADMIN_TOKEN, revocation_check_ms=200)
    async with serve_in_process(settings) as server, http_api(server.url) as api:
        store = await shop(api)
        keys = [await make_key(api, [store], ["READ"], f"k{i}") for i in range(3)]
        guard = server.app.state.guard
        statements: list[str] = []

        def note(_conn: object, _cursor: object, statement: str, *_: object) -> None:
            if "revoked_at IS NULL" in statement and "api_keys.id IN" in statement:
                statements.append(statement)

        engine = server.app.state.db.engine.sync_engine
        async with AsyncExitStack() as stack:
            for protocol in PROTOCOLS:
                for key in keys:
                    ws = await stack.enter_async_context(ws_connect(server.url, protocol))
                    assert (await ws.init(key.token))["type"] == "connection_ack"
            assert guard.open_sockets() == 6
            event.listen(engine, "before_cursor_execute", note)
            checks = guard.checks
            await asyncio.sleep(1.1)
            event.remove(engine, "before_cursor_execute", note)
            made = guard.checks - checks
        assert 3 <= made <= 7, made  # about one every 200 ms
        assert len(statements) == made  # one statement per check, for all six sockets

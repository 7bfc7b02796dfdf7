"""Operations: /readyz, /metrics, JSON logs and a graceful SIGTERM, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import math
import shutil
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ordergraph.app import Readiness, create_app
from ordergraph.live.hub import EventHub
from ordergraph.logs import make_handler
from ordergraph.resolvers.ids import store_id
from ordergraph.settings import Settings
from ordergraph.storage.db import Database
from ordergraph.storage.migrate import MIGRATIONS, upgrade
from tests.client import Api
from tests.conftest import (
    ADMIN_TOKEN,
    LiveServer,
    _pg_admin_dsn,
    free_port,
    run_outside_loop,
    start_server,
)
from tests.ws_client import ws_connect

MINE = "query Mine { stores(first: 1) { nodes { id handle } } }"


# -- helpers ----------------------------------------------------------------------------
def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition, keyed by name and labels."""
    found: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, frozenset(labels.items())))


def operations(text: str) -> dict[tuple[str, str, str], float]:
    """ordergraph_graphql_operations_total as {(operation, type, outcome): count}."""
    out: dict[tuple[str, str, str], float] = {}
    for (name, labels), count in samples(text).items():
        if name == "ordergraph_graphql_operations_total":
            d = dict(labels)
            out[(d["operation"], d["type"], d["outcome"])] = count
    return out


async def post(
    http: httpx.AsyncClient, query: str, token: str | None = None, **extra: Any
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await http.post("/graphql", json={"query": query, **extra}, headers=headers)


def assert_clean_exit(code: int, log: Path) -> None:
    """The server shut down gracefully and exited 0: uvicorn's last line, nothing cut short."""
    text = log.read_text()
    assert code == 0, (code, text)
    assert "Application shutdown complete." in text, text
    assert "Finished server process" in text, text
    assert "timeout graceful shutdown exceeded" not in text, text
    assert "Traceback" not in text, text


@pytest.fixture
def bare_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """An empty database (no migrations applied) on this test's backend."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'bare.db'}"
        return
    request.getfixturevalue("pg_url")  # PostgreSQL must be reachable (fails under CI)
    name = f"ordergraph_bare_{uuid.uuid4().hex[:10]}"

    async def create() -> None:
        admin = await asyncpg.connect(_pg_admin_dsn())
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()

    async def drop() -> None:
        admin = await asyncpg.connect(_pg_admin_dsn())
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()

    run_outside_loop(create())
    try:
        yield _pg_admin_dsn(name).replace("postgresql://", "postgresql+asyncpg://")
    finally:
        run_outside_loop(drop())


@pytest.fixture
async def bare_app(bare_url: str) -> AsyncIterator[tuple[httpx.AsyncClient, Database]]:
    db = Database(bare_url)
    app = create_app(Settings(database_url=bare_url, admin_token=ADMIN_TOKEN), db=db)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        yield http, db
    await db.dispose()


# -- /healthz and /readyz ----------------------------------------------------------------
async def test_ready_when_the_database_is_migrated(api: Api) -> None:
    assert (await api.http.get("/healthz")).json() == {
        "status": "ok",
        "version": metadata.version("ordergraph"),
    }
    response = await api.http.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "migrations": "current"}


async def test_not_ready_until_migrated_then_ready(
    bare_app: tuple[httpx.AsyncClient, Database],
) -> None:
    http, db = bare_app
    assert (await http.get("/healthz")).status_code == 200  # alive, though not ready
    response = await http.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert "not migrated" in response.json()["reason"]
    await upgrade(db)
    response = await http.get("/readyz")
    assert response.status_code == 200, response.text


async def test_not_ready_when_a_newer_migration_is_pending(bare_url: str, tmp_path: Path) -> None:
    """Code with a migration the database has not had (deployed, `migrate` not yet run)."""
    db = Database(bare_url)
    try:
        await upgrade(db)
        newer = tmp_path / "migrations"
        shutil.copytree(MIGRATIONS, newer, ignore=shutil.ignore_patterns("__pycache__"))
        heads = Readiness(db).script().get_heads()
        (newer / "versions" / "9999_next.py").write_text(
            f'revision = "9999_next"\ndown_revision = "{heads[0]}"\n'
            "branch_labels = None\ndepends_on = None\n\n\n"
            "def upgrade() -> None:\n    pass\n\n\n"
            "def downgrade() -> None:\n    pass\n"
        )
        ready, body = await Readiness(db, migrations=newer).check()
        assert not ready
        assert body["pending"] == ["9999_next"]
        assert "migrations pending (1)" in body["reason"]
        # The other way round (a newer release migrated the database): still ready.
        async with db.engine.begin() as conn:
            from sqlalchemy import text

            await conn.execute(text("UPDATE alembic_version SET version_num = '9999_next'"))
        ready, body = await Readiness(db).check()
        assert ready
        assert body["migrations"] == "database is newer than this code"
    finally:
        await db.dispose()


@pytest.mark.parametrize("where", ["sqlite", "postgres"])
async def test_not_ready_when_the_database_is_down(where: str, tmp_path: Path) -> None:
    if where == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'no-such-dir' / 'x.db'}"
    else:
        url = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nothing_listens_here"
    db = Database(url)
    app = create_app(Settings(database_url=url), db=db)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test"
        ) as http:
            started = time.monotonic()
            response = await http.get("/readyz")
            assert time.monotonic() - started < 5
            assert (await http.get("/healthz")).status_code == 200
    finally:
        await db.dispose()
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["reason"].startswith("database unreachable")
    assert "127.0.0.1" not in response.text
    assert "no-such-dir" not in response.text


# -- /metrics ----------------------------------------------------------------------------
async def test_metrics_count_operations_by_name_and_outcome(api: Api) -> None:
    store = await api.create_store()
    http = api.http
    assert (await post(http, MINE, store.token)).json()["data"]["stores"]["nodes"]
    await post(http, MINE, store.token)
    await post(http, "{ stores(first: 1) { nodes { id } } }", store.token)  # anonymous
    no_token = (await post(http, MINE)).json()
    assert no_token["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    refused = await post(
        http,
        """mutation Place($input: PlaceOrderInput!) {
             placeOrder(input: $input) { order { id } userErrors { code } } }""",
        store.token,
        variables={"input": {"storeId": store.id, "lines": [{"sku": "NOPE", "quantity": 1}]}},
    )
    assert refused.json()["data"]["placeOrder"]["userErrors"], refused.text
    await post(http, "query Invalid { noSuchField }", store.token)
    await post(http, "query Broken {", store.token)
    bad_body = await http.post(
        "/graphql", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert bad_body.status_code == 400

    text = (await http.get("/metrics")).text
    counts = operations(text)
    assert counts == {
        ("Mine", "query", "ok"): 2,
        ("anonymous", "query", "ok"): 1,
        ("Mine", "query", "user_error"): 1,
        ("Place", "mutation", "user_error"): 1,
        ("Invalid", "query", "graphql_error"): 1,
        ("anonymous", "unknown", "graphql_error"): 2,  # the syntax error and the bad body
        ("anonymous", "mutation", "ok"): 1,  # createStore, by the test client
    }
    latency = "ordergraph_graphql_operation_duration_seconds_count"
    assert value(text, latency, operation="Mine", type="query") == 3
    assert value(text, "ordergraph_websocket_connections") == 0
    assert value(text, "ordergraph_subscriptions_active") == 0
    assert value(text, "ordergraph_event_tail_lag_seconds") == 0


async def test_an_internal_error_is_counted_and_logged_with_request_and_operation(
    bare_app: tuple[httpx.AsyncClient, Database],
) -> None:
    """On a database without tables every resolver fails: a fault of ours."""
    http, _ = bare_app
    stream = io.StringIO()
    handler = make_handler("json", stream)
    errors = logging.getLogger("ordergraph.errors")
    errors.addHandler(handler)
    try:
        response = await post(http, MINE, "og_some_token")
    finally:
        errors.removeHandler(handler)
    assert response.json()["errors"][0]["message"] == "Internal server error"
    counts = operations((await http.get("/metrics")).text)
    # The token could not be checked (no tables): a stranger's name takes no label.
    assert counts == {("other", "query", "internal_error"): 1}
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 1
    assert lines[0]["level"] == "ERROR"
    assert lines[0]["request_id"] == response.headers["x-request-id"]
    assert lines[0]["operation"] == "Mine"  # from the request's context, not passed along
    assert "og_some_token" not in stream.getvalue()


async def test_operation_names_are_bounded_and_each_app_counts_its_own(api: Api) -> None:
    store = await api.create_store()
    settings = Settings(database_url=api.db.url, metrics_max_operations=2)  # type: ignore[union-attr]
    app = create_app(settings, db=api.db)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        for name in ("A1", "A2", "A3", "A4", "A1"):
            await post(http, f"query {name} {{ __typename }}", store.token)
        text = (await http.get("/metrics")).text
    assert operations(text) == {
        ("A1", "query", "ok"): 2,
        ("A2", "query", "ok"): 1,
        ("other", "query", "ok"): 2,
    }
    # The fixture's app (another registry in this process) saw none of these.
    assert not any(k[0].startswith("A") for k in operations((await api.http.get("/metrics")).text))


async def test_pool_in_use_is_read_when_scraped(api: Api) -> None:
    assert api.db is not None
    # Other work may use the shared pool for a moment between two scrapes (an earlier
    # test's app reconciling its rate buckets): a few tries, each two scrapes apart.
    seen = []
    for _ in range(5):
        idle = value((await api.http.get("/metrics")).text, "ordergraph_db_pool_in_use")
        async with api.db.read(), api.db.read():
            busy = value((await api.http.get("/metrics")).text, "ordergraph_db_pool_in_use")
        assert idle is not None
        assert busy is not None
        seen.append((idle, busy))
        if busy == idle + 2:
            break
        await asyncio.sleep(0.2)
    assert seen[-1][1] == seen[-1][0] + 2, seen


async def test_tail_lag_is_the_age_of_the_oldest_event_not_yet_read(api: Api) -> None:
    """A hub that has not pumped yet is behind by the age of the first unread event."""
    assert api.db is not None
    store = await api.create_store()
    await api.upsert(store, "A")
    await api.receive(store, "A", 5)
    hub = EventHub(api.db, poll_seconds=0.05)
    sid = store_id(store.id)
    assert sid is not None
    from ordergraph.clock import Clock

    now = Clock()
    assert await hub.tail_lag(now()) == 0.0  # nothing watched
    subscriber = await hub.subscribe(sid)
    assert await hub.tail_lag(now()) == 0.0  # caught up
    assert (await api.place(store, [("A", 1)]))["userErrors"] == []
    await asyncio.sleep(0.3)
    lag = await hub.tail_lag(now())
    assert 0.3 <= lag < 5
    await hub.start()  # the pump reads it and hands it to the subscriber
    try:
        event, _ = await asyncio.wait_for(subscriber.queue.get(), 5)  # type: ignore[misc]
        assert event.record.type == "PLACED"
        assert await hub.tail_lag(now()) == 0.0
    finally:
        hub.unsubscribe(subscriber)
        await hub.stop()


# -- a real server on PostgreSQL -----------------------------------------------------------
@pytest.fixture
def info_server(pg_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    server = start_server(
        pg_url,
        tmp_path / "server.log",
        {"ORDERGRAPH_LOG_LEVEL": "INFO", "ORDERGRAPH_LOG_FORMAT": "json"},
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.e2e  # starts a process
async def test_websockets_and_subscriptions_are_gauged(info_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=info_server.url, timeout=30) as http:
        api = Api(http, ADMIN_TOKEN, None)
        store = await api.create_store()
        await api.upsert(store, "A")
        await api.receive(store, "A", 5)
        subscription = "subscription($s: ID!) { orderEvents(storeId: $s) { type } }"
        async with ws_connect(info_server.url) as one, ws_connect(info_server.url) as two:
            for ws in (one, two):
                assert (await ws.init(store.token))["type"] == "connection_ack"
            await one.subscribe(subscription, {"s": store.id})
            await one.subscribe(subscription, {"s": store.id})
            await two.subscribe(subscription, {"s": store.id})
            for _ in range(100):  # until all three are attached (they start "from now")
                text = (await http.get("/metrics")).text
                if value(text, "ordergraph_subscriptions_active") == 3:
                    break
                await asyncio.sleep(0.05)
            assert value(text, "ordergraph_subscriptions_active") == 3
            assert (await api.place(store, [("A", 1)]))["userErrors"] == []
            for ws in (one, one, two):
                assert (await ws.next_data())["orderEvents"]["type"] == "PLACED"
            text = (await http.get("/metrics")).text
            assert value(text, "ordergraph_websocket_connections") == 2
            assert value(text, "ordergraph_subscriptions_active") == 3
            lag = value(text, "ordergraph_event_tail_lag_seconds")
            assert lag is not None
            assert not math.isnan(lag)
            assert 0 <= lag < 2
            assert value(text, "ordergraph_event_tail_listener_connected") == 1
        for _ in range(50):
            text = (await http.get("/metrics")).text
            if value(text, "ordergraph_websocket_connections") == 0:
                break
            await asyncio.sleep(0.1)
        assert value(text, "ordergraph_websocket_connections") == 0
        assert value(text, "ordergraph_subscriptions_active") == 0
        assert (
            value(
                text,
                "ordergraph_graphql_operations_total",
                operation="anonymous",
                type="subscription",
                outcome="ok",
            )
            == 3
        )


@pytest.mark.e2e  # starts a process
async def test_logs_are_json_lines_with_request_ids_and_no_secrets(
    info_server: LiveServer,
) -> None:
    secret_sku = "SKU-" + uuid.uuid4().hex[:16]
    secret_ref = "customer-" + uuid.uuid4().hex
    ids: dict[str, str] = {}
    async with httpx.AsyncClient(base_url=info_server.url, timeout=30) as http:
        api = Api(http, ADMIN_TOKEN, None)
        store = await api.create_store()
        response = await post(
            http,
            """mutation AddProduct($input: UpsertProductInput!) {
                 upsertProduct(input: $input) { product { sku } userErrors { code } } }""",
            store.token,
            variables={
                "input": {
                    "storeId": store.id,
                    "sku": secret_sku,
                    "title": "T",
                    "price": "10.00",
                    "backorderPolicy": "ALLOW",
                }
            },
        )
        assert response.json()["data"]["upsertProduct"]["userErrors"] == []
        ids["AddProduct"] = response.headers["x-request-id"]
        response = await post(
            http,
            """mutation PlaceIt($input: PlaceOrderInput!) {
                 placeOrder(input: $input) { order { number } userErrors { code } } }""",
            store.token,
            variables={
                "input": {
                    "storeId": store.id,
                    "lines": [{"sku": secret_sku, "quantity": 1}],
                    "customerRef": secret_ref,
                }
            },
        )
        assert response.json()["data"]["placeOrder"]["order"]["number"] == 1001
        ids["PlaceIt"] = response.headers["x-request-id"]
        # Variables in a GET query string must not reach the log either.
        response = await http.get(
            "/graphql",
            params={
                "query": "query Find($h: String!, $s: String!) "
                "{ store(handle: $h) { product(sku: $s) { sku } } }",
                "variables": json.dumps({"h": store.handle, "s": secret_sku}),
            },
            headers={"Authorization": f"Bearer {store.token}"},
        )
        assert response.json()["data"]["store"]["product"]["sku"] == secret_sku
        ids["Find"] = response.headers["x-request-id"]
        response = await post(http, MINE, "og_not_a_real_token_" + secret_ref)
        ids["Mine"] = response.headers["x-request-id"]
    info_server.process.terminate()
    assert_clean_exit(info_server.process.wait(timeout=15), info_server.log)

    text = info_server.log.read_text()
    for secret in (ADMIN_TOKEN, store.token, secret_sku, secret_ref, store.handle):
        assert secret not in text
    entries = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    messages = [e["message"] for e in entries]
    assert "Application startup complete." in messages  # uvicorn's own lines are JSON too
    requests = {e["request_id"]: e for e in entries if e["logger"] == "ordergraph.request"}
    expected = {
        "AddProduct": ("mutation", "ok"),
        "PlaceIt": ("mutation", "ok"),
        "Find": ("query", "ok"),
        "Mine": ("query", "user_error"),
    }
    for operation, (op_type, outcome) in expected.items():
        line = requests[ids[operation]]
        assert line["operation"] == operation
        assert line["operation_type"] == op_type
        assert line["outcome"] == outcome
        assert line["status"] == 200
        assert line["path"] == "/graphql"
        assert isinstance(line["duration_ms"], float)
        assert line["level"] == "INFO"
        assert "variables" not in line
        assert "query" not in line


@pytest.mark.e2e  # starts a process
async def test_sigterm_lets_an_in_flight_order_finish_then_exits_cleanly(
    info_server: LiveServer, pg_url: str
) -> None:
    server = info_server
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        api = Api(http, ADMIN_TOKEN, None)
        store = await api.create_store()
        await api.upsert(store, "A")
        await api.receive(store, "A", 5)
    sid = store_id(store.id)
    dsn = pg_url.replace("postgresql+asyncpg://", "postgresql://")
    holder = await asyncpg.connect(dsn)
    watcher = await asyncpg.connect(dsn)
    try:
        lock = holder.transaction()
        await lock.start()
        await holder.execute("SELECT id FROM stores WHERE id = $1 FOR NO KEY UPDATE", sid)

        async def place() -> httpx.Response:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
                return await post(
                    http,
                    """mutation($input: PlaceOrderInput!) { placeOrder(input: $input) {
                         order { number lines { allocated } } userErrors { code } } }""",
                    store.token,
                    variables={
                        "input": {"storeId": store.id, "lines": [{"sku": "A", "quantity": 2}]}
                    },
                )

        request = asyncio.create_task(place())
        for _ in range(100):  # until the request waits for the store's lock
            waiting = await watcher.fetchval(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if waiting:
                break
            await asyncio.sleep(0.05)
        assert waiting, "the order never reached the store's lock"

        server.process.send_signal(signal.SIGTERM)
        await asyncio.sleep(1.0)
        assert server.process.poll() is None  # still draining
        assert not request.done()
        with pytest.raises(httpx.TransportError):  # but no longer taking new requests
            async with httpx.AsyncClient(base_url=server.url, timeout=2) as fresh:
                await fresh.get("/healthz")
        await lock.rollback()

        response = await asyncio.wait_for(request, 15)
        assert response.status_code == 200
        order = response.json()["data"]["placeOrder"]
        assert order["userErrors"] == []
        assert order["order"]["number"] == 1001
        assert order["order"]["lines"][0]["allocated"] == 2
        code = await asyncio.get_running_loop().run_in_executor(
            None, lambda: server.process.wait(timeout=15)
        )
        assert_clean_exit(code, server.log)
        assert await watcher.fetchval("SELECT count(*) FROM orders WHERE store_id = $1", sid) == 1
    finally:
        await holder.close()
        await watcher.close()


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_log_lines_carry_the_current_request_in_either_format(log_format: str) -> None:
    from ordergraph.logs import RequestInfo, current_request

    stream = io.StringIO()
    logger = logging.getLogger("ordergraph.test_ops")
    logger.addHandler(make_handler(log_format, stream))
    logger.setLevel(logging.INFO)
    reset = current_request.set(RequestInfo("http", request_id="r-123", operation="Tallies"))
    try:
        logger.info("looking %s", "up", extra={"rows": 3})
    finally:
        current_request.reset(reset)
        logger.handlers.clear()
    line = stream.getvalue().strip()
    assert "\n" not in line
    if log_format == "json":
        entry = json.loads(line)
        assert entry["message"] == "looking up"
        assert (entry["request_id"], entry["operation"], entry["rows"]) == ("r-123", "Tallies", 3)
        assert entry["level"] == "INFO"
        assert entry["logger"] == "ordergraph.test_ops"
    else:
        tail = "INFO ordergraph.test_ops looking up rows=3 request_id=r-123 operation=Tallies"
        assert line.endswith(tail)

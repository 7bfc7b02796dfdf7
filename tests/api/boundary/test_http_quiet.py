"""Quiet to strangers: /metrics behind a token or on its own port, no query strings in
the server's log, and operation-name labels that strangers cannot fill."""

from __future__ import annotations

import contextlib
import json
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from ordergraph.settings import Settings
from ordergraph.storage.db import Database
from tests.client import Api
from tests.conftest import ADMIN_TOKEN, app_client, free_port, start_server


@pytest.fixture
async def metrics_app(database: Database) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(
        database, metrics_token="metrics-secret", metrics_max_operations=3
    ) as http:
        yield http


async def test_metrics_need_the_metrics_token_when_one_is_set(
    metrics_app: httpx.AsyncClient,
) -> None:
    assert (await metrics_app.get("/metrics")).status_code == 401
    wrong = await metrics_app.get("/metrics", headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"] == "Bearer"
    admin = await metrics_app.get("/metrics", headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
    assert admin.status_code == 401
    ok = await metrics_app.get("/metrics", headers={"authorization": "Bearer metrics-secret"})
    assert ok.status_code == 200
    assert "ordergraph_graphql_operations_total" in ok.text


async def test_strangers_cannot_fill_the_operation_name_labels(
    metrics_app: httpx.AsyncClient, api: Api
) -> None:
    store = await api.create_store()
    for n in range(20):  # no token, then a wrong one: none of these names is kept
        token = {} if n % 2 else {"authorization": "Bearer og_wrong"}
        await metrics_app.post(
            "/graphql", json={"query": f"query Junk{n} {{ __typename }}"}, headers=token
        )
    auth = {"authorization": f"Bearer {store.token}"}
    for name in ("Mine", "Yours"):
        await metrics_app.post(
            "/graphql", json={"query": f"query {name} {{ __typename }}"}, headers=auth
        )
    # A stranger using a name already kept is counted under it.
    await metrics_app.post("/graphql", json={"query": "query Mine { __typename }"})
    text = (
        await metrics_app.get("/metrics", headers={"authorization": "Bearer metrics-secret"})
    ).text
    assert "Junk" not in text
    assert 'operation="other",outcome="ok",type="query"} 20.0' in text
    assert 'operation="Mine",outcome="ok",type="query"} 2.0' in text
    assert 'operation="Yours",outcome="ok",type="query"} 1.0' in text


@pytest.mark.e2e  # starts a process
async def test_with_a_metrics_port_metrics_are_served_there_only(
    pg_url: str, tmp_path: Path
) -> None:
    port = free_port()
    server = start_server(
        pg_url,
        tmp_path / "server.log",
        {"ORDERGRAPH_METRICS_PORT": str(port), "ORDERGRAPH_LOG_LEVEL": "INFO"},
    )
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            assert (await http.get(f"{server.url}/metrics")).status_code == 404
            side = await http.get(f"http://127.0.0.1:{port}/metrics")
            assert side.status_code == 200
            assert "ordergraph_db_pool_in_use" in side.text
            assert (await http.get(f"http://127.0.0.1:{port}/graphql")).status_code == 404
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=20) == 0  # both servers stop, cleanly
    finally:
        server.stop()
    assert "Traceback" not in (tmp_path / "server.log").read_text()


@pytest.mark.e2e  # starts a process
async def test_the_websocket_handshake_is_logged_without_its_query_string(
    pg_url: str, tmp_path: Path
) -> None:
    secret = "secret-" + uuid.uuid4().hex
    log = tmp_path / "server.log"
    server = start_server(
        pg_url, log, {"ORDERGRAPH_LOG_LEVEL": "INFO", "ORDERGRAPH_LOG_FORMAT": "json"}
    )
    try:
        url = server.url.replace("http://", "ws://") + f"/graphql?token={secret}&query=x"
        with contextlib.suppress(ConnectionClosed):  # refused (no token): the server closes
            async with connect(url, subprotocols=["graphql-transport-ws"], open_timeout=10) as ws:  # type: ignore[list-item]
                await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
                await ws.recv()
    finally:
        server.stop()
    text = log.read_text()
    assert secret not in text
    handshakes = [line for line in text.splitlines() if "WebSocket /graphql" in line]
    assert handshakes, text


def test_the_compose_file_keeps_metrics_private_and_the_proxy_caps_bodies() -> None:
    yaml = pytest.importorskip("yaml")
    root = Path(__file__).resolve().parents[3]
    services = yaml.safe_load((root / "docker-compose.yml").read_text())["services"]
    for name in ("api-1", "api-2"):
        api = services[name]
        port = api["environment"]["ORDERGRAPH_METRICS_PORT"]
        assert port
        assert port != "8000"
        assert "ports" not in api  # nothing of an API process is published
    assert services["proxy"]["ports"] == ["8000:8000"]
    proxy = (root / "deploy" / "nginx.conf").read_text()
    assert "location = /metrics {\n        return 404;\n    }" in proxy
    body_cap = Settings().max_body_bytes
    assert f"client_max_body_size {body_cap // 1_000_000}m;" in proxy
    assert "access_log off;" in proxy

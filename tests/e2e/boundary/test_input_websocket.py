"""Bad input over the websocket: subscriptions with crafted cursors, control characters
or dates get a coded error, never "Internal server error", on both databases."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.client import Api, StoreHandle
from tests.conftest import ADMIN_TOKEN, LiveServer, start_server
from tests.ws_client import LEGACY, TRANSPORT, ws_connect


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    folder: Path = tmp_path_factory.mktemp("ws_input")
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{folder}/ws.db"
    else:
        url = request.getfixturevalue("pg_url")
    live = start_server(url, folder / "server.log")
    yield live
    live.stop()


@pytest.fixture
async def http_api(server: LiveServer) -> AsyncIterator[Api]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        yield Api(http, ADMIN_TOKEN, None)


def b64(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


ORDER_EVENTS = """subscription($s: ID!, $c: String) {
    orderEvents(storeId: $s, after: $c) { cursor type } }"""
INVENTORY_EVENTS = """subscription($s: ID!, $c: String, $sku: String) {
    inventoryEvents(storeId: $s, after: $c, sku: $sku) { cursor } }"""

BAD: list[tuple[str, str, dict[str, Any], str]] = [
    ("cursor not base64", ORDER_EVENTS, {"c": "!!!"}, "INVALID"),
    ("cursor huge", ORDER_EVENTS, {"c": b64("[123456789012345678901234567890]")}, "INVALID"),
    ("cursor negative", ORDER_EVENTS, {"c": b64("[-1]")}, "INVALID"),
    ("cursor text", INVENTORY_EVENTS, {"c": b64('["x"]')}, "INVALID"),
    ("cursor deep", ORDER_EVENTS, {"c": b64("[" * 5000 + "]" * 5000)}, "INVALID"),
    ("cursor with NUL", ORDER_EVENTS, {"c": "a\x00"}, "INVALID"),
    ("sku with NUL", INVENTORY_EVENTS, {"sku": "A\x00"}, "INVALID"),
    ("sku lone surrogate", INVENTORY_EVENTS, {"sku": "\ud800"}, "INVALID"),
]


def _codes(message: dict[str, Any]) -> list[str | None]:
    payload = message.get("payload")
    errors = payload if isinstance(payload, list) else (payload or {}).get("errors") or []
    return [(e.get("extensions") or {}).get("code") for e in errors]


@pytest.mark.parametrize("protocol", [TRANSPORT, LEGACY])
async def test_bad_subscription_input_gets_a_coded_error(
    server: LiveServer, http_api: Api, protocol: str
) -> None:
    store: StoreHandle = await http_api.create_store()
    async with ws_connect(server.url, protocol) as ws:
        assert (await ws.init(store.token))["type"] in ("connection_ack",)
        for name, query, variables, code in BAD:
            op_id = await ws.subscribe(query, {"s": store.id, **variables})
            message = await ws.receive()
            while message["type"] == "complete" or message.get("id") != op_id:
                message = await ws.receive()
            text = str(message)
            assert "Internal server error" not in text, (name, message)
            assert message["type"] in ("error", "next", "data"), (name, message)
            assert _codes(message) == [code], (name, message)
    assert "Traceback" not in server.log.read_text(errors="replace")

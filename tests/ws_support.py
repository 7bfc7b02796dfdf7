"""Helpers for the websocket and scope tests: an in-process server, keys, revocation."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette

from bench.harness import serve_in_loop
from ordergraph.app import create_app
from ordergraph.settings import Settings
from tests.client import ERRORS, Api, StoreHandle
from tests.conftest import ADMIN_TOKEN, ROOT
from tests.ws_client import WsClient

CREATE_KEY = f"""mutation($input: CreateApiKeyInput!) {{ createApiKey(input: $input) {{
  apiKey {{ id }} token {ERRORS} }} }}"""
REVOKE_KEY = (
    f"""mutation($id: ID!) {{ revokeApiKey(id: $id) {{ apiKey {{ id revokedAt }} {ERRORS} }} }}"""
)
ORDER_EVENTS = """subscription($s: ID!) { orderEvents(storeId: $s) { type order { number } } }"""
PLACE = f"""mutation($input: PlaceOrderInput!) {{ placeOrder(input: $input) {{
  order {{ number }} {ERRORS} }} }}"""


@dataclass
class Key:
    id: str
    token: str


async def make_key(api: Api, stores: list[StoreHandle], scopes: list[str], name: str = "k") -> Key:
    data = await api.gql(
        CREATE_KEY,
        {"input": {"name": name, "storeIds": [s.id for s in stores], "scopes": scopes}},
        token=api.admin_token,
    )
    payload = data["createApiKey"]
    assert payload["userErrors"] == [], payload
    return Key(payload["apiKey"]["id"], payload["token"])


async def revoke_by_api(api: Api, key: Key) -> None:
    data = await api.gql(REVOKE_KEY, {"id": key.id}, token=api.admin_token)
    assert data["revokeApiKey"]["userErrors"] == [], data


def revoke_by_cli(database_url: str, key: Key) -> None:
    """`ordergraph revoke-key`, in a process of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERGRAPH_")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-m", "ordergraph", "revoke-key", key.id, "--database-url", database_url],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


async def revoke_by_cli_async(database_url: str, key: Key) -> None:
    await asyncio.to_thread(revoke_by_cli, database_url, key)


@dataclass
class InProcess:
    url: str
    app: Starlette


@asynccontextmanager
async def serve_in_process(settings: Settings) -> AsyncIterator[InProcess]:
    """The app under uvicorn in this test's event loop, on a free port: real websockets,
    and the app's state at hand. uvicorn's own message limit is left at its default, so
    the handler's check of max_ws_message_bytes is what answers here."""
    app = create_app(settings)
    try:
        async with serve_in_loop(app) as url:
            yield InProcess(url, app)
    finally:
        await app.state.db.dispose()


@asynccontextmanager
async def http_api(url: str) -> AsyncIterator[Api]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        yield Api(http, ADMIN_TOKEN, None)


async def shop(api: Api) -> StoreHandle:
    store = await api.create_store(policy="ALLOW")
    await api.upsert(store, "A")
    return store


async def live_subscription(ws: WsClient, token: str, store: StoreHandle) -> str:
    """Init, subscribe to the store's order events, and wait until the subscription is
    live (a first event arrives)."""
    ack = await ws.init(token)
    assert ack["type"] == "connection_ack", ack
    return await ws.subscribe(ORDER_EVENTS, {"s": store.id})


async def place_over_ws(ws: WsClient, store: StoreHandle) -> str:
    return await ws.subscribe(
        PLACE, {"input": {"storeId": store.id, "lines": [{"sku": "A", "quantity": 1}]}}
    )


def error_codes(message: dict[str, Any]) -> list[str]:
    payload = message.get("payload")
    errors = payload if isinstance(payload, list) else None
    if isinstance(payload, dict):
        errors = payload.get("errors") or ([payload] if "message" in payload else [])
    return [e.get("extensions", {}).get("code") for e in errors or []]


async def wait_closed(ws: WsClient, wait: float) -> tuple[int | None, float]:
    """The close code the server sent, and the seconds it took."""
    started = time.monotonic()
    code = await ws.closed_code(wait=wait)
    return code, time.monotonic() - started


def sqlite_file_url(folder: Path) -> str:
    return f"sqlite+aiosqlite:///{folder}/ws.db"

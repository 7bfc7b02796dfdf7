"""The attacks over a socket and websockets: a client that goes away mid-request, a revoked
key's open subscription, and many subscriptions on one key."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from typing import Any

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from bench.attacks_http import post, trend_query
from bench.attacks_world import ATTACKER_STORE, Row, World, cli, make_key, make_key_with_id
from bench.proc import cpu_seconds


async def disconnect(world: World) -> list[Row]:
    """Send the 30-alias trend, hang up after 200 ms, and see how much CPU the server spends
    in the next 3 s (work that goes on for a client who left)."""
    query, variables = trend_query(30)
    with contextlib.suppress(httpx.TimeoutException):
        async with httpx.AsyncClient(timeout=0.2) as short:
            await post(short, world, query, variables, world.reader)
    before = cpu_seconds([world.pid]) or 0.0
    await asyncio.sleep(3)
    spent = (cpu_seconds([world.pid]) or 0.0) - before
    return [Row("client hangs up after 200 ms: server CPU in the next 3 s", f"{spent:.2f} s", 0)]


async def ws_open(world: World, token: str, protocol: str = "graphql-transport-ws") -> Any:
    conn = await connect(world.url.replace("http", "ws") + "/graphql", subprotocols=[protocol])  # type: ignore[list-item]
    await conn.send(
        json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
    )
    while json.loads(await conn.recv())["type"] not in ("connection_ack", "connection_error"):
        pass
    return conn


async def close_code(conn: Any, wait: float) -> tuple[int | None, float]:
    started = time.perf_counter()
    try:
        while True:
            await asyncio.wait_for(conn.recv(), wait)
    except ConnectionClosed as closed:
        return (closed.rcvd.code if closed.rcvd else None), (time.perf_counter() - started) * 1000
    except TimeoutError:
        return None, wait * 1000


async def revocation(world: World) -> list[Row]:
    rows = []
    for protocol, kind in (("graphql-transport-ws", "subscribe"), ("graphql-ws", "start")):
        token, key_id = make_key_with_id(world.database_url, ATTACKER_STORE, "READ", "ORDERS")
        conn = await ws_open(world, token, protocol)
        query = "subscription($s: ID!) { orderEvents(storeId: $s) { type } }"
        payload = {"query": query, "variables": {"s": world.attacker_store_id}}
        await conn.send(json.dumps({"id": "1", "type": kind, "payload": payload}))
        await asyncio.sleep(0.5)
        cli(world.database_url, "revoke-key", key_id)
        code, ms = await close_code(conn, 10)
        rows.append(Row(f"revoked key, open {protocol} subscription", f"close {code}", ms))
    # A second connection_init on the legacy protocol.
    token = make_key(world.database_url, ATTACKER_STORE, "READ")
    conn = await ws_open(world, token, "graphql-ws")
    await conn.send(
        json.dumps(
            {"type": "connection_init", "payload": {"authorization": f"Bearer {world.victim}"}}
        )
    )
    code, ms = await close_code(conn, 3)
    rows.append(Row("second connection_init on graphql-ws", f"close {code}", ms))
    conn = await ws_open(world, token)
    await conn.send(json.dumps({"type": "connection_init", "payload": {}}))
    code, ms = await close_code(conn, 3)
    rows.append(Row("second connection_init on graphql-transport-ws", f"close {code}", ms))
    return rows


async def many_subscriptions(world: World, wanted: int = 2000) -> list[Row]:
    token = make_key(world.database_url, ATTACKER_STORE, "READ")
    query = "subscription($s: ID!) { backlogChanged(storeId: $s) { backlog { orders } } }"
    conns, accepted, refused = [], 0, ""
    started = time.perf_counter()
    try:
        while accepted < wanted and not refused:
            conn = await ws_open(world, token)
            conns.append(conn)
            for _ in range(100):
                op = str(uuid.uuid4())
                payload = {"query": query, "variables": {"s": world.attacker_store_id}}
                await conn.send(json.dumps({"id": op, "type": "subscribe", "payload": payload}))
                try:
                    message = json.loads(await asyncio.wait_for(conn.recv(), 5))
                except ConnectionClosed as closed:
                    refused = f"close {closed.rcvd.code if closed.rcvd else None}"
                    break
                payload = message.get("payload")
                errors = payload if message.get("type") == "error" else None
                if isinstance(payload, dict) and payload.get("errors"):
                    errors = payload["errors"]
                if errors:
                    refused = str((errors[0].get("extensions") or {}).get("code", errors))
                    break
                accepted += 1
    finally:
        for conn in conns:
            with contextlib.suppress(Exception):
                await conn.close()
    ms = (time.perf_counter() - started) * 1000
    return [
        Row(
            f"{wanted} backlogChanged subscriptions from one READ key",
            f"{accepted} accepted, then {refused or 'no refusal'}",
            ms,
        )
    ]

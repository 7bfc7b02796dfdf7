"""A subscriber that stops reading is cut off; the others keep their pace."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import httpx
from websockets.asyncio.client import connect

from tests.client import Api
from tests.conftest import ADMIN_TOKEN, start_server
from tests.ws_client import TRANSPORT, WsClient, ws_connect

BIG = """subscription($s: ID!) { orderEvents(storeId: $s) { cursor type order { number
  lines { id sku quantity allocated backordered unitPrice { amount currencyCode }
          product { id sku title onHand allocated backordered } } } } }"""
SMALL = "subscription($s: ID!) { orderEvents(storeId: $s) { cursor } }"
SKUS = [f"SKU-{i:03d}-with-a-fairly-long-name" for i in range(40)]


async def test_a_subscriber_that_stops_reading_is_closed_and_others_are_not_slowed(
    tmp_path: Path,
) -> None:
    env = {"ORDERGRAPH_SUBSCRIBER_BUFFER": "20", "ORDERGRAPH_TAIL_POLL_MS": "200"}
    server = start_server(f"sqlite+aiosqlite:///{tmp_path}/slow.db", tmp_path / "s.log", env)
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            api = Api(http, ADMIN_TOKEN, None)
            store = await api.create_store(policy="ALLOW")
            for sku in SKUS:
                await api.upsert(store, sku)
            url = server.url.replace("http://", "ws://") + "/graphql"
            # A small receive buffer, and max_queue=1 so the client library stops reading
            # the socket as soon as one message waits: the server's sends back up as they
            # would for a client that stopped reading.
            host, port = server.url.removeprefix("http://").split(":")
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect((host, int(port)))
            sock.setblocking(False)
            async with (
                connect(url, sock=sock, subprotocols=[TRANSPORT], max_queue=1) as raw,  # type: ignore[list-item]
                ws_connect(server.url) as healthy,
            ):
                stalled = WsClient(raw, TRANSPORT)
                await stalled.init(store.token)
                for _ in range(20):
                    await stalled.subscribe(BIG, {"s": store.id})
                await healthy.init(store.token)
                await healthy.subscribe(SMALL, {"s": store.id})
                await asyncio.sleep(0.5)

                latencies = []
                for _ in range(40):
                    placed = time.monotonic()
                    await api.place(store, [(sku, 2) for sku in SKUS])
                    await healthy.next_data(wait=30)  # PLACED
                    latencies.append(time.monotonic() - placed)
                    await healthy.next_data(wait=30)  # BACKORDERED
                # The stalled client now reads what was buffered, then finds the close.
                code = await stalled.closed_code(wait=30)
                assert code == 4503, code
                # Once the stalled subscriptions were cut off, the others kept their pace.
                assert sorted(latencies)[len(latencies) // 2] < 1.0, latencies
        log = server.log.read_text()
        assert "Traceback" not in log, log
    finally:
        server.stop()

"""The example webhook receiver (examples/python/webhook_receiver.py), as a process, against
real deliveries: it prints every event once, in order, though redeliver sends them again,
and refuses a request whose signature does not verify."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import delete

from ordergraph.clock import Clock
from ordergraph.storage import tables as t
from ordergraph.storage.db import Database
from ordergraph.webhooks import DeliverySettings, WebhookWorker
from tests.client import Api
from tests.conftest import ADMIN_TOKEN, app_client

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "python" / "webhook_receiver.py"
CREATE = """mutation($input: CreateWebhookSubscriptionInput!) {
  createWebhookSubscription(input: $input) { webhookSubscription { id } secret
    userErrors { message } } }"""
REDELIVER = """mutation($input: RedeliverWebhookInput!) {
  redeliverWebhook(input: $input) { userErrors { message } } }"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def receiver_port() -> int:
    return free_port()


def start_receiver(port: int, secret: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLE), "--port", str(port), "--secret", secret],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    assert "listening" in process.stderr.readline()
    return process


def lines_until(process: subprocess.Popen[str], count: int) -> Iterator[dict[str, object]]:
    assert process.stdout is not None
    for _ in range(count):
        yield json.loads(process.stdout.readline())


async def test_the_example_receiver_verifies_and_dedupes_real_deliveries(
    database: Database, clock: Clock, receiver_port: int
) -> None:
    url = f"http://127.0.0.1:{receiver_port}/"
    async with app_client(database, clock, webhook_allow_private=True) as http:
        api = Api(http, ADMIN_TOKEN, database)
        store = await api.create_store(policy="ALLOW")
        await api.upsert(store, "SKU")
        data = await api.gql(
            CREATE,
            {"input": {"storeId": store.id, "url": url, "topics": ["ORDER_PLACED"]}},
            token=store.token,
        )
        created = data["createWebhookSubscription"]
        process = start_receiver(receiver_port, created["secret"])
        try:
            for _ in range(3):
                await api.place(store, [("SKU", 1)])
            worker = WebhookWorker(database, clock, DeliverySettings(allow_private=True))
            async with httpx.AsyncClient(trust_env=False) as client:
                while await worker.round(client):
                    pass
                first = list(lines_until(process, 3))
                # Everything again from the first event's cursor: the receiver has seen
                # those ids and prints nothing more; a new event still comes through.
                answer = await api.gql(
                    REDELIVER,
                    {
                        "input": {
                            "id": created["webhookSubscription"]["id"],
                            "after": first[0]["cursor"],
                        }
                    },
                    token=store.token,
                )
                assert answer["redeliverWebhook"]["userErrors"] == []
                await api.place(store, [("SKU", 1)])
                while await worker.round(client):
                    pass
                [fourth] = lines_until(process, 1)
                forged = await client.post(
                    url,
                    content=b'{"id":"x"}',
                    headers={"Ordergraph-Signature": f"t={int(time.time())},v1=00"},
                )
            assert forged.status_code == 400
            numbers = [e["payload"]["orderEvent"]["order"]["number"] for e in [*first, fourth]]  # type: ignore[index]
            assert numbers == [1001, 1002, 1003, 1004]
        finally:
            process.terminate()
            process.communicate(timeout=10)
            async with database.write() as conn:
                await conn.execute(delete(t.webhook_deliveries))
                await conn.execute(delete(t.webhook_subscriptions))

"""Webhook subscriptions and their delivery, against a real HTTP receiver, on SQLite and
PostgreSQL: the mutations and their checks, the WEBHOOKS scope and tenancy; ordering,
signatures, retries, 410, redeliver, rotation, pausing, unsafe targets.

The app runs in process; the delivery worker is driven round by round (`drain`), so each
test decides when deliveries happen and moves the clock for retries."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import itertools
import shutil
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import delete

from ordergraph.clock import Clock
from ordergraph.domain.paging import encode_cursor
from ordergraph.domain.webhooks import DeliveryStatus, RetryPolicy, event_id, verify
from ordergraph.live.hub import EventHub
from ordergraph.metrics import Metrics
from ordergraph.resolvers import ids
from ordergraph.settings import Settings, SettingsError
from ordergraph.storage import tables as t
from ordergraph.storage import webhooks as webhook_store
from ordergraph.storage.db import Database
from ordergraph.webhooks import DeliverySettings, WebhookWorker, new_client
from tests.client import ERRORS, Api, StoreHandle
from tests.conftest import ADMIN_TOKEN, app_client
from tests.webhook_receiver import Answer, Receiver

SUB_FIELDS = """id url topics skus state lastSuccessAt lastFailureAt lastError deliveredThrough
  attempts nextAttemptAt createdAt"""
CREATE = f"""mutation($input: CreateWebhookSubscriptionInput!) {{
  createWebhookSubscription(input: $input) {{
    webhookSubscription {{ {SUB_FIELDS} }} secret {ERRORS} }} }}"""
UPDATE = f"""mutation($input: UpdateWebhookSubscriptionInput!) {{
  updateWebhookSubscription(input: $input) {{
    webhookSubscription {{ {SUB_FIELDS} }} {ERRORS} }} }}"""
DELETE = f"""mutation($id: ID!) {{ deleteWebhookSubscription(id: $id) {{ deletedId {ERRORS} }} }}"""
ROTATE = f"""mutation($id: ID!) {{ rotateWebhookSecret(id: $id) {{
  webhookSubscription {{ id }} secret {ERRORS} }} }}"""
REDELIVER = f"""mutation($input: RedeliverWebhookInput!) {{ redeliverWebhook(input: $input) {{
  webhookSubscription {{ {SUB_FIELDS} }} {ERRORS} }} }}"""
RESEND = f"""mutation($input: RedeliverWebhookEventInput!) {{
  redeliverWebhookEvent(input: $input) {{ webhookSubscription {{ {SUB_FIELDS} }} {ERRORS} }} }}"""
LIST = f"""query($h: String!) {{ store(handle: $h) {{ webhookSubscriptions {{ {SUB_FIELDS}
  deliveries(first: 50) {{ nodes {{ eventId cursor topic status attempts lastStatusCode
    lastLatencyMs nextAttemptAt error }} pageInfo {{ hasNextPage endCursor }} }} }} }} }}"""
ORDER_EVENTS = """query($h: String!) { store(handle: $h) { order(number: 1001) {
  events { nodes { cursor type } } } } }"""


@dataclass
class Hooks:
    api: Api
    receiver: Receiver
    worker: WebhookWorker
    client: httpx.AsyncClient
    clock: Clock

    async def drain(self, rounds: int = 200) -> None:
        """Run delivery rounds until nothing is due."""
        for _ in range(rounds):
            if not await self.worker.round(self.client):
                return
        raise AssertionError("delivery never settled")

    async def store(self) -> StoreHandle:
        store = await self.api.create_store(policy="ALLOW")
        await self.api.upsert(store, "SKU")
        await self.api.receive(store, "SKU", 100)
        return store

    async def create(
        self, store: StoreHandle, topics: list[str], token: str | None = None, **fields: Any
    ) -> dict[str, Any]:
        fields.setdefault("url", self.receiver.url)
        data = await self.api.gql(
            CREATE,
            {"input": {"storeId": store.id, "topics": topics, **fields}},
            token=token or store.token,
        )
        payload: dict[str, Any] = data["createWebhookSubscription"]
        return payload

    async def subscribe(
        self, store: StoreHandle, topics: list[str], **fields: Any
    ) -> tuple[str, str]:
        payload = await self.create(store, topics, **fields)
        assert payload["userErrors"] == [], payload
        return payload["webhookSubscription"]["id"], payload["secret"]

    async def listed(self, store: StoreHandle) -> list[dict[str, Any]]:
        data = await self.api.gql(LIST, {"h": store.handle}, token=store.token)
        found: list[dict[str, Any]] = data["store"]["webhookSubscriptions"]
        return found

    async def place(self, store: StoreHandle, n: int = 1) -> None:
        for _ in range(n):
            result = await self.api.place(store, [("SKU", 1)])
            assert result["userErrors"] == [], result


TIMEOUT = 3.0
FAST = RetryPolicy(base_seconds=1.0, cap_seconds=60.0, jitter=0.5, window=dt.timedelta(hours=24))


@pytest.fixture
async def hooks(database: Database, clock: Clock) -> AsyncIterator[Hooks]:
    receiver = await Receiver().start()
    # 3 s: long enough that a busy machine answers in time, short for the tests that
    # wait for a timeout (a receiver that never answers, or answers a byte at a time)
    settings = DeliverySettings(allow_private=True, timeout_seconds=TIMEOUT, retry=FAST)
    worker = WebhookWorker(database, clock, settings)
    try:
        async with (
            app_client(database, clock, webhook_allow_private=True) as http,
            new_client(settings) as client,
        ):
            yield Hooks(Api(http, ADMIN_TOKEN, database), receiver, worker, client, clock)
    finally:
        await receiver.stop()
        async with database.write() as conn:  # other tests' workers must not see these
            await conn.execute(delete(t.webhook_deliveries))
            await conn.execute(delete(t.webhook_subscriptions))


def numbers(hooks: Hooks) -> list[int]:
    """The order numbers of the order events received, in arrival order."""
    got = [r.json["payload"] for r in hooks.receiver.received]
    return [p["orderEvent"]["order"]["number"] for p in got if "orderEvent" in p]


def signed_by(request: Any, secret: str) -> bool:
    return verify(request.headers["ordergraph-signature"], secret, request.body, int(time.time()))


# -- delivery -------------------------------------------------------------------


async def test_delivers_matching_events_in_order_signed_with_ids_and_topics(hooks: Hooks) -> None:
    store = await hooks.store()
    _, secret = await hooks.subscribe(store, ["ORDER_PLACED", "INVENTORY_RECEIVED"])
    await hooks.place(store, 3)
    await hooks.api.receive(store, "SKU", 5)
    await hooks.drain()

    got = hooks.receiver.received
    assert [r.json["topic"] for r in got] == ["ORDER_PLACED"] * 3 + ["INVENTORY_RECEIVED"]
    assert [r.json["payload"]["orderEvent"]["order"]["number"] for r in got[:3]] == [
        1001,
        1002,
        1003,
    ]
    assert got[3].json["payload"]["inventoryEvent"]["product"]["sku"] == "SKU"
    assert got[3].json["payload"]["inventoryEvent"]["onHand"] == 105
    for r in got:
        assert r.method == "POST"
        assert r.headers["content-type"] == "application/json"
        assert r.headers["ordergraph-event-id"] == r.json["id"]
        assert r.headers["ordergraph-topic"] == r.json["topic"]
        assert r.json["storeId"] == store.id
        assert signed_by(r, secret)
        assert not signed_by(r, secret + "x")
    assert len({r.json["id"] for r in got}) == 4
    # The cursors are the log's, as orderEvents gives them, and increase.
    events = await hooks.api.gql(ORDER_EVENTS, {"h": store.handle}, token=store.token)
    placed = events["store"]["order"]["events"]["nodes"][0]
    assert got[0].json["cursor"] == placed["cursor"]
    [listed] = await hooks.listed(store)
    assert listed["state"] == "ACTIVE"
    assert listed["deliveredThrough"] == got[-1].json["cursor"]
    assert listed["lastSuccessAt"] is not None
    log = listed["deliveries"]["nodes"]
    assert [d["status"] for d in log] == ["SUCCEEDED"] * 4
    assert [d["eventId"] for d in log] == [r.json["id"] for r in reversed(got)]
    assert all(d["lastStatusCode"] == 200 and d["lastLatencyMs"] >= 0 for d in log)


BODY_ORDER = """cursor type occurredAt status stockStatus order { id number placedAt
  requestedShipDate status stockStatus lines { id sku quantity
  unitPrice { amount currencyCode } allocated backordered shipped cancelled } }"""
BODY_INVENTORY = """cursor type occurredAt onHand available backordered
  product { id sku onHand allocated available backordered }"""
FEED = f"""query($h: String!) {{ store(handle: $h) {{ events {{ nodes {{
  orderEvent {{ {BODY_ORDER} }} inventoryEvent {{ {BODY_INVENTORY} }} }} }} }} }}"""
FIGURES = """query($h: String!, $at: DateTime!) { store(handle: $h) { backlog(asOf: $at) {
  asOf backlog { orders units value { amount currencyCode } }
  backorders { orders units value { amount currencyCode } } oldestBackorderPlacedAt } } }"""


async def test_bodies_carry_what_the_api_gives_for_the_same_selection(hooks: Hooks) -> None:
    """The payload of each topic is, field for field, what the event feed (the types of
    the orderEvents and inventoryEvents subscriptions) and Store.backlog(asOf:) give."""
    store = await hooks.store()
    await hooks.subscribe(store, ["ORDER_PLACED", "INVENTORY_RECEIVED", "BACKLOG_CHANGED"])
    placed = await hooks.api.place(store, [("SKU", 2)], requestedShipDate="2027-03-01")
    assert placed["userErrors"] == []
    await hooks.api.receive(store, "SKU", 5)  # the last change to the product and the order
    await hooks.drain()
    bodies = {r.json["topic"]: r.json["payload"] for r in hooks.receiver.received}
    assert set(bodies) == {"ORDER_PLACED", "INVENTORY_RECEIVED", "BACKLOG_CHANGED"}
    feed = await hooks.api.gql(FEED, {"h": store.handle}, token=store.token)
    nodes = feed["store"]["events"]["nodes"]
    order_event = next(n["orderEvent"] for n in nodes if n["orderEvent"])
    stock_event = [n["inventoryEvent"] for n in nodes if n["inventoryEvent"]][-1]
    assert bodies["ORDER_PLACED"] == {"orderEvent": order_event}
    assert bodies["INVENTORY_RECEIVED"] == {"inventoryEvent": stock_event}
    figures = bodies["BACKLOG_CHANGED"]["backlogChanged"]
    data = await hooks.api.gql(
        FIGURES, {"h": store.handle, "at": figures["asOf"]}, token=store.token
    )
    assert figures == data["store"]["backlog"]
    assert figures["backlog"]["orders"] == 1
    assert stock_event["type"] == "RECEIVED"


SCHEDULE = """mutation($input: ScheduleReceiptInput!) {
  scheduleReceipt(input: $input) { receipt { id } userErrors { code } } }"""


async def test_a_receipt_that_dates_a_waiting_order_sends_its_new_ship_date(hooks: Hooks) -> None:
    store = await hooks.store()
    await hooks.api.upsert(store, "LATE")
    await hooks.subscribe(store, ["ORDER_EXPECTED_SHIP_DATE_CHANGED"])
    await hooks.api.place(store, [("LATE", 2)])
    await hooks.api.place(store, [("SKU", 1)])  # in stock: never dated
    receipt = {"storeId": store.id, "sku": "LATE", "quantity": 2, "expectedAt": "2027-03-09"}
    await hooks.api.gql(SCHEDULE, {"input": receipt}, token=store.token)
    await hooks.drain()
    [got] = hooks.receiver.received
    assert got.json["topic"] == "ORDER_EXPECTED_SHIP_DATE_CHANGED"
    event = got.json["payload"]["orderEvent"]
    assert event["type"] == "EXPECTED_SHIP_DATE_CHANGED"
    assert event["order"]["number"] == 1001
    assert event["order"]["expectedShipDate"] == "2027-03-09"


async def test_a_new_subscription_starts_after_the_log_as_it_stands_or_after_a_cursor(
    hooks: Hooks,
) -> None:
    store = await hooks.store()
    await hooks.place(store, 2)
    await hooks.subscribe(store, ["ORDER_PLACED"])
    await hooks.drain()
    assert hooks.receiver.received == []
    await hooks.place(store)
    await hooks.drain()
    assert numbers(hooks) == [1003]
    # From a cursor: everything after it, including what came before the subscription.
    events = await hooks.api.gql(ORDER_EVENTS, {"h": store.handle}, token=store.token)
    first_cursor = events["store"]["order"]["events"]["nodes"][0]["cursor"]
    hooks.receiver.received.clear()
    await hooks.subscribe(store, ["ORDER_PLACED"], after=first_cursor)
    await hooks.drain()
    assert numbers(hooks) == [
        1002,
        1003,
    ]


async def test_backlog_changed_carries_the_figures_after_each_change(hooks: Hooks) -> None:
    store = await hooks.store()
    await hooks.subscribe(store, ["BACKLOG_CHANGED", "ORDER_PLACED"])
    await hooks.place(store, 2)
    await hooks.drain()
    got = hooks.receiver.received
    assert [r.json["topic"] for r in got] == ["ORDER_PLACED", "BACKLOG_CHANGED"] * 2
    figures = [r.json["payload"]["backlogChanged"]["backlog"] for r in got[1::2]]
    assert [f["orders"] for f in figures] == [1, 2]
    assert figures[1]["value"] == {"amount": "20.00", "currencyCode": "USD"}
    # The figures change has an id of its own, and comes after its commit's events.
    assert len({r.json["id"] for r in got}) == 4
    assert [r.headers["ordergraph-topic"] for r in got] == [r.json["topic"] for r in got]


async def test_a_failed_event_is_retried_with_backoff_and_holds_back_the_next(
    hooks: Hooks,
) -> None:
    store = await hooks.store()
    answers: Iterator[Answer] = iter([500, "close", "timeout", 200, 200])
    hooks.receiver.answer = lambda _: next(answers)
    await hooks.subscribe(store, ["ORDER_PLACED"])
    await hooks.place(store, 2)
    await hooks.drain()
    [failing] = await hooks.listed(store)
    assert failing["state"] == "FAILING"
    assert failing["lastError"] == "HTTP 500"
    assert failing["nextAttemptAt"] is not None
    assert failing["deliveries"]["nodes"][0]["status"] == "FAILED_RETRYING"
    assert len(hooks.receiver.received) == 1  # the second waits behind the first
    for _ in range(3):
        hooks.clock.advance(dt.timedelta(minutes=2))
        await hooks.drain()
    assert numbers(hooks) == [1001, 1001, 1001, 1001, 1002]
    assert [r.answer for r in hooks.receiver.received] == [500, "close", "timeout", 200, 200]
    [done] = await hooks.listed(store)
    assert done["state"] == "ACTIVE"
    assert done["attempts"] == 0
    errors = [d["error"] for d in done["deliveries"]["nodes"]]
    assert errors[2].startswith("timed out")
    assert errors[3].startswith("connection failed")
    assert [d["attempts"] for d in done["deliveries"]["nodes"]] == [1, 4, 3, 2, 1]


async def test_backoff_grows_and_the_subscription_is_disabled_after_the_window(
    hooks: Hooks,
) -> None:
    store = await hooks.store()
    hooks.receiver.answer = lambda _: 503
    await hooks.subscribe(store, ["ORDER_PLACED"])
    await hooks.place(store)
    delays = []
    for _ in range(6):
        await hooks.drain()
        [sub] = await hooks.listed(store)
        if sub["state"] != "FAILING":
            break
        due = dt.datetime.fromisoformat(sub["nextAttemptAt"])
        delays.append((due - hooks.clock()).total_seconds())
        hooks.clock.advance(due - hooks.clock())
    assert all(later > earlier for earlier, later in itertools.pairwise(delays))
    hooks.clock.advance(dt.timedelta(hours=25))
    await hooks.drain()
    [sub] = await hooks.listed(store)
    assert sub["state"] == "DISABLED"
    assert "HTTP 503" in sub["lastError"]
    assert "retried" in sub["lastError"]
    assert sub["deliveries"]["nodes"][0]["status"] == "GAVE_UP"
    # Disabled: nothing more is sent, until it is resumed, from its cursor.
    sent = len(hooks.receiver.received)
    hooks.clock.advance(dt.timedelta(hours=1))
    await hooks.drain()
    assert len(hooks.receiver.received) == sent
    hooks.receiver.answer = lambda _: 200
    resumed = await hooks.api.gql(
        UPDATE, {"input": {"id": sub["id"], "paused": False}}, token=store.token
    )
    assert resumed["updateWebhookSubscription"]["webhookSubscription"]["state"] == "ACTIVE"
    await hooks.drain()
    assert hooks.receiver.received[-1].answer == 200
    assert hooks.receiver.received[-1].json["payload"]["orderEvent"]["order"]["number"] == 1001


async def test_a_410_disables_the_subscription_at_once(hooks: Hooks) -> None:
    store = await hooks.store()
    hooks.receiver.answer = lambda _: 410
    await hooks.subscribe(store, ["ORDER_PLACED"])
    await hooks.place(store, 2)
    await hooks.drain()
    [sub] = await hooks.listed(store)
    assert sub["state"] == "DISABLED"
    assert "410" in sub["lastError"]
    assert len(hooks.receiver.received) == 1


async def test_redirects_are_failures_and_are_not_followed(hooks: Hooks) -> None:
    store = await hooks.store()
    hooks.receiver.answer = lambda _: 302
    await hooks.subscribe(store, ["ORDER_PLACED"])
    await hooks.place(store)
    await hooks.drain()
    [sub] = await hooks.listed(store)
    assert sub["state"] == "FAILING"
    assert "redirects are not followed" in sub["lastError"]
    assert len(hooks.receiver.received) == 1


async def test_only_the_start_of_an_answer_is_read(hooks: Hooks) -> None:
    """A 200 whose body never ends is a success: the worker reads the first
    max_response_bytes and hangs up (it would otherwise time out)."""
    store = await hooks.store()
    hooks.receiver.answer = lambda _: "endless"
    await hooks.subscribe(store, ["ORDER_PLACED"])
    await hooks.place(store)
    await hooks.drain()
    [sub] = await hooks.listed(store)
    assert sub["state"] == "ACTIVE"
    assert sub["lastSuccessAt"] is not None
    assert sub["deliveries"]["nodes"][0]["lastLatencyMs"] < TIMEOUT * 1000


async def test_the_timeout_bounds_the_whole_attempt_not_each_read(hooks: Hooks) -> None:
    """An answer that trickles in a byte at a time never lets one read wait for the
    timeout; the attempt is still cut at the timeout (so it cannot outlast the claim it
    runs under)."""
    store = await hooks.store()
    hooks.receiver.answer = lambda _: "drip"
    await hooks.subscribe(store, ["ORDER_PLACED"])
    await hooks.place(store)
    await asyncio.wait_for(hooks.drain(), 3 * TIMEOUT)  # bounded per read only: never ends
    [sub] = await hooks.listed(store)
    assert sub["state"] == "FAILING"
    [attempt] = sub["deliveries"]["nodes"]
    assert attempt["error"].startswith("timed out"), attempt
    assert TIMEOUT * 1000 - 100 <= attempt["lastLatencyMs"] < 2 * TIMEOUT * 1000


async def test_a_round_woken_by_commits_claims_among_those_stores_only(hooks: Hooks) -> None:
    """A commit's wake-up names its store: the claim looks there alone (one shard on
    Citus); a round after the poll's wait looks at every store."""
    store = await hooks.store()
    await hooks.subscribe(store, ["ORDER_PLACED"])
    await hooks.place(store)
    db, lease = hooks.worker.db, dt.timedelta(seconds=60)
    decoded = ids.decode(store.id, "Store")
    assert decoded is not None
    own = decoded[1][0]
    assert await webhook_store.claim(db, "A", hooks.clock(), lease, 10, stores={own + 1}) == []
    assert await webhook_store.claim(db, "A", hooks.clock(), lease, 10, stores=set()) == []
    [claimed] = await webhook_store.claim(db, "A", hooks.clock(), lease, 10, stores={own})
    assert claimed.store_id == own
    await webhook_store.release(db, claimed, "A")
    [again] = await webhook_store.claim(db, "B", hooks.clock(), lease, 10)  # every store
    assert again.id == claimed.id


def store_number(store: StoreHandle) -> int:
    decoded = ids.decode(store.id, "Store")
    assert decoded is not None
    return int(decoded[1][0])


async def test_commits_in_stores_without_a_subscription_claim_nothing(
    hooks: Hooks, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Most commits are in stores without webhooks: they wake no round, and make no
    query. A subscription made in this process is known to the worker at once."""
    looked: list[Any] = []  # the `stores` of each claim (None: every store)
    original = webhook_store.claim

    async def counting(*args: Any, **kwargs: Any) -> Any:
        looked.append(args[5] if len(args) > 5 else kwargs.get("stores"))
        return await original(*args, **kwargs)

    monkeypatch.setattr(webhook_store, "claim", counting)
    settings = dataclasses.replace(hooks.worker.settings, poll_seconds=120.0)
    worker = WebhookWorker(hooks.worker.db, hooks.clock, settings)
    rounds: list[Any] = []  # the `stores` of each round the worker ran
    original_round = worker.round

    async def counted_round(client: Any, stores: Any = None) -> bool:
        rounds.append(stores)
        return await original_round(client, stores)

    worker.round = counted_round  # type: ignore[method-assign]
    quiet, hooked = await hooks.store(), await hooks.store()
    worker.start()
    try:
        await within(10, lambda: looked == [None])  # the first round looks at every store
        await hooks.place(quiet, 5)
        await asyncio.sleep(0.3)
        assert looked == [None]
        assert rounds == [None], "the quiet store's commits do not even wake the worker"
        await hooks.subscribe(hooked, ["ORDER_PLACED"])
        await hooks.place(hooked)
        await within(10, lambda: numbers(hooks) == [1001])
        # Woken by the subscription and the order: claims in that store (and, after a
        # round that delivered, in every store); never one for the quiet store's commits.
        named = [list(stores) for stores in looked[1:] if stores is not None]
        assert named, looked
        assert all(stores == [store_number(hooked)] for stores in named), looked
    finally:
        await worker.stop()


async def test_every_store_is_looked_at_each_poll_however_often_commits_wake_it(
    hooks: Hooks,
) -> None:
    """A subscription this process did not see made (another process's change) is
    delivered within a poll, even while commits elsewhere wake the worker without pause
    (they used to keep it from ever looking past their stores)."""
    settings = dataclasses.replace(hooks.worker.settings, poll_seconds=0.5)
    worker = WebhookWorker(hooks.worker.db, hooks.clock, settings)
    busy = await hooks.store()
    worker.start()
    # As if in another process: it hears no commit or change of this one's.
    hooks.worker.db.on_commit.remove(worker.wake)
    hooks.worker.db.on_webhooks_changed.remove(worker.changed)
    waking = True

    async def wake_again_and_again() -> None:
        while waking:
            worker.wake(store_number(busy))
            await asyncio.sleep(0.02)

    task = asyncio.create_task(wake_again_and_again())
    try:
        await asyncio.sleep(0.3)
        store = await hooks.store()
        await hooks.subscribe(store, ["ORDER_PLACED"])
        await hooks.place(store)
        await within(10, lambda: numbers(hooks) == [1001])
    finally:
        waking = False
        await task
        await worker.stop()


async def test_a_success_whose_claim_lapsed_still_moves_the_cursor_once(hooks: Hooks) -> None:
    """Worker A's claim lapses while its attempt is in flight and worker B takes the
    subscription and sends the same event. A's 2xx still moves the cursor past it (so a
    lapse alone does not send the event a third time), B's record of it is logged only,
    and B lets the claim go: the next event goes once, to whoever claims next."""
    store = await hooks.store()
    await hooks.subscribe(store, ["ORDER_PLACED"])
    await hooks.place(store, 2)
    db, lease = hooks.worker.db, dt.timedelta(seconds=60)
    [a] = await webhook_store.claim(db, "A", hooks.clock(), lease, 10)
    [slot, second] = (await webhook_store.next_slots(db, a, 10))[0]
    hooks.clock.advance(dt.timedelta(seconds=61))  # A's claim lapses
    [b] = await webhook_store.claim(db, "B", hooks.clock(), lease, 10)
    assert b.position == a.position
    ok = webhook_store.Outcome(DeliveryStatus.SUCCEEDED, 200, 5, None, hooks.clock())
    assert not await webhook_store.record(db, a, "A", slot, ok, keep_for=lease)
    assert not await webhook_store.record(db, b, "B", slot, ok, keep_for=lease)
    [sub] = await hooks.listed(store)
    assert sub["deliveredThrough"] == slot_cursor(slot)
    assert [d["status"] for d in sub["deliveries"]["nodes"]] == ["SUCCEEDED", "SUCCEEDED"]
    # B still holds the claim until it lets go (the worker does at once); then the next
    # event is the one due, and it goes once.
    await webhook_store.release(db, b, "B")
    await hooks.drain()
    assert [r.json["id"] for r in hooks.receiver.received] == [slot_id(store, second)]


async def test_a_claim_about_to_lapse_is_renewed_before_an_attempt(hooks: Hooks) -> None:
    """A worker whose claim has less than the timeout and a margin left (a slow read, a
    busy process) renews it before it sends, and stops if another worker took it."""
    store = await hooks.store()
    await hooks.subscribe(store, ["ORDER_PLACED"])
    await hooks.place(store)
    db, worker = hooks.worker.db, hooks.worker
    lease = dt.timedelta(seconds=worker.settings.claim_seconds)
    [sub] = await webhook_store.claim(db, worker.name, hooks.clock(), lease, 10)
    assert await worker._lease_covers_attempt(sub)  # plenty left: no write
    hooks.clock.advance(lease - dt.timedelta(seconds=1.5))
    assert await worker._lease_covers_attempt(sub)
    later = hooks.clock() + dt.timedelta(seconds=30)
    assert await webhook_store.claim(db, "other", later, lease, 10) == []  # renewed: held
    hooks.clock.advance(lease + dt.timedelta(seconds=1))
    [taken] = await webhook_store.claim(db, "other", hooks.clock(), lease, 10)
    assert taken.id == sub.id
    assert not await worker._lease_covers_attempt(dataclasses.replace(sub, claimed_until=None))


def slot_cursor(slot: webhook_store.Slot) -> str:
    return encode_cursor([slot.seq])


def slot_id(store: StoreHandle, slot: webhook_store.Slot) -> str:
    store_id = ids.store_id(store.id)
    assert store_id is not None
    return event_id(store_id, slot.seq, slot.topic)


def _certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A test CA, and a certificate it signed for the name localhost (openssl)."""

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=folder)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "2", "-subj", "/CN=webhook test CA")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "host.key", "-out", "host.csr",
        "-subj", "/CN=localhost")  # fmt: skip
    (folder / "san.ext").write_text("subjectAltName=DNS:localhost\n")
    run("x509", "-req", "-in", "host.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "host.pem", "-days", "2", "-extfile", "san.ext")  # fmt: skip
    return folder / "ca.pem", folder / "host.pem", folder / "host.key"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
async def test_https_connects_to_the_checked_address_with_the_hostname_as_host_and_sni(
    hooks: Hooks, tmp_path: Path
) -> None:
    """The worker connects to the address it resolved, and keeps the URL's hostname for
    the Host header, the TLS server name and the certificate check."""
    ca, cert, key = _certificates(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    receiver = await Receiver(tls=server_tls).start()
    trusting = ssl.create_default_context(cafile=str(ca))
    settings = DeliverySettings(allow_private=True, timeout_seconds=2.0)
    try:
        store = await hooks.store()
        _, secret = await hooks.subscribe(store, ["ORDER_PLACED"], url=receiver.url)
        # The same receiver by its address: its certificate names localhost only.
        bare = receiver.url.replace("localhost", "127.0.0.1")
        await hooks.subscribe(store, ["ORDER_PLACED"], url=bare)
        await hooks.place(store)
        transport = httpx.AsyncHTTPTransport(verify=trusting)
        async with new_client(settings, transport=transport) as client:
            await hooks.worker.round(client)
        [request] = receiver.received
        assert request.headers["host"] == f"localhost:{receiver.port}"
        # The connection by name sent it as the TLS server name; the one by address none.
        assert sorted(receiver.server_names, key=str) == [None, "localhost"]
        assert signed_by(request, secret)
        by_name, by_address = await hooks.listed(store)
        assert by_name["state"] == "ACTIVE"
        assert by_address["state"] == "FAILING"
        assert by_address["lastError"].startswith("connection failed")
    finally:
        await receiver.stop()


async def test_a_receiver_that_is_down_is_retried_until_it_is_back(hooks: Hooks) -> None:
    store = await hooks.store()
    await hooks.subscribe(store, ["ORDER_PLACED"])
    port = hooks.receiver.port
    await hooks.receiver.stop()
    await hooks.place(store)
    await hooks.drain()
    [sub] = await hooks.listed(store)
    assert sub["state"] == "FAILING"
    assert sub["lastError"].startswith("connection failed")
    await hooks.receiver.start(port)
    hooks.clock.advance(dt.timedelta(minutes=5))
    await hooks.drain()
    assert [r.answer for r in hooks.receiver.received] == [200]


async def test_redeliver_sends_every_matching_event_after_the_cursor_again(hooks: Hooks) -> None:
    store = await hooks.store()
    sub_id, _ = await hooks.subscribe(store, ["ORDER_PLACED"])
    await hooks.place(store, 3)
    await hooks.drain()
    first = hooks.receiver.received[0].json
    data = await hooks.api.gql(
        REDELIVER, {"input": {"id": sub_id, "after": first["cursor"]}}, token=store.token
    )
    assert data["redeliverWebhook"]["userErrors"] == []
    assert data["redeliverWebhook"]["webhookSubscription"]["deliveredThrough"] == first["cursor"]
    await hooks.drain()
    assert numbers(hooks) == [1001, 1002, 1003, 1002, 1003]
    bad = await hooks.api.gql(
        REDELIVER, {"input": {"id": sub_id, "after": "nonsense"}}, token=store.token
    )
    assert bad["redeliverWebhook"]["userErrors"][0]["code"] == "INVALID"


async def _resend(hooks: Hooks, store: StoreHandle, sub_id: str, event_id: str) -> Any:
    data = await hooks.api.gql(
        RESEND, {"input": {"id": sub_id, "eventId": event_id}}, token=store.token
    )
    return data["redeliverWebhookEvent"]


async def test_redeliver_one_event_sends_only_it_and_goes_on_from_the_cursor(
    hooks: Hooks,
) -> None:
    store = await hooks.store()
    sub_id, secret = await hooks.subscribe(store, ["ORDER_PLACED", "BACKLOG_CHANGED"])
    await hooks.place(store, 3)
    await hooks.drain()
    got = hooks.receiver.received
    assert [r.json["topic"] for r in got] == ["ORDER_PLACED", "BACKLOG_CHANGED"] * 3
    through = got[-1].json["cursor"]
    second, figures = got[2].json, got[1].json
    done = await _resend(hooks, store, sub_id, second["id"])
    assert done["userErrors"] == []
    await hooks.drain()
    # The figures change of a commit can be sent again too, by its own id.
    assert (await _resend(hooks, store, sub_id, figures["id"]))["userErrors"] == []
    await hooks.drain()
    again = got[6:]
    assert [r.json["id"] for r in again] == [second["id"], figures["id"]]
    assert again[0].body == got[2].body  # the same event, the same body
    assert all(signed_by(r, secret) for r in again)
    [listed] = await hooks.listed(store)
    assert listed["deliveredThrough"] == through  # back where it stood
    await hooks.place(store)
    await hooks.drain()
    assert numbers(hooks)[-1] == 1004
    assert [r.json["topic"] for r in got[8:]] == ["ORDER_PLACED", "BACKLOG_CHANGED"]


async def test_redeliver_one_event_refuses_what_it_cannot_send_again(hooks: Hooks) -> None:
    store = await hooks.store()
    sub_id, _ = await hooks.subscribe(store, ["ORDER_PLACED"])
    watcher, _ = await hooks.subscribe(store, ["ORDER_PLACED", "INVENTORY_RECEIVED"])
    await hooks.api.gql(UPDATE, {"input": {"id": sub_id, "paused": True}}, token=store.token)
    await hooks.place(store)
    await hooks.api.receive(store, "SKU", 1)
    await hooks.drain()
    placed, received = (r.json["id"] for r in hooks.receiver.received)
    # Not delivered yet by this subscription: it comes in its turn.
    pending = await _resend(hooks, store, sub_id, placed)
    assert pending["userErrors"][0]["code"] == "INVALID"
    assert pending["userErrors"][0]["field"] == ["input", "eventId"]
    # Delivered, but not of this subscription's topics.
    assert (await _resend(hooks, store, watcher, received))["userErrors"] == []
    await hooks.drain()
    other_topic = await _resend(hooks, store, sub_id, received)
    assert other_topic["userErrors"][0]["code"] == "INVALID"
    other = await hooks.store()
    foreign = await _resend(hooks, store, sub_id, placed.replace("Q", "R"))
    assert foreign["userErrors"][0]["code"] == "INVALID"
    for nonsense in ["", "nonsense", "RXZlbnQ6eDp5"]:  # "Event:x:y"
        bad = await _resend(hooks, store, sub_id, nonsense)
        assert bad["userErrors"][0]["code"] == "INVALID", nonsense
    # Another store's subscription is not found for this store's key.
    stranger, _ = await hooks.subscribe(other, ["ORDER_PLACED"])
    unknown = await _resend(hooks, store, stranger, placed)
    assert unknown["userErrors"][0]["code"] == "NOT_FOUND"


async def test_a_sku_filter_sends_only_the_events_that_concern_its_skus(hooks: Hooks) -> None:
    store = await hooks.store()
    for sku in ("A", "B"):
        await hooks.api.upsert(store, sku)
        await hooks.api.receive(store, sku, 10)
    topics = ["ORDER_PLACED", "INVENTORY_RECEIVED", "BACKLOG_CHANGED"]
    sub_id, _ = await hooks.subscribe(store, topics, skus=["NEW", "A", "A"])
    [listed] = await hooks.listed(store)
    assert listed["skus"] == ["A", "NEW"]
    for lines in ([("A", 1)], [("B", 1)], [("B", 1), ("A", 2)]):
        assert (await hooks.api.place(store, lines))["userErrors"] == []
    await hooks.api.receive(store, "B", 1)
    await hooks.api.receive(store, "A", 1)
    await hooks.api.upsert(store, "NEW")  # a SKU that did not exist yet
    await hooks.api.receive(store, "NEW", 3)
    await hooks.drain()
    got = hooks.receiver.received
    payloads = [r.json["payload"] for r in got]
    orders = [p["orderEvent"]["order"] for p in payloads if "orderEvent" in p]
    assert [o["number"] for o in orders] == [1001, 1003]
    assert [line["sku"] for line in orders[1]["lines"]] == ["B", "A"]  # the whole order
    stock = [r.json for r in got if r.json["topic"] == "INVENTORY_RECEIVED"]
    assert [e["payload"]["inventoryEvent"]["product"]["sku"] for e in stock] == ["A", "NEW"]
    # The store's figures are not filtered: one change per order placed.
    assert sum(r.json["topic"] == "BACKLOG_CHANGED" for r in got) == 3
    # An empty list removes the filter.
    data = await hooks.api.gql(UPDATE, {"input": {"id": sub_id, "skus": []}}, token=store.token)
    assert data["updateWebhookSubscription"]["webhookSubscription"]["skus"] is None
    await hooks.api.place(store, [("B", 1)])
    await hooks.drain()
    assert numbers(hooks)[-1] == 1004
    data = await hooks.api.gql(UPDATE, {"input": {"id": sub_id, "skus": ["B"]}}, token=store.token)
    assert data["updateWebhookSubscription"]["webhookSubscription"]["skus"] == ["B"]


async def test_sku_filters_are_checked(hooks: Hooks) -> None:
    store = await hooks.store()
    cases: list[tuple[Any, list[Any]]] = [
        ([], ["input", "skus"]),
        (["ok", "not,a,sku"], ["input", "skus", "1"]),
        ([f"S{i}" for i in range(101)], ["input", "skus"]),
    ]
    for skus, field in cases:
        payload = await hooks.create(store, ["ORDER_PLACED"], skus=skus)
        assert payload["webhookSubscription"] is None
        [error] = payload["userErrors"]
        assert (error["code"], error["field"]) == ("INVALID", field), (skus, error)
    assert await hooks.listed(store) == []


async def test_the_sku_filter_limit_is_a_setting(database: Database, clock: Clock) -> None:
    async with app_client(database, clock, webhook_allow_private=True, webhook_max_skus=2) as http:
        api = Api(http, ADMIN_TOKEN, database)
        store = await api.create_store()
        try:
            for skus, refused in ((["A", "B", "C"], True), (["A", "B", "B"], False)):
                data = await api.gql(
                    CREATE,
                    {
                        "input": {
                            "storeId": store.id,
                            "url": "http://127.0.0.1:9/hook",
                            "topics": ["ORDER_PLACED"],
                            "skus": skus,
                        }
                    },
                    token=store.token,
                )
                errors = data["createWebhookSubscription"]["userErrors"]
                if refused:
                    assert errors[0]["message"] == "a filter has at most 2 SKUs, not 3"
                else:
                    assert errors == []
        finally:
            async with database.write() as conn:
                await conn.execute(delete(t.webhook_subscriptions))


async def test_a_narrow_filter_over_a_long_log_reads_it_a_window_at_a_time(
    hooks: Hooks, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(webhook_store, "SCAN_WINDOW", 3)
    store = await hooks.store()
    await hooks.api.upsert(store, "RARE")
    await hooks.api.receive(store, "RARE", 5)
    await hooks.subscribe(store, ["ORDER_PLACED"], skus=["RARE"])
    await hooks.place(store, 10)  # ten orders of another SKU
    await hooks.api.place(store, [("RARE", 1)])
    rounds = 0
    while await hooks.worker.round(hooks.client):
        rounds += 1
    assert numbers(hooks) == [1011]
    assert rounds >= 4  # 22 log entries (events and figures), 3 at a time per look


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_another_processs_commit_wakes_delivery_at_once(
    hooks: Hooks, database: Database, clock: Clock
) -> None:
    """A worker on its own engine (as in another process) with a poll of a minute still
    sends within seconds: the commit's NOTIFY wakes it through the live hub."""
    store = await hooks.store()
    await hooks.subscribe(store, ["ORDER_PLACED"])
    other = Database(database.url)
    hub = EventHub(other)
    settings = DeliverySettings(allow_private=True, timeout_seconds=1.0, poll_seconds=60.0)
    worker = WebhookWorker(other, clock, settings)
    hub.on_notify.append(worker.wake)
    await hub.start()
    try:
        for _ in range(100):
            if hub.listener_connected:
                break
            await asyncio.sleep(0.05)
        worker.start()
        await asyncio.sleep(0.5)  # its first round finds nothing and waits
        assert hooks.receiver.received == []
        await hooks.place(store)
        for _ in range(100):
            if hooks.receiver.received:
                break
            await asyncio.sleep(0.05)
        assert numbers(hooks) == [1001]
    finally:
        await worker.stop()
        await hub.stop()
        await other.dispose()


async def test_rotation_signs_with_both_secrets_for_a_day(hooks: Hooks) -> None:
    store = await hooks.store()
    sub_id, old = await hooks.subscribe(store, ["ORDER_PLACED"])
    data = await hooks.api.gql(ROTATE, {"id": sub_id}, token=store.token)
    new = data["rotateWebhookSecret"]["secret"]
    assert new
    assert new != old
    await hooks.place(store)
    await hooks.drain()
    request = hooks.receiver.received[-1]
    assert request.headers["ordergraph-signature"].count("v1=") == 2
    assert signed_by(request, new)
    assert signed_by(request, old)
    hooks.clock.advance(dt.timedelta(hours=25))
    await hooks.place(store)
    await hooks.drain()
    request = hooks.receiver.received[-1]
    assert request.headers["ordergraph-signature"].count("v1=") == 1
    assert signed_by(request, new)
    assert not signed_by(request, old)


async def test_a_paused_subscription_keeps_its_cursor_and_catches_up(hooks: Hooks) -> None:
    store = await hooks.store()
    sub_id, _ = await hooks.subscribe(store, ["ORDER_PLACED"])
    # Resuming an active subscription changes nothing.
    same = await hooks.api.gql(
        UPDATE, {"input": {"id": sub_id, "paused": False}}, token=store.token
    )
    assert same["updateWebhookSubscription"]["webhookSubscription"]["state"] == "ACTIVE"
    paused = await hooks.api.gql(
        UPDATE, {"input": {"id": sub_id, "paused": True}}, token=store.token
    )
    assert paused["updateWebhookSubscription"]["webhookSubscription"]["state"] == "PAUSED"
    await hooks.place(store, 2)
    await hooks.drain()
    assert hooks.receiver.received == []
    await hooks.api.gql(UPDATE, {"input": {"id": sub_id, "paused": False}}, token=store.token)
    await hooks.drain()
    assert numbers(hooks) == [1001, 1002]


async def test_a_running_worker_sends_at_once_after_a_resume_or_a_redeliver(
    hooks: Hooks,
) -> None:
    """Not at its next poll: the change itself wakes the worker of the process that made it;
    and a redeliver that lands while the worker still holds the claim does not wait for the
    claim to expire."""
    settings = dataclasses.replace(hooks.worker.settings, poll_seconds=120.0)
    worker = WebhookWorker(hooks.worker.db, hooks.clock, settings)
    store = await hooks.store()
    sub_id, _ = await hooks.subscribe(store, ["ORDER_PLACED"])
    await hooks.api.gql(UPDATE, {"input": {"id": sub_id, "paused": True}}, token=store.token)
    worker.start()
    try:
        await hooks.place(store, 2)  # these commits wake it too, but it is paused
        await asyncio.sleep(0.3)
        assert hooks.receiver.received == []
        await hooks.api.gql(UPDATE, {"input": {"id": sub_id, "paused": False}}, token=store.token)
        await within(10, lambda: numbers(hooks) == [1001, 1002])
        first = hooks.receiver.received[0].json
        await hooks.api.gql(
            REDELIVER, {"input": {"id": sub_id, "after": first["cursor"]}}, token=store.token
        )
        await within(10, lambda: numbers(hooks) == [1001, 1002, 1002])
    finally:
        await worker.stop()


async def within(seconds: float, done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, f"not within {seconds} s"
        await asyncio.sleep(0.02)


async def test_update_changes_topics_and_url_and_delete_stops_delivery(hooks: Hooks) -> None:
    store = await hooks.store()
    sub_id, _ = await hooks.subscribe(store, ["ORDER_PLACED"])
    other = await Receiver().start()
    try:
        data = await hooks.api.gql(
            UPDATE,
            {"input": {"id": sub_id, "url": other.url, "topics": ["INVENTORY_RECEIVED"]}},
            token=store.token,
        )
        changed = data["updateWebhookSubscription"]["webhookSubscription"]
        assert changed["topics"] == ["INVENTORY_RECEIVED"]
        assert changed["url"] == other.url
        await hooks.place(store)
        await hooks.api.receive(store, "SKU", 1)
        await hooks.drain()
        assert hooks.receiver.received == []
        assert [r.json["topic"] for r in other.received] == ["INVENTORY_RECEIVED"]
        gone = await hooks.api.gql(DELETE, {"id": sub_id}, token=store.token)
        assert gone["deleteWebhookSubscription"] == {"deletedId": sub_id, "userErrors": []}
        await hooks.api.receive(store, "SKU", 1)
        await hooks.drain()
        assert len(other.received) == 1
        assert await hooks.listed(store) == []
        again = await hooks.api.gql(DELETE, {"id": sub_id}, token=store.token)
        assert again["deleteWebhookSubscription"]["userErrors"][0]["code"] == "NOT_FOUND"
    finally:
        await other.stop()


async def test_the_delivery_log_pages_newest_first(hooks: Hooks) -> None:
    store = await hooks.store()
    sub_id, _ = await hooks.subscribe(store, ["ORDER_PLACED"])
    await hooks.place(store, 3)
    await hooks.drain()
    query = """query($h: String!, $after: String) { store(handle: $h) { webhookSubscriptions {
      deliveries(first: 2, after: $after) {
        nodes { cursor } pageInfo { hasNextPage endCursor } } } } }"""
    page = await hooks.api.gql(query, {"h": store.handle}, token=store.token)
    first = page["store"]["webhookSubscriptions"][0]["deliveries"]
    assert first["pageInfo"]["hasNextPage"] is True
    page = await hooks.api.gql(
        query, {"h": store.handle, "after": first["pageInfo"]["endCursor"]}, token=store.token
    )
    second = page["store"]["webhookSubscriptions"][0]["deliveries"]
    assert second["pageInfo"]["hasNextPage"] is False
    cursors = [n["cursor"] for n in first["nodes"] + second["nodes"]]
    sent = [r.json["cursor"] for r in hooks.receiver.received]
    assert cursors == list(reversed(sent))
    too_many = await hooks.api.raw(
        query.replace("first: 2", "first: 101"), {"h": store.handle}, token=store.token
    )
    assert too_many["errors"][0]["extensions"]["code"] == "INVALID"
    assert sub_id


# -- checks, scope and tenancy ---------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("not a url", "INVALID"),
        ("ftp://example.com/hook", "INVALID"),
        ("https://user:pw@example.com/hook", "INVALID"),
        ("https://example.com/" + "x" * 2100, "INVALID"),
    ],
)
async def test_bad_urls_are_refused(hooks: Hooks, url: str, code: str) -> None:
    store = await hooks.store()
    payload = await hooks.create(store, ["ORDER_PLACED"], url=url)
    assert payload["webhookSubscription"] is None
    assert payload["secret"] is None
    assert payload["userErrors"][0]["code"] == code
    assert payload["userErrors"][0]["field"] == ["input", "url"]


async def test_empty_topics_and_bad_cursors_are_refused(hooks: Hooks) -> None:
    store = await hooks.store()
    payload = await hooks.create(store, [])
    assert payload["userErrors"][0]["code"] == "INVALID"
    assert payload["userErrors"][0]["field"] == ["input", "topics"]
    payload = await hooks.create(store, ["ORDER_PLACED"], after="garbage")
    assert payload["userErrors"][0]["field"] == ["input", "after"]


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/hook",
        "https://127.0.0.1/hook",
        "https://10.1.2.3/hook",
        "https://169.254.169.254/latest",
        "https://[::1]/hook",
        "https://[fd00:ec2::254]/hook",
        "https://localhost/hook",
    ],
)
async def test_unsafe_targets_are_refused_without_the_setting(
    database: Database, clock: Clock, url: str
) -> None:
    async with app_client(database, clock) as http:
        api = Api(http, ADMIN_TOKEN, database)
        store = await api.create_store()
        data = await api.gql(
            CREATE,
            {"input": {"storeId": store.id, "url": url, "topics": ["ORDER_PLACED"]}},
            token=store.token,
        )
    payload = data["createWebhookSubscription"]
    assert payload["webhookSubscription"] is None
    assert payload["userErrors"][0]["code"] == "UNSAFE_TARGET", payload


@pytest.mark.parametrize("scheme", ["https", "http"])
async def test_delivery_refuses_an_address_that_became_unsafe(
    database: Database, clock: Clock, scheme: str
) -> None:
    """Checked again at each attempt: a subscription made while private targets were
    allowed gets UNSAFE_TARGET from a worker that does not allow them."""
    receiver = await Receiver().start()
    url = receiver.url.replace("http:", f"{scheme}:")
    try:
        async with app_client(database, clock, webhook_allow_private=True) as http:
            api = Api(http, ADMIN_TOKEN, database)
            store = await api.create_store()
            await api.upsert(store, "SKU")
            await api.receive(store, "SKU", 5)
            data = await api.gql(
                CREATE,
                {"input": {"storeId": store.id, "url": url, "topics": ["ORDER_PLACED"]}},
                token=store.token,
            )
            assert data["createWebhookSubscription"]["userErrors"] == []
            await api.place(store, [("SKU", 1)])
            strict = WebhookWorker(database, clock, DeliverySettings(allow_private=False))
            async with httpx.AsyncClient(trust_env=False) as client:
                await strict.round(client)
            listed = await api.gql(LIST, {"h": store.handle}, token=store.token)
        [sub] = listed["store"]["webhookSubscriptions"]
        assert sub["state"] == "FAILING"
        assert sub["lastError"].startswith("UNSAFE_TARGET")
        assert ("127.0.0.1" if scheme == "https" else "plain http") in sub["lastError"]
        assert receiver.received == []
    finally:
        await receiver.stop()
        async with database.write() as conn:
            await conn.execute(delete(t.webhook_deliveries))
            await conn.execute(delete(t.webhook_subscriptions))


async def test_the_webhooks_scope_is_needed(hooks: Hooks) -> None:
    store = await hooks.store()
    sub_id, _ = await hooks.subscribe(store, ["ORDER_PLACED"])
    key = await hooks.api.gql(
        """mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { token } }""",
        {"input": {"name": "no hooks", "storeIds": [store.id], "scopes": ["READ", "ORDERS"]}},
        token=ADMIN_TOKEN,
    )
    token = key["createApiKey"]["token"]
    body = await hooks.api.raw(
        CREATE,
        {"input": {"storeId": store.id, "url": hooks.receiver.url, "topics": ["ORDER_PLACED"]}},
        token=token,
    )
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    calls: list[tuple[str, dict[str, Any]]] = [
        (DELETE, {"id": sub_id}),
        (ROTATE, {"id": sub_id}),
        (UPDATE, {"input": {"id": sub_id, "paused": True}}),
        (LIST, {"h": store.handle}),
    ]
    for query, variables in calls:
        body = await hooks.api.raw(query, variables, token=token)
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN", query


async def test_a_key_never_sees_or_touches_another_stores_subscriptions(hooks: Hooks) -> None:
    mine, theirs = await hooks.store(), await hooks.store()
    their_id, _ = await hooks.subscribe(theirs, ["ORDER_PLACED"])
    # Not listed, and every mutation answers as for an unknown id.
    data = await hooks.api.gql(LIST, {"h": mine.handle}, token=mine.token)
    assert data["store"]["webhookSubscriptions"] == []
    named: list[tuple[str, dict[str, Any], str]] = [
        (DELETE, {"id": their_id}, "deleteWebhookSubscription"),
        (ROTATE, {"id": their_id}, "rotateWebhookSecret"),
        (UPDATE, {"input": {"id": their_id, "paused": True}}, "updateWebhookSubscription"),
        (REDELIVER, {"input": {"id": their_id, "after": "WzBd"}}, "redeliverWebhook"),
    ]
    for query, variables, name in named:
        body = await hooks.api.gql(query, variables, token=mine.token)
        assert body[name]["userErrors"][0]["code"] == "NOT_FOUND", name
    node = "query($id: ID!) { node(id: $id) { __typename ... on WebhookSubscription { url } } }"
    seen = await hooks.api.gql(node, {"id": their_id}, token=theirs.token)
    assert seen["node"] == {"__typename": "WebhookSubscription", "url": hooks.receiver.url}
    unseen = await hooks.api.gql(node, {"id": their_id}, token=mine.token)
    assert unseen["node"] is None
    payload = await hooks.create(theirs, ["ORDER_PLACED"], token=mine.token)
    assert payload["userErrors"][0]["code"] == "NOT_FOUND"
    [still] = await hooks.listed(theirs)
    assert still["state"] == "ACTIVE"
    # Unknown and malformed ids read the same.
    body = await hooks.api.gql(DELETE, {"id": "bm9wZQ"}, token=mine.token)
    assert body["deleteWebhookSubscription"]["userErrors"][0]["code"] == "NOT_FOUND"


async def test_attempts_are_forgotten_after_the_log_days(hooks: Hooks) -> None:
    store = await hooks.store()
    await hooks.subscribe(store, ["ORDER_PLACED"])
    await hooks.place(store)
    await hooks.drain()
    hooks.clock.advance(dt.timedelta(days=6))
    await hooks.place(store)
    await hooks.drain()
    [sub] = await hooks.listed(store)
    assert len(sub["deliveries"]["nodes"]) == 2
    hooks.clock.advance(dt.timedelta(days=1, minutes=1))  # the first is 7 days old
    assert await hooks.worker.prune() >= 1
    [sub] = await hooks.listed(store)
    assert [d["eventId"] for d in sub["deliveries"]["nodes"]] == [
        hooks.receiver.received[1].json["id"]
    ]


# -- metrics and settings ---------------------------------------------------------------


def _sample(text: str, name: str, label: str) -> float:
    for line in text.splitlines():
        if line.startswith(f"{name}{{{label}}}"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name}{{{label}}} not in the metrics")


async def test_metrics_count_attempts_by_outcome_and_show_the_lag_per_state(
    hooks: Hooks, database: Database
) -> None:
    store = await hooks.store()
    sub_id, _ = await hooks.subscribe(store, ["ORDER_PLACED"])
    answers: Iterator[Answer] = iter([500, 200, 200])
    hooks.receiver.answer = lambda _: next(answers)
    await hooks.place(store)
    await hooks.drain()
    hooks.clock.advance(dt.timedelta(minutes=5))
    await hooks.drain()
    await hooks.api.gql(UPDATE, {"input": {"id": sub_id, "paused": True}}, token=store.token)
    await hooks.place(store)
    hooks.clock.advance(dt.timedelta(minutes=10))
    metrics = Metrics()
    metrics.watch_webhooks(database, hooks.worker, hooks.clock)
    text = (await metrics.render()).decode()
    deliveries = "ordergraph_webhook_deliveries_total"
    assert _sample(text, deliveries, 'outcome="succeeded"') == 1
    assert _sample(text, deliveries, 'outcome="failed"') == 1
    assert _sample(text, deliveries, 'outcome="gave_up"') == 0
    assert _sample(text, "ordergraph_webhook_lag_seconds", 'state="PAUSED"') >= 600
    assert _sample(text, "ordergraph_webhook_lag_seconds", 'state="ACTIVE"') == 0


def test_the_webhook_settings_are_read_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "ORDERGRAPH_WEBHOOK_DELIVERY": "false",
            "ORDERGRAPH_WEBHOOK_ALLOW_PRIVATE": "true",
            "ORDERGRAPH_WEBHOOK_TIMEOUT_SECONDS": "40",
            "ORDERGRAPH_WEBHOOK_RETRY_HOURS": "2",
            "ORDERGRAPH_WEBHOOK_BACKOFF_BASE_SECONDS": "3",
            "ORDERGRAPH_WEBHOOK_BACKOFF_MAX_SECONDS": "90",
            "ORDERGRAPH_WEBHOOK_POLL_MS": "250",
            "ORDERGRAPH_WEBHOOK_CLAIM_SECONDS": "30",
            "ORDERGRAPH_WEBHOOK_MAX_RESPONSE_BYTES": "100",
            "ORDERGRAPH_WEBHOOK_CONCURRENCY": "4",
            "ORDERGRAPH_WEBHOOK_LOG_DAYS": "3",
            "ORDERGRAPH_WEBHOOK_MAX_SKUS": "5",
        }
    )
    assert settings.webhook_delivery is False
    assert settings.webhook_max_skus == 5
    found = DeliverySettings.of(settings)
    assert found.allow_private is True
    assert found.timeout_seconds == 40
    assert found.retry.window == dt.timedelta(hours=2)
    assert (found.retry.base_seconds, found.retry.cap_seconds) == (3, 90)
    assert found.poll_seconds == 0.25
    assert found.claim_seconds == 80  # at least twice the timeout
    assert (found.max_response_bytes, found.concurrency, found.log_days) == (100, 4, 3)
    with pytest.raises(SettingsError):
        Settings.from_env({"ORDERGRAPH_WEBHOOK_TIMEOUT_SECONDS": "0"})
    with pytest.raises(SettingsError):
        Settings.from_env({"ORDERGRAPH_WEBHOOK_MAX_SKUS": "0"})

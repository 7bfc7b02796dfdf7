"""Webhook delivery, run by every server process (docs/webhooks.md).

`WebhookWorker` loops: it claims due subscriptions (storage/webhooks.py `claim`: never
one another process holds), and for each sends the next matching slot of the store's
log after the subscription's position; on a 2xx the position moves past it and the
next one goes, on anything else the attempt is logged and retried later with backoff.
One event at a time per subscription, in log order: a crash anywhere only means the
head is sent again (at least once). It wakes on this process's commits and on its
changes to subscriptions (create, resume, redeliver), on PostgreSQL on other
processes' commits too (the live hub's LISTEN connection hands them on), and polls
(ORDERGRAPH_WEBHOOK_POLL_MS) in case a notification was lost. A round woken by commits
claims among the stores that committed only (on Citus: their shards); a round after the
poll's wait, or after a round that found work, looks at every store (retries come due
without a commit).

Each attempt resolves the URL's host once, refuses unsafe addresses (unless
ORDERGRAPH_WEBHOOK_ALLOW_PRIVATE), and connects to the address it checked, with the
hostname kept as Host and TLS SNI. Redirects are not followed; the answer's body is
read only up to a small cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import json
import logging
import math
import socket
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.engine import RowMapping

from ordergraph.domain.errors import DomainError
from ordergraph.domain.paging import encode_cursor
from ordergraph.domain.webhooks import (
    EVENT_ID_HEADER,
    GONE,
    MAX_SKUS,
    SIGNATURE_HEADER,
    TOPIC_HEADER,
    DeliveryStatus,
    RetryPolicy,
    WebhookState,
    WebhookTopic,
    check_url,
    event_id,
    is_success,
    signature_header,
    unsafe_target,
)
from ordergraph.resolvers import ids
from ordergraph.schema.money import money
from ordergraph.settings import Settings
from ordergraph.storage import tables as t
from ordergraph.storage import webhooks as store
from ordergraph.storage.db import Database
from ordergraph.storage.webhooks import Claimed, Outcome, Slot, SqlWebhooks

log = logging.getLogger("ordergraph.webhooks")
USER_AGENT = "ordergraph-webhooks/1"
# Events one claim may deliver in a row before the subscription is let go (fairness).
BATCH = 50
# Time a claim must have left, beyond the timeout, for an attempt to start without renewing.
LEASE_MARGIN_SECONDS = 1.0
# How often a process forgets old delivery attempts.
PRUNE_EVERY_SECONDS = 3600.0


async def resolve_host(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to (one DNS lookup), de-duplicated, in order."""
    literal = host.strip("[]")
    try:
        return [str(ipaddress.ip_address(literal))]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        found = await loop.getaddrinfo(literal, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []
    seen: list[str] = []
    for *_, sockaddr in found:
        address = str(sockaddr[0])
        if address not in seen:
            seen.append(address)
    return seen


class AppWebhooks(SqlWebhooks):
    """The API's webhook port: storage plus the DNS lookup and the private-target rule."""

    def __init__(
        self,
        db: Database,
        clock: Callable[[], dt.datetime],
        allow_private: bool,
        max_skus: int = MAX_SKUS,
    ) -> None:
        super().__init__(db, clock)
        self.allow_private = allow_private
        self.max_skus = max_skus

    async def resolve(self, host: str, port: int) -> list[str]:
        return await resolve_host(host, port)


# -- bodies ----------------------------------------------------------------------------


def _money(amount: Any, currency: str) -> dict[str, str]:
    shown = money(Decimal(str(amount)), currency)
    return {"amount": str(shown.amount), "currencyCode": shown.currency_code}


def _time(value: dt.datetime | None) -> str | None:
    """A DateTime as the API writes it (ISO 8601 in UTC, `+00:00`)."""
    return value.astimezone(dt.UTC).isoformat() if value else None


def _order_event(row: RowMapping, currency: str) -> dict[str, Any]:
    data: dict[str, Any] = row["data"]
    store_id = int(row["store_id"])
    lines = [
        {
            "id": ids.encode("OrderLine", store_id, int(line["id"])),
            "sku": line["sku"],
            "quantity": line["quantity"],
            "unitPrice": _money(line["unitPrice"], currency),
            "allocated": line["allocated"],
            "backordered": line["backordered"],
            "shipped": line["shipped"],
            "cancelled": line["cancelled"],
        }
        for line in data.get("lines", [])
    ]
    order = {
        "id": ids.encode("Order", store_id, int(row["order_id"])),
        "number": data.get("number"),
        "placedAt": data.get("placedAt"),
        "requestedShipDate": data.get("requestedShipDate"),
        "status": data.get("status"),
        "stockStatus": data.get("stockStatus"),
        "lines": lines,
    }
    if "expectedShipDate" in data:  # EXPECTED_SHIP_DATE_CHANGED: the new date
        order["expectedShipDate"] = data["expectedShipDate"]
    return {
        "orderEvent": {
            "cursor": encode_cursor([int(row["seq"])]),
            "type": row["type"],
            "occurredAt": _time(row["occurred_at"]),
            "status": data.get("status"),
            "stockStatus": data.get("stockStatus"),
            "order": order,
        }
    }


def _inventory_event(row: RowMapping) -> dict[str, Any]:
    data: dict[str, Any] = row["data"]
    product = {
        "id": ids.encode("Product", int(row["store_id"]), int(row["product_id"])),
        "sku": data.get("sku"),
        "onHand": data.get("onHand"),
        "allocated": data.get("allocated"),
        "available": data.get("available"),
        "backordered": data.get("backordered"),
    }
    return {
        "inventoryEvent": {
            "cursor": encode_cursor([int(row["seq"])]),
            "type": row["type"],
            "occurredAt": _time(row["occurred_at"]),
            "onHand": data.get("onHand"),
            "available": data.get("available"),
            "backordered": data.get("backordered"),
            "product": product,
        }
    }


def _backlog(point: RowMapping, currency: str) -> dict[str, Any]:
    def tally(prefix: str) -> dict[str, Any]:
        return {
            "orders": int(point[f"{prefix}_orders"]),
            "units": int(point[f"{prefix}_units"]),
            "value": _money(point[f"{prefix}_value"], currency),
        }

    return {
        "backlogChanged": {
            "asOf": _time(point["at"]),
            "backlog": tally("backlog"),
            "backorders": tally("backorder"),
            "oldestBackorderPlacedAt": _time(point["oldest_backorder_placed_at"]),
        }
    }


def body_of(sub: Claimed, slot: Slot, currency: str) -> bytes:
    """The JSON body for one slot: id, cursor, topic, storeId, occurredAt, payload."""
    if slot.point is not None:
        payload = _backlog(slot.point, currency)
    elif slot.event is not None and slot.event["stream"] == "order":
        payload = _order_event(slot.event, currency)
    else:
        assert slot.event is not None
        payload = _inventory_event(slot.event)
    document = {
        "id": event_id(sub.store_id, slot.seq, slot.topic),
        "cursor": encode_cursor([slot.seq]),
        "topic": slot.topic.value,
        "storeId": ids.encode("Store", sub.store_id),
        "occurredAt": _time(slot.occurred_at),
        "payload": payload,
    }
    return json.dumps(document, separators=(",", ":"), sort_keys=False).encode()


# -- sending ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    status_code: int | None
    error: str | None
    latency_ms: int


class Refused(Exception):
    """The target may not be reached (UNSAFE_TARGET)."""


@dataclass
class DeliverySettings:
    allow_private: bool = False
    timeout_seconds: float = 10.0
    max_response_bytes: int = 4096
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    poll_seconds: float = 1.0
    claim_seconds: float = 60.0
    concurrency: int = 20
    log_days: int = 7

    @classmethod
    def of(cls, settings: Settings) -> DeliverySettings:
        return cls(
            allow_private=settings.webhook_allow_private,
            timeout_seconds=float(settings.webhook_timeout_seconds),
            max_response_bytes=settings.webhook_max_response_bytes,
            retry=RetryPolicy(
                base_seconds=float(settings.webhook_backoff_base_seconds),
                cap_seconds=float(settings.webhook_backoff_max_seconds),
                window=dt.timedelta(hours=settings.webhook_retry_hours),
            ),
            poll_seconds=settings.webhook_poll_ms / 1000,
            claim_seconds=float(
                max(settings.webhook_claim_seconds, settings.webhook_timeout_seconds * 2)
            ),
            concurrency=settings.webhook_concurrency,
            log_days=settings.webhook_log_days,
        )


async def _target_address(url: str, allow_private: bool) -> tuple[httpx.URL, str, str]:
    """(the URL with the checked address as its host, the Host header, the hostname);
    Refused if the host resolves to a refused address or not at all."""
    target = check_url(url, allow_http=allow_private)
    addresses = await resolve_host(target.host, target.port)
    if not addresses:
        raise Refused(f"{target.host} does not resolve")
    if not allow_private:
        refused = unsafe_target(target.host, addresses)
        if refused is not None:
            raise Refused(refused.message)
    address = addresses[0]
    parsed = httpx.URL(url)
    host_for_url = f"[{address}]" if ":" in address else address
    default_port = 443 if target.scheme == "https" else 80
    host_header = target.host if target.port == default_port else f"{target.host}:{target.port}"
    if ":" in target.host and not target.host.startswith("["):
        host_header = f"[{target.host}]" + (
            "" if target.port == default_port else f":{target.port}"
        )
    return parsed.copy_with(host=host_for_url.strip("[]")), host_header, target.host


async def send(
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    headers: dict[str, str],
    settings: DeliverySettings,
) -> Sent:
    """POST the body to the URL's checked address; the status, or why none came."""
    started = time.monotonic()

    def took() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        address_url, host_header, hostname = await _target_address(url, settings.allow_private)
    except Refused as refused:
        return Sent(None, f"UNSAFE_TARGET: {refused}", took())
    except DomainError as err:  # plain http, now that it is not allowed
        problem = err.problems[0]
        return Sent(None, f"{problem.code.value}: {problem.message}", took())
    request = client.build_request(
        "POST",
        address_url,
        content=body,
        headers={**headers, "Host": host_header},
        extensions={"sni_hostname": hostname},
    )
    try:
        # The timeout bounds the whole attempt (httpx's bounds each connect, write and read
        # on its own), so that an attempt never outlasts the claim it is made under.
        async with asyncio.timeout(settings.timeout_seconds):
            response = await client.send(request, stream=True, follow_redirects=False)
            try:
                read = 0
                async for chunk in response.aiter_raw():
                    read += len(chunk)
                    if read >= settings.max_response_bytes:
                        break
            finally:
                await response.aclose()
    except (httpx.TimeoutException, TimeoutError):
        return Sent(None, f"timed out after {settings.timeout_seconds:g} s", took())
    except httpx.HTTPError as err:
        return Sent(None, f"connection failed: {type(err).__name__}: {err}"[:300], took())
    status = response.status_code
    if is_success(status):
        return Sent(status, None, took())
    if 300 <= status < 400:
        return Sent(status, f"HTTP {status}: redirects are not followed", took())
    return Sent(status, f"HTTP {status}", took())


# -- the worker ------------------------------------------------------------------------


def new_client(
    settings: DeliverySettings, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """The HTTP client deliveries use. No connection is kept for another request: a
    connection is made to a checked address with one hostname's TLS name, and another
    hostname on the same address must not reuse it. No proxy from the environment."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.timeout_seconds),
        follow_redirects=False,
        transport=transport,
        headers={"User-Agent": USER_AGENT},
        trust_env=False,
        limits=httpx.Limits(max_keepalive_connections=0),
    )


@dataclass
class Counters:
    """Attempts by outcome since the process started (the /metrics counters)."""

    by_outcome: dict[str, int] = field(default_factory=dict)

    def count(self, outcome: str) -> None:
        self.by_outcome[outcome] = self.by_outcome.get(outcome, 0) + 1


class WebhookWorker:
    def __init__(
        self,
        db: Database,
        clock: Callable[[], dt.datetime],
        settings: DeliverySettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.settings = settings
        self.name = f"{socket.gethostname()[:40]}:{uuid.uuid4().hex[:12]}"
        self.counters = Counters()
        self._wake = asyncio.Event()
        # What the next round looks at: the stores whose commits woke it, or everything.
        self._dirty: set[int] = set()
        self._everything = True
        # The stores with a delivering subscription, as of the last round that looked at
        # every store (None before it), with those changed in this process since: a
        # round woken by commits claims among those only, and makes no query when none
        # of the committing stores has one (most commits). A subscription another process
        # creates or resumes is delivered by that process at once, and by this one from
        # its next look at every store (within `poll_seconds`).
        self._hooked: set[int] | None = None
        self._changed: set[int] = set()
        self._looked_at = -math.inf
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._currencies: dict[int, str] = {}
        self._transport = transport
        self._last_prune = -PRUNE_EVERY_SECONDS

    def wake(self, store_id: int | None = None) -> None:
        """Something may be due (in one store, or in any when None). A commit in a store
        known to have no subscription wakes nothing: the round would pass it over (most
        commits, at most stores); the next look at every store finds one made since."""
        if store_id is None:
            self._everything = True
        elif self._hooked is not None and store_id not in self._hooked:
            return
        else:
            self._dirty.add(store_id)
        self._wake.set()

    def changed(self, store_id: int) -> None:
        """A subscription of the store was made, resumed or redelivered here."""
        self._changed.add(store_id)
        if self._hooked is not None:
            self._hooked.add(store_id)
        self.wake(store_id)

    def start(self) -> None:
        self.db.on_commit.append(self.wake)
        self.db.on_webhooks_changed.append(self.changed)
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        with contextlib.suppress(ValueError):
            self.db.on_commit.remove(self.wake)
        with contextlib.suppress(ValueError):
            self.db.on_webhooks_changed.remove(self.changed)
        if self._task is not None:
            with contextlib.suppress(BaseException):
                await self._task
            self._task = None

    async def _run(self) -> None:
        async with new_client(self.settings, self._transport) as client:
            while not self._stop.is_set():
                self._wake.clear()
                if time.monotonic() - self._looked_at >= self.settings.poll_seconds:
                    # every store at least once a poll, however often commits wake it:
                    # retries come due in stores that commit nothing
                    self._everything = True
                stores = None if self._everything else self._dirty
                self._dirty, self._everything = set(), False
                busy = False
                try:
                    busy = await self.round(client, stores)
                    if time.monotonic() - self._last_prune >= PRUNE_EVERY_SECONDS:
                        self._last_prune = time.monotonic()
                        await self.prune()
                except Exception:
                    log.exception("webhook delivery round failed; trying again")
                    self._everything = True
                if busy:
                    self._everything = True
                    continue
                try:
                    # (a timeout scope, not wait_for: no task made for every wake-up)
                    async with asyncio.timeout(self.settings.poll_seconds):
                        await self._wake.wait()
                except TimeoutError:
                    self._everything = True

    async def prune(self) -> int:
        """Forget delivery attempts older than log_days; how many were forgotten."""
        before = self.clock() - dt.timedelta(days=self.settings.log_days)
        return await store.prune_log(self.db, before)

    async def round(self, client: httpx.AsyncClient, stores: Collection[int] | None = None) -> bool:
        """One pass: claim what is due (in `stores`, or in any store) and deliver it.
        True if anything was claimed."""
        if stores is None:
            self._changed = set()
            found = await store.delivering_stores(self.db)
            self._hooked = found | self._changed
            self._looked_at = time.monotonic()
        elif self._hooked is not None:
            stores = [s for s in stores if s in self._hooked]
            if not stores:
                return False
        lease = dt.timedelta(seconds=self.settings.claim_seconds)
        claimed = await store.claim(
            self.db, self.name, self.clock(), lease, self.settings.concurrency, stores
        )
        if not claimed:
            return False
        await asyncio.gather(*(self._deliver(client, sub) for sub in claimed))
        return True

    async def _currency(self, store_id: int) -> str:
        found = self._currencies.get(store_id)
        if found is None:
            async with self.db.read() as conn:
                value = await conn.execute(
                    select(t.stores.c.currency_code).where(t.stores.c.id == store_id)
                )
                found = str(value.scalar() or "")
            self._currencies[store_id] = found
        return found

    async def _deliver(self, client: httpx.AsyncClient, sub: Claimed) -> None:
        """Send the subscription's head, then the next, up to BATCH, while they succeed."""
        try:
            sent = 0
            while sent < BATCH:
                # The next slots, read ahead: one read per batch of a backlog.
                wanted = BATCH - sent
                slots, caught_up = await store.next_slots(self.db, sub, wanted)
                if not slots:
                    if not await store.move_on(self.db, sub, self.name, caught_up):
                        await self._let_go(sub)
                    return
                # Fewer than asked: everything committed up to `caught_up` was read, so the
                # last one's record moves the position there and lets the claim go (no
                # second read and no move_on to find nothing more).
                through = caught_up if len(slots) < wanted else None
                for index, slot in enumerate(slots):
                    if slot.position <= sub.position:
                        continue  # read ahead, but a single resend's return passed it
                    if not await self._lease_covers_attempt(sub):
                        await self._let_go(sub)
                        return
                    last = through is not None and index == len(slots) - 1
                    until = await self._send_one(client, sub, slot, through if last else None)
                    if until is None:
                        return
                    sub = store.advanced(sub, slot, until)
                    sent += 1
        except Exception:
            log.exception("webhook %s: delivery failed", sub.id)
            with contextlib.suppress(Exception):
                await store.release(self.db, sub, self.name)
        else:
            await store.release(self.db, sub, self.name)

    async def _lease_covers_attempt(self, sub: Claimed) -> bool:
        """Make sure the claim outlasts one more attempt (its timeout and a margin), renewing
        it if a slow read or a busy process ate into it, so that it does not lapse while the
        attempt is in flight and another process sends the same event. False if lost."""
        lease = dt.timedelta(seconds=self.settings.claim_seconds)
        needed = dt.timedelta(seconds=self.settings.timeout_seconds + LEASE_MARGIN_SECONDS)
        now = self.clock()
        if sub.claimed_until is not None and sub.claimed_until - now >= needed:
            return True
        return await store.renew(self.db, sub, self.name, now + lease)

    async def _send_one(
        self, client: httpx.AsyncClient, sub: Claimed, slot: Slot, through: int | None
    ) -> dt.datetime | None:
        """Attempt one slot and record it; when the claim is kept to send the next one,
        the time it now lasts until (None: it failed, the claim was let go, or `through`
        ended the batch)."""
        outcome = await self._attempt(client, sub, slot)
        keep = (
            outcome.status is DeliveryStatus.SUCCEEDED
            and not self._stop.is_set()
            and through is None
        )
        lease = dt.timedelta(seconds=self.settings.claim_seconds)
        held = await store.record(
            self.db,
            sub,
            self.name,
            slot,
            outcome,
            keep_for=lease if keep else None,
            through=through,
        )
        if not held:
            await self._let_go(sub)
        return outcome.at + lease if held and keep else None

    async def _let_go(self, sub: Claimed) -> None:
        """The position moved under the claim (a redeliver meanwhile): let the claim go
        now, so that the next round sends from the new position, not when it expires."""
        await store.release(self.db, sub, self.name)

    async def _attempt(self, client: httpx.AsyncClient, sub: Claimed, slot: Slot) -> Outcome:
        body = body_of(sub, slot, await self._currency(sub.store_id))
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature_header(sub.secrets, int(time.time()), body),
            EVENT_ID_HEADER: event_id(sub.store_id, slot.seq, slot.topic),
            TOPIC_HEADER: slot.topic.value,
        }
        sent = await send(client, sub.url, body, headers, self.settings)
        now = self.clock()
        if sent.status_code is not None and is_success(sent.status_code):
            self.counters.count("succeeded")
            return Outcome(DeliveryStatus.SUCCEEDED, sent.status_code, sent.latency_ms, None, now)
        retry = self.settings.retry
        gone = sent.status_code == GONE
        first_failure = sub.first_failure_at or now
        if gone or retry.gives_up(first_failure, now):
            self.counters.count("gave_up")
            why = sent.error or "failed"
            reason = (
                "410 Gone: the receiver asked to stop"
                if gone
                else f"{why}; retried for {retry.window} without success"
            )
            log.warning("webhook %s disabled: %s", sub.id, reason)
            return Outcome(
                DeliveryStatus.GAVE_UP,
                sent.status_code,
                sent.latency_ms,
                reason,
                now,
                None,
                WebhookState.DISABLED,
            )
        self.counters.count("failed")
        delay = retry.delay(sub.attempts + 1)
        return Outcome(
            DeliveryStatus.FAILED_RETRYING,
            sent.status_code,
            sent.latency_ms,
            sent.error,
            now,
            now + dt.timedelta(seconds=delay),
            WebhookState.FAILING,
        )


__all__ = ["AppWebhooks", "DeliverySettings", "WebhookTopic", "WebhookWorker", "body_of", "send"]

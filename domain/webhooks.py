"""Webhook rules, free of any framework: topics and the events they match, the target URL
check, the unsafe address rule, the retry schedule and the signature.

A subscription follows the store's event log with a cursor: its *position* counts two
slots per log sequence number, `2*seq` for the event at `seq` and `2*seq + 1` for the
figures change (BACKLOG_CHANGED) the same commit made; everything at or before the
position was delivered and acknowledged. The next delivery is the first matching slot
after it, and only once that one was acknowledged comes the one after (docs/webhooks.md).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import ipaddress
import random
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol
from urllib.parse import urlsplit

from ordergraph.domain.errors import DomainError, ErrorCode, Problem, problem
from ordergraph.domain.validation import SKU_RE

MAX_URL_LENGTH = 2048
MAX_SKUS = 100  # SKUs in one subscription's filter, by default (ORDERGRAPH_WEBHOOK_MAX_SKUS)
SECRET_PREFIX = "whsec_"
SIGNATURE_HEADER = "Ordergraph-Signature"
EVENT_ID_HEADER = "Ordergraph-Event-Id"
TOPIC_HEADER = "Ordergraph-Topic"


class WebhookTopic(StrEnum):
    ORDER_PLACED = "ORDER_PLACED"
    ORDER_BACKORDERED = "ORDER_BACKORDERED"
    ORDER_BACKORDER_FILLED = "ORDER_BACKORDER_FILLED"
    ORDER_PARTIALLY_SHIPPED = "ORDER_PARTIALLY_SHIPPED"
    ORDER_SHIPPED = "ORDER_SHIPPED"
    ORDER_CANCELLED = "ORDER_CANCELLED"
    ORDER_OVERDUE = "ORDER_OVERDUE"
    ORDER_EXPECTED_SHIP_DATE_CHANGED = "ORDER_EXPECTED_SHIP_DATE_CHANGED"
    INVENTORY_RECEIVED = "INVENTORY_RECEIVED"
    INVENTORY_ADJUSTED = "INVENTORY_ADJUSTED"
    INVENTORY_OUT_OF_STOCK = "INVENTORY_OUT_OF_STOCK"
    INVENTORY_BACK_IN_STOCK = "INVENTORY_BACK_IN_STOCK"
    BACKLOG_CHANGED = "BACKLOG_CHANGED"


class WebhookState(StrEnum):
    ACTIVE = "ACTIVE"  # delivering (or caught up)
    PAUSED = "PAUSED"  # keeps its cursor, sends nothing; catches up on resume
    FAILING = "FAILING"  # the head event failed and is being retried
    DISABLED = "DISABLED"  # stopped: a 410, or the retry window ran out


class DeliveryStatus(StrEnum):
    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    FAILED_RETRYING = "FAILED_RETRYING"
    GAVE_UP = "GAVE_UP"


# Each topic but BACKLOG_CHANGED is one event type of one stream of the log.
TOPIC_EVENTS: dict[WebhookTopic, tuple[str, str]] = {
    WebhookTopic.ORDER_PLACED: ("order", "PLACED"),
    WebhookTopic.ORDER_BACKORDERED: ("order", "BACKORDERED"),
    WebhookTopic.ORDER_BACKORDER_FILLED: ("order", "BACKORDER_FILLED"),
    WebhookTopic.ORDER_PARTIALLY_SHIPPED: ("order", "PARTIALLY_SHIPPED"),
    WebhookTopic.ORDER_SHIPPED: ("order", "SHIPPED"),
    WebhookTopic.ORDER_CANCELLED: ("order", "CANCELLED"),
    WebhookTopic.ORDER_OVERDUE: ("order", "OVERDUE"),
    WebhookTopic.ORDER_EXPECTED_SHIP_DATE_CHANGED: ("order", "EXPECTED_SHIP_DATE_CHANGED"),
    WebhookTopic.INVENTORY_RECEIVED: ("inventory", "RECEIVED"),
    WebhookTopic.INVENTORY_ADJUSTED: ("inventory", "ADJUSTED"),
    WebhookTopic.INVENTORY_OUT_OF_STOCK: ("inventory", "OUT_OF_STOCK"),
    WebhookTopic.INVENTORY_BACK_IN_STOCK: ("inventory", "BACK_IN_STOCK"),
}
EVENT_TOPICS = {pair: topic for topic, pair in TOPIC_EVENTS.items()}


def topic_of(stream: str, event_type: str) -> WebhookTopic | None:
    return EVENT_TOPICS.get((stream, event_type))


def event_position(seq: int) -> int:
    return 2 * seq


def backlog_position(seq: int) -> int:
    return 2 * seq + 1


def position_after(seq: int) -> int:
    """The position of a cursor at `seq`: everything at `seq` and before is done."""
    return 2 * seq + 1


def seq_of(position: int) -> int:
    return position // 2


# -- checks ---------------------------------------------------------------------


def check_topics(topics: Sequence[str], field: str = "topics") -> list[WebhookTopic]:
    """The topics, sorted without repeats; at least one."""
    if not topics:
        raise DomainError.one(ErrorCode.INVALID, "give at least one topic", [field])
    return sorted({WebhookTopic(t) for t in topics})


def check_skus(skus: Sequence[str], limit: int = MAX_SKUS, field: str = "skus") -> tuple[str, ...]:
    """A SKU filter: valid SKUs, sorted without repeats, at least one, at most `limit`.
    An empty list is refused here (the API reads `[]` on update as "no filter")."""
    for i, value in enumerate(skus):
        if not SKU_RE.fullmatch(value):
            raise DomainError.one(
                ErrorCode.INVALID,
                f"{value[:80]!r} is not a SKU (1 to 64 of A-Z, a-z, 0-9, '-', '_', '.')",
                [field, i],
            )
    found = sorted(set(skus))
    if not found:
        raise DomainError.one(ErrorCode.INVALID, "give at least one SKU", [field])
    if len(found) > limit:
        raise DomainError.one(
            ErrorCode.INVALID, f"a filter has at most {limit} SKUs, not {len(found)}", [field]
        )
    return tuple(found)


@dataclass(frozen=True)
class Target:
    url: str
    scheme: str
    host: str
    port: int


def check_url(url: str, *, allow_http: bool, field: str = "url") -> Target:
    """A webhook URL: absolute, https (http only when allowed), a host, no credentials,
    at most MAX_URL_LENGTH characters."""
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise DomainError.one(
            ErrorCode.INVALID, f"the URL is longer than {MAX_URL_LENGTH} characters", [field]
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise DomainError.one(ErrorCode.INVALID, "not a valid URL", [field]) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DomainError.one(ErrorCode.INVALID, "give an absolute https:// URL", [field])
    if parts.username is not None or parts.password is not None:
        raise DomainError.one(ErrorCode.INVALID, "the URL must not carry credentials", [field])
    if parts.fragment:
        raise DomainError.one(ErrorCode.INVALID, "the URL must not have a fragment", [field])
    if parts.scheme == "http" and not allow_http:
        raise DomainError.one(
            ErrorCode.UNSAFE_TARGET, "plain http is refused: give an https:// URL", [field]
        )
    default = 443 if parts.scheme == "https" else 80
    return Target(url=url, scheme=parts.scheme, host=parts.hostname, port=port or default)


# Cloud metadata services answer on these (the first is also link-local).
METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)


def is_unsafe_address(address: str) -> bool:
    """True for addresses a webhook must not reach: loopback, private, link-local,
    multicast, reserved, unspecified, shared (CGNAT), metadata; IPv4 inside IPv6 too."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return True
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:
            return is_unsafe_address(str(mapped))
    if ip in METADATA_ADDRESSES:
        return True
    return (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


def host_is_literal_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def unsafe_target(host: str, addresses: Iterable[str]) -> Problem | None:
    """UNSAFE_TARGET when any address the host resolved to is refused (or none)."""
    found = list(addresses)
    if not found:
        return problem(ErrorCode.UNSAFE_TARGET, f"{host} does not resolve", "url")
    for address in found:
        if is_unsafe_address(address):
            return problem(
                ErrorCode.UNSAFE_TARGET,
                f"{host} resolves to {address}, a refused address (loopback, private, "
                "link-local, metadata or reserved)",
                "url",
            )
    return None


# -- retries ----------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: `base * 2**(attempt-1)`, at most `cap`, each multiplied by a
    random factor in [1 - jitter, 1]; the head event is retried for `window` from its
    first failure, then the subscription is DISABLED."""

    base_seconds: float = 5.0
    cap_seconds: float = 3600.0
    jitter: float = 0.5
    window: dt.timedelta = dt.timedelta(hours=24)

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after the `attempt`-th failure (1-based)."""
        raw = min(self.cap_seconds, self.base_seconds * 2.0 ** max(0, min(attempt - 1, 40)))
        factor = 1.0 - self.jitter * (rng or random).random()
        return max(0.0, raw * factor)

    def gives_up(self, first_failure: dt.datetime, now: dt.datetime) -> bool:
        return now - first_failure >= self.window


def is_success(status: int) -> bool:
    return 200 <= status < 300


GONE = 410


# -- secrets and signatures -------------------------------------------------------

ROTATION_OVERLAP = dt.timedelta(hours=24)


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_hex(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of "<timestamp>.<body>" with the secret."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secrets_: Sequence[str], timestamp: int, body: bytes) -> str:
    """`t=<unix seconds>,v1=<sig>[,v1=<sig with the previous secret>]`."""
    parts = [f"t={timestamp}"] + [f"v1={signature(s, timestamp, body)}" for s in secrets_]
    return ",".join(parts)


def verify(header: str, secret: str, body: bytes, now: int, tolerance: int = 300) -> bool:
    """Whether one v1 signature in the header is the secret's, with a fresh timestamp."""
    timestamp: int | None = None
    candidates: list[str] = []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or abs(now - timestamp) > tolerance:
        return False
    expected = signature(secret, timestamp, body)
    return any(hmac.compare_digest(expected, c) for c in candidates)


# -- what storage hands back ---------------------------------------------------------


@dataclass(frozen=True)
class WebhookRecord:
    id: int
    store_id: int
    url: str
    topics: tuple[WebhookTopic, ...]
    state: WebhookState
    created_at: dt.datetime
    position: int
    attempts: int
    next_attempt_at: dt.datetime | None
    last_success_at: dt.datetime | None
    last_failure_at: dt.datetime | None
    last_error: str | None
    last_status: int | None
    skus: tuple[str, ...] | None = None  # the SKU filter; None = every SKU
    resume_position: int | None = None  # set while one event is being sent again

    @property
    def delivered_through(self) -> int | None:
        """The log sequence number the cursor stands at; None before the first event."""
        seq = seq_of(self.position)
        return seq if seq > 0 else None


@dataclass(frozen=True)
class DeliveryAttempt:
    id: int
    subscription_id: int
    seq: int
    topic: WebhookTopic
    status: DeliveryStatus
    attempt: int
    status_code: int | None
    latency_ms: int | None
    error: str | None
    at: dt.datetime
    next_attempt_at: dt.datetime | None


@dataclass(frozen=True)
class CreatedWebhook:
    webhook: WebhookRecord
    secret: str


def event_id(store_id: int, seq: int, topic: WebhookTopic) -> str:
    """A delivery's event id, unique across stores: receivers dedupe by it. The
    figures change of a commit has an id of its own, beside its event's."""
    kind = "BacklogChange" if topic is WebhookTopic.BACKLOG_CHANGED else "Event"
    raw = f"{kind}:{store_id}:{seq}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def parse_event_id(value: str) -> tuple[int, int, bool] | None:
    """(store id, seq, is the figures change) of an event id, None if it is not one."""
    try:
        padded = value + "=" * (-len(value) % 4)
        kind, store, seq = base64.urlsafe_b64decode(padded.encode()).decode().split(":")
        found = (int(store), int(seq), kind == "BacklogChange")
    except (ValueError, UnicodeError):
        return None
    if kind not in ("Event", "BacklogChange") or found[0] <= 0 or found[1] <= 0:
        return None
    return found


def slot_position(seq: int, figures: bool) -> int:
    """The position of the event at `seq`, or of its commit's figures change."""
    return backlog_position(seq) if figures else event_position(seq)


class WebhookPort(Protocol):
    """What the API needs of webhook storage and the network (ctx.webhooks)."""

    allow_private: bool
    max_skus: int

    async def resolve(self, host: str, port: int) -> list[str]:
        """The addresses the host resolves to now (empty if none)."""
        ...

    async def create(
        self,
        store_id: int,
        url: str,
        topics: Sequence[WebhookTopic],
        after_seq: int | None,
        secret: str,
        skus: Sequence[str] | None = None,
    ) -> CreatedWebhook: ...

    async def get(self, store_id: int, webhook_id: int) -> WebhookRecord | None: ...

    async def of_store(self, store_id: int) -> list[WebhookRecord]: ...

    async def update(
        self,
        store_id: int,
        webhook_id: int,
        *,
        url: str | None,
        topics: Sequence[WebhookTopic] | None,
        paused: bool | None,
        skus: Sequence[str] | None = None,
        clear_skus: bool = False,
    ) -> WebhookRecord | None: ...

    async def delete(self, store_id: int, webhook_id: int) -> bool: ...

    async def rotate(
        self, store_id: int, webhook_id: int, secret: str, overlap: dt.timedelta
    ) -> WebhookRecord | None: ...

    async def redeliver(
        self, store_id: int, webhook_id: int, after_seq: int
    ) -> WebhookRecord | None: ...

    async def redeliver_event(
        self, store_id: int, webhook_id: int, seq: int, figures: bool
    ) -> WebhookRecord | None:
        """Send the one event (or figures change) at `seq` again, then go on from where
        the cursor was. DomainError INVALID if the subscription never delivered it or it
        does not match the subscription; None if the subscription is not found."""
        ...

    async def deliveries(
        self, store_id: int, webhook_id: int, first: int, before_id: int | None
    ) -> list[DeliveryAttempt]: ...

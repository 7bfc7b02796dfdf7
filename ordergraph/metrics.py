"""Prometheus metrics of one app, in a registry of its own, and the schema extension that
feeds them.

Counted as they happen (by `Telemetry`, a schema extension, so HTTP and websocket
operations alike):

- ``ordergraph_graphql_operations_total{operation,type,outcome}``
- ``ordergraph_graphql_operation_duration_seconds{operation,type}`` (queries and
  mutations; a subscription lasts as long as its client wants, so it is not timed)

Read when scraped (by `_LiveCollector`): open websockets, live subscriptions, the frames
fan-out groups wrote ready or the ordinary way, how far the event-log tail is behind, and
the database pool in use.

Outcomes, worst first when a response carries several errors:

- ``internal_error``: a fault of ours (masked as "Internal server error" for the client);
- ``graphql_error``: the document was refused: syntax, validation, limits, introspection
  switched off, a malformed request;
- ``user_error``: the API refused it for the client's reason (no or bad token, missing
  scope, not found, invalid input, a slow subscriber cut off), either as an error with
  an ``extensions.code`` or as a non-empty ``userErrors`` in a mutation payload;
- ``timeout``: stopped at its deadline (ORDERGRAPH_OPERATION_TIMEOUT_MS);
- ``cancelled``: stopped because its HTTP client went away;
- ``ok``: none of these.

Operation names are chosen by clients, so the label is bounded: the first
``max_operations`` distinct names are kept, later ones are counted as ``other``;
operations without a name are ``anonymous``. Only a client whose token was accepted
can add a name to the kept ones: a stranger's names are counted as ``other`` unless
they are already kept, so strangers cannot fill the labels.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from graphql import GraphQLError
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.registry import Collector
from strawberry.extensions import SchemaExtension

from ordergraph.live import fanout
from ordergraph.live import frames as live_frames
from ordergraph.logs import RequestInfo, current_request
from ordergraph.schema.errors import is_unexpected

if TYPE_CHECKING:
    import datetime as dt

    from ordergraph.live.hub import EventHub
    from ordergraph.storage.db import Database

log = logging.getLogger("ordergraph.metrics")
request_log = logging.getLogger("ordergraph.request")

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
OUTCOMES = ("ok", "user_error", "graphql_error", "internal_error", "timeout", "cancelled")
ANONYMOUS = "anonymous"
OTHER = "other"
_NAME = re.compile(r"^[_A-Za-z][_0-9A-Za-z]{0,99}$")
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_LOCK_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
_CHANGES_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


class OperationNames:
    """Maps client-chosen operation names to a bounded set of label values."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._kept: set[str] = set()

    def is_new(self, name: str | None) -> bool:
        """Whether `name` would take a free label if its client is trusted."""
        return bool(name) and name not in self._kept and len(self._kept) < self.limit

    def label(self, name: str | None, trusted: bool = True) -> str:
        """The label of `name`; only a `trusted` (authenticated) client adds new ones."""
        if not name:
            return ANONYMOUS
        if name in self._kept:
            return name
        if not trusted:
            return OTHER
        if len(self._kept) < self.limit and _NAME.match(name) and name not in (ANONYMOUS, OTHER):
            self._kept.add(name)
            return name
        return OTHER


def outcome_of(errors: Sequence[GraphQLError] | None, data: Any = None) -> str:
    """Classify a result (its errors before masking, and its data)."""
    if errors:
        if any(is_unexpected(error) for error in errors):
            return "internal_error"
        if any(error.original_error is None for error in errors):
            return "graphql_error"
        return "user_error"
    if isinstance(data, dict):
        for payload in data.values():
            if isinstance(payload, dict) and payload.get("userErrors"):
                return "user_error"
    return "ok"


class Metrics:
    """The metrics of one app. Several apps in one process each have their own registry."""

    def __init__(self, *, max_operations: int = 50) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.names = OperationNames(max_operations)
        self.operations = Counter(
            "ordergraph_graphql_operations",
            "GraphQL operations handled, by operation name, type and outcome.",
            ["operation", "type", "outcome"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "ordergraph_graphql_operation_duration_seconds",
            "Time to parse, validate and execute a query or mutation.",
            ["operation", "type"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.lock_hold = Histogram(
            "ordergraph_store_lock_hold_seconds",
            "Time a change held its store's lock, from taking it to commit.",
            buckets=_LOCK_BUCKETS,
            registry=self.registry,
        )
        self.unit_changes = Histogram(
            "ordergraph_store_unit_changes",
            "Changes run in one unit of work of the mutation queues (one lock, one commit).",
            buckets=_CHANGES_BUCKETS,
            registry=self.registry,
        )
        self.queued_changes = Gauge(
            "ordergraph_store_queued_changes",
            "Changes waiting in this process's store queues for their unit of work.",
            registry=self.registry,
        )
        self.websockets = 0
        self.live = _LiveCollector(self)
        self.registry.register(self.live)
        self.webhooks = _WebhookCollector()
        self.registry.register(self.webhooks)
        ProcessCollector(registry=self.registry)

    def record(
        self,
        name: str | None,
        op_type: str,
        outcome: str,
        seconds: float | None,
        trusted: bool = True,
    ) -> str:
        """Count one operation; returns the label its name was counted under."""
        label = self.names.label(name, trusted)
        self.operations.labels(label, op_type, outcome).inc()
        if seconds is not None:
            self.duration.labels(label, op_type).observe(seconds)
        return label

    def watch(self, db: Database, hub: EventHub, clock: Callable[[], dt.datetime]) -> None:
        db.on_lock_held.append(self.lock_hold.observe)
        self.live.db = db
        self.live.hub = hub
        self.live.clock = clock

    def watch_webhooks(
        self, db: Database, worker: Any | None, clock: Callable[[], dt.datetime]
    ) -> None:
        """Webhook delivery's counters (`worker.counters.by_outcome`) and lag."""
        self.webhooks.db = db
        self.webhooks.worker = worker
        self.webhooks.clock = clock

    async def render(self) -> bytes:
        """The exposition text, after reading what needs the database (the tail lag,
        the webhook lag)."""
        await self.live.refresh()
        await self.webhooks.refresh()
        return generate_latest(self.registry)


class _LiveCollector(Collector):
    """Gauges read at scrape time rather than kept up to date on every change."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.db: Database | None = None
        self.hub: EventHub | None = None
        self.clock: Callable[[], dt.datetime] | None = None
        self.tail_lag = 0.0

    async def refresh(self) -> None:
        if self.hub is None or self.clock is None:
            return
        try:
            self.tail_lag = await asyncio.wait_for(self.hub.tail_lag(self.clock()), timeout=2)
        except Exception as err:  # the database is down or slow: say "unknown"
            log.warning("cannot measure the event-log tail lag: %s", err)
            self.tail_lag = math.nan

    def describe(self) -> Iterable[Metric]:
        return list(self._gauges())

    def collect(self) -> Iterable[Metric]:
        return list(self._gauges())

    def _gauges(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "ordergraph_websocket_connections",
            "Websocket connections open on /graphql.",
            value=self.metrics.websockets,
        )
        hub = self.hub
        if hub is not None:
            yield GaugeMetricFamily(
                "ordergraph_subscriptions_active",
                "Live subscriptions attached to this process's event-log tail.",
                value=hub.subscriber_count,
            )
            yield GaugeMetricFamily(
                "ordergraph_subscriptions_fanout",
                "Live subscriptions served by a fan-out group of identical subscriptions "
                "(one execution and one JSON payload per event for the whole group).",
                value=hub.sink_count,
            )
            frames = CounterMetricFamily(
                "ordergraph_fanout_frames",
                "Result frames fan-out groups sent to their members: `ready` written "
                "straight to the socket's transport, `ordinary` through the server's send "
                "(the socket was busy, or its server connection is not one ordergraph "
                "recognizes).",
                labels=["path"],
            )
            frames.add_metric(["ready"], float(live_frames.written))
            frames.add_metric(["ordinary"], float(fanout.ordinary_frames))
            yield frames
            yield GaugeMetricFamily(
                "ordergraph_event_tail_lag_seconds",
                "Age of the oldest committed event the tail has not yet handed to "
                "subscribers (0 when it is caught up; NaN when it cannot be measured).",
                value=self.tail_lag,
            )
            yield GaugeMetricFamily(
                "ordergraph_event_tail_seconds_since_read",
                "Seconds since the tail last read the event log (it reads at least "
                "every ORDERGRAPH_TAIL_POLL_MS while it runs).",
                value=max(0.0, time.monotonic() - hub.last_pump_at),
            )
            if not hub.db.is_sqlite:
                yield GaugeMetricFamily(
                    "ordergraph_event_tail_listener_connected",
                    "1 when the PostgreSQL LISTEN connection for commit wake-ups is up.",
                    value=1.0 if hub.listener_connected else 0.0,
                )
        if self.db is not None:
            pool: Any = self.db.engine.pool
            checked_out = getattr(pool, "checkedout", None)
            size = getattr(pool, "size", None)
            if callable(checked_out):
                yield GaugeMetricFamily(
                    "ordergraph_db_pool_in_use",
                    "Database connections checked out of the pool.",
                    value=float(checked_out()),
                )
            if callable(size):
                yield GaugeMetricFamily(
                    "ordergraph_db_pool_size",
                    "Database connections the pool keeps (it may open as many again as overflow).",
                    value=float(size()),
                )


class _WebhookCollector(Collector):
    """Webhook deliveries by outcome (this process) and lag per subscription state."""

    STATES = ("ACTIVE", "PAUSED", "FAILING", "DISABLED")
    OUTCOMES = ("succeeded", "failed", "gave_up")

    def __init__(self) -> None:
        self.db: Database | None = None
        self.worker: Any | None = None
        self.clock: Callable[[], dt.datetime] | None = None
        self.lag: dict[str, float] = {}

    async def refresh(self) -> None:
        if self.db is None or self.clock is None:
            return
        from ordergraph.storage.webhooks import lag_by_state

        try:
            self.lag = await asyncio.wait_for(lag_by_state(self.db, self.clock()), timeout=2)
        except Exception as err:  # the database is down or slow: say "unknown"
            log.warning("cannot measure the webhook lag: %s", err)
            self.lag = {state: math.nan for state in self.STATES}

    def describe(self) -> Iterable[Metric]:
        return list(self._metrics())

    def collect(self) -> Iterable[Metric]:
        return list(self._metrics())

    def _metrics(self) -> Iterator[Metric]:
        deliveries = CounterMetricFamily(
            "ordergraph_webhook_deliveries",
            "Webhook delivery attempts this process made, by outcome: succeeded (2xx), "
            "failed (retried later), gave_up (the subscription was disabled).",
            labels=["outcome"],
        )
        counts = self.worker.counters.by_outcome if self.worker is not None else {}
        for outcome in self.OUTCOMES:
            deliveries.add_metric([outcome], float(counts.get(outcome, 0)))
        yield deliveries
        lag = GaugeMetricFamily(
            "ordergraph_webhook_lag_seconds",
            "Per subscription state, the age of the oldest event not yet delivered to a "
            "subscription in that state (0 when all are caught up; NaN when unknown).",
            labels=["state"],
        )
        for state in self.STATES:
            lag.add_metric([state], self.lag.get(state, 0.0))
        yield lag


class Telemetry(SchemaExtension):
    """Counts each operation by name, type and outcome, and times queries and mutations.

    It classifies the errors of the result as they were raised (the execution context
    keeps them, while the masking extension replaces only the result's list), so a
    fault of ours is counted as ``internal_error`` though the client is told less.
    Subscriptions are counted when they end (completed, or their client went away).
    """

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    async def on_operation(self) -> AsyncIterator[None]:
        started = time.perf_counter()
        cancelled = refused = False
        try:
            yield
        except asyncio.CancelledError:
            cancelled = True
            raise
        except Exception:  # refused by the transport: a mutation over GET, a subscription
            refused = True  # over HTTP, an operationName that names no operation
            raise
        finally:  # also when a subscription ends because its client went away
            try:
                context = self.execution_context
                trusted = _authenticated(context.context)
                if (
                    not trusted
                    and not cancelled
                    and self.metrics.names.is_new(context.operation_name)
                ):
                    trusted = await _token_accepted(context.context)
                self._done(started, cancelled, trusted, refused)
            except Exception:  # counting must never break a request
                log.exception("recording an operation's metrics failed")

    def _done(self, started: float, cancelled: bool, trusted: bool, refused: bool) -> None:
        context = self.execution_context
        name = context.operation_name
        try:
            op_type = context.operation_type.value
        except Exception:  # no document: it did not parse
            op_type = "unknown"
        result = context.result
        data = getattr(result, "data", None)
        outcome = outcome_of(context.pre_execution_errors, data)
        info = current_request.get()
        if refused:
            outcome = "graphql_error"
        if cancelled and info is not None and info.cancelled:
            outcome = info.cancelled  # an HTTP operation stopped at its deadline, or abandoned
        seconds = time.perf_counter() - started
        self.metrics.record(
            name,
            op_type,
            outcome,
            None if op_type == "subscription" else seconds,
            trusted=trusted,
        )
        if info is None:
            return
        if info.transport == "http":
            info.operation = name
            info.operation_type = op_type
            info.outcome = outcome
        else:  # one line per operation over a websocket, when it ends
            request_log.info(
                "websocket operation",
                extra={
                    "request_id": info.request_id,
                    "operation": name,
                    "operation_type": op_type,
                    "outcome": outcome,
                    "duration_ms": round(seconds * 1000, 2),
                },
            )

    def on_execute(self) -> Iterator[None]:
        self.name_operation()
        yield

    def name_operation(self) -> None:
        """Called when execution starts: the document has parsed by now, so the operation
        is known, and later log lines of this request name it."""
        info = current_request.get()
        if info is not None:
            name = self.execution_context.operation_name
            if info.transport == "http":
                info.operation = name
            elif name is not None:
                current_request.set(_with_operation(info, name))


def _authenticated(context: Any) -> bool:
    """Whether the request's token was already looked up and accepted (an API key or the
    admin token), without looking it up (the fast path; `_token_accepted` asks)."""
    with contextlib.suppress(Exception):
        principal = getattr(context, "known_principal", None)
        if principal is not None:
            return bool(getattr(principal, "is_admin", False) or principal.key is not None)
    return False


async def _token_accepted(context: Any) -> bool:
    """Look the request's token up (once: the context keeps the answer), if it has one."""
    if not getattr(context, "authorization", None) or not hasattr(context, "principal"):
        return False
    try:
        who = await context.principal()
    except Exception:
        return False
    return bool(getattr(who, "is_admin", False) or getattr(who, "key", None) is not None)


def _with_operation(info: RequestInfo, name: str) -> RequestInfo:
    return replace(info, operation=name)

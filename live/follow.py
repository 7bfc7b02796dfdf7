"""How a subscription follows its store's log: replay then live, shared ready frames, and
the hand-over to a fan-out group once it has caught up.

The schema declares the subscription fields (schema/subscriptions.py) and shares one
execution per event among identical subscriptions (schema/sharing.py); this module moves
the events: from the hub's stream to the subscription, or as a ready `next` frame
straight to the socket, and closes the connection of a subscriber that stopped reading.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

from graphql import ExecutionResult
from starlette.websockets import WebSocketDisconnect

from ordergraph.domain.model import Store
from ordergraph.domain.paging import BadPageRequest, decode_cursor, encode_cursor
from ordergraph.domain.reads import LiveEvent
from ordergraph.domain.tallies import Figures
from ordergraph.live import fanout
from ordergraph.live.figures import FiguresFeed, store_figures
from ordergraph.live.frames import frame_socket
from ordergraph.live.hub import EventHub, Subscriber, SubscriberOverflow
from ordergraph.resolvers.context import ApiError, Context, Loaders
from ordergraph.schema.sharing import LIVE_EXECUTOR, shared_results

log = logging.getLogger("ordergraph.subscriptions")


@dataclass(frozen=True)
class LiveOperation:
    """What a websocket handler tells a subscription about its operation: its id, the
    type of the protocol's result message ("next" for graphql-transport-ws, "data" for the
    legacy graphql-ws), and whether the client stopped it."""

    id: str
    message_type: str
    stopped: Callable[[], bool]

    @property
    def completed(self) -> bool:
        return self.stopped()

    def frame(self, payload: str) -> str:
        """The protocol's result message around a ready JSON payload."""
        return frame_prefix(self.id, self.message_type) + payload + "}"


def frame_prefix(operation_id: str, message_type: str) -> str:
    return '{"id":' + json.dumps(operation_id) + ',"type":"' + message_type + '","payload":'


# Set by either websocket protocol's handler in each operation's task: the operation
# whose result frames a subscription may write itself (see `_send_shared`).
LIVE_OPERATION: ContextVar[LiveOperation | None] = ContextVar(
    "ordergraph_live_operation", default=None
)
OVERFLOW_CLOSE_CODE = 4503  # documented: the subscriber stopped reading and fell behind


def _position(after: str | None) -> int | None:
    if after is None:
        return None
    try:
        value = decode_cursor(after, 1)[0]
    except BadPageRequest:
        raise ApiError("invalid cursor", "INVALID") from None
    if not isinstance(value, int) or value < 0:
        raise ApiError("invalid cursor", "INVALID")
    return value


async def live_events(
    hub: EventHub,
    ctx: Context,
    store: Store,
    after: str | None,
    stream: str,
    on_subscribe: Callable[[Subscriber], None] | None = None,
) -> AsyncIterator[LiveEvent]:
    try:
        async for event in hub.stream(
            store.id,
            _position(after),
            streams=frozenset((stream,)),
            on_overflow=lambda: close_slow(ctx),
            on_subscribe=on_subscribe,
        ):
            ctx.loaders = Loaders(ctx.db)  # each event is resolved against fresh data
            yield event
    except SubscriberOverflow:
        raise slow_consumer(ctx) from None


def slow_consumer(ctx: Context) -> ApiError:
    close_slow(ctx)
    return ApiError("this subscriber fell too far behind", "SLOW_CONSUMER")


def close_slow(ctx: Context) -> None:
    """Close the connection of a subscriber that stopped reading; others go on unaffected.

    The close frame goes out after what is already in the socket's buffers, so a client
    that reads again sees the events it had, then 4503. One close per connection.
    """
    websocket = ctx.request
    if websocket is None or not hasattr(websocket, "close") or ctx.closing:
        return
    ctx.closing = True
    log.warning(
        "closing a websocket whose subscriber fell too far behind (request %s)", ctx.request_id
    )

    async def close() -> None:
        with contextlib.suppress(Exception):
            await websocket.close(code=OVERFLOW_CLOSE_CODE, reason="subscriber too slow")

    task = asyncio.get_running_loop().create_task(close())
    _closing.add(task)
    task.add_done_callback(_closing.discard)


_closing: set[asyncio.Task[None]] = set()


async def _send_shared(ctx: Context, payload_type: type, event: LiveEvent) -> bool | None:
    """Send an event whose result identical subscriptions already have, as a ready frame.

    Once the first subscriber of a key has executed a live event (SharedEventExecutor),
    the JSON of that result is made once and every other subscriber with the same key
    writes it in its own `next` frame straight to its socket, instead of passing the
    event through the per-operation result pipeline (per-event executor, extensions,
    message dict and JSON per subscriber). Returns False when this subscriber must take
    the ordinary path: not graphql-transport-ws, no shared result yet (it is the first),
    or the result had errors. Returns None when the connection is gone: the stream ends.
    The subscriber's own stream still decides which events it gets and in what order;
    only how the frame is made changes.
    """
    operation = LIVE_OPERATION.get()
    executor = LIVE_EXECUTOR.get()
    websocket = ctx.request
    if operation is None or executor is None or executor._share_key is None:
        return False
    key = (payload_type, *executor._share_key)
    memo = shared_results(event)
    pending: asyncio.Future[ExecutionResult | None] | None = memo.get(key)
    if pending is None:
        return False  # the first subscriber of this key: it executes the event
    payload = fanout.cached_payload(event, key)
    if payload is None:
        shared = await asyncio.shield(pending) if not pending.done() else pending.result()
        if shared is None:
            return False  # it had errors: each subscriber executes the event itself
        payload = fanout.payload_json(event, key, shared)
    if operation.completed or not hasattr(websocket, "send_text"):
        return False
    frame = operation.frame(payload)
    try:
        await websocket.send_text(frame)
    except (WebSocketDisconnect, RuntimeError, OSError):
        return None
    return True


class _Follower:
    """Moves a caught-up live subscription into its fan-out group (live.fanout).

    After this subscription has sent a live event as a ready frame, and nothing else is
    waiting for it, the hub's pump hands its events to the group directly. Before the
    subscription sends anything itself again (the group let it go), the frames the group
    took for it are written first, so the order holds.
    """

    def __init__(
        self,
        ctx: Context,
        payload_type: type,
        make_payload: Callable[[LiveEvent], Any],
        accepts: Callable[[LiveEvent], bool],
    ) -> None:
        self.ctx = ctx
        self.payload_type = payload_type
        self.make_payload = make_payload
        self.accepts = accepts
        self.subscriber: Subscriber | None = None
        self.member: fanout.Member | None = None

    def subscribed(self, subscriber: Subscriber) -> None:
        self.subscriber = subscriber

    async def settle(self) -> None:
        """Before sending: the group's frames for this subscription are out first."""
        member = self.member
        if member is not None and self.subscriber is not None and self.subscriber.sink is None:
            self.member = None
            await member.drained()
            member.close()

    def join(self, event: LiveEvent) -> None:
        subscriber = self.subscriber
        operation = LIVE_OPERATION.get()
        executor = LIVE_EXECUTOR.get()
        websocket = self.ctx.request
        if (
            self.member is not None
            or not event.live  # a replayed event: the stream may hold more from the log
            or subscriber is None
            or subscriber.overflowed
            or not subscriber.queue.empty()
            or operation is None
            or executor is None
            or executor._share_key is None
            or not hasattr(websocket, "send_text")
        ):
            return
        make_payload = self.make_payload

        async def execute(live: LiveEvent) -> ExecutionResult:
            per_event = executor.build_per_event_executor(make_payload(live))
            result = per_event.execute_operation(False)
            if executor.is_awaitable(result):
                result = await result
            assert isinstance(result, ExecutionResult)
            return result

        self.member = fanout.join(
            (self.ctx.db, self.payload_type, *executor._share_key),
            subscriber,
            websocket.send_text,
            frame_prefix(operation.id, operation.message_type),
            self.accepts,
            execute=execute,
            context=self.ctx,
            frames=frame_socket(websocket.scope) if hasattr(websocket, "scope") else None,
        )
        if not subscriber.hand_to(self.member.offer, event.record.seq):
            self.leave()

    def leave(self) -> None:
        if self.member is not None:
            self.member.close()
            self.member = None


_Payload = TypeVar("_Payload")


class LiveDelivery:
    """What the subscription fields ask of live delivery (the context's `live`).

    `follow` streams a store's events to one subscription; `figures` gives a store's
    figures at once, then after each burst of changes has settled and at each instant
    orders become overdue, computed once for all of the store's subscribers.
    """

    def __init__(self, hub: EventHub, clock: Callable[[], dt.datetime]) -> None:
        self.hub = hub
        compute, position = store_figures(hub.db, clock)
        self.feed = FiguresFeed(hub, compute, position, clock)

    async def follow(
        self,
        ctx: Context,
        store: Store,
        after: str | None,
        stream: str,
        wanted: Callable[[LiveEvent], bool],
        make_payload: Callable[[LiveEvent], _Payload],
        payload_type: type,
    ) -> AsyncIterator[_Payload]:
        """The events a subscription wants, as payloads; shared and fanned out when it can.

        Payloads are yielded only when this subscription must send an event itself; events
        it writes as ready frames, or that its fan-out group sends, are not yielded.
        """
        follower = _Follower(ctx, payload_type, make_payload, wanted)
        if ctx.resume_after is not None:  # an SSE client reconnecting (Last-Event-ID)
            after = ctx.resume_after
        try:
            async for event in live_events(
                self.hub, ctx, store, after, stream, follower.subscribed
            ):
                if not wanted(event):
                    follower.join(event)  # passed over: it may hand on the next ones
                    continue
                await follower.settle()
                sent = await _send_shared(ctx, payload_type, event)
                if sent is None:
                    return
                if not sent:
                    ctx.stream_cursor = encode_cursor([event.record.seq])
                    yield make_payload(event)  # sent by the time the generator resumes
                follower.join(event)
        finally:
            follower.leave()

    def figures(self, store: Store) -> AsyncGenerator[Figures]:
        """The store's figures now, then each time they change (live.figures: computed
        once per change for every subscriber in the process)."""
        return self.feed.watch(store.id)

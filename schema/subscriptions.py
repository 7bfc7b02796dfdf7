"""The Subscription root: order and inventory events from the log, and the live figures."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextvars import ContextVar
from typing import Any, Protocol, TypeVar

import strawberry
from graphql import ExecutionResult
from graphql.pyutils import AwaitableOrValue
from starlette.websockets import WebSocketDisconnect
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from ordergraph.domain.events import InventoryEventType, OrderEventType
from ordergraph.domain.model import Store
from ordergraph.domain.paging import BadPageRequest, decode_cursor, encode_cursor
from ordergraph.live import fanout
from ordergraph.live.hub import LiveEvent, Subscriber, SubscriberOverflow
from ordergraph.resolvers import figures as fig
from ordergraph.resolvers import ids
from ordergraph.resolvers.context import ApiError, Context, Loaders
from ordergraph.schema.figures import BacklogSummary
from ordergraph.schema.types import Ctx, OrderEventType_, OrderType, ProductType

log = logging.getLogger("ordergraph.subscriptions")


class LiveOperation(Protocol):
    """What the websocket handler tells a subscription about its operation (see below)."""

    id: str
    completed: bool


# Set by the graphql-transport-ws handler in each operation's task: the operation whose
# `next` frames a subscription may write itself (see `_send_shared`).
LIVE_OPERATION: ContextVar[LiveOperation | None] = ContextVar(
    "ordergraph_live_operation", default=None
)
# Set by SharedEventExecutor in the same task: the subscription's executor and its key.
_LIVE_EXECUTOR: ContextVar[SharedEventExecutor | None] = ContextVar(
    "ordergraph_live_executor", default=None
)
OVERFLOW_CLOSE_CODE = 4503  # documented: the subscriber stopped reading and fell behind
COALESCE_SECONDS = 0.25


@strawberry.type(name="InventoryEvent")
class InventoryEventObject:
    cursor: str
    type: InventoryEventType
    occurred_at: dt.datetime
    on_hand: int = strawberry.field(description="Right after this event.")
    available: int
    backordered: int
    _event: strawberry.Private[LiveEvent]
    _shared: strawberry.Private[dict[Any, Any] | None] = None

    @classmethod
    def of(cls, event: LiveEvent) -> InventoryEventObject:
        data: dict[str, Any] = event.record.data
        return cls(
            cursor=encode_cursor([event.record.seq]),
            type=InventoryEventType(event.record.type),
            occurred_at=event.record.occurred_at,
            on_hand=int(data["onHand"]),
            available=int(data["available"]),
            backordered=int(data["backordered"]),
            _event=event,
            _shared=_shared_results(event),
        )

    @strawberry.field
    async def product(self, info: Ctx) -> ProductType:
        found = self._event.product
        if found is None:
            record = self._event.record
            assert record.product_id is not None
            found = await info.context.loaders.product.load((record.store_id, record.product_id))
        assert found is not None
        return ProductType(_product=found)


async def _store(ctx: Context, store_gid: str) -> Store:
    store = await ctx.visible_store(ids.store_id(store_gid), "READ")
    if store is None:
        raise ApiError("store not found", "NOT_FOUND")
    return store


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


async def _live(
    ctx: Context,
    store: Store,
    after: str | None,
    stream: str,
    on_subscribe: Callable[[Subscriber], None] | None = None,
) -> AsyncIterator[LiveEvent]:
    hub = ctx.hub
    if hub is None:
        raise ApiError("subscriptions are not available on this server", "UNAVAILABLE")
    try:
        async for event in hub.stream(
            store.id,
            _position(after),
            streams=frozenset((stream,)),
            on_overflow=lambda: _close_slow(ctx),
            on_subscribe=on_subscribe,
        ):
            ctx.loaders = Loaders(ctx.db)  # each event is resolved against fresh data
            yield event
    except SubscriberOverflow:
        raise _slow_consumer(ctx) from None


def _slow_consumer(ctx: Context) -> ApiError:
    _close_slow(ctx)
    return ApiError("this subscriber fell too far behind", "SLOW_CONSUMER")


def _close_slow(ctx: Context) -> None:
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


def _shared_results(event: LiveEvent) -> dict[Any, Any]:
    """Where SharedEventExecutor keeps the event's results (no reference back to payloads)."""
    results: dict[Any, Any] = event.memo.setdefault(SharedEventExecutor, {})
    return results


def _order_event(event: LiveEvent) -> OrderEventType_:
    """The event as a GraphQL object, made once for all the subscribers it reaches."""
    found: OrderEventType_ | None = event.memo.get(OrderEventType_)
    if found is None:
        found = OrderEventType_.of(event.record)
        if event.order is not None:
            found._preloaded = OrderType(_order=event.order)
        found._shared = _shared_results(event)
        event.memo[OrderEventType_] = found
    return found


def _inventory_event(event: LiveEvent) -> InventoryEventObject:
    found: InventoryEventObject | None = event.memo.get(InventoryEventObject)
    if found is None:
        found = event.memo[InventoryEventObject] = InventoryEventObject.of(event)
    return found


class SharedEventExecutor(StrawberryGraphQLCoreExecutionContext):
    """Executes a live event once for all identical subscriptions.

    N subscribers of one store would otherwise each execute the same selection set on
    the same event. A subscription's per-event execution is keyed by its payload class,
    its document and operation name, its variables, and what its token may see (scopes
    and stores); the first subscriber to reach an event executes it and leaves the
    result in the event's memo (`LiveEvent.memo`, gone with the event), and every
    subscriber with the same key is sent that result. Which events a subscriber gets,
    once each and in order, is still decided by its own stream (EventHub.stream); only
    the work of turning an event into a result is shared. A result with errors is not
    shared: each of those subscribers executes the event itself. Replayed events have a
    memo of their own, so they are executed per subscriber.
    """

    _per_event = False
    _share_key: tuple[Any, ...] | None = None

    def build_per_event_executor(self, payload: Any) -> SharedEventExecutor:
        if self._share_key is None:
            self._share_key = self._key()
            _LIVE_EXECUTOR.set(self)
        executor = super().build_per_event_executor(payload)
        assert isinstance(executor, SharedEventExecutor)
        executor._per_event = True
        return executor

    def _key(self) -> tuple[Any, ...] | None:
        loc = self.operation.loc
        context = self.context_value
        who = context.known_principal if isinstance(context, Context) else None
        if loc is None or who is None or who.key is None:
            return None
        try:
            variables = json.dumps(self.variable_values.coerced, sort_keys=True, default=repr)
        except (TypeError, ValueError):
            return None
        name = self.operation.name.value if self.operation.name else None
        return (loc.source.body, name, variables, who.key.scopes, who.key.store_ids)

    def execute_operation(self, serially: bool | None = None) -> AwaitableOrValue[Any]:
        memo = getattr(self.root_value, "_shared", None) if self._per_event else None
        if memo is None or self._share_key is None:
            return super().execute_operation(serially)
        key = (type(self.root_value), *self._share_key)
        pending: asyncio.Future[ExecutionResult | None] | None = memo.get(key)
        if pending is not None and pending.done():
            shared = pending.result()
            if shared is not None:  # the common case: no coroutine, no copy of the data
                return ExecutionResult(shared.data, None, shared.extensions)
        return self._execute_shared(memo, key, serially)

    async def _execute_alone(self, serially: bool | None) -> Any:
        result = super().execute_operation(serially)
        return await result if self.is_awaitable(result) else result

    async def _execute_shared(
        self, memo: dict[Any, Any], key: tuple[Any, ...], serially: bool | None
    ) -> Any:
        pending: asyncio.Future[ExecutionResult | None] | None = memo.get(key)
        if pending is not None:
            shared = await asyncio.shield(pending)
            if shared is None:
                return await self._execute_alone(serially)
            return ExecutionResult(shared.data, None, shared.extensions)
        pending = asyncio.get_running_loop().create_future()
        memo[key] = pending
        result: Any = None
        try:
            result = await self._execute_alone(serially)
        finally:
            shareable = isinstance(result, ExecutionResult) and not result.errors
            pending.set_result(result if shareable else None)
        return result


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
    executor = _LIVE_EXECUTOR.get()
    websocket = ctx.request
    if operation is None or executor is None or executor._share_key is None:
        return False
    key = (payload_type, *executor._share_key)
    memo = _shared_results(event)
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
    frame = '{"id":' + json.dumps(operation.id) + ',"type":"next","payload":' + payload + "}"
    try:
        await websocket.send_text(frame)
    except (WebSocketDisconnect, RuntimeError, OSError):
        return None
    return True


class _Follower:
    """Moves a caught-up live subscription into its fan-out group (schema.fanout).

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
        executor = _LIVE_EXECUTOR.get()
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
            operation.id,
            self.accepts,
            execute=execute,
            context=self.ctx,
        )
        if not subscriber.hand_to(self.member.offer, event.record.seq):
            self.leave()

    def leave(self) -> None:
        if self.member is not None:
            self.member.close()
            self.member = None


_Payload = TypeVar("_Payload")
_PAYLOAD_TYPES: dict[str, type] = {"order": OrderEventType_, "inventory": InventoryEventObject}


async def _follow(
    ctx: Context,
    store: Store,
    after: str | None,
    stream: str,
    wanted: Callable[[LiveEvent], bool],
    make_payload: Callable[[LiveEvent], _Payload],
) -> AsyncIterator[_Payload]:
    """The events a subscription wants, as payloads; shared and fanned out when it can.

    Payloads are yielded only when this subscription must send an event itself; events
    it writes as ready frames, or that its fan-out group sends, are not yielded.
    """
    payload_type = _PAYLOAD_TYPES[stream]
    follower = _Follower(ctx, payload_type, make_payload, wanted)
    try:
        async for event in _live(ctx, store, after, stream, follower.subscribed):
            if not wanted(event):
                follower.join(event)  # passed over: it may hand on the next ones
                continue
            await follower.settle()
            sent = await _send_shared(ctx, payload_type, event)
            if sent is None:
                return
            if not sent:
                yield make_payload(event)  # sent by the time the generator resumes
            follower.join(event)
    finally:
        follower.leave()


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Every order event of the store from `after` on (null: from now), then "
        "live. Resuming with the cursor of the last event received delivers each later "
        "event exactly once, in order."
    )
    async def order_events(
        self,
        info: Ctx,
        store_id: strawberry.ID,
        after: str | None = None,
        types: list[OrderEventType] | None = None,
        order_id: strawberry.ID | None = None,
    ) -> AsyncGenerator[OrderEventType_, None]:
        ctx = info.context
        store = await _store(ctx, str(store_id))
        wanted_order: int | None = None
        if order_id is not None:
            ref = ids.scoped_id(str(order_id), "Order")
            if ref is None or ref[0] != store.id:
                raise ApiError("order not found", "NOT_FOUND")
            wanted_order = ref[1]
        wanted_types = {t.value for t in types} if types else None

        def wanted(event: LiveEvent) -> bool:
            record = event.record
            return (
                record.stream == "order"
                and (wanted_types is None or record.type in wanted_types)
                and (wanted_order is None or record.order_id == wanted_order)
            )

        with ctx.subscription_slot():
            async for item in _follow(ctx, store, after, "order", wanted, _order_event):
                yield item

    @strawberry.subscription(
        description="Every inventory event of the store from `after` on, then live."
    )
    async def inventory_events(
        self, info: Ctx, store_id: strawberry.ID, after: str | None = None, sku: str | None = None
    ) -> AsyncGenerator[InventoryEventObject, None]:
        ctx = info.context
        store = await _store(ctx, str(store_id))

        def wanted(event: LiveEvent) -> bool:
            record = event.record
            return record.stream == "inventory" and (sku is None or record.data.get("sku") == sku)

        with ctx.subscription_slot():
            async for item in _follow(ctx, store, after, "inventory", wanted, _inventory_event):
                yield item

    @strawberry.subscription(
        description="The store's current summary at once, then again whenever it changes "
        "(at most a few pushes a second)."
    )
    async def backlog_changed(
        self, info: Ctx, store_id: strawberry.ID
    ) -> AsyncGenerator[BacklogSummary, None]:
        ctx = info.context
        store = await _store(ctx, str(store_id))
        hub = ctx.hub
        if hub is None:
            raise ApiError("subscriptions are not available on this server", "UNAVAILABLE")
        with ctx.subscription_slot():
            subscriber = await hub.subscribe(store.id, on_overflow=lambda: _close_slow(ctx))
            try:
                yield BacklogSummary.of(await fig.backlog(ctx, store, None), store.currency_code)
                while True:
                    changed = [await subscriber.queue.get()]
                    await asyncio.sleep(COALESCE_SECONDS)  # let a burst of changes settle
                    while not subscriber.queue.empty():
                        changed.append(subscriber.queue.get_nowait())
                    if None in changed:
                        raise _slow_consumer(ctx)
                    yield BacklogSummary.of(
                        await fig.backlog(ctx, store, None), store.currency_code
                    )
            finally:
                hub.unsubscribe(subscriber)

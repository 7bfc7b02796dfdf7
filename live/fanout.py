"""Fan-out of live events to many identical subscriptions without waking each one.

A subscription of `orderEvents` or `inventoryEvents` over either websocket protocol
(graphql-transport-ws, or the legacy graphql-ws) that has caught up with the log becomes
a *member* of the group of identical subscriptions
(same payload type, document, operation, variables, and what the token may see; the
key of SharedEventExecutor). From then on the hub's pump hands it each new event
directly (`Subscriber.sink`) instead of queueing the event and waking the
subscription's task. Per event, the group executes the selection once, turns the result
into JSON once, and writes each member's result frame (`next` or `data`, its own
operation id around the shared payload) to the member's socket at once.

Each member's frame is written as a ready websocket frame straight to its socket's
transport (live.frames) when nothing of the member's is waiting and the socket has room:
no coroutine, no task, no wake-up, the payload's bytes shared. Otherwise (the transport
paused for flow control, or a server connection live.frames does not recognize) the
frame goes the ordinary way, through the server's send, in a task of the member's for
each burst (`start_send`, eager on Python 3.12+), in log order behind what the member
already has waiting. A member whose backlog passes the subscriber buffer, or whose send
waits SEND_TIMEOUT_SECONDS, is cut off like any slow subscriber (close 4503, the waiting
send cancelled), without holding up the others. A group writes to its members about a
millisecond at a time (SLICE_SECONDS), so queries and mutations on the same process are
served between slices. A result with errors
is sent the way the ordinary path sends it, masked and logged once. Which events a
member gets, and from where a reconnecting client resumes, is unchanged: the member
leaves the group as soon as the hub's sink cannot take an event, and the subscription's
own stream carries on from the last position the group delivered.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from graphql import ExecutionResult, GraphQLError

from ordergraph.domain.reads import LiveEvent
from ordergraph.live.frames import FrameSocket
from ordergraph.live.hub import Subscriber
from ordergraph.resolvers.context import Context, Loaders
from ordergraph.schema.errors import MASKED, client_errors, log_unexpected

log = logging.getLogger("ordergraph.fanout")


# How long one frame may take to reach a member's socket once the socket stopped taking
# more (its client reads slowly or not at all): then the member is cut off (4503), as
# when its backlog passes the subscriber buffer.
SEND_TIMEOUT_SECONDS = 30.0
# Python 3.12+ starts a task eagerly: sends to a socket with room complete inside
# `Task(...)`, with no scheduling and no wake-up; only a send that waits leaves a
# scheduled task. On 3.11 each burst of a member's frames is an ordinary task.
_EAGER = sys.version_info >= (3, 12)
# A group writing one event to thousands of members lets other work run this often,
# looking at the clock every SLICE_CHECK_EVERY members. A request on the same process
# waits about one slice each time it needs the loop (a dozen times or more), so slices
# are short: at 4 ms they added 50-150 ms to a request's time (docs/fanout-benchmark.md).
SLICE_SECONDS = 0.001
SLICE_CHECK_EVERY = 16


def start_send(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    """A task for a member's sends: done at once when the socket had room (3.12+)."""
    loop = asyncio.get_running_loop()
    if _EAGER:
        return asyncio.Task(coro, loop=loop, eager_start=True)  # type: ignore[call-arg]
    return loop.create_task(coro)


class Member:
    """One subscription in a group: its socket, its operation id, its filter."""

    __slots__ = (
        "accepts",
        "backlog",
        "buffer",
        "closed",
        "frames",
        "group",
        "pending",
        "prefix",
        "prefix_bytes",
        "send_text",
        "sending",
        "subscriber",
        "task",
        "timer",
        "waiters",
    )

    def __init__(
        self,
        group: Group,
        subscriber: Subscriber,
        send_text: Callable[[str], Coroutine[Any, Any, None]],
        prefix: str,
        accepts: Callable[[LiveEvent], bool],
        frames: FrameSocket | None = None,
    ) -> None:
        self.group = group
        self.subscriber = subscriber
        self.send_text = send_text
        self.frames = frames  # writes ready frames to the socket's transport, if known
        self.prefix = prefix  # the protocol's result message up to its payload
        self.prefix_bytes = prefix.encode()
        self.accepts = accepts
        self.buffer = subscriber.buffer
        self.backlog: deque[str] = deque()
        self.pending = 0  # events the group took for this member and has not written yet
        self.sending = False
        self.closed = False
        self.waiters: list[asyncio.Future[None]] = []
        self.task: asyncio.Task[None] | None = None  # a send that waits for the socket
        self.timer: asyncio.TimerHandle | None = None

    async def drained(self) -> None:
        """Wait until the events this member has taken are written (or dropped)."""
        while (self.sending or self.pending) and not self.closed:
            waiter = asyncio.get_running_loop().create_future()
            self.waiters.append(waiter)
            await waiter

    def _idle(self) -> None:
        self.sending = False
        self._wake()

    def _wake(self) -> None:
        waiters, self.waiters = self.waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def offer(self, event: LiveEvent) -> bool:
        """The hub's sink: take the event (to send, or to pass over); False to leave."""
        if self.closed:
            return False
        if self.accepts(event):
            self.group.add(event, self)
        return True

    def deliver(self, payload: str, data: bytes) -> None:
        """Send the result message around the shared payload (`data` is its UTF-8): as a
        ready frame when nothing of this member's is waiting and the socket has room,
        else the ordinary way."""
        if self.closed:  # its pending count was cleared when it closed
            return
        self.pending -= 1
        frames = self.frames
        if not self.sending and frames is not None and frames.write(self.prefix_bytes, data, b"}"):
            if self.waiters and not self.pending:
                self._wake()
            return
        global ordinary_frames
        ordinary_frames += 1
        self.write(self.prefix + payload + "}")

    def write(self, frame: str) -> None:
        if self.closed:
            return
        if self.sending:
            self.backlog.append(frame)
            if len(self.backlog) > self.buffer:
                self.close()
                self.subscriber.cut_off()  # closes the connection with 4503
            elif self.timer is None:  # a send is under way: it must not take forever
                self._arm()
            return
        self.sending = True
        task = start_send(self._drain(frame))
        if not task.done():
            self.task = task
            if self.timer is None:
                self._arm()

    async def _drain(self, frame: str) -> None:
        """Send the frame, then the backlog, in order: one task per burst, not per frame
        (and on 3.12+ no task at all while the socket has room)."""
        try:
            while True:
                await self.send_text(frame)
                if not self.backlog or self.closed:
                    return
                frame = self.backlog.popleft()
        except Exception as error:  # the connection is gone, or the send was refused
            self._failed(error)
        finally:
            self.task = None
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None
            self._idle()

    def _arm(self) -> None:
        self.timer = asyncio.get_running_loop().call_later(SEND_TIMEOUT_SECONDS, self._too_slow)

    def _too_slow(self) -> None:
        """A send waited SEND_TIMEOUT_SECONDS for the socket: cut the member off."""
        self.timer = None
        log.warning("cutting off a fan-out member whose socket took no frame for %s s",
                    SEND_TIMEOUT_SECONDS)  # fmt: skip
        self.close()
        self.subscriber.cut_off()  # closes the connection with 4503

    def _failed(self, error: BaseException) -> None:
        # The socket is gone; the websocket handler ends the subscription.
        log.debug("dropping a fan-out member whose send failed: %r", error)
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.pending = 0
        self.backlog.clear()
        if self.task is not None:  # a send stuck on a socket that takes nothing
            self.task.cancel()
        self._idle()
        if self.subscriber.sink == self.offer:
            self.subscriber.sink = None
        self.group.discard(self)


class Group:
    """Identical subscriptions: one execution and one JSON payload per event for all."""

    def __init__(
        self,
        key: tuple[Any, ...],
        execute: Callable[[LiveEvent], Awaitable[ExecutionResult]],
        context: Context,
    ) -> None:
        self.key = key
        self.execute = execute
        self.context = context
        self.members: set[Member] = set()
        self._batches: deque[tuple[LiveEvent, list[Member]]] = deque()
        self._task: asyncio.Task[None] | None = None

    def add(self, event: LiveEvent, member: Member) -> None:
        member.pending += 1
        if self._batches and self._batches[-1][0] is event:
            self._batches[-1][1].append(member)
        else:
            self._batches.append((event, [member]))
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._flush())

    def discard(self, member: Member) -> None:
        self.members.discard(member)
        if not self.members and _groups.get(self.key) is self:
            del _groups[self.key]

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        until = loop.time() + SLICE_SECONDS
        done = 0
        try:
            while self._batches:
                event, members = self._batches[0]
                payload = await self._payload(event)
                data = payload.encode()
                # Time-sliced: at thousands of members, a millisecond at a time, so
                # that requests on the same process are served meanwhile.
                for member in members:
                    member.deliver(payload, data)
                    done += 1
                    if not done % SLICE_CHECK_EVERY and loop.time() > until:
                        await asyncio.sleep(0)  # members joining this event meanwhile
                        until = loop.time() + SLICE_SECONDS  # are appended to the batch
                self._batches.popleft()
        finally:
            self._task = None
            if self._batches:  # left by an error above: their members leave the group
                for _, members in self._batches:
                    for member in members:
                        member.close()
                        member.subscriber.cut_off()
                self._batches.clear()

    async def _payload(self, event: LiveEvent) -> str:
        shared_key = self.key[1:]  # the event is this process's: no need for the database
        known = cached_payload(event, shared_key)
        if known is not None:
            return known
        self.context.loaders = Loaders(self.context.db)  # each event on fresh data
        try:
            result = await self.execute(event)
        except Exception as error:  # a fault of ours, outside any field
            log.exception("executing a live event for its subscribers failed")
            result = ExecutionResult(None, [GraphQLError(MASKED, original_error=error)])
        if result.errors:
            log_unexpected(result.errors, self.context.request_id)
        return payload_json(event, shared_key, result)


def cached_payload(event: LiveEvent, key: tuple[Any, ...]) -> str | None:
    """The JSON `next` payload already made for this event and subscription key, if any."""
    known: str | None = event.memo.get((payload_json, key))
    return known


def payload_json(event: LiveEvent, key: tuple[Any, ...], result: ExecutionResult) -> str:
    """The `next` payload of a result shared by identical subscriptions: made once per event
    and key (payload type, document, variables, token reach), errors masked."""
    known = cached_payload(event, key)
    if known is not None:
        return known
    body: dict[str, Any] = {"data": result.data}
    if result.errors:
        body["errors"] = [error.formatted for error in client_errors(result.errors)]
    if result.extensions:
        body["extensions"] = result.extensions
    payload = event.memo[(payload_json, key)] = json.dumps(body)
    return payload


_groups: dict[tuple[Any, ...], Group] = {}
# Members' result frames sent the ordinary way (through the server's send) since start;
# live.frames.written counts those written as ready frames. Both are on /metrics.
ordinary_frames = 0


def join(
    key: tuple[Any, ...],
    subscriber: Subscriber,
    send_text: Callable[[str], Coroutine[Any, Any, None]],
    prefix: str,
    accepts: Callable[[LiveEvent], bool],
    *,
    execute: Callable[[LiveEvent], Awaitable[ExecutionResult]],
    context: Context,
    frames: FrameSocket | None = None,
) -> Member:
    """Make the subscription a member of its group; the hub then sends it its events."""
    group = _groups.get(key)
    if group is None:
        group = _groups[key] = Group(key, execute, context)
    member = Member(group, subscriber, send_text, prefix, accepts, frames)
    group.members.add(member)
    return member

"""GraphQL over Server-Sent Events: the graphql-sse protocol's distinct connections mode.

One HTTP request carries one operation (the app's /graphql/stream parses and limits it
as it does a POST to /graphql); its results come back as an event stream:

    event: next            one per result, `data` the execution result as JSON; for an
    id: <cursor>           order or inventory event, `id` is the event's cursor, so a
    data: {...}            client that reconnects with `Last-Event-ID` resumes after it

    event: complete        after the last result (a query or mutation has one; a
    data:                  subscription runs until the client closes the request)

Errors found before execution (a document that does not validate, an unknown store)
come as a `next` event with `errors`, as the protocol asks, never as an HTTP error
status. While nothing happens a comment line (`: ping`) is sent every `ping_seconds`, so
proxies keep the stream open. The stream counts against its key's open sockets (the
websockets' limit) and ends, with a REVOKED error, when the key is revoked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any

from graphql import GraphQLError
from strawberry.types.execution import ExecutionResult
from strawberry.types.graphql import OperationType

from ordergraph.live.websockets import revoked_error, timeout_error
from ordergraph.resolvers.context import Context
from ordergraph.resolvers.keyguard import OpenSocket
from ordergraph.schema.errors import MASKED, client_errors, log_unexpected

PING = ": ping\n\n"
COMPLETE = "event: complete\ndata:\n\n"
MEDIA_TYPE = "text/event-stream"
# What the answer says to proxies and caches: do not buffer, do not store.
HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}

log = logging.getLogger("ordergraph.sse")


@dataclass(frozen=True)
class StreamedOperation:
    query: str
    variables: dict[str, Any] | None
    operation_name: str | None
    extensions: dict[str, Any] | None
    allowed: tuple[OperationType, ...] | None = None  # None: queries, mutations, subscriptions


def next_event(payload: dict[str, Any], event_id: str | None = None) -> str:
    """A `next` event; the JSON is one line, so one `data:` field carries it."""
    head = f"event: next\nid: {event_id}\n" if event_id else "event: next\n"
    return head + "data: " + json.dumps(payload, separators=(",", ":")) + "\n\n"


def result_payload(result: ExecutionResult, request_id: str | None) -> dict[str, Any]:
    errors = list(result.errors or [])
    log_unexpected(errors, request_id)
    payload: dict[str, Any] = {"data": result.data}
    if errors:
        payload["errors"] = [error.formatted for error in client_errors(errors)]
    if result.extensions:
        payload["extensions"] = result.extensions
    return payload


_Item = tuple[str, Any, str | None]  # ("result" | "end" | "error", value, cursor)


def _error(error: Any) -> dict[str, Any]:
    return {"data": None, "errors": [error]}


class EventStream:
    """Runs one operation over SSE and yields the event stream's text."""

    def __init__(
        self,
        schema: Any,
        context: Context,
        operation: StreamedOperation,
        *,
        ping_seconds: float,
        deadline_seconds: float | None,
    ) -> None:
        self.schema = schema
        self.context = context
        self.operation = operation
        self.ping_seconds = ping_seconds
        self.deadline_seconds = deadline_seconds
        self._ended = asyncio.Event()
        self._socket: OpenSocket | None = None
        self._deadline: float | None = None

    async def _end(self, code: int, reason: str) -> None:
        self._ended.set()

    async def _register(self) -> dict[str, Any] | None:
        """Count the stream against its key's open sockets; an error payload if it may not."""
        ctx = self.context
        if ctx.guard is None:
            return None
        try:
            who = await ctx.principal()
        except Exception:  # the database is away: execution reports it
            return None
        if who.key is None:
            return None
        self._socket = ctx.guard.open_socket(who.key.id, self._end)
        if self._socket is None:
            return _error(
                {
                    "message": "too many open streams and websockets for this key",
                    "extensions": {"code": "THROTTLED"},
                }
            )
        return None

    def _unregister(self) -> None:
        if self.context.guard is not None and self._socket is not None:
            self.context.guard.close_socket(self._socket)
            self._socket = None

    async def events(self) -> AsyncIterator[str]:
        if self.deadline_seconds is not None:
            self._deadline = asyncio.get_running_loop().time() + self.deadline_seconds
        refused = await self._register()
        try:
            if refused is not None:
                yield next_event(refused)
            else:
                async for text in self._results():
                    yield text
            yield COMPLETE
        finally:
            self._unregister()

    async def _produce(self, queue: asyncio.Queue[_Item]) -> None:
        """Run the operation in a task of its own; hand each result over with the cursor
        of the event it came from. The queue holds one: a client that does not read
        holds the operation back (and a live subscription that falls too far behind is
        cut off by the hub, SLOW_CONSUMER)."""
        op = self.operation
        ctx = self.context
        try:
            source: AsyncGenerator[Any] = await self.schema.stream(
                op.query,
                variable_values=op.variables,
                context_value=ctx,
                operation_name=op.operation_name,
                operation_extensions=op.extensions,
                allowed_operation_types=op.allowed,
            )
            async with contextlib.aclosing(source):
                async for result in source:
                    cursor, ctx.stream_cursor = ctx.stream_cursor, None
                    await queue.put(("result", result, cursor))
            await queue.put(("end", None, None))
        except Exception as error:
            await queue.put(("error", error, None))

    async def _results(self) -> AsyncIterator[str]:
        queue: asyncio.Queue[_Item] = asyncio.Queue(maxsize=1)
        producer = asyncio.create_task(self._produce(queue))
        ended: asyncio.Future[Any] = asyncio.ensure_future(self._ended.wait())
        taking: asyncio.Future[Any] | None = None
        try:
            while True:
                if taking is None:
                    taking = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait(
                    {taking, ended}, timeout=self._wait(), return_when=asyncio.FIRST_COMPLETED
                )
                if taking in done:
                    text, finished = self._taken(taking.result())
                    taking = None
                    if text is not None:
                        yield text
                    if finished:
                        return
                    continue
                stop = self._stopped(ended in done)
                yield stop or PING
                if stop is not None:
                    return
        finally:
            for task in (taking, ended, producer):
                if task is not None and not task.done():
                    task.cancel()
            with contextlib.suppress(BaseException):
                await producer

    def _wait(self) -> float:
        if self._deadline is None:
            return self.ping_seconds
        return max(0.0, min(self.ping_seconds, self._deadline - asyncio.get_running_loop().time()))

    def _taken(self, item: _Item) -> tuple[str | None, bool]:
        """The text for what the operation handed over, and whether the stream ends."""
        kind, value, cursor = item
        if kind == "end":
            return None, True
        if kind == "error":
            return next_event(_unexpected(value, self.context.request_id)), True
        return self._event(value, cursor), False

    def _stopped(self, revoked: bool) -> str | None:
        """The last event when the key was revoked or the deadline passed, else None."""
        if revoked:
            return next_event(_error(revoked_error()))
        if self._deadline is not None and asyncio.get_running_loop().time() >= self._deadline:
            assert self.deadline_seconds is not None
            return next_event(_error(timeout_error(self.deadline_seconds)))
        return None

    def _event(self, result: Any, cursor: str | None) -> str:
        if not isinstance(result, ExecutionResult):  # @defer / @stream frames
            error = GraphQLError(
                "incremental delivery is not supported over SSE",
                extensions={"code": "BAD_REQUEST"},
            )
            return next_event(_error(error.formatted))
        return next_event(result_payload(result, self.context.request_id), cursor)


def _unexpected(error: BaseException, request_id: str | None) -> dict[str, Any]:
    log.error("unexpected error in a stream (request %s)", request_id, exc_info=error)
    return _error({"message": MASKED, "extensions": {"code": "INTERNAL_SERVER_ERROR"}})

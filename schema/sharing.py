"""One execution of a live event for all identical subscriptions.

`SharedEventExecutor` is the schema's execution context: a subscription's per-event
execution is keyed by its payload class, document, variables and what its token may see,
and the first subscriber to reach an event leaves the result in the event's memo for the
others. live/follow.py writes those shared results as ready frames and hands caught-up
subscriptions to their fan-out group.
"""

from __future__ import annotations

import asyncio
import json
from contextvars import ContextVar
from typing import Any, Protocol

from graphql import ExecutionResult
from graphql.pyutils import AwaitableOrValue
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from ordergraph.resolvers.context import Context

# Set by SharedEventExecutor in the same task: the subscription's executor and its key.
LIVE_EXECUTOR: ContextVar[SharedEventExecutor | None] = ContextVar(
    "ordergraph_live_executor", default=None
)


class Memoized(Protocol):
    """An event with a memo that lives as long as the event (domain.reads.LiveEvent)."""

    @property
    def memo(self) -> dict[Any, Any]: ...


def shared_results(event: Memoized) -> dict[Any, Any]:
    """Where SharedEventExecutor keeps the event's results (no reference back to payloads)."""
    results: dict[Any, Any] = event.memo.setdefault(SharedEventExecutor, {})
    return results


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
            LIVE_EXECUTOR.set(self)
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

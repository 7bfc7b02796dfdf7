"""Store changes from concurrent requests, run together in one unit of work.

A store's changes are serialized by its lock (docs/architecture.md): while one unit of
work holds it, every other change to that store waits. When several requests of this
process want the same store at once, they queue here instead, and the first unit of
work that gets the lock runs all of them, one after the other, through the same domain
services (`services.execute`), then commits once. The lock is taken and the commit paid
once for the lot, so a busy store (a flash sale) holds its lock for a fraction of the
time per change.

What stays as with a unit of its own:

- each change is decided by the domain in turn, on the state the earlier ones left, in
  the order the requests arrived (the first queued runs first);
- a change the domain refuses (a DomainError: out of stock, an unknown order, a key
  reused) changes nothing: the services raise before changing anything, so the others
  in the unit go on, and only that request answers with its userErrors;
- any other failure rolls the whole unit back; a conflict with a concurrent change
  (`Units.is_contention`) runs it again, and otherwise each change is run again in a
  unit of its own, so that one failing change does not fail the others;
- a request that goes away (its deadline, its client) before the unit began its change
  changes nothing; when every request of a unit has gone before any change began, the
  unit stops waiting for the lock and rolls back;
- never two changes with the same idempotency key in one unit (a retry of a keyed change
  waits for the first one's unit to commit, then finds its record).

All changes of one unit share its instant (the session's clock, read when the lock was
taken): the orders placed together are placed at the same time, in queue order.

`max_changes` bounds the changes per unit (ORDERGRAPH_STORE_BATCH_MAX). With 1 the view
gives the requests no queues, as the tests' memory units have none: each mutation runs in
a unit of its own (`alone`), on the request's own connections.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ordergraph.domain.commands import Reads
from ordergraph.domain.errors import DomainError
from ordergraph.domain.ports import StoreUnit, Units

T = TypeVar("T")
Work = Callable[[StoreUnit], Awaitable[T]]

ATTEMPTS = 5  # runs of a store unit that meets a concurrent change (then the error shows)


@dataclass(eq=False)
class _Change:
    reads: Reads  # its idempotency key (operation, key), if any, among them
    work: Work[Any]
    done: asyncio.Future[tuple[Any, Any]]
    unit: _Unit | None = None


@dataclass(eq=False)
class _Unit:
    changes: list[_Change]
    task: asyncio.Task[None] | None = None  # the task running it, while it runs
    began: bool = False
    stopped: bool = False  # cancelled by `_gone`


def merged(reads: list[Reads]) -> Reads:
    """What a unit running all these changes reads first: all their products and orders,
    and their idempotency records (one key as `idempotency`, the others as `more_keys`)."""
    keys = list(dict.fromkeys(r.idempotency for r in reads if r.idempotency is not None))
    return Reads(
        skus=tuple(dict.fromkeys(s for r in reads for s in r.skus)),
        product_ids=tuple(dict.fromkeys(p for r in reads for p in r.product_ids)),
        order_ids=tuple(dict.fromkeys(o for r in reads for o in r.order_ids)),
        idempotency=keys[0] if keys else None,
        more_keys=tuple(keys[1:]),
    )


async def alone(units: Units[Any], store_id: int, reads: Reads, work: Work[T]) -> tuple[T, Any]:
    """`work` in a unit of its own (run again on contention); its result and what the
    unit held at commit."""
    for attempt in range(ATTEMPTS):
        try:
            async with units.store(store_id, reads) as unit:
                result = await work(unit)
            return result, unit.session.loaded()
        except Exception as err:  # a DomainError is no contention: it is raised
            if not units.is_contention(err) or attempt == ATTEMPTS - 1:
                raise
            await asyncio.sleep(0.01 * (attempt + 1))
    raise AssertionError("unreachable")


class StoreBatches:
    """This process's queues of changes per store (one instance per app)."""

    def __init__(self, units: Units[Any], max_changes: int) -> None:
        self.units = units
        self.max_changes = max(1, max_changes)
        self._queues: dict[int, deque[_Change]] = {}
        self._draining: dict[int, asyncio.Task[None]] = {}
        # Called with the number of changes of each unit that committed (the metrics).
        self.on_unit: list[Callable[[int], None]] = []

    def queued(self) -> int:
        """Changes waiting for their unit (not yet taken into one), over every store."""
        return sum(1 for queue in self._queues.values() for c in queue if not c.done.done())

    async def run(self, store_id: int, reads: Reads, work: Work[T]) -> tuple[T, Any]:
        """Run `work` on the store's locked unit, with whatever else is queued for it; its
        result and what the unit held at commit. A DomainError it raises is raised here."""
        change = _Change(reads, work, asyncio.get_running_loop().create_future())
        self._queues.setdefault(store_id, deque()).append(change)
        if store_id not in self._draining:
            self._draining[store_id] = asyncio.create_task(self._drain(store_id))
        try:
            result: tuple[T, Any] = await change.done
            return result
        except asyncio.CancelledError:
            self._gone(change)
            raise

    def _gone(self, change: _Change) -> None:
        """The request went away: a unit none of whose changes is still wanted, and
        none began, stops (waiting for the lock, say) and rolls back."""
        if not change.done.done():
            change.done.cancel()
        unit = change.unit
        if (
            unit is not None
            and unit.task is not None
            and not unit.began
            and all(c.done.done() for c in unit.changes)
        ):
            unit.stopped = True
            unit.task.cancel()

    def _take(self, queue: deque[_Change]) -> list[_Change]:
        """The next unit's changes, in queue order: at most `max_changes`, and never two
        with the same idempotency key (a retry waits for the first one's commit, then
        finds its record)."""
        taken: list[_Change] = []
        keys: set[tuple[str, str]] = set()
        while queue and len(taken) < self.max_changes:
            change = queue[0]
            if change.done.done():  # gone while queued
                queue.popleft()
                continue
            key = change.reads.idempotency
            if key is not None:
                if key in keys:
                    break
                keys.add(key)
            taken.append(queue.popleft())
        return taken

    async def _drain(self, store_id: int) -> None:
        queue = self._queues[store_id]
        try:
            while queue:
                changes = self._take(queue)
                if not changes:
                    continue
                unit = _Unit(changes)
                for change in changes:
                    change.unit = unit
                await self._run_here(store_id, unit)
        finally:
            del self._draining[store_id]
            del self._queues[store_id]
            for change in queue:  # left only when stopped by the loop's end
                change.done.cancel()

    async def _run_here(self, store_id: int, unit: _Unit) -> None:
        """The unit, in the store's draining task (no task of its own): stopped by
        `_gone`, which cancels this task while the unit has not begun, and then goes on
        with the queue; any other cancellation (the loop's end) goes through."""
        task = asyncio.current_task()
        assert task is not None
        unit.task = task
        error: BaseException | None = None
        try:
            await self._run(store_id, unit)
        except asyncio.CancelledError:
            if not unit.stopped or task.uncancel() > 0:
                raise
        except Exception as failed:  # unexpected: each undone change fails with it
            error = failed
        finally:
            unit.task = None
            for change in unit.changes:  # none is left waiting (cancelled: each gone)
                if not change.done.done():
                    if error is None:
                        change.done.cancel()
                    else:
                        change.done.set_exception(error)

    async def _run(self, store_id: int, unit: _Unit) -> None:
        reads = merged([c.reads for c in unit.changes])
        for attempt in range(ATTEMPTS):
            try:
                results, loaded = await self._attempt(store_id, unit, reads)
            except DomainError as err:  # of the unit itself: no such store
                for change in unit.changes:
                    _settle(change, exception=err)
                return
            except Exception as err:
                unit.began = False
                if self.units.is_contention(err) and attempt < ATTEMPTS - 1:
                    await asyncio.sleep(0.01 * (attempt + 1))
                    continue
                await self._one_by_one(store_id, unit, err)
                return
            for observe in self.on_unit:
                observe(len(results))
            for change, result, refused in results:
                if refused is not None:
                    _settle(change, exception=refused)
                else:
                    _settle(change, result=(result, loaded))
            return

    async def _attempt(
        self, store_id: int, unit: _Unit, reads: Reads
    ) -> tuple[list[tuple[_Change, Any, DomainError | None]], Any]:
        """One run of the unit: each change still wanted, in turn; then the commit."""
        results: list[tuple[_Change, Any, DomainError | None]] = []
        async with self.units.store(store_id, reads) as opened:
            unit.began = True
            for change in unit.changes:
                if change.done.done():  # gone while the unit waited for the lock
                    continue
                try:
                    results.append((change, await change.work(opened), None))
                except DomainError as refused:
                    results.append((change, None, refused))
        return results, opened.session.loaded()

    async def _one_by_one(self, store_id: int, unit: _Unit, err: Exception) -> None:
        """After a failure of a unit of several changes: each in a unit of its own."""
        wanted = [c for c in unit.changes if not c.done.done()]
        if len(wanted) <= 1:
            for change in wanted:
                _settle(change, exception=err)
            return
        for change in wanted:
            if change.done.done():
                continue
            try:
                _settle(change, result=await alone(self.units, store_id, change.reads, change.work))
            except Exception as failed:
                _settle(change, exception=failed)


def _settle(change: _Change, *, result: Any = None, exception: BaseException | None = None) -> None:
    if change.done.done():  # its request went away
        return
    if exception is not None:
        change.done.set_exception(exception)
    else:
        change.done.set_result(result)

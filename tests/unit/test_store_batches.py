"""The queues of changes per store (resolvers/batches.py), on the memory units of work:
changes that arrive while a store's unit runs are run together in the next one, in
arrival order, through the domain services, each refused or failing on its own."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ordergraph.domain import services
from ordergraph.domain.commands import NO_READS, Reads, ReceiveStock, StoreCommand
from ordergraph.domain.errors import DomainError, ErrorCode
from ordergraph.domain.model import BackorderPolicy
from ordergraph.domain.ports import StoreUnit
from ordergraph.domain.services import LineRequest, PlaceOrder
from ordergraph.resolvers.batches import StoreBatches, alone, merged
from tests.memory_session import MemorySession, MemoryUnits

STORE = 1


def _units() -> MemoryUnits:
    units = MemoryUnits()
    units.sessions[STORE] = MemorySession()
    return units


class Held:
    """A change that holds its unit (and so the store) until released."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, unit: StoreUnit) -> str:
        self.entered.set()
        await self.release.wait()
        return "held"


def _logged(log: list[tuple[str, int]], name: str) -> Any:
    async def work(unit: StoreUnit) -> str:
        log.append((name, id(unit)))
        return name

    return work


async def _queued_behind(batches: StoreBatches, *works: Any, keys: Any = None) -> list[Any]:
    """Run `works` queued behind a held unit; their outcomes (result or exception)."""
    held, first = await _holding(batches)
    keys = keys or [None] * len(works)
    tasks = [
        asyncio.create_task(batches.run(STORE, Reads(idempotency=key), work))
        for work, key in zip(works, keys, strict=True)
    ]
    await asyncio.sleep(0)  # all queued
    held.release.set()
    assert (await first)[0] == "held"
    return list(await asyncio.gather(*tasks, return_exceptions=True))


async def test_changes_queued_while_the_store_is_busy_run_together_in_arrival_order() -> None:
    units = _units()
    batches = StoreBatches(units, max_changes=32)
    sizes: list[int] = []
    batches.on_unit.append(sizes.append)
    log: list[tuple[str, int]] = []
    outcomes = await _queued_behind(batches, *(_logged(log, f"c{i}") for i in range(5)))
    assert [result for result, _loaded in outcomes] == [f"c{i}" for i in range(5)]
    assert [name for name, _unit in log] == [f"c{i}" for i in range(5)]
    assert len({unit for _name, unit in log}) == 1  # one unit of work for the five
    assert units.units_opened == 2
    assert sizes == [1, 5]


async def test_a_unit_runs_at_most_max_changes() -> None:
    units = _units()
    batches = StoreBatches(units, max_changes=2)
    log: list[tuple[str, int]] = []
    await _queued_behind(batches, *(_logged(log, f"c{i}") for i in range(5)))
    assert [name for name, _unit in log] == [f"c{i}" for i in range(5)]
    assert len({unit for _name, unit in log}) == 3  # 2 + 2 + 1
    assert units.units_opened == 4


async def test_max_changes_of_one_gives_each_change_its_own_unit() -> None:
    units = _units()
    batches = StoreBatches(units, max_changes=1)
    log: list[tuple[str, int]] = []
    results = await asyncio.gather(
        *(batches.run(STORE, Reads(), _logged(log, f"c{i}")) for i in range(4))
    )
    assert len(results) == 4
    assert units.units_opened == 4


async def test_a_unit_never_holds_two_changes_with_the_same_key() -> None:
    units = _units()
    batches = StoreBatches(units, max_changes=32)
    log: list[tuple[str, int]] = []
    keys = [("placeOrder", "k1"), None, ("placeOrder", "k2"), None, ("placeOrder", "k1")]
    await _queued_behind(batches, *(_logged(log, f"c{i}") for i in range(5)), keys=keys)
    assert [name for name, _unit in log] == [f"c{i}" for i in range(5)]
    units_of = [unit for _name, unit in log]
    assert len(set(units_of[:4])) == 1  # two keys, two without
    assert units_of[4] != units_of[3]  # k1 again: the next unit


async def test_a_retry_queued_with_its_first_request_gets_the_first_one_s_result() -> None:
    units = _units()
    units.sessions[STORE].add_stocked_product("A", 10, policy=BackorderPolicy.DENY)
    batches = StoreBatches(units, max_changes=32)
    key = ("placeOrder", "checkout-1")
    request = {"lines": [["A", 1]]}

    async def keyed(unit: StoreUnit) -> int:
        earlier = await unit.recall(*key, request)
        if earlier is not None:
            return int(earlier["orderId"])
        cmd = PlaceOrder(lines=[LineRequest("A", 1)])
        order = await services.place_order(unit.session, cmd)
        await unit.remember(*key, request, {"orderId": order.id})
        return order.id

    outcomes = await _queued_behind(batches, keyed, keyed, keyed, keys=[key, key, key])
    assert len({result for result, _loaded in outcomes}) == 1
    assert len(units.sessions[STORE].orders) == 1


async def test_the_domain_decides_each_queued_order_on_what_the_earlier_ones_left() -> None:
    """Three units of stock under DENY, six one-unit orders queued together: the first
    three are placed, the other three refused with INSUFFICIENT_STOCK, in one unit."""
    units = _units()
    session = units.sessions[STORE]
    product = session.add_stocked_product("A", 3, policy=BackorderPolicy.DENY)
    batches = StoreBatches(units, max_changes=32)

    def place(quantity: int) -> Any:
        async def work(unit: StoreUnit) -> int:
            cmd = PlaceOrder(lines=[LineRequest("A", quantity)])
            return (await services.place_order(unit.session, cmd)).number

        return work

    outcomes = await _queued_behind(batches, *(place(1) for _ in range(6)))
    numbers = [o[0] for o in outcomes[:3]]
    assert numbers == sorted(numbers)
    assert len(set(numbers)) == 3
    for refused in outcomes[3:]:
        assert isinstance(refused, DomainError)
        assert refused.problems[0].code is ErrorCode.INSUFFICIENT_STOCK
    assert product.allocated == 3
    assert product.available == 0
    assert len(session.orders) == 3
    assert units.units_opened == 2


async def test_a_change_that_fails_is_rerun_alone_and_the_others_still_commit() -> None:
    units = _units()
    batches = StoreBatches(units, max_changes=32)
    log: list[tuple[str, int]] = []

    async def broken(unit: StoreUnit) -> str:
        log.append(("broken", id(unit)))
        raise RuntimeError("not a refusal")

    outcomes = await _queued_behind(
        batches, _logged(log, "a"), broken, _logged(log, "b"), _logged(log, "c")
    )
    assert outcomes[0][0] == "a"
    assert outcomes[2][0] == "b"
    assert outcomes[3][0] == "c"
    assert isinstance(outcomes[1], RuntimeError)
    # together first (rolled back at the failure), then each in a unit of its own
    assert [name for name, _unit in log] == ["a", "broken", "a", "broken", "b", "c"]
    assert len({unit for _name, unit in log[2:]}) == 4


async def _holding(batches: StoreBatches) -> tuple[Held, asyncio.Task[Any]]:
    """A change holding the store's unit, once it holds it."""
    held = Held()
    first = asyncio.create_task(batches.run(STORE, Reads(), held))
    await held.entered.wait()
    return held, first


def _queue(batches: StoreBatches, log: list[tuple[str, int]], name: str) -> asyncio.Task[Any]:
    return asyncio.create_task(
        batches.run(
            STORE,
            Reads(),
            _logged(log, name),
        )
    )


async def test_a_unit_that_meets_a_concurrent_change_runs_again_whole() -> None:
    units = _units()
    batches = StoreBatches(units, max_changes=32)
    log: list[tuple[str, int]] = []
    held, first = await _holding(batches)
    tasks = [_queue(batches, log, n) for n in ("a", "b")]
    await asyncio.sleep(0)
    units.contend(1)  # the first unit's commit fails as a serialization failure would
    held.release.set()
    assert (await first)[0] == "held"  # run again, then committed
    await asyncio.gather(*tasks)
    assert [name for name, _unit in log] == ["a", "b"]


async def test_a_request_gone_before_its_unit_began_changes_nothing() -> None:
    units = _units()
    batches = StoreBatches(units, max_changes=32)
    log: list[tuple[str, int]] = []
    held, first = await _holding(batches)
    gone = _queue(batches, log, "gone")
    kept = _queue(batches, log, "kept")
    await asyncio.sleep(0)
    gone.cancel()
    held.release.set()
    await first
    assert (await kept)[0] == "kept"
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert [name for name, _unit in log] == ["kept"]


async def test_a_unit_whose_requests_all_went_away_while_it_waited_is_stopped() -> None:
    """The unit waits to open (the store's lock, on a database); when every request in
    it has gone it stops waiting, and nothing of it runs."""
    units = _units()
    opening = asyncio.Event()
    never = asyncio.Event()
    plain_store = units.store

    def slow_store(store_id: int, reads: Reads = NO_READS) -> Any:
        class Opening:
            async def __aenter__(self) -> Any:
                opening.set()
                await never.wait()  # the lock never comes
                raise AssertionError("unreachable")

            async def __aexit__(self, *exc: object) -> None:
                return None

        return Opening()

    units.store = slow_store  # type: ignore[method-assign]
    batches = StoreBatches(units, max_changes=32)
    log: list[tuple[str, int]] = []
    a = asyncio.create_task(
        batches.run(
            STORE,
            Reads(),
            _logged(log, "a"),
        )
    )
    b = asyncio.create_task(
        batches.run(
            STORE,
            Reads(),
            _logged(log, "b"),
        )
    )
    await opening.wait()
    a.cancel()
    b.cancel()
    await asyncio.gather(a, b, return_exceptions=True)
    await asyncio.sleep(0.01)
    assert not batches._draining  # the store's queue is done with: the unit was stopped
    units.store = plain_store  # type: ignore[method-assign]
    assert (
        await batches.run(
            STORE,
            Reads(),
            _logged(log, "c"),
        )
    )[0] == "c"
    assert [name for name, _unit in log] == ["c"]


async def test_no_such_store_is_every_queued_change_s_answer() -> None:
    batches = StoreBatches(_units(), max_changes=32)
    results = await asyncio.gather(
        *(
            batches.run(
                404,
                Reads(),
                _logged([], "x"),
            )
            for _ in range(3)
        ),
        return_exceptions=True,
    )
    for result in results:
        assert isinstance(result, DomainError)
        assert result.problems[0].code is ErrorCode.NOT_FOUND


def test_a_unit_reads_first_what_each_of_its_changes_reads_first() -> None:
    reads = merged(
        [
            Reads(skus=("A", "B"), idempotency=("placeOrder", "k")),
            Reads(skus=("B", "C"), order_ids=(7,)),
            Reads(product_ids=(3,), order_ids=(7, 8), idempotency=("shipOrder", "k")),
            Reads(idempotency=("placeOrder", "k2")),
        ]
    )
    assert reads == Reads(
        skus=("A", "B", "C"),
        product_ids=(3,),
        order_ids=(7, 8),
        idempotency=("placeOrder", "k"),
        more_keys=(("shipOrder", "k"), ("placeOrder", "k2")),
    )


_SKUS = ("DENIED", "ALLOWED", "LIMITED")
_commands = st.lists(
    st.one_of(
        st.builds(
            lambda lines: PlaceOrder(lines=[LineRequest(sku, qty) for sku, qty in lines]),
            st.lists(st.tuples(st.sampled_from(_SKUS), st.integers(1, 6)), min_size=1, max_size=3),
        ),
        st.builds(ReceiveStock, st.sampled_from(_SKUS), st.integers(1, 8)),
    ),
    min_size=1,
    max_size=12,
)


def _stocked() -> MemoryUnits:
    units = _units()
    session = units.sessions[STORE]
    session.add_stocked_product("DENIED", 4, policy=BackorderPolicy.DENY)
    session.add_stocked_product("ALLOWED", 3, policy=BackorderPolicy.ALLOW)
    session.add_stocked_product("LIMITED", 2, policy=BackorderPolicy.LIMIT, limit=5)
    return units


def _running(cmd: StoreCommand) -> Any:
    async def work(unit: StoreUnit) -> object:
        return await services.execute(unit.session, cmd)

    return work


def _lines(order: Any) -> list[tuple[str, int, int]]:
    return [(x.sku, x.allocated, x.backordered) for x in order.lines]


def _state(units: MemoryUnits) -> object:
    session = units.sessions[STORE]
    return (
        sorted((p.sku, p.on_hand, p.allocated, p.backordered) for p in session.products.values()),
        sorted((o.number, o.status, o.stock_status, _lines(o)) for o in session.orders.values()),
        [(type(e).__name__, e.type) for e in session.events],
    )


def _answer(outcome: object) -> object:
    if isinstance(outcome, DomainError):
        return [p.code for p in outcome.problems]
    assert isinstance(outcome, tuple)
    return outcome[0]


@settings(max_examples=60, deadline=None)
@given(_commands)
def test_changes_run_together_end_as_they_would_one_by_one(commands: list[StoreCommand]) -> None:
    """Any mix of orders (refused or not) and receipts, queued behind a busy store and run
    in one unit, leaves the store, its events and every answer as running each in a unit
    of its own, in the same order, does."""

    async def one_by_one() -> tuple[list[object], object]:
        units = _stocked()
        answers: list[object] = []
        for cmd in commands:
            try:
                answers.append(_answer(await alone(units, STORE, Reads(), _running(cmd))))
            except DomainError as refused:
                answers.append(_answer(refused))
        return answers, _state(units)

    async def together() -> tuple[list[object], object]:
        units = _stocked()
        batches = StoreBatches(units, max_changes=32)
        outcomes = await _queued_behind(batches, *(_running(cmd) for cmd in commands))
        state = _state(units)
        assert units.units_opened == 2  # the holding unit, then all of them
        return [_answer(o) for o in outcomes], state

    alone_answers, alone_state = asyncio.run(one_by_one())
    together_answers, together_state = asyncio.run(together())
    assert together_answers == alone_answers
    assert together_state == alone_state

"""The garbage-collection governor of the server process (ordergraph.gc_governor): the
young generations collected and the survivors frozen on every tick, so CPython's full
passes only look at newer objects; its own full pass on schedule and on growth (of the
memory blocks in use: counting the frozen objects would walk them all)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from ordergraph import gc_governor
from ordergraph.gc_governor import GcGovernor
from ordergraph.settings import Settings, SettingsError


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    """The collector's state is the process's: leave it as found."""
    gc.unfreeze()
    yield
    gc.unfreeze()


class Cycle:
    def __init__(self) -> None:
        self.me = self


def test_a_tick_freezes_what_lives_and_full_passes_then_skip_it() -> None:
    now = [0.0]
    governor = GcGovernor(10, 3600, clock=lambda: now[0])
    kept = [Cycle() for _ in range(1000)]
    assert not governor.tick()
    frozen = gc.get_freeze_count()
    assert frozen >= len(kept), "the survivors are frozen"
    gc.collect()  # CPython's full pass: it leaves the frozen objects alone
    assert gc.get_freeze_count() == frozen


def test_frozen_garbage_is_freed_by_the_governors_own_full_pass_on_schedule() -> None:
    now = [0.0]
    governor = GcGovernor(10, 3600, clock=lambda: now[0])
    garbage = [Cycle() for _ in range(5000)]
    governor.tick()
    frozen_with_garbage = gc.get_freeze_count()
    governor.baseline = governor.blocks()  # as after a full pass: only the schedule is due
    del garbage  # cyclic garbage: only a pass over the frozen objects can free it
    now[0] = 1800.0
    assert not governor.tick(), "not due yet: the garbage waits, frozen"
    assert gc.get_freeze_count() > frozen_with_garbage - 5000, "still frozen, not freed"
    now[0] = 3600.0
    assert governor.tick(), "due: unfreeze, collect everything, freeze again"
    assert gc.get_freeze_count() <= frozen_with_garbage - 5000
    assert governor.full_passes == 1


def test_a_full_pass_when_the_memory_in_use_doubled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gc_governor, "MIN_BASELINE", 1000)
    now = [0.0]
    blocks = [5000]
    governor = GcGovernor(10, 0, clock=lambda: now[0], blocks=lambda: blocks[0])
    assert governor.baseline == 5000
    blocks[0] = 10_000
    assert not governor.tick(), "doubled, not more: no full pass"
    blocks[0] = 10_001
    assert governor.tick(), "more than doubled: a full pass"
    assert governor.baseline == 10_001, "measured again after the pass"
    assert not governor.tick()


def test_the_default_measure_sees_objects_that_live() -> None:
    governor = GcGovernor(10, 3600)
    before = governor.blocks()
    kept = [Cycle() for _ in range(10_000)]
    assert governor.blocks() >= before + len(kept)


def test_a_tick_does_not_walk_the_frozen_objects(monkeypatch: pytest.MonkeyPatch) -> None:
    """`gc.get_freeze_count()` walks every frozen object: with thousands of subscribers it
    held the interpreter for 190-240 ms on every tick. The governor must not call it."""
    calls = []
    real = gc.get_freeze_count

    def counted() -> int:
        calls.append(1)
        return real()

    monkeypatch.setattr(gc, "get_freeze_count", counted)
    now = [0.0]
    governor = GcGovernor(10, 3600, clock=lambda: now[0])
    governor.tick()
    now[0] = 3600.0
    assert governor.tick(), "a full pass"
    governor.tick()
    assert calls == []


def test_settings_default_on_and_can_turn_it_off() -> None:
    assert Settings.from_env({}).gc_freeze_seconds == 10
    assert Settings.from_env({}).gc_full_seconds == 3600
    off = Settings.from_env({"ORDERGRAPH_GC_FREEZE_SECONDS": "0"})
    assert off.gc_freeze_seconds == 0
    with pytest.raises(SettingsError, match="ORDERGRAPH_GC_FULL_SECONDS"):
        Settings.from_env({"ORDERGRAPH_GC_FULL_SECONDS": "-1"})

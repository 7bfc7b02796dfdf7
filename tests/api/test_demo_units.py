"""The demo seeded in shared units of work is the demo seeded one operation at a time.

`seed_demo` runs consecutive operations of a store in one unit of work (demo/units.py):
every row but the history's must be exactly what one session per operation writes,
event instants included; the history keeps a point per unit of work, each equal to the
one-by-one history's totals at the same event position. And the same seed gives the same
data twice over, history included.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from ordergraph import demo
from ordergraph.storage import tables as t
from ordergraph.storage.db import Database
from ordergraph.storage.migrate import upgrade
from tests.conftest import run_outside_loop

END = dt.datetime(2026, 7, 15, 12, 0, tzinfo=dt.UTC)
ORDERS = 150
DATA = ("stores", "products", "orders", "order_lines", "events", "incoming_receipts")
HISTORY = ("tally_points", "overdue_points")
TOTALS = tuple(
    f"{part}_{unit}" for part in ("backlog", "backorder") for unit in ("orders", "units", "value")
)
Seeded = dict[str, list[dict[str, Any]]]


async def _seeded(path: Path, *, batched: bool) -> Seeded:
    db = Database(f"sqlite+aiosqlite:///{path}")
    try:
        await upgrade(db)
        await demo.seed_demo(db, seed=3, orders=ORDERS, now=END, batched=batched)
        tables: dict[str, list[dict[str, Any]]] = {}
        async with db.read() as conn:
            for name in (*DATA, *HISTORY, "overdue_totals", "backorder_facts"):
                table = t.metadata.tables[name]
                rows = await conn.execute(select(table).order_by(*table.primary_key.columns))
                tables[name] = [dict(row) for row in rows.mappings()]
    finally:
        await db.dispose()
    return tables


@pytest.fixture(scope="module")
def one_by_one(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    path = tmp_path_factory.mktemp("demo") / "single.db"
    seeded: Seeded = run_outside_loop(_seeded(path, batched=False))
    return seeded


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    path = tmp_path_factory.mktemp("demo") / "shared.db"
    seeded: Seeded = run_outside_loop(_seeded(path, batched=True))
    return seeded


# The history's points are kept per store (tally_points) or per store and overdue instant.
KEYS = {"tally_points": ("store_id",), "overdue_points": ("store_id", "overdue_at")}


def _as_of(points: list[dict[str, Any]], name: str, store: int, seq: int) -> dict[Any, Any]:
    """The newest point of each key at or before event position `seq` in `store`, without
    its position and instant, where its totals are not all zero."""
    newest: dict[Any, Any] = {}
    for point in points:
        if point["store_id"] == store and point["seq"] <= seq:
            key = tuple(point[k] for k in KEYS[name])
            newest[key] = {k: v for k, v in point.items() if k not in ("seq", "at")}
    # An instant whose totals are back at zero counts as one never touched.
    return {k: v for k, v in newest.items() if any(v[name] for name in TOTALS)}


def _facts(seeded: Seeded) -> list[tuple[Any, ...]]:
    rows = [{k: v for k, v in f.items() if k != "n"} for f in seeded["backorder_facts"]]
    return sorted((tuple(row.values()) for row in rows), key=repr)


def test_shared_units_write_the_same_data_as_one_session_per_operation(
    one_by_one: Seeded, shared: Seeded
) -> None:
    assert len(one_by_one["orders"]) > 0.9 * ORDERS
    assert len(one_by_one["incoming_receipts"]) > 0  # purchase orders, scheduled receipts
    kinds = {(f["kind"], f["reason"]) for f in one_by_one["backorder_facts"]}
    assert {("START", None), ("FILL", None), ("CANCEL", "CUSTOMER_DECLINED_BACKORDER")} <= kinds
    for name in DATA:
        assert shared[name] == one_by_one[name], name
    # What waiting costs: the same backorder facts, each at its own operation's instant
    # and event position (numbered in another order within a position, which no figure
    # reads).
    assert _facts(shared) == _facts(one_by_one)

    # The running totals per overdue instant: the same, but for instants an order entered
    # and left within one unit of work (its totals back at zero: no row).
    def held(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [row for row in rows if any(row[name] for name in TOTALS)]

    assert held(shared["overdue_totals"]) == held(one_by_one["overdue_totals"])
    assert len(held(shared["overdue_totals"])) > 0

    # Fewer history points; each holds the totals the one-by-one history had there.
    for name in HISTORY:
        assert 0 < len(shared[name]) < len(one_by_one[name]), name
        for point in shared[name]:
            store, seq = point["store_id"], point["seq"]
            mine = _as_of(shared[name], name, store, seq)
            assert mine == _as_of(one_by_one[name], name, store, seq), (name, point)


async def test_the_same_seed_gives_the_same_data_and_history(
    shared: Seeded, tmp_path: Path
) -> None:
    assert await _seeded(tmp_path / "again.db", batched=True) == shared

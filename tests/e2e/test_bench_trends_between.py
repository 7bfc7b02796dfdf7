"""bench/trends_between.py serves a kept database with each tree given, in turn, and
prints each trend's latency, the server's CPU and the ratio of the two trends."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ordergraph.storage.db import Database
from tests.client import Api
from tests.conftest import ADMIN_TOKEN, ROOT, app_client, run_bench

ROW = re.compile(
    r"^(\S+)\s+turn (\d)\s+(30 DAY|1,000 HOUR)\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+) ms"
    r"\s+app CPU\s+([0-9.]+) ms\s+db CPU\s+([0-9.]+) ms$",
    re.MULTILINE,
)
RATIO = re.compile(r"^(\S+)\s+turn (\d)\s+ratio 1,000 HOUR / 30 DAY: ([0-9.]+) \(goal 2\)$", re.M)


@pytest.mark.postgres
async def test_two_turns_of_one_tree_print_both_trends_and_their_ratio(own_pg_url: str) -> None:
    database = Database(own_pg_url)
    try:
        async with app_client(database) as http:
            api = Api(http, ADMIN_TOKEN, database)
            store = await api.create_store(policy="ALLOW")
            await api.upsert(store, "A")
            for quantity in (1, 2, 3):
                await api.place(store, [("A", quantity)])
    finally:
        await database.dispose()
    name = own_pg_url.rsplit("/", 1)[1]
    done = run_bench(
        "trends_between.py", name, str(ROOT), "--turns", "2", "--rounds", "1", "--samples", "2"
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert f"store {store.handle} (3 orders)" in done.stdout, output
    rows = ROW.findall(done.stdout)
    assert [(Path(tree), turn, trend) for tree, turn, trend, *_ in rows] == [
        (ROOT, turn, trend) for turn in ("1", "2") for trend in ("30 DAY", "1,000 HOUR")
    ], output
    for *_, low, median, high, _, _ in rows:
        assert 0 < float(low) <= float(median) <= float(high), output
    ratios = RATIO.findall(done.stdout)
    assert [turn for _, turn, _ in ratios] == ["1", "2"], output
    for turn, (_, _, ratio) in zip(("1", "2"), ratios, strict=True):
        short, long = (float(r[4]) for r in rows if r[1] == turn)
        assert float(ratio) == pytest.approx(long / short, rel=0.03), output  # (rounded)

"""The committed schema matches the served one; lists run a fixed number of SQL statements."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection

from ordergraph.schema.build import build_schema
from ordergraph.storage import driver_reads
from ordergraph.storage.db import Database
from tests.client import Api
from tests.conftest import ADMIN_TOKEN, app_client

ROOT = Path(__file__).resolve().parents[2]


def test_committed_schema_matches_the_served_schema() -> None:
    committed = (ROOT / "schema.graphql").read_text()
    served = build_schema().as_str().rstrip("\n") + "\n"
    assert committed == served, (
        "schema.graphql is stale: run `ordergraph export-schema > schema.graphql`"
    )


@contextmanager
def counting_statements(
    db: Database, *, driver: bool = True, connection: AsyncConnection | None = None
) -> Iterator[list[str]]:
    """The statements sent meanwhile: SQLAlchemy's (with `connection`, only those sent on
    it) and, unless `driver` is False, those the hot reads send on the driver
    (storage/driver_reads.py, PostgreSQL). The rate limit's reconciliation of
    `rate_buckets` is left out: it runs on its own timer, about once a second, beside
    whatever requests are counted (ordergraph/throttle.py)."""
    seen: list[str] = []
    only = connection.sync_connection if connection is not None else None

    def record(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if (only is None or conn is only) and "rate_buckets" not in statement:
            seen.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    if driver:
        driver_reads.on_statement.append(seen.append)
    try:
        yield seen
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)
        if driver:
            driver_reads.on_statement.remove(seen.append)


PAGE = """query($h: String!, $first: Int!) { store(handle: $h) {
  orders(first: $first) { totalCount nodes { number total { amount }
    lines { sku quantity unitPrice { amount }
      product { sku onHand title price { amount } } } } } } }"""


async def test_a_page_of_orders_with_lines_and_products_runs_a_fixed_number_of_statements(
    api: Api,
) -> None:
    store = await api.create_store(policy="ALLOW")
    for sku in ("A", "B", "C"):
        await api.upsert(store, sku)
    for i in range(100):
        await api.place(store, [("A", 1 + i % 3), ("B", 1), ("C", 2)])
    assert api.db is not None
    # Without the token cache, each request looks its token up: both counts include it,
    # whatever the time between them (with the cache, one of them might not).
    async with app_client(api.db, auth_cache_seconds=0) as http:
        uncached = Api(http, ADMIN_TOKEN, api.db)
        counts = await _count_page_statements(uncached, store.handle, store.token)
    assert counts[5] == counts[100]
    # token (3), store by handle, orders page, their lines, count, products, store currency
    assert counts[100] <= 9, counts


async def _count_page_statements(api: Api, handle: str, token: str) -> dict[int, int]:
    assert api.db is not None
    counts: dict[int, int] = {}
    for first in (5, 100):
        with counting_statements(api.db) as statements:
            data = await api.gql(PAGE, {"h": handle, "first": first}, token=token)
        assert len(data["store"]["orders"]["nodes"]) == first
        counts[first] = len([s for s in statements if s.lstrip().upper().startswith("SELECT")])
    return counts

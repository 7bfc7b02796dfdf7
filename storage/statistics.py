"""The first statistics of the tables that grow with trade (PostgreSQL).

A table that was never analyzed is planned as a tiny one: `store_id = $1` is estimated
at one row, and then every index led by `store_id` ties with the primary key for a
lookup by `(store_id, id)`. PostgreSQL keeps the newest index on a tie, so the
foreign-key checks of `order_lines` and `events` (`store_id = $1 AND id = $2` on
`orders`) went through `ix_orders_ship_date`, matching the store and filtering on the
id: every check read the store's whole order history, more with every order. Measured
on a freshly migrated database: 3,000 rows of `orders` read per order placed over a
store's first 2,000 orders, none of them a sequential scan (the counts that
tests/api/test_fresh_plans_pg.py watched). Analyzed while it holds a page or two, the
table is planned as a sequential scan instead (cheaper than an index probe at that
size), which grows just as badly; migrate.py keeps autovacuum from doing that.

So the tables get their statistics as soon as an index probe is the planner's choice:
each served process looks, every ORDERGRAPH_FIRST_STATS_MS, at the growing tables
(migrate.py GROWING) that were never analyzed, and ANALYZEs each that has reached
FIRST_STATS_PAGES pages. A lookup then reads its one row by the primary key, and keeps
doing so as the table grows (autovacuum refreshes the statistics from there on). Once
every growing table has statistics it stops looking. Until then a check reads at most
the store's rows of a table of a few pages (about 100 orders per page at most).

On Citus the coordinator's tables hold no rows (the workers' shards do): nothing is done
there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ordergraph.storage.db import Database
from ordergraph.storage.distribution import has_citus
from ordergraph.storage.migrate import GROWING

log = logging.getLogger("ordergraph.statistics")

# From this size a sequential scan costs the planner more than an index probe of one row
# (about 8 units with the default random_page_cost of 4; a page read costs 1).
FIRST_STATS_PAGES = 10

_YOUNG = text(
    "SELECT c.relname, pg_relation_size(c.oid) / current_setting('block_size')::int AS pages"
    " FROM pg_class c WHERE c.relkind = 'r' AND c.reltuples < 0"
    " AND c.relnamespace = current_schema()::regnamespace AND c.relname = ANY(:names)"
    " ORDER BY c.relname"
)


async def analyze_grown(conn: AsyncConnection) -> tuple[list[str], bool]:
    """ANALYZE each growing table never analyzed that has reached FIRST_STATS_PAGES
    pages. Returns the tables analyzed, and whether any growing table still has no
    statistics (False on Citus and SQLite: there is nothing to do)."""
    if conn.dialect.name != "postgresql" or await has_citus(conn):
        return [], False
    young = (await conn.execute(_YOUNG, {"names": list(GROWING)})).all()
    analyzed = []
    for name, pages in young:
        if pages >= FIRST_STATS_PAGES:
            await conn.execute(text(f'ANALYZE "{name}"'))
            analyzed.append(name)
    return analyzed, len(analyzed) < len(young)


async def first_statistics(db: Database) -> bool:
    """One look (see the module); True while some growing table still has no statistics."""
    async with db.engine.begin() as conn:
        analyzed, young = await analyze_grown(conn)
    if analyzed:
        log.info("first statistics of %s", ", ".join(analyzed))
    return young


async def run_first_statistics(db: Database, every_ms: int, stop: asyncio.Event) -> None:
    """Look every `every_ms` until every growing table has statistics, or `stop`."""
    if db.is_sqlite:
        return
    while not stop.is_set():
        try:
            if not await first_statistics(db):
                return
        except Exception:
            log.exception("first statistics failed; retrying next round")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every_ms / 1000)

"""The per-process cache of verified keys (auth_cache_seconds) on PostgreSQL, with two
apps on one database standing for two server processes: while a key is cached, HTTP
requests cost no token query; a revoked key is refused at once by the process that
revoked it and by the other no later than the cache time."""

from __future__ import annotations

import asyncio
import time

from ordergraph.storage.db import Database
from tests.api.boundary.test_ws_auth_once import STORES, app_api, token_lookups
from tests.ws_support import make_key, revoke_by_api, shop

CACHE_SECONDS = 1
# What may pass between the cache running out and the refusal: one request's time.
SLACK_SECONDS = 0.5


async def test_a_cached_key_costs_no_query_and_its_revocation_is_seen_within_the_cache_time(
    pg_url: str,
) -> None:
    database = Database(pg_url, pool_size=5)
    try:
        async with (
            app_api(database, auth_cache_seconds=CACHE_SECONDS) as here,
            app_api(database, auth_cache_seconds=CACHE_SECONDS) as there,
        ):
            store = await shop(here)
            key = await make_key(here, [store], ["READ"], "cached")
            assert "errors" not in await there.raw(STORES, token=key.token)
            with token_lookups(database) as seen:
                for _ in range(5):
                    assert "errors" not in await there.raw(STORES, token=key.token)
            assert seen == []  # verified once, then served from this process's cache

            revoked_at = time.monotonic()
            await revoke_by_api(here, key)
            body = await here.raw(STORES, token=key.token)
            assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
            while "errors" not in (body := await there.raw(STORES, token=key.token)):
                assert time.monotonic() - revoked_at < CACHE_SECONDS + SLACK_SECONDS
                await asyncio.sleep(0.02)
            assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
            assert time.monotonic() - revoked_at < CACHE_SECONDS + SLACK_SECONDS
    finally:
        await database.dispose()

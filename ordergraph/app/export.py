"""GET /export/{orders,products}.{ndjson,csv}?store=…: a store's orders (with their lines)
or products (with their stock), streamed as they are read (docs/integrations.md).

In order: the token is looked up and the request charged to the key's bucket as /graphql
does (ordergraph.throttle: 429 THROTTLED), the key must hold READ (401/403), the path and
parameters must make sense (400, domain/export.py), the store must be one of the key's
(404 NOT_FOUND otherwise, whether it exists or not), and the store must have fewer than
ORDERGRAPH_EXPORT_MAX_CONCURRENT exports running in this process (429). Then the export
fixes where it stops (the event log's position, the highest order and product ids: sent
as the Ordergraph-Export-Cursor header) and reads pages of ORDERGRAPH_EXPORT_PAGE_SIZE
rows, each in one statement on a connection held for that statement only, each charged
to the key's bucket before it is read (one point per ORDERGRAPH_EXPORT_ROWS_PER_POINT
rows): a dry bucket slows the export down to the bucket's pace, it does not stop it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from ordergraph.domain.export import (
    BadExportRequest,
    ExportRequest,
    Shaper,
    looks_like_handle,
    parse_request,
)
from ordergraph.domain.model import Store
from ordergraph.domain.paging import encode_cursor
from ordergraph.domain.reads import KeyRecord
from ordergraph.resolvers import ids
from ordergraph.resolvers.context import ApiError, Context
from ordergraph.settings import Settings
from ordergraph.storage import queries
from ordergraph.storage.db import Database
from ordergraph.throttle import Throttle

log = logging.getLogger("ordergraph.export")
STATUS_OF_CODE = {
    "UNAUTHENTICATED": 401,
    "FORBIDDEN": 403,
    "NOT_FOUND": 404,
    "THROTTLED": 429,
    "MAX_COST_EXCEEDED": 429,
}
#: What the request itself is charged before its first page (as a small GraphQL query).
START_POINTS = 3
#: Retry-After for an export refused because its store has as many running as allowed.
BUSY_RETRY_SECONDS = 5


class Refusal(Exception):
    def __init__(self, status: int, code: str, message: str, **extensions: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extensions = extensions


@dataclass
class Started:
    key: KeyRecord
    store: Store
    request: ExportRequest


class BulkExport:
    """The /export/{name} endpoint; one per app (it counts the exports running)."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        throttle: Throttle,
        make_context: Callable[[Request, Response], Any],
        clock: Callable[[], Any],
    ) -> None:
        self.db = db
        self.settings = settings
        self.throttle = throttle
        self.make_context = make_context
        self.clock = clock
        self.page_size = settings.export_page_size
        self.running: dict[int, int] = {}  # store id -> exports running in this process

    def page_points(self, rows: int) -> int:
        return max(1, math.ceil(rows / self.settings.export_rows_per_point))

    async def endpoint(self, request: Request) -> Response:
        request_id = uuid.uuid4().hex
        try:
            response = await self._start(request)
        except Refusal as refused:
            response = _error(refused)
        except ApiError as error:
            extensions = dict(error.extensions or {})
            code = str(extensions.pop("code", "FORBIDDEN"))
            status = STATUS_OF_CODE.get(code, 403)
            response = _error(Refusal(status, code, error.message, **extensions))
        response.headers["x-request-id"] = request_id
        return response

    async def _start(self, request: Request) -> Response:
        if request.method != "GET":
            raise Refusal(405, "METHOD_NOT_ALLOWED", "exports are served over GET")
        context: Context = await self.make_context(request, Response())
        await self.throttle.admit(context, START_POINTS)
        who = await context.require("READ")
        assert who.key is not None
        try:
            wanted = parse_request(request.path_params["name"], request.query_params.multi_items())
        except BadExportRequest as bad:
            extra = {"parameter": bad.parameter} if bad.parameter else {}
            raise Refusal(400, "BAD_REQUEST", str(bad), **extra) from None
        store = await self._store(wanted.store, who.key)
        if self.running.get(store.id, 0) >= self.settings.export_max_concurrent:
            raise Refusal(
                429,
                "THROTTLED",
                f"this store already has {self.settings.export_max_concurrent} exports "
                "running (the limit): try again when one has finished",
                retryAfterSeconds=BUSY_RETRY_SECONDS,
            )
        wait = self.throttle.charge_key(who.key, self.page_points(self.page_size))
        if wait is not None:
            seconds = round(max(wait, 0.001), 3)
            raise Refusal(
                429,
                "THROTTLED",
                f"rate limited: try again in {seconds} s",
                retryAfterSeconds=seconds,
            )
        async with self.db.read() as conn:
            bounds = await queries.export_bounds(conn, store.id)
        if bounds is None:  # the store went away since it was looked up
            raise _not_found()
        now = self.clock()
        shaper = Shaper(wanted.format, store.currency_code, now, ids.encode)
        stamp = now.strftime("%Y%m%dT%H%M%SZ")
        headers = {
            "content-disposition": (
                f'attachment; filename="{store.handle}-{wanted.resource}-{stamp}.{wanted.format}"'
            ),
            "cache-control": "no-store",
            "x-content-type-options": "nosniff",
            "ordergraph-export-cursor": encode_cursor([bounds.last_seq]),
        }
        self.running[store.id] = self.running.get(store.id, 0) + 1
        body = self._pages(Started(who.key, store, wanted), shaper, bounds)
        return HeldStream(
            body,
            media_type=wanted.media_type,
            headers=headers,
            release=lambda: self._release(store.id),
        )

    def _release(self, store_id: int) -> None:
        left = self.running.get(store_id, 0) - 1
        if left > 0:
            self.running[store_id] = left
        else:
            self.running.pop(store_id, None)

    async def _store(self, given: str, key: KeyRecord) -> Store:
        """The store named by a global ID or a handle, if this key may see it; 404 the
        same way for a store of another key and for none at all."""
        store_id = ids.store_id(given)
        if store_id is None:
            if not looks_like_handle(given):
                raise Refusal(
                    400,
                    "BAD_REQUEST",
                    "store must be a store's handle or its ID",
                    parameter="store",
                )
            async with self.db.read() as conn:
                found = await queries.store_by_handle(conn, given, key.store_ids)
        else:
            async with self.db.read() as conn:
                found = (await queries.stores_by_id(conn, [store_id])).get(store_id)
        if found is None or found.id not in key.store_ids:
            raise _not_found()
        return found

    async def _pages(
        self, started: Started, shaper: Shaper, bounds: queries.ExportBounds
    ) -> AsyncIterator[bytes]:
        """The export's bytes, page after page; the first page was charged at the start."""
        wanted, key, store_id = started.request, started.key, started.store.id
        began = time.perf_counter()
        rows = 0
        after = 0
        charged = True
        header = shaper.header(wanted.resource)
        if header:
            yield header
        try:
            while True:
                if not charged:
                    await self.throttle.spend(key, self.page_points(self.page_size))
                charged = False
                chunk, count, after = await self._page(wanted, store_id, bounds, after, shaper)
                if count:
                    rows += count
                    yield chunk
                if count < self.page_size:
                    break
                # Let everyone else's work run between two pages.
                await asyncio.sleep(0)
        finally:
            log.info(
                "export",
                extra={
                    "store_id": store_id,
                    "export": wanted.filename,
                    "rows": rows,
                    "duration_ms": round((time.perf_counter() - began) * 1000, 2),
                },
            )

    async def _page(
        self,
        wanted: ExportRequest,
        store_id: int,
        bounds: queries.ExportBounds,
        after: int,
        shaper: Shaper,
    ) -> tuple[bytes, int, int]:
        async with self.db.read() as conn:
            if wanted.resource == "orders":
                orders = await queries.export_orders_page(
                    conn,
                    store_id,
                    after=after,
                    bounds=bounds,
                    limit=self.page_size,
                    statuses=wanted.statuses,
                    placed_since=wanted.placed_since,
                    updated_since=wanted.updated_since,
                )
                if not orders:
                    return b"", 0, after
                return shaper.orders(orders), len(orders), orders[-1].id
            products = await queries.export_products_page(
                conn, store_id, after=after, bounds=bounds, limit=self.page_size
            )
            if not products:
                return b"", 0, after
            return shaper.products(products), len(products), products[-1].id


class HeldStream(StreamingResponse):
    """A streamed answer that gives its export slot back when it ends, however it ends
    (finished, failed, or the client went away before the first byte)."""

    def __init__(self, *args: Any, release: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()
            with contextlib.suppress(Exception):
                await self.body_iterator.aclose()  # type: ignore[attr-defined]


def _not_found() -> Refusal:
    return Refusal(404, "NOT_FOUND", "no store with this handle or ID is visible to this key")


def _error(refused: Refusal) -> Response:
    body = {
        "errors": [
            {
                "message": refused.message,
                "extensions": {"code": refused.code, **refused.extensions},
            }
        ]
    }
    headers: dict[str, str] = {"cache-control": "no-store"}
    retry = refused.extensions.get("retryAfterSeconds")
    if refused.status == 429 and isinstance(retry, (int, float)):
        headers["retry-after"] = str(max(1, math.ceil(retry)))
    if refused.status == 405:
        headers["allow"] = "GET"
    if refused.status == 401:
        headers["www-authenticate"] = "Bearer"
    return Response(
        json.dumps(body, separators=(",", ":")),
        status_code=refused.status,
        headers=headers,
        media_type="application/json; charset=utf-8",
    )

"""Mutations: authorize, run a domain service in the store's unit of work, return ids.

Results are ids, not objects: the payload loads what the client asked for after
commit, and an idempotent retry returns the same ids as the first request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import DBAPIError

from ordergraph.domain import services
from ordergraph.domain import validation as check
from ordergraph.domain.errors import DomainError, ErrorCode, Problem
from ordergraph.domain.model import BackorderPolicy, CancelReason
from ordergraph.domain.reads import KeyRecord
from ordergraph.resolvers import ids
from ordergraph.resolvers.context import Context
from ordergraph.storage import admin, idempotency, queries
from ordergraph.storage.uow import SqlStoreSession, store_session

Action = Callable[[SqlStoreSession], Awaitable[dict[str, Any]]]
_RETRYABLE_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock
MAX_KEY_LENGTH = 255
MAX_KEY_STORES = 100


@dataclass
class Outcome:
    result: dict[str, Any] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    store_id: int | None = None


def failed(code: ErrorCode, message: str, *path: str) -> Outcome:
    return Outcome(problems=[Problem(code, message, tuple(path) or None)])


def _checked(*checks: Callable[[], object]) -> list[Problem]:
    """The problems the given input checks raise (each check runs; none stops the rest)."""
    problems: list[Problem] = []
    for run_check in checks:
        try:
            run_check()
        except DomainError as err:
            problems.extend(err.problems)
    return problems


def _sqlstate(error: DBAPIError) -> str | None:
    orig = getattr(error, "orig", None)
    return getattr(orig, "sqlstate", None) or getattr(
        getattr(orig, "__cause__", None), "sqlstate", None
    )


async def run(
    ctx: Context,
    store_id: int,
    operation: str,
    key: str | None,
    request: dict[str, Any],
    action: Action,
) -> Outcome:
    """Run `action` in a locked unit of work on the store, honouring an idempotency key."""
    if key is not None and (
        problems := _checked(lambda: check.token(key, "idempotencyKey", max_len=MAX_KEY_LENGTH))
    ):
        return Outcome(problems=problems, store_id=store_id)
    digest = idempotency.request_hash(request)
    ttl = ctx.limits.idempotency_ttl
    for attempt in range(5):
        try:
            async with store_session(ctx.db, store_id, ctx.clock) as session:
                if key is not None:
                    earlier = await idempotency.recall(session, operation, key, digest, ttl)
                    if earlier is not None:
                        return Outcome(result=earlier, store_id=store_id)
                result = await action(session)
                if key is not None:
                    await idempotency.remember(session, operation, key, digest, result, ttl)
            return Outcome(result=result, store_id=store_id)
        except DomainError as err:
            return Outcome(problems=err.problems, store_id=store_id)
        except DBAPIError as err:
            if _sqlstate(err) not in _RETRYABLE_SQLSTATES or attempt == 4:
                raise
            await asyncio.sleep(0.01 * (attempt + 1))
    raise AssertionError("unreachable")


async def _store_for(ctx: Context, store_gid: str, scope: str) -> int | None:
    store = await ctx.visible_store(ids.store_id(store_gid), scope)
    return store.id if store else None


_NO_STORE = ("store not found", "storeId")


async def load_key(ctx: Context, key_id: int) -> KeyRecord | None:
    async with ctx.db.read() as conn:
        return (await queries.api_keys_by_id(conn, [key_id])).get(key_id)


# -- admin --------------------------------------------------------------------


async def create_store(
    ctx: Context,
    *,
    handle: str,
    name: str,
    currency_code: str,
    timezone: str,
    default_policy: BackorderPolicy,
) -> Outcome:
    await ctx.require_admin()
    try:
        store, created = await admin.create_store(
            ctx.db,
            handle=handle,
            name=name,
            currency_code=currency_code,
            timezone=timezone,
            default_policy=default_policy,
            now=ctx.clock(),
            key_name=f"{handle} (created with the store)",
        )
    except DomainError as err:
        return Outcome(problems=err.problems)
    assert created is not None
    key, token = created
    return Outcome(result={"storeId": store.id, "apiKeyId": key.id, "token": token})


async def create_api_key(
    ctx: Context, *, name: str, store_gids: list[str], scopes: list[str]
) -> Outcome:
    await ctx.require_admin()
    if problems := _checked(lambda: check.list_length(store_gids, MAX_KEY_STORES, "storeIds")):
        return Outcome(problems=problems)
    store_ids = [ids.store_id(g) for g in store_gids]
    if any(s is None for s in store_ids):
        return failed(ErrorCode.NOT_FOUND, "store not found", "storeIds")
    try:
        key, token = await admin.create_api_key(
            ctx.db,
            name=name,
            store_ids=[s for s in store_ids if s is not None],
            scopes=scopes,
            now=ctx.clock(),
        )
    except DomainError as err:
        return Outcome(problems=err.problems)
    return Outcome(result={"apiKeyId": key.id, "token": token})


async def revoke_api_key(ctx: Context, key_gid: str) -> Outcome:
    await ctx.require_admin()
    found = ids.decode(key_gid, "ApiKey")
    if found is None:
        return failed(ErrorCode.NOT_FOUND, "api key not found", "id")
    try:
        key = await admin.revoke_api_key(ctx.db, found[1][0], ctx.clock())
    except DomainError as err:
        return Outcome(problems=err.problems)
    ctx.key_revoked(key.id)
    return Outcome(result={"apiKeyId": key.id})


# -- inventory ----------------------------------------------------------------


async def upsert_product(ctx: Context, store_gid: str, cmd: services.UpsertProduct) -> Outcome:
    store_id = await _store_for(ctx, store_gid, "INVENTORY")
    if store_id is None:
        return failed(ErrorCode.NOT_FOUND, *_NO_STORE)
    restock = cmd.restock_date
    if restock is not None and (problems := _checked(lambda: check.day(restock, "restockDate"))):
        return Outcome(problems=problems, store_id=store_id)

    async def action(session: SqlStoreSession) -> dict[str, Any]:
        product = await services.upsert_product(session, cmd)
        return {"productId": product.id}

    return await run(ctx, store_id, "upsertProduct", None, {}, action)


async def receive_stock(
    ctx: Context, store_gid: str, sku: str, quantity: int, note: str | None, key: str | None
) -> Outcome:
    store_id = await _store_for(ctx, store_gid, "INVENTORY")
    if store_id is None:
        return failed(ErrorCode.NOT_FOUND, *_NO_STORE)
    if note is not None and (problems := _checked(lambda: check.note(note, "note"))):
        return Outcome(problems=problems, store_id=store_id)

    async def action(session: SqlStoreSession) -> dict[str, Any]:
        product, filled = await services.receive_stock(session, sku, quantity, note)
        return {"productId": product.id, "filledLineIds": [line.id for line in filled]}

    request = {"sku": sku, "quantity": quantity, "note": note}
    return await run(ctx, store_id, "receiveStock", key, request, action)


async def adjust_stock(
    ctx: Context,
    store_gid: str,
    sku: str,
    delta: int | None,
    set_on_hand: int | None,
    reason: str,
    key: str | None,
) -> Outcome:
    store_id = await _store_for(ctx, store_gid, "INVENTORY")
    if store_id is None:
        return failed(ErrorCode.NOT_FOUND, *_NO_STORE)

    async def action(session: SqlStoreSession) -> dict[str, Any]:
        product = await services.adjust_stock(
            session, sku, delta=delta, set_on_hand=set_on_hand, reason=reason
        )
        return {"productId": product.id}

    request = {"sku": sku, "delta": delta, "setOnHand": set_on_hand, "reason": reason}
    return await run(ctx, store_id, "adjustStock", key, request, action)


# -- orders -------------------------------------------------------------------


async def place_order(
    ctx: Context, store_gid: str, cmd: services.PlaceOrder, key: str | None
) -> Outcome:
    store_id = await _store_for(ctx, store_gid, "ORDERS")
    if store_id is None:
        return failed(ErrorCode.NOT_FOUND, *_NO_STORE)
    ship_by = cmd.requested_ship_date
    if problems := _checked(
        lambda: check.list_length(cmd.lines, check.MAX_LINES, "lines"),
        lambda: ship_by is None or check.day(ship_by, "requestedShipDate"),
    ):
        return Outcome(problems=problems, store_id=store_id)

    async def action(session: SqlStoreSession) -> dict[str, Any]:
        order = await services.place_order(session, cmd)
        return {"orderId": order.id}

    request = {
        "lines": [[line.sku, line.quantity] for line in cmd.lines],
        "externalId": cmd.external_id,
        "customerRef": cmd.customer_ref,
        "requestedShipDate": cmd.requested_ship_date,
    }
    return await run(ctx, store_id, "placeOrder", key, request, action)


async def _order_target(
    ctx: Context, order_gid: str, line_gids: list[str] | None
) -> tuple[int, int | None, list[int | None] | None] | None:
    """(store id, order id or None, line ids) when the caller may change orders there."""
    await ctx.require("ORDERS")
    ref = ids.scoped_id(order_gid, "Order")
    if ref is None or await ctx.visible_store(ref[0], "ORDERS") is None:
        return None
    line_ids: list[int | None] | None = None
    if line_gids is not None:
        line_ids = []
        for gid in line_gids:
            line_ref = ids.scoped_id(gid, "OrderLine")
            line_ids.append(line_ref[1] if line_ref and line_ref[0] == ref[0] else None)
    return ref[0], ref[1], line_ids


def _line_quantities(
    line_ids: list[int | None] | None, quantities: list[int]
) -> list[services.LineQuantity] | None:
    if line_ids is None:
        return None
    # An unknown or foreign line id becomes -1, which no order holds: NOT_FOUND.
    return [
        services.LineQuantity(line_id if line_id is not None else -1, qty)
        for line_id, qty in zip(line_ids, quantities, strict=True)
    ]


def _pairs(line_ids: list[int | None] | None, quantities: list[int]) -> list[Any] | None:
    return None if line_ids is None else [list(p) for p in zip(line_ids, quantities, strict=True)]


async def ship_order(
    ctx: Context,
    order_gid: str,
    line_gids: list[str] | None,
    quantities: list[int],
    tracking_number: str | None,
    key: str | None,
) -> Outcome:
    target = await _order_target(ctx, order_gid, line_gids)
    if target is None:
        return failed(ErrorCode.NOT_FOUND, "order not found", "orderId")
    store_id, order_id, line_ids = target
    if problems := _checked(lambda: check.list_length(line_gids, check.MAX_LINES, "lines")):
        return Outcome(problems=problems, store_id=store_id)
    lines = _line_quantities(line_ids, quantities)

    async def action(session: SqlStoreSession) -> dict[str, Any]:
        order = await services.ship_order(session, order_id, lines, tracking_number)
        return {"orderId": order.id}

    request = {
        "orderId": order_id,
        "lines": _pairs(line_ids, quantities),
        "trackingNumber": tracking_number,
    }
    return await run(ctx, store_id, "shipOrder", key, request, action)


async def cancel_order(
    ctx: Context,
    order_gid: str,
    reason: CancelReason,
    line_gids: list[str] | None,
    quantities: list[int],
    key: str | None,
) -> Outcome:
    target = await _order_target(ctx, order_gid, line_gids)
    if target is None:
        return failed(ErrorCode.NOT_FOUND, "order not found", "orderId")
    store_id, order_id, line_ids = target
    if problems := _checked(lambda: check.list_length(line_gids, check.MAX_LINES, "lines")):
        return Outcome(problems=problems, store_id=store_id)
    lines = _line_quantities(line_ids, quantities)

    async def action(session: SqlStoreSession) -> dict[str, Any]:
        order = await services.cancel_order(session, order_id, reason, lines)
        return {"orderId": order.id}

    request = {"orderId": order_id, "reason": reason.value, "lines": _pairs(line_ids, quantities)}
    return await run(ctx, store_id, "cancelOrder", key, request, action)

"""What every mutation resolver shares: input checks, the store run, the payload pieces.

The resolvers themselves live by concern: `resolvers.admin` (stores and keys),
`resolvers.inventory` (products and stock) and `resolvers.orders`. Each one
authorizes, builds a domain command, runs it in a unit of work from the
context's factory (`ctx.units`) and maps the typed result to its payload.

Results are ids, not objects: the payload loads what the client asked for after
commit, and an idempotent retry returns the same ids as the first request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ordergraph.domain import services
from ordergraph.domain import validation as check
from ordergraph.domain.commands import Changed, StoreCommand, reads_of
from ordergraph.domain.errors import DomainError, ErrorCode, Problem
from ordergraph.domain.ports import Loaded, StoreUnit
from ordergraph.resolvers import ids
from ordergraph.resolvers.batches import alone
from ordergraph.resolvers.context import Context
from ordergraph.schema.types import OrderType, ProductType, UserError

MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class Outcome:
    """A store mutation's end: what changed, or why nothing did."""

    changed: Changed | None = None
    problems: list[Problem] = field(default_factory=list)
    store_id: int | None = None
    # What the unit held at commit: the payload shows it without reading it again.
    loaded: Loaded | None = None


def failed(code: ErrorCode, message: str, *path: str) -> list[Problem]:
    return [Problem(code, message, tuple(path) or None)]


def checked(*checks: Callable[[], object]) -> list[Problem]:
    """The problems the given input checks raise (each check runs; none stops the rest)."""
    problems: list[Problem] = []
    for run_check in checks:
        try:
            run_check()
        except DomainError as err:
            problems.extend(err.problems)
    return problems


def user_errors(problems: list[Problem]) -> list[UserError]:
    return [
        UserError(
            field=["input", *p.field] if p.field else None,
            message=p.message,
            code=ErrorCode(p.code.value),
        )
        for p in problems
    ]


async def run(ctx: Context, store_id: int, cmd: StoreCommand, *, key: str | None) -> Outcome:
    """Run `cmd` in a locked unit of work on the store, honouring an idempotency key.

    With the context's batches (resolvers/batches.py) the unit may also run other
    requests' changes to the same store, queued while it waited; without, it is the
    command's own. A conflict with a concurrent change (as the factory judges it) runs
    the unit again, a few times; a refusal by the domain changes nothing and becomes
    userErrors.
    """
    if key is not None and (
        problems := checked(lambda: check.token(key, "idempotencyKey", max_len=MAX_KEY_LENGTH))
    ):
        return Outcome(problems=problems, store_id=store_id)
    request = cmd.request()

    async def work(unit: StoreUnit) -> tuple[Changed, bool]:
        if key is not None:
            earlier = await unit.recall(cmd.operation, key, request)
            if earlier is not None:
                return Changed.from_record(earlier), True
        changed = await services.execute(unit.session, cmd)
        if key is not None:
            await unit.remember(cmd.operation, key, request, changed.to_record())
        return changed, False

    reads = reads_of(cmd, key)
    try:
        if ctx.batches is None:
            (changed, recalled), loaded = await alone(ctx.units, store_id, reads, work)
        else:
            (changed, recalled), loaded = await ctx.batches.run(store_id, reads, work)
    except DomainError as err:
        return Outcome(problems=err.problems, store_id=store_id)
    if recalled:
        return Outcome(changed, store_id=store_id)
    ctx.show(loaded, orders=_orders_of(changed, loaded))
    return Outcome(changed, store_id=store_id, loaded=loaded)


def _orders_of(changed: Changed, loaded: Loaded) -> set[int]:
    """The orders a change's payload shows: its order, and those of the lines it filled
    (the unit may hold other changes' orders too, when it ran several)."""
    ids = {changed.order_id} if changed.order_id is not None else set()
    if changed.filled_line_ids:
        filled = set(changed.filled_line_ids)
        ids.update(
            o.id for o in loaded.orders.values() if any(line.id in filled for line in o.lines)
        )
    return ids


def no_store() -> list[Problem]:
    """What a caller hears of a store it may not use: the same as of no store at all."""
    return failed(ErrorCode.NOT_FOUND, "store not found", "storeId")


async def store_for(ctx: Context, store_gid: str, scope: str) -> int | None:
    """The store's id if the caller may use it with `scope` (else None: not found).
    Whether the store exists, the unit of work says when it takes the store's lock."""
    return await ctx.usable_store_id(ids.store_id(store_gid), scope)


async def changed_order(ctx: Context, outcome: Outcome) -> OrderType | None:
    changed, store_id = outcome.changed, outcome.store_id
    if changed is None or changed.order_id is None or store_id is None:
        return None
    found = await ctx.loaders.order.load((store_id, changed.order_id))
    return OrderType(_order=found) if found else None


async def changed_product(ctx: Context, outcome: Outcome) -> ProductType | None:
    changed, store_id = outcome.changed, outcome.store_id
    if changed is None or changed.product_id is None or store_id is None:
        return None
    found = await ctx.loaders.product.load((store_id, changed.product_id))
    return ProductType(_product=found) if found else None

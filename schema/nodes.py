"""What every object type shares: the request's Info, the Node interface, the scope
guards of fields, and fields that are an attribute of the wrapped domain object."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from operator import attrgetter
from typing import Any

import strawberry
from strawberry.annotation import StrawberryAnnotation
from strawberry.types import Info
from strawberry.types.field import StrawberryField
from strawberry.types.nodes import SelectedField, Selection

from ordergraph.resolvers.context import Context
from ordergraph.schema.execution import CONTEXT_READ
from ordergraph.schema.money import Money, money

Ctx = Info[Context, None]

ID_DESCRIPTION = (
    "The object's global ID: opaque (do not parse it), stable, and accepted by `node`, "
    "`nodes` and the mutations that name this object."
)


@strawberry.interface(
    description="An object that can be fetched by its global ID with `node` or `nodes`."
)
class Node:
    @strawberry.field(description=ID_DESCRIPTION)
    def id(self) -> strawberry.ID:
        raise NotImplementedError


async def traverse(info: Ctx) -> None:
    """Fields that lead past the object a mutation returned, or to store-wide data (the
    store, connections, figures, queues) need the READ scope: a key with only ORDERS or
    INVENTORY sees what its own mutation returned, with its own fields, and no more; the
    admin token sees no store data (docs/security.md, "What each token sees")."""
    await info.context.require("READ")


def store_detail(info: Ctx) -> None:
    """A store's fields other than id and handle: READ (the admin token sees those two)."""
    info.context.require_now("READ")


async def currency(info: Ctx, store_id: int) -> str:
    """The store's currency code, for a Money field (through the store loader)."""
    return await _currency(info.context, store_id)


async def _currency(ctx: Context, store_id: int) -> str:
    store = await ctx.loaders.store.load(store_id)
    assert store is not None
    return store.currency_code


async def _priced_later(ctx: Context, amount: Decimal, store_id: int) -> Money:
    return money(amount, await _currency(ctx, store_id))


def priced(ctx: Context, amount: Decimal, store_id: int) -> Money | Awaitable[Money]:
    """A Money field's value: at once when the request already holds the store (a page
    of orders has many of them, and an awaited field costs far more than a plain one);
    else an awaitable, which graphql-core awaits as it would an async resolver's."""
    store = ctx.loaders.known_store(store_id)
    if store is not None:
        return money(amount, store.currency_code)
    return _priced_later(ctx, amount, store_id)


def contextual(graphql_type: Any, read: Callable[[Any, Context], Any], description: str) -> Any:
    """A field that `read(obj, context)` gives, needing of the request its context only
    (its loaders, its key), without arguments: a resolver to graphql-core, read directly
    by schema/execution.py's one pass. `read` may return an awaitable (graphql-core then
    awaits it)."""

    def resolve(root: Any, info: Ctx) -> Any:
        return read(root, info.context)

    return strawberry.field(
        resolver=resolve,
        graphql_type=graphql_type,
        description=description,
        metadata={CONTEXT_READ: read},
    )


def selects(selections: Sequence[Selection], chain: tuple[str, ...]) -> bool:
    """Whether the selection asks, at any depth, for the fields of `chain` nested in
    order (fragments included)."""
    for selection in selections:
        here = isinstance(selection, SelectedField) and selection.name == chain[0]
        if here and (len(chain) == 1 or selects(selection.selections, chain[1:])):
            return True
        if selects(selection.selections, chain):
            return True
    return False


def _domain_attribute(root: Any, info: Ctx) -> Any:
    return getattr(root.domain(), info.python_name)


def _guarded(guard: Callable[[Ctx], None]) -> Callable[[Any, Ctx], Any]:
    def read(root: Any, info: Ctx) -> Any:
        guard(info)
        return _domain_attribute(root, info)

    return read


class _Attribute(StrawberryField):
    """A field without a resolver that reads the wrapped domain object's attribute: to
    Strawberry a "basic" field, resolved on its fast path (no Info, no arguments), which
    matters on pages of many objects. Its dataclass default (None) is never read."""

    _read: Callable[[Any], Any] | None = None

    def get_result(self, source: Any, info: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
        read = self._read
        if read is None:  # the name is known once the type is made; read it once
            read = self._read = attrgetter(self.python_name)
        return read(source.domain())

    def plain_read(self) -> Callable[[Any], Any]:
        """The value from the object alone (schema/execution.py's one pass)."""
        read = attrgetter(self.python_name)
        return lambda source: read(source.domain())


class _Plain(StrawberryField):
    """A field computed from its object alone, by `metadata["value"](source)`: a
    "basic" field to Strawberry as well (no Info, no arguments)."""

    def get_result(self, source: Any, info: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
        return self.metadata["value"](source)

    def plain_read(self) -> Callable[[Any], Any]:
        """The value from the object alone (schema/execution.py's one pass)."""
        return self.metadata["value"]  # type: ignore[no-any-return]


def plain(graphql_type: Any, value: Callable[[Any], Any], description: str | None = None) -> Any:
    """A field that `value(obj)` gives, needing nothing of the request (an id, a list
    the object holds): cheap on pages of many objects. (The function travels in the
    field's metadata, which Strawberry keeps when it copies fields.)"""
    return _Plain(
        type_annotation=StrawberryAnnotation.from_annotation(graphql_type),
        default=None,
        metadata={"value": value},
        description=description,
    )


def attribute(
    graphql_type: Any,
    description: str | None = None,
    guard: Callable[[Ctx], None] | None = None,
) -> Any:
    """A field that is the attribute of the same name of the wrapped domain object
    (`domain()` of the type), read as it is; `guard(info)` first, if given (a scope check
    that raises).

    Declared in the class body in schema order (`sku = attribute(str)`), among the
    resolved fields, so the served schema lists fields as the class does."""
    if guard is None:
        return _Attribute(
            type_annotation=StrawberryAnnotation.from_annotation(graphql_type),
            default=None,
            description=description,
        )
    return strawberry.field(
        resolver=_guarded(guard), graphql_type=graphql_type, description=description
    )

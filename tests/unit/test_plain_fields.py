"""schema/execution.py completes plain fields itself: its answers, errors, error paths and
null propagation must be graphql-core's own, field for field. Each case runs the same
document on the same schema twice, with `PlainFields` and with Strawberry's own
execution context, and compares the results."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import Any

import pytest
import strawberry
from strawberry.dataloader import DataLoader
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from ordergraph.schema.execution import BUILDER_FAILURES, PlainFields
from ordergraph.schema.nodes import plain


class Color(Enum):
    RED = "red"
    BLUE = "blue"


BROKEN_READS: list[int] = []


@strawberry.interface
class Named:
    name: str


@strawberry.type
class Leaf:
    n: int
    label: str | None
    must: str
    when: dt.datetime
    amount: Decimal
    color: Color
    big: int = 0
    tint: Color | None = None  # a nullable enum, null: built as null, not given up on

    @property
    def broken(self) -> str:
        BROKEN_READS.append(self.n)
        raise RuntimeError("broken read")

    double: int = plain(int, lambda leaf: leaf.n * 2)
    fragile: str | None = plain(str | None, lambda leaf: leaf.broken)
    fragile_required: str = plain(str, lambda leaf: leaf.broken)


@strawberry.type
class Item(Named):
    name: str
    leaf: Leaf
    maybe: Leaf | None
    leaves: list[Leaf]
    holes: list[Leaf | None]
    strict: list[Leaf] | None

    @strawberry.field
    async def loaded(self, info: strawberry.Info) -> int:
        return await info.context["loader"].load(self.name)  # type: ignore[no-any-return]

    @strawberry.field
    def with_arg(self, times: int) -> int:
        return len(self.name) * times

    @strawberry.field
    def oops(self) -> str | None:
        raise ValueError("resolver failed")

    shaky: str | None = plain(str | None, lambda item: item.leaf.broken)


def leaf(n: int, **changes: Any) -> Leaf:
    fields: dict[str, Any] = {
        "n": n,
        "label": None if n % 2 else f"L{n}",
        "must": f"m{n}",
        "when": dt.datetime(2026, 1, 1, n % 24, tzinfo=dt.UTC),
        "amount": Decimal("1.50") * n,
        "color": Color.RED if n % 2 else Color.BLUE,
    }
    fields.update(changes)
    return Leaf(**fields)


def item(i: int, **changes: Any) -> Item:
    fields: dict[str, Any] = {
        "name": f"item{i}",
        "leaf": leaf(i),
        "maybe": leaf(i + 1) if i % 2 else None,
        "leaves": [leaf(i + k) for k in range(3)],
        "holes": [leaf(i), None],
        "strict": [leaf(i)],
    }
    fields.update(changes)
    return Item(**fields)


@dataclass
class World:
    items: list[Item]


def make_query(world: World) -> type:
    @strawberry.type
    class Query:
        @strawberry.field
        def items(self) -> list[Item]:
            return world.items

        @strawberry.field
        def named(self) -> list[Named]:
            return list(world.items)

        @strawberry.field
        def first(self) -> Item:
            return world.items[0]

    return Query


LEAF = "n label must when amount color double big __typename"
FULL = f"""{{ items {{ __typename name nick: name leaf {{ {LEAF} }} maybe {{ n }}
  leaves {{ ...L }} holes {{ n must }} strict {{ n }} withArg(times: 2) loaded
  more: leaves {{ n @include(if: true) label @skip(if: true) }} }}
  named {{ __typename name ... on Item {{ leaf {{ n }} }} }}
  first {{ leaf {{ n }} }} }}
fragment L on Leaf {{ n when amount }}"""


async def run(
    world: World, document: str, context_class: type, extensions: list[Any] | None = None
) -> tuple[Any, list[tuple[str, Any]], int]:
    """data, (message, path) of each error, and the loader's batches."""
    batches: list[list[str]] = []

    async def load(keys: list[str]) -> list[int]:
        batches.append(keys)
        return [len(k) for k in keys]

    schema = strawberry.Schema(
        query=make_query(world),
        types=[Item],
        execution_context_class=context_class,
        extensions=extensions or [],
    )
    result = await schema.execute(document, context_value={"loader": DataLoader(load_fn=load)})
    errors = sorted((e.message, e.path) for e in result.errors or [])
    return result.data, errors, len(batches)


async def both(world: World, document: str) -> tuple[Any, Any]:
    ours = await run(world, document, PlainFields)
    theirs = await run(world, document, StrawberryGraphQLCoreExecutionContext)
    return ours, theirs


async def test_a_full_selection_answers_as_graphql_core_does() -> None:
    world = World([item(i) for i in range(12)])
    ours, theirs = await both(world, FULL)
    assert ours == theirs
    data, errors, batches = ours
    assert not errors
    assert len(data["items"]) == 12
    assert data["items"][3]["leaf"]["color"] == "RED"
    assert data["items"][3]["leaf"]["__typename"] == "Leaf"
    assert data["items"][3]["leaves"][0] == {
        "n": 3,
        "when": "2026-01-01T03:00:00+00:00",
        "amount": "4.50",
    }
    assert batches == 1  # the items' loads went out together


@pytest.mark.parametrize(
    ("document", "world"),
    [
        # a non-null leaf that is null: the error at its path, its object null, up to
        # the nearest nullable field (the list item is non-null: the whole list)
        ("{ items { name leaf { must } } }", World([item(0), item(1, leaf=leaf(1, must=None))])),
        # the same under a nullable object
        ("{ items { maybe { must } } }", World([item(1, maybe=leaf(2, must=None))])),
        # a plain read that raises: nullable, then non-null
        ("{ items { leaf { n fragile } } }", World([item(0), item(1)])),
        ("{ items { name maybe { n fragileRequired } } }", World([item(1), item(3)])),
        # a resolver's error beside a plain read that raises, in the same object: each
        # reported once
        ("{ items { oops shaky name } }", World([item(0), item(1)])),
        # a null item of a list of non-null items (of nullable items: FULL's `holes`)
        ("{ items { strict { n } } }", World([item(0, strict=[leaf(0), None])])),
        # a non-null object that is null, and a list that is not a list
        ("{ first { leaf { n } } }", World([item(0, leaf=None)])),
        ("{ items { leaves { n } } }", World([item(0, leaves=leaf(0))])),
        # an Int past 32 bits, and a value that does not coerce to the leaf's type
        ("{ items { leaf { n big } } }", World([item(0, leaf=leaf(0, big=2**40))])),
        ("{ items { leaf { n color } } }", World([item(0, leaf=leaf(0, color="GREEN"))])),
        ("{ items { leaf { must } } }", World([item(0, leaf=leaf(0, must=object()))])),
        # the same in the middle of a list of objects that compiled builders complete:
        # the item's builder gives up, and that item alone is completed field by field
        (
            "{ items { leaves { n big when } } }",
            World([item(0, leaves=[leaf(0), leaf(1, big=2**40), leaf(2)])]),
        ),
        ("{ items { leaves { n must } } }", World([item(0, leaves=[leaf(0), leaf(1, must=None)])])),
        ("{ items { leaves { n fragile } } }", World([item(0), item(1)])),
        ("{ items { leaves { amount when } } }", World([item(0, leaves=[leaf(1, when="x")])])),
    ],
)
async def test_errors_and_nulls_are_graphql_cores(document: str, world: World) -> None:
    ours, theirs = await both(world, document)
    assert ours == theirs
    assert ours[1], "each case is one with an error"


async def test_a_resolve_hook_sees_every_field_as_before() -> None:
    """With a middleware (a schema extension's resolve hook), graphql-core executes
    everything, so the hook is called for the plain fields too."""
    seen: list[str] = []

    class Counting(SchemaExtension):
        def resolve(
            self, _next: Callable[..., Any], root: Any, info: Any, *args: str, **kwargs: Any
        ) -> Any:
            seen.append(info.field_name)
            return _next(root, info, *args, **kwargs)

    world = World([item(0)])
    data, errors, _ = await run(world, "{ items { leaf { n must } } }", PlainFields, [Counting])
    assert not errors
    assert data == {"items": [{"leaf": {"n": 0, "must": "m0"}}]}
    assert sorted(seen) == ["items", "leaf", "must", "n"]


async def test_plain_fields_skip_graphql_cores_per_field_execution() -> None:
    """The point of it: of FULL's fields over 12 items, graphql-core executes only those
    that are not plain: the three roots, and each item's `withArg` and `loaded`. (The
    items of `named`, a list of an interface, are completed by graphql-core, which
    resolves their type, then asks for their fields: plain, so ours again.)"""
    counts = {"ours": 0, "theirs": 0}

    class Ours(PlainFields):
        def execute_field(self, *args: Any) -> Any:
            counts["ours"] += 1
            return super().execute_field(*args)

    class Theirs(StrawberryGraphQLCoreExecutionContext):
        def execute_field(self, *args: Any) -> Any:
            counts["theirs"] += 1
            return super().execute_field(*args)

    world = World([item(i) for i in range(12)])
    assert (await run(world, FULL, Ours))[0] == (await run(world, FULL, Theirs))[0]
    assert counts["ours"] == 3 + 12 * 2
    assert counts["theirs"] > 12 * 35


async def test_lists_of_plain_objects_are_built_one_call_per_object() -> None:
    """A list of objects whose selection is all plain leaves (Leaf has no interface) is
    completed by a compiled builder: the per-field pass (`_run`) runs once per item (an
    Item, which implements an interface), not once per leaf; and the answers are
    graphql-core's."""
    runs = {"n": 0}

    class Ours(PlainFields):
        def _run(self, *args: Any) -> Any:
            runs["n"] += 1
            return super()._run(*args)

    document = (
        "{ items { leaves { n label when amount color tint double __typename } leaf { n } } }"
    )
    world = World([item(i) for i in range(12)])
    ours = await run(world, document, Ours)
    assert ours == await run(world, document, StrawberryGraphQLCoreExecutionContext)
    assert ours[0]["items"][2]["leaves"][1] == {
        "n": 3,
        "label": None,
        "when": "2026-01-01T03:00:00+00:00",
        "amount": "4.50",
        "color": "RED",
        "tint": None,
        "double": 6,
        "__typename": "Leaf",
    }
    # the first item's leaves are seen once the per-field way (their types are not yet
    # known not to be awaitable); every later leaf and `leaf` object is built
    assert runs["n"] <= 12 + 4


async def test_a_builder_that_gives_up_on_every_object_is_dropped() -> None:
    """A field whose read always fails: the builder of its objects gives up on each, and
    each is then completed field by field (which reads it once more, then graphql-core
    once more). After BUILDER_FAILURES objects the builder is no longer tried, so the
    other objects cost no read more than without builders."""
    world = World([item(i, leaves=[leaf(i), leaf(i + 1)]) for i in range(12)])
    document = "{ items { name leaves { n fragile } } }"
    theirs = await run(world, document, StrawberryGraphQLCoreExecutionContext)
    BROKEN_READS.clear()
    ours = await run(world, document, PlainFields)
    assert ours == theirs
    assert len(ours[1]) == 24  # each leaf's `fragile` is an error (nullable: null)
    # graphql-core reads it once per leaf (24); the per-field pass once more (24); the
    # builder of the items, then of the leaves, at most BUILDER_FAILURES (3) times each
    # (tried on every object, it would read it 83 times)
    assert BUILDER_FAILURES == 3
    assert len(BROKEN_READS) <= 24 + 24 + 2 * 3, len(BROKEN_READS)

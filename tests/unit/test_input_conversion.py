"""Input values become the same input objects through the converters built once per type
(schema/input_conversion.py) as through Strawberry's own conversion, on every input type
of the schema; and a placeOrder's arguments are converted without Strawberry walking
the input's fields."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from graphql import (
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
)
from strawberry.types import arguments as strawberry_arguments
from strawberry.types.arguments import convert_argument, convert_arguments

from ordergraph.schema.build import build_schema
from ordergraph.schema.input_conversion import input_classes

SCHEMA = build_schema()
GRAPHQL = SCHEMA._schema
CLASSES: dict[str, Any] = {
    cls.__strawberry_definition__.name: cls  # type: ignore[attr-defined]
    for cls in input_classes(SCHEMA)
}
_counter = itertools.count()


def _values(graphql_type: GraphQLInputType, shape: str) -> Any:
    """An input value of `graphql_type`: every field given (`full`), every nullable field
    null (`nulls`) or every nullable field left out (`omitted`); leaves are distinct
    strings (conversion passes leaves through as graphql-core coerced them)."""
    inner: Any = graphql_type.of_type if isinstance(graphql_type, GraphQLNonNull) else graphql_type
    if isinstance(inner, GraphQLList):
        items = [_values(inner.of_type, shape), _values(inner.of_type, "full")]
        if not isinstance(inner.of_type, GraphQLNonNull):
            items.append(None)
        return items
    if isinstance(inner, GraphQLInputObjectType):
        value: dict[str, Any] = {}
        for name, field in inner.fields.items():
            nullable = not isinstance(field.type, GraphQLNonNull)
            if nullable and shape == "omitted":
                continue
            value[name] = None if nullable and shape == "nulls" else _values(field.type, shape)
        return value
    return f"leaf-{next(_counter)}"


def _strawberry_conversion(value: Any, cls: type) -> Any:
    """Strawberry's own conversion: every input type's hook taken away meanwhile."""
    hooks = {c: c.__strawberry_definition__.from_input for c in CLASSES.values()}
    try:
        for c in CLASSES.values():
            c.__strawberry_definition__.from_input = None
        return convert_argument(value, cls, SCHEMA.schema_converter.scalar_registry, SCHEMA.config)
    finally:
        for c, hook in hooks.items():
            c.__strawberry_definition__.from_input = hook


def _cases() -> Iterator[tuple[str, str]]:
    for name in sorted(CLASSES):
        for shape in ("full", "nulls", "omitted"):
            yield name, shape


def test_every_input_type_of_the_schema_has_a_built_converter() -> None:
    assert len(CLASSES) >= 15
    missing = [n for n, c in CLASSES.items() if c.__strawberry_definition__.from_input is None]
    assert missing == []


@pytest.mark.parametrize(("name", "shape"), list(_cases()))
def test_built_conversion_equals_strawberrys(name: str, shape: str) -> None:
    cls = CLASSES[name]
    value = _values(GraphQLNonNull(GRAPHQL.type_map[name]), shape)  # type: ignore[arg-type]
    built = convert_argument(value, cls, SCHEMA.schema_converter.scalar_registry, SCHEMA.config)
    expected = _strawberry_conversion(value, cls)
    assert type(built) is cls
    assert built == expected
    assert vars(built) == vars(expected)


def test_lists_of_leaves_are_copies() -> None:
    """graphql-core gives every request that leaves out a value the same default list:
    a converted list is a copy, as Strawberry's is."""
    cls = CLASSES["CreateApiKeyInput"]
    scopes = ["ORDERS"]
    built: Any = convert_argument(
        {"name": "k", "storeIds": ["a"], "scopes": scopes},
        cls,
        SCHEMA.schema_converter.scalar_registry,
        SCHEMA.config,
    )
    assert built.scopes == scopes
    assert built.scopes is not scopes


def test_place_order_arguments_are_converted_without_walking_the_fields(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = []
    original = strawberry_arguments.convert_argument

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs.get("type_", args[1] if len(args) > 1 else None))
        return original(*args, **kwargs)

    monkeypatch.setattr(strawberry_arguments, "convert_argument", counted)
    field = SCHEMA.get_field_for_type("placeOrder", "Mutation")
    assert field is not None
    value = {
        "input": {
            "storeId": "U3RvcmU6MQ==",
            "lines": [{"sku": "A-1", "quantity": 1}, {"sku": "B-2", "quantity": 3}],
            "idempotencyKey": None,
        }
    }
    converted = convert_arguments(
        value, field.arguments, SCHEMA.schema_converter.scalar_registry, SCHEMA.config
    )
    assert [line.sku for line in converted["input"].lines] == ["A-1", "B-2"]
    # The input itself, then its hook builds the rest (Strawberry's walk: 14 calls).
    assert len(calls) == 1

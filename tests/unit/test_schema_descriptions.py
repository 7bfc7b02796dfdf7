"""Every item of the served schema says what it is: each type, field, argument, input field
and enum value has a description (CONTRIBUTING.md, "Descriptions"). The built-in scalars,
the built-in directives and the introspection types are graphql-core's own.

A deprecated item must also say why, and what to use instead (its reason).
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import Enum

import pytest
import strawberry
from graphql import (
    GraphQLArgument,
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    build_schema,
    introspection_types,
    specified_directives,
    specified_scalar_types,
)

from ordergraph.schema.build import build_schema as build_served_schema
from ordergraph.schema.enums import described


def _ours(schema: GraphQLSchema) -> Iterator[GraphQLNamedType]:
    for name, named in sorted(schema.type_map.items()):
        if name not in introspection_types and name not in specified_scalar_types:
            yield named


def _args(coordinate: str, args: dict[str, GraphQLArgument]) -> Iterator[tuple[str, object]]:
    for name, arg in args.items():
        yield f"{coordinate}({name}:)", arg


def schema_items(schema: GraphQLSchema) -> Iterator[tuple[str, object]]:
    """Every item of the schema that should carry a description, by its schema coordinate
    (`Type`, `Type.field`, `Type.field(arg:)`, `Enum.VALUE`, `@directive`)."""
    for named in _ours(schema):
        yield named.name, named
        if isinstance(named, GraphQLObjectType | GraphQLInterfaceType):
            for field_name, field in named.fields.items():
                coordinate = f"{named.name}.{field_name}"
                yield coordinate, field
                yield from _args(coordinate, field.args)
        elif isinstance(named, GraphQLInputObjectType):
            for field_name, input_field in named.fields.items():
                yield f"{named.name}.{field_name}", input_field
        elif isinstance(named, GraphQLEnumType):
            for value_name, value in named.values.items():
                yield f"{named.name}.{value_name}", value
    for directive in schema.directives:
        if directive not in specified_directives:
            yield f"@{directive.name}", directive
            yield from _args(f"@{directive.name}", directive.args)


def undescribed(schema: GraphQLSchema) -> list[str]:
    return [
        c
        for c, item in schema_items(schema)
        if not (getattr(item, "description", None) or "").strip()
    ]


def deprecated_without_reason(schema: GraphQLSchema) -> list[str]:
    return [
        coordinate
        for coordinate, item in schema_items(schema)
        if getattr(item, "deprecation_reason", None) is not None
        and not str(getattr(item, "deprecation_reason", "")).strip()
    ]


SERVED = build_served_schema()._schema


def test_every_item_of_the_served_schema_has_a_description() -> None:
    missing = undescribed(SERVED)
    assert not missing, (
        f"{len(missing)} schema items have no description (CONTRIBUTING.md, "
        "'Descriptions'):\n" + "\n".join(missing)
    )


def test_every_deprecated_item_of_the_served_schema_gives_a_reason() -> None:
    assert deprecated_without_reason(SERVED) == []


def test_the_walk_reaches_every_kind_of_item_and_names_what_lacks_a_description() -> None:
    schema = build_schema(
        """
        "An interface" interface Named { "a field" name(
          "an argument" style: Style, bare: Int): String }
        type Query implements Named { name(style: Style, bare: Int): String
          "a field" thing(where: Where): Scalarish }
        enum Style { "a value" PLAIN LOUD }
        input Where { "an input field" near: Int, far: Int }
        scalar Scalarish
        "a directive" directive @tag("an argument" label: String, other: Int) on FIELD
        """
    )
    assert undescribed(schema) == [
        "Named.name(bare:)",
        "Query",
        "Query.name",
        "Query.name(style:)",
        "Query.name(bare:)",
        "Query.thing(where:)",
        "Scalarish",
        "Style",
        "Style.LOUD",
        "Where",
        "Where.far",
        "@tag(other:)",
    ]


def test_a_deprecation_with_an_empty_reason_is_named() -> None:
    schema = build_schema(
        """
        type Query { old: Int @deprecated(reason: "Use `new`; removed in 0.4.0.")
          older: Int @deprecated(reason: "  ") new: Int }
        """
    )
    assert deprecated_without_reason(schema) == ["Query.older"]


class Shade(Enum):
    LIGHT = "LIGHT"
    DARK = "DARK"


described(
    Shade,
    "How dark.",
    {"LIGHT": "Pale.", "DARK": "Deep."},
    deprecated={"DARK": "Use `LIGHT`; removed in 0.4.0 at the earliest."},
)


@strawberry.type
class ShadeQuery:
    shade: Shade = Shade.LIGHT


def test_described_gives_an_enum_its_descriptions_and_deprecations() -> None:
    served = strawberry.Schema(query=ShadeQuery)._schema
    shade = served.type_map["Shade"]
    assert isinstance(shade, GraphQLEnumType)
    assert shade.description == "How dark."
    assert {n: (v.description, v.deprecation_reason) for n, v in shade.values.items()} == {
        "LIGHT": ("Pale.", None),
        "DARK": ("Deep.", "Use `LIGHT`; removed in 0.4.0 at the earliest."),
    }
    assert undescribed(served) == ["ShadeQuery", "ShadeQuery.shade"]


def test_described_refuses_a_name_that_is_not_a_value() -> None:
    class Tone(Enum):
        LIGHT = "LIGHT"

    with pytest.raises(ValueError, match="Tone has no value DARK"):
        described(Tone, "How dark.", {"LIGHT": "Pale."}, deprecated={"DARK": "Gone."})

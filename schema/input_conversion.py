"""Input values made into the schema's input classes by converters built once per type.

Strawberry turns each argument's input value into its Python class with
`convert_argument`, which asks of the type, at every value and every field, whether it
is a Maybe, optional, a list, a leaf, lazy, an enum or an object, and converts each
field's name and resolves its type again: about 36 µs for a one-line `placeOrder`,
for what is a dict of dicts becoming dataclasses.

`install` gives every input type of the schema a `from_input` (the hook Strawberry's
object definitions have for types that build their own values): a builder made once
per type from its fields, which reads the fields the value holds, converts each with a
converter made once per field type (a leaf as is, a list of leaves copied, a list of
inputs item by item, a nested input by its own builder), fills the fields the client
left out with None when they have no default (as Strawberry does), and calls the class.
A type holding anything else (Maybe, GlobalID, a type Strawberry would refuse) keeps
Strawberry's own conversion. tests/unit/test_input_conversion.py compares both on every
input type of the schema.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import MISSING
from typing import Any

from strawberry.relay.types import GlobalID
from strawberry.scalars import is_scalar
from strawberry.schema.config import StrawberryConfig
from strawberry.types.arguments import InputContext
from strawberry.types.base import (
    StrawberryList,
    StrawberryMaybe,
    StrawberryObjectDefinition,
    StrawberryOptional,
    has_object_definition,
)
from strawberry.types.enum import StrawberryEnumDefinition, has_enum_definition
from strawberry.types.lazy_type import LazyType
from strawberry.types.unset import UNSET

Convert = Callable[[Any], Any]


class _Unsupported(Exception):
    """A type this module leaves to Strawberry."""


def _same(value: Any) -> Any:
    return value


def _copied(value: Any) -> Any:
    return list(value)


class _Compiler:
    def __init__(self, config: StrawberryConfig, scalars: Mapping[object, Any]) -> None:
        self.config = config
        self.scalars = scalars
        # Builders by input class; a class being compiled is here already (recursion).
        self.builders: dict[type, Callable[[Mapping[str, Any]], Any]] = {}

    def _is_leaf(self, type_: Any) -> bool:
        if type_ is GlobalID:
            return False
        if isinstance(type_, LazyType):
            return self._is_leaf(type_.resolve_type())
        return is_scalar(type_, self.scalars) or isinstance(type_, StrawberryEnumDefinition)

    def converter(self, type_: Any) -> Convert:
        """What Strawberry's convert_argument does to a value of `type_` other than None
        and UNSET (which it gives back as they are, whatever the type)."""
        if isinstance(type_, StrawberryMaybe) or type_ is GlobalID:
            raise _Unsupported(type_)
        if isinstance(type_, StrawberryOptional):
            return self.converter(type_.of_type)
        if isinstance(type_, StrawberryList):
            item = type_.of_type
            inner = item.of_type if isinstance(item, StrawberryOptional) else item
            if self._is_leaf(inner) and not isinstance(item, StrawberryMaybe):
                return _copied  # (copied: graphql-core shares defaults between requests)
            convert = self.converter(item)

            def items(value: Any) -> list[Any]:
                return [v if v is None or v is UNSET else convert(v) for v in value]

            return items
        if self._is_leaf(type_):
            return _same
        if isinstance(type_, LazyType):
            return self.converter(type_.resolve_type())
        if has_enum_definition(type_):
            return _same
        if has_object_definition(type_) and type_.__strawberry_definition__.is_input:
            return self.builder(type_)
        raise _Unsupported(type_)

    def builder(self, cls: type) -> Callable[[Mapping[str, Any]], Any]:
        found = self.builders.get(cls)
        if found is not None:
            return found
        definition: StrawberryObjectDefinition = cls.__strawberry_definition__  # type: ignore[attr-defined]
        if definition.from_input is not None and not getattr(
            definition.from_input, "ordergraph_built", False
        ):
            raise _Unsupported(cls)  # a hook of its own: leave it be
        fields: list[tuple[str, str, Convert]] = []
        unset_to_none = {
            field.python_name: None
            for field in definition.fields
            if field.default_value is MISSING and field.default_factory is MISSING
        }

        def build(value: Mapping[str, Any], cls: type = cls) -> Any:
            kwargs = dict(unset_to_none)
            for name, python_name, convert in fields:
                if name in value:
                    v = value[name]
                    kwargs[python_name] = v if v is None or v is UNSET else convert(v)
            return cls(**kwargs)

        self.builders[cls] = build
        try:
            for field in definition.fields:
                field_type = field.resolve_type(type_definition=definition)
                fields.append(
                    (
                        self.config.name_converter.from_field(field),
                        field.python_name,
                        self.converter(field_type),
                    )
                )
        except _Unsupported:
            del self.builders[cls]
            raise
        return build


def _hook(
    build: Callable[[Mapping[str, Any]], Any],
) -> Callable[[type, Mapping[str, Any], InputContext], Any]:
    def from_input(cls: type, value: Mapping[str, Any], context: InputContext) -> Any:
        # (`cls` is the class Strawberry would build: the origin, or a subclass of it.)
        return build(value, cls)  # type: ignore[call-arg]

    from_input.ordergraph_built = True  # type: ignore[attr-defined]
    return from_input


def install(
    input_classes: list[type], config: StrawberryConfig, scalars: Mapping[object, Any]
) -> None:
    """Give each input class (that this module can convert) its built `from_input`."""
    compiler = _Compiler(config, scalars)
    for cls in input_classes:
        try:
            build = compiler.builder(cls)
        except _Unsupported:
            continue
        cls.__strawberry_definition__.from_input = _hook(build)  # type: ignore[attr-defined]


def input_classes(schema: Any) -> list[type]:
    """The input classes of a built Strawberry schema."""
    found = []
    for concrete in schema.schema_converter.type_map.values():
        definition = concrete.definition
        if isinstance(definition, StrawberryObjectDefinition) and definition.is_input:
            found.append(definition.origin)
    return found

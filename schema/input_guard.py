"""One check over every string a client sends, before any resolver runs.

PostgreSQL refuses NUL in text (asyncpg raises), a lone surrogate cannot be encoded to
UTF-8 for either database, and control characters have no place in any field of this
API. `find_forbidden` walks the arguments of the operation (literals in the document,
variable values, variable defaults, fragments included) and the schema's Gate
extension (schema/build.py) refuses the request with
`extensions.code = "INVALID"` and `extensions.field` = the argument path (e.g.
["input", "lines", "0", "sku"]) when a string holds one of them: C0 controls but tab,
LF and CR, DEL, C1 controls, lone surrogates. Stricter rules for text fields (no
newline, no bidirectional controls) live in domain.validation.

The walk is iterative, so a deeply nested variable cannot exhaust the stack.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Mapping
from typing import Any

from graphql import (
    ArgumentNode,
    DocumentNode,
    GraphQLError,
    ListValueNode,
    Node,
    ObjectValueNode,
    OperationDefinitionNode,
    StringValueNode,
    ValueNode,
    VariableNode,
    visit,
)
from graphql.language import Visitor

from ordergraph.domain.validation import forbidden_character
from ordergraph.resolvers.context import ApiError

Path = tuple[str, ...]


# A path as a linked list (last step, rest), so that walking a deep value costs O(size).
_Link = tuple[str, "_Link"] | None


def _unlink(link: _Link) -> Path:
    steps: list[str] = []
    while link is not None:
        step, link = link
        steps.append(step)
    return tuple(reversed(steps))


_Entry = tuple[Any, _Link, bool]  # a value, its path, whether it is a document node


def _plain_children(value: Any, where: _Link) -> Iterator[_Entry]:
    """The items of a variable's (JSON) value."""
    if isinstance(value, Mapping):
        yield from ((v, (str(k), where), False) for k, v in value.items())
    elif isinstance(value, list):
        yield from ((v, (str(i), where), False) for i, v in enumerate(value))


def _node_children(
    value: ValueNode,
    where: _Link,
    variables: Mapping[str, Any],
    defaults: Mapping[str, ValueNode],
    seen_defaults: set[str],
) -> Iterator[_Entry]:
    """The items of a value in the document; a variable stands for its value, else for its
    default (each default walked once)."""
    if isinstance(value, ListValueNode):
        yield from ((v, (str(i), where), True) for i, v in enumerate(value.values))
    elif isinstance(value, ObjectValueNode):
        yield from ((f.value, (f.name.value, where), True) for f in value.fields)
    elif isinstance(value, VariableNode):
        variable = value.name.value
        if variable in variables:
            yield (variables[variable], where, False)
        elif variable in defaults and variable not in seen_defaults:
            seen_defaults.add(variable)
            yield (defaults[variable], where, True)


def _values(
    start: ValueNode,
    name: str,
    variables: Mapping[str, Any],
    defaults: Mapping[str, ValueNode],
) -> Iterator[tuple[_Link, str]]:
    """Every string reachable from an argument value, with its (linked) path."""
    stack: list[_Entry] = [(start, (name, None), True)]
    seen_defaults: set[str] = set()
    while stack:
        value, where, is_ast = stack.pop()
        if not is_ast:
            if isinstance(value, str):
                yield where, value
            else:
                stack.extend(_plain_children(value, where))
        elif isinstance(value, StringValueNode):
            yield where, value.value
        else:
            stack.extend(_node_children(value, where, variables, defaults, seen_defaults))


class _Arguments(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[ArgumentNode] = []
        self.defaults: dict[str, ValueNode] = {}

    def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
        for definition in node.variable_definitions or ():
            if definition.default_value is not None:
                self.defaults.setdefault(definition.variable.name.value, definition.default_value)

    def enter_argument(self, node: ArgumentNode, *_: Any) -> None:
        self.found.append(node)


_ARGUMENTS: dict[int, tuple[weakref.ref[DocumentNode], _Arguments]] = {}
_ARGUMENTS_KEPT = 512


def _arguments(document: DocumentNode) -> _Arguments:
    """The arguments of a document, found once per parsed document (the document cache
    hands out the same DocumentNode for the same text)."""
    kept = _ARGUMENTS.get(id(document))
    if kept is not None and kept[0]() is document:
        return kept[1]
    arguments = _Arguments()
    visit(document, arguments)
    if len(_ARGUMENTS) >= _ARGUMENTS_KEPT:
        _ARGUMENTS.clear()
    _ARGUMENTS[id(document)] = (weakref.ref(document), arguments)
    return arguments


def find_forbidden(
    document: DocumentNode, variables: Mapping[str, Any] | None
) -> tuple[Path, str, Node] | None:
    """(argument path, U+XXXX, node) of the first string holding a forbidden character."""
    arguments = _arguments(document)
    for argument in arguments.found:
        for path, text in _values(
            argument.value, argument.name.value, variables or {}, arguments.defaults
        ):
            bad = forbidden_character(text)
            if bad is not None:
                return _unlink(path), bad, argument
    return None


MAX_PATH_SHOWN = 32


def refusal(path: Path, character: str, node: Node | None = None) -> GraphQLError:
    path = path[:MAX_PATH_SHOWN]  # a deeply nested value: its first steps are enough
    dotted = ".".join(path)
    cause = ApiError(
        f"{dotted} must not contain {character} (a control character or lone surrogate)",
        "INVALID",
        field=list(path),
    )
    return GraphQLError(cause.message, nodes=[node] if node else None, original_error=cause)

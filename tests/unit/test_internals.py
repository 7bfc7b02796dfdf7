"""Where ordergraph builds on Strawberry's and graphql-core's internals, an upgrade that
changes them fails here, loudly, before it fails in production.

Every class of ours that subclasses a Strawberry or graphql-core class (the websocket
protocol handlers, the websocket adapter, the shared live executor, schema extensions,
fields, the view) is found by walking the package; each method it overrides must still
exist on that base with the signature recorded below, seen with the versions in
TESTED_WITH. pyproject.toml bounds both packages to those versions: to upgrade, run this
test against the new versions, read what changed in the methods it names, adapt the
overrides, then record the new signatures (`python tests/unit/test_internals.py`
prints them) and widen the bounds.
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import ordergraph

ROOT = Path(__file__).resolve().parents[2]
RECORDED = Path(__file__).with_name("internals.json")
FOREIGN = ("strawberry", "graphql")
TESTED_WITH = {"strawberry-graphql": "0.341.2", "graphql-core": "3.3.2"}


def _our_classes() -> list[type]:
    found: dict[str, type] = {}
    for module_info in pkgutil.walk_packages(ordergraph.__path__, "ordergraph."):
        if module_info.name.endswith("__main__") or module_info.name.startswith(
            ("ordergraph.cli", "ordergraph.demo")
        ):
            continue
        module = importlib.import_module(module_info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__:
                found[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return [found[name] for name in sorted(found)]


def _foreign_base(cls: type, name: str) -> type | None:
    for base in cls.__mro__[1:]:
        if base.__module__.split(".")[0] in FOREIGN and name in vars(base):
            return base
    return None


def overridden() -> dict[str, str]:
    """`module.Base.method` -> the base method's signature, for every override of ours."""
    seen: dict[str, str] = {}
    for cls in _our_classes():
        for name, value in vars(cls).items():
            if (name.startswith("__") and name != "__init__") or not callable(value):
                continue
            base = _foreign_base(cls, name)
            if base is None:
                continue
            original = inspect.unwrap(vars(base)[name])
            key = f"{base.__module__}.{base.__qualname__}.{name}"
            seen[key] = _shape(original)
    return seen


def _shape(function: Any) -> str:
    """The parameters' names, kinds and whether each has a default (annotations left out:
    their text differs between Python versions, their meaning is what the tests try)."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return "<no signature>"
    shown = []
    for p in parameters:
        prefix = {"VAR_POSITIONAL": "*", "VAR_KEYWORD": "**", "KEYWORD_ONLY": "kw "}.get(
            p.kind.name, ""
        )
        default = "=..." if p.default is not inspect.Parameter.empty else ""
        shown.append(f"{prefix}{p.name}{default}")
    return "(" + ", ".join(shown) + ")"


def test_the_installed_versions_are_the_ones_tested() -> None:
    installed = {name: metadata.version(name) for name in TESTED_WITH}
    assert installed == TESTED_WITH, (
        "Strawberry or graphql-core differ from the versions whose internals were checked; "
        "see this module's docstring"
    )
    pyproject = (ROOT / "pyproject.toml").read_text()
    for name, version in TESTED_WITH.items():
        assert f'"{name}>={version},' in pyproject, (
            f"pyproject.toml must bound {name} from {version}"
        )


def test_every_overridden_internal_method_is_as_recorded() -> None:
    recorded: dict[str, str] = json.loads(RECORDED.read_text())
    now = overridden()
    gone = sorted(set(recorded) - set(now))
    changed = {
        k: (recorded[k], now[k]) for k in sorted(set(recorded) & set(now)) if recorded[k] != now[k]
    }
    new = sorted(set(now) - set(recorded))
    assert not changed, f"base methods whose signature changed (recorded, now): {changed}"
    assert not gone, (
        f"overrides recorded but no longer found (renamed or removed upstream?): {gone}"
    )
    assert not new, f"new overrides of internals, not recorded yet: {new}"


# Internals used without overriding a method: attributes our code replaces or reads.
USED_ATTRIBUTES = (
    # schema/build.py Executor replaces it per instance (a cache of non-awaitable types)
    ("strawberry.schema.schema", "StrawberryGraphQLCoreExecutionContext", "is_awaitable"),
    ("strawberry.execution", None, "optimized_is_awaitable"),
    # schema/execution.py finds Strawberry's field behind a graphql-core field, and asks
    # whether a middleware resolves fields
    ("strawberry.schema.schema_converter", "GraphQLCoreConverter", "DEFINITION_BACKREF"),
    ("graphql.execution.middleware", "MiddlewareManager", "_middleware_resolvers"),
    ("graphql.execution.collect_fields", "CollectedFields", "new_defer_usages"),
    ("graphql.execution.collect_fields", "CollectedFields", "grouped_field_set"),
    # schema/input_conversion.py gives input types their `from_input`, finds them in the
    # converter's type map and names their fields as Strawberry does
    ("strawberry.types.base", "StrawberryObjectDefinition", "from_input"),
    ("strawberry.schema.schema_converter", "GraphQLCoreConverter", "from_input_object"),
    ("strawberry.schema.name_converter", "NameConverter", "from_field"),
    ("strawberry.types.field", "StrawberryField", "resolve_type"),
    # schema/extension_runner.py falls back on Strawberry's context manager of a stage
    ("strawberry.extensions.context", "ExtensionContextManagerBase", "__aenter__"),
    ("strawberry.extensions.runner", "SchemaExtensionsRunner", "on_stream_result"),
)

# graphql-core's methods that schema/execution.py calls on the executor, with the
# signatures it calls them by.
CALLED_METHODS = {
    "execute_field": "(self, parent_type, source, field_details_list, path, position_context)",
    "handle_field_error": "(self, raw_error, return_type, field_details_list, path)",
    "collect_subfields": "(self, return_type, field_details_list)",
    "settle_in_background": "(self, awaitables)",
}


def test_the_internal_methods_called_are_as_recorded() -> None:
    from graphql.execution.executor import Executor

    now = {name: _shape(getattr(Executor, name, None)) for name in CALLED_METHODS}
    assert now == CALLED_METHODS


def test_strawberry_still_marks_the_fields_it_resolves_without_an_info() -> None:
    """schema/execution.py completes a field itself when Strawberry's resolver of it is
    marked `_is_default` (a "basic" field: no resolver, no arguments, no extensions)."""
    from ordergraph.schema.build import build_schema

    schema = build_schema()._schema
    tally = schema.type_map["OrderTally"].fields  # type: ignore[attr-defined]
    assert getattr(tally["orders"].resolve, "_is_default", False) is True
    store = schema.type_map["Store"].fields  # type: ignore[attr-defined]
    assert not getattr(store["orders"].resolve, "_is_default", False)


def test_the_internal_attributes_used_are_still_there() -> None:
    for module_name, class_name, attribute in USED_ATTRIBUTES:
        owner: Any = importlib.import_module(module_name)
        if class_name is not None:
            owner = getattr(owner, class_name)
        assert hasattr(owner, attribute), f"{module_name}.{class_name}.{attribute} is gone"


def test_the_walk_finds_the_known_overrides() -> None:
    """The check above cannot pass vacuously: the overrides we know of are among them."""
    now = overridden()
    for known in (
        "strawberry.subscriptions.protocols.graphql_transport_ws.handlers."
        "BaseGraphQLTransportWSHandler.run_operation",
        "strawberry.subscriptions.protocols.graphql_ws.handlers.BaseGraphQLWSHandler.handle_start",
        "strawberry.asgi.ASGIWebSocketAdapter.iter_json",
    ):
        assert known in now, known


if __name__ == "__main__":
    json.dump(overridden(), sys.stdout, indent=2, sort_keys=True)
    print()

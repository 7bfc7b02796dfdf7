"""The lean runner of schema extensions (schema/extension_runner.py) runs the same hooks,
in the same order, seeing the same exceptions, as Strawberry's own, and the schema
uses it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from strawberry.extensions import SchemaExtension
from strawberry.extensions.runner import SchemaExtensionsRunner

from ordergraph.schema.build import build_schema
from ordergraph.schema.extension_runner import LeanExtensionsRunner


class Boom(Exception):
    pass


def _recording(name: str, log: list[str], fail_on_enter: bool = False) -> SchemaExtension:
    class Sync(SchemaExtension):
        def on_operation(self) -> Iterator[None]:
            log.append(f"{name} op enter")
            if fail_on_enter:
                raise Boom(name)
            try:
                yield
            except Boom as error:
                log.append(f"{name} op saw {error}")
                raise
            log.append(f"{name} op exit")

        def on_execute(self) -> Iterator[None]:
            log.append(f"{name} exec enter")
            yield
            log.append(f"{name} exec exit")

    class Async(SchemaExtension):
        async def on_operation(self) -> AsyncIterator[None]:
            log.append(f"{name} op enter")
            if fail_on_enter:
                raise Boom(name)
            try:
                yield
            except Boom as error:
                log.append(f"{name} op saw {error}")
                raise
            log.append(f"{name} op exit")

        def on_parse(self) -> None:  # type: ignore[override]  # plain: left to Strawberry
            log.append(f"{name} parse")

    return Sync() if name.startswith("sync") else Async()


async def _run(
    runner_class: type[SchemaExtensionsRunner], names: list[str], body: str
) -> list[str]:
    log: list[str] = []
    extensions = [
        _recording(n.removesuffix("!"), log, fail_on_enter=n.endswith("!")) for n in names
    ]
    runner = runner_class(execution_context=None, extensions=extensions)  # type: ignore[arg-type]
    try:
        async with runner.operation():
            async with runner.parsing():
                log.append("parsing")
            async with runner.validation():
                log.append("validating")
            async with runner.executing():
                log.append("executing")
                if body == "fail":
                    raise Boom("body")
    except Boom as error:
        log.append(f"raised {error}")
    return log


CASES = [
    (["sync-a"], "ok"),
    (["async-a"], "ok"),
    (["sync-a", "async-b"], "ok"),
    (["async-a", "sync-b"], "fail"),
    (["sync-a", "async-b"], "fail"),
    (["async-a!", "sync-b"], "ok"),
    ([], "fail"),
]


@pytest.mark.parametrize(("names", "body"), CASES)
async def test_the_lean_runner_runs_hooks_as_strawberry_does(names: list[str], body: str) -> None:
    expected = await _run(SchemaExtensionsRunner, names, body)
    assert await _run(LeanExtensionsRunner, names, body) == expected
    assert expected  # something ran


async def test_a_hook_failing_to_enter_leaves_the_hooks_entered_before_it_at_once() -> None:
    """Where Strawberry leaves them suspended until they are collected (a hook holding a
    slot, as the cost extension's does, would hold it until then), the lean runner leaves
    them at once, with the exception."""
    names = ["sync-a", "async-b", "sync-c!"]
    strawberry = await _run(SchemaExtensionsRunner, names, "ok")
    assert strawberry == ["sync-a op enter", "async-b op enter", "sync-c op enter", "raised sync-c"]
    assert await _run(LeanExtensionsRunner, names, "ok") == [
        "sync-a op enter",
        "async-b op enter",
        "sync-c op enter",
        "async-b op saw sync-c",
        "sync-a op saw sync-c",
        "raised sync-c",
    ]


def test_the_schema_runs_its_extensions_with_the_lean_runner() -> None:
    schema: Any = build_schema()
    runner = schema.create_extensions_runner(None, schema.get_extensions())
    assert isinstance(runner, LeanExtensionsRunner)


async def test_an_operation_through_the_lean_runner_answers_and_codes_its_errors() -> None:
    schema = build_schema()
    ok = await schema.execute("{ __typename }")
    assert ok.data == {"__typename": "Query"}
    assert not ok.errors
    bad = await schema.execute("{ nope }")
    assert bad.errors
    assert bad.errors[0].extensions == {"code": "GRAPHQL_VALIDATION_FAILED"}
    broken = await schema.execute("{ ")
    assert broken.errors
    assert broken.errors[0].extensions == {"code": "GRAPHQL_PARSE_FAILED"}

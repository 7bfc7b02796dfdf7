"""The schema extensions' hooks run per operation without being wrapped anew each time.

For every operation Strawberry makes, for each of its four stages (operation, parsing,
validation, execution), a context manager that asks of every extension whether its class
overrides the stage's hook, what kind of function that is (`inspect`), wraps the bound
method with `contextlib.contextmanager` (which copies its name and docstring with
`functools.update_wrapper`) and enters the hooks through an exit stack. For a schema of
two extensions with five hooks that is about a tenth of a trivial query's CPU.

`LeanExtensionsRunner` answers the same four stages from what is known per class: which
hooks a class overrides and their context-manager factory, found once per (class, stage)
and kept. A stage without a hook enters nothing; a stage with one hook enters it
directly; a stage with several enters them, in the extensions' order, through an exit
stack, as Strawberry does (the same order, the same exceptions seen by each hook; where a
hook fails to enter, the hooks entered before it are left at once with its exception,
where Strawberry leaves them suspended until they are collected). A
hook that is a plain function (neither a generator nor an async generator function),
and the synchronous entry of a stage, are left to Strawberry's own context managers.
tests/unit/test_extension_runner.py runs the same hooks both ways.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable
from typing import Any

from strawberry.extensions import SchemaExtension
from strawberry.extensions.context import (
    ExecutingContextManager,
    ExtensionContextManagerBase,
    OperationContextManager,
    ParsingContextManager,
    ValidationContextManager,
)
from strawberry.extensions.runner import SchemaExtensionsRunner

# (extension class, hook name) -> (factory of the hook's context manager, is async), or
# None when the class does not override the hook; _PLAIN when it is a plain function.
_Factory = Callable[[SchemaExtension], Any]
_PLAIN: tuple[_Factory, bool] = (lambda _: None, False)
_HOOKS: dict[tuple[type, str], tuple[_Factory, bool] | None] = {}


def _hook_of(cls: type, name: str) -> tuple[_Factory, bool] | None:
    key = (cls, name)
    try:
        return _HOOKS[key]
    except KeyError:
        pass
    function = getattr(cls, name)
    found: tuple[_Factory, bool] | None
    if function is getattr(SchemaExtension, name):
        found = None
    elif inspect.isgeneratorfunction(function):
        found = (contextlib.contextmanager(function), False)
    elif inspect.isasyncgenfunction(function):
        found = (contextlib.asynccontextmanager(function), True)
    else:
        found = _PLAIN
    _HOOKS[key] = found
    return found


class _NoHook:
    """A stage no extension hooks into."""

    __slots__ = ()

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


_NO_HOOK = _NoHook()


class _OneHook:
    """A stage with one synchronous hook: entered and left directly."""

    __slots__ = ("manager",)

    def __init__(self, manager: Any) -> None:
        self.manager = manager

    async def __aenter__(self) -> None:
        self.manager.__enter__()

    async def __aexit__(self, *exc: Any) -> bool:
        return bool(self.manager.__exit__(*exc))


class _Hooks:
    """A stage with several hooks (or one asynchronous hook): an exit stack, as Strawberry."""

    __slots__ = ("hooks", "stack")

    def __init__(self, hooks: list[tuple[Any, bool]]) -> None:
        self.hooks = hooks
        self.stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> None:
        stack = self.stack
        await stack.__aenter__()
        try:
            for manager, is_async in self.hooks:
                if is_async:
                    await stack.enter_async_context(manager)
                else:
                    stack.enter_context(manager)
        except BaseException as error:  # the hooks entered are left, then it goes on up
            await stack.__aexit__(type(error), error, error.__traceback__)
            raise

    async def __aexit__(self, *exc: Any) -> bool:
        return bool(await self.stack.__aexit__(*exc))


def _lean(extensions: list[SchemaExtension], name: str, strawberry: type[Any]) -> Any:
    """The asynchronous context manager of one stage's hooks."""
    hooks: list[tuple[Any, bool]] = []
    for extension in extensions:
        hook = _hook_of(type(extension), name)
        if hook is None:
            continue
        if hook is _PLAIN:
            return strawberry(extensions)
        factory, is_async = hook
        hooks.append((factory(extension), is_async))
    if not hooks:
        return _NO_HOOK
    if len(hooks) == 1:
        manager, is_async = hooks[0]
        return manager if is_async else _OneHook(manager)
    return _Hooks(hooks)


class _Stage:
    """One stage's hooks: lean when entered with `async with`, Strawberry's own context
    manager when entered with `with` (synchronous execution)."""

    __slots__ = ("entered", "extensions", "name", "strawberry")

    def __init__(
        self,
        extensions: list[SchemaExtension],
        name: str,
        strawberry: type[ExtensionContextManagerBase],
    ) -> None:
        self.extensions = extensions
        self.name = name
        self.strawberry = strawberry
        self.entered: Any = None

    async def __aenter__(self) -> None:
        self.entered = _lean(self.extensions, self.name, self.strawberry)
        await self.entered.__aenter__()

    async def __aexit__(self, *exc: Any) -> bool:
        return bool(await self.entered.__aexit__(*exc))

    def __enter__(self) -> None:
        self.entered = self.strawberry(self.extensions)
        self.entered.__enter__()

    def __exit__(self, *exc: Any) -> bool:
        return bool(self.entered.__exit__(*exc))


_OPERATION = SchemaExtension.on_operation.__name__
_VALIDATION = SchemaExtension.on_validate.__name__
_PARSING = SchemaExtension.on_parse.__name__
_EXECUTION = SchemaExtension.on_execute.__name__


class LeanExtensionsRunner(SchemaExtensionsRunner):
    """Strawberry's runner of schema extensions, with the four stages above."""

    def operation(self) -> OperationContextManager:
        return _Stage(self.extensions, _OPERATION, OperationContextManager)  # type: ignore[return-value]

    def validation(self) -> ValidationContextManager:
        return _Stage(self.extensions, _VALIDATION, ValidationContextManager)  # type: ignore[return-value]

    def parsing(self) -> ParsingContextManager:
        return _Stage(self.extensions, _PARSING, ParsingContextManager)  # type: ignore[return-value]

    def executing(self) -> ExecutingContextManager:
        return _Stage(self.extensions, _EXECUTION, ExecutingContextManager)  # type: ignore[return-value]

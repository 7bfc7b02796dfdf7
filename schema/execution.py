"""The schema's execution: plain fields completed in one pass, beside graphql-core's
per-field execution.

graphql-core executes every field the same way: a path, a resolve info, the resolver,
then `complete_value` asking of the result whether it is an exception, non-null, null, a
list, a leaf, abstract or an object, and asking about five times whether it is
awaitable. That costs 5-8 µs per field, which is most of a response of many small
objects: a 1,000-point `backlogTrend` is 16,000 fields, a page of 50 orders with their
lines about 1,500.

`PlainFields.execute_fields` plans each selection set once per operation (graphql-core
collects a selection set once per type and field, so the items of a list share it) and
completes itself the fields Strawberry resolves without an Info, its "basic" fields (no
resolver, no arguments, no field extensions; ours in schema/nodes.py `plain` and
`attribute`, and the dataclass fields of the figures' types): a leaf is read and coerced,
an object or a list of objects is read and its selection executed the same way. Any other
field of the selection (resolvers, arguments, abstract types, lists of leaves...) goes to
graphql-core's `execute_field`, in the same dict and order.

An object whose selection is only plain fields (leaves, `__typename`, objects and lists of
objects whose selections are so too) is built in one call: per selection set a builder is
compiled from generated source (`_maker`, cached by the selection's shape; the
operation's reads, coercions and `is_type_of` checks are passed in), which reads the
fields, coerces the leaves, builds the nested objects and makes the dict, with no call
per field. A trend's points and a page's orders with their lines are built so (1,000
points: about 4 ms of completion against 11 before). A builder that meets anything but
the plain case gives up, and that object is completed field by field as below; after
BUILDER_FAILURES objects in one operation it is not tried again.

A plain field whose value the one pass does not expect (null for a non-null field, a
value that does not coerce, an awaitable, a list that is not a list) is executed again
by graphql-core, which reads it once more (a plain read has no side effects) and raises,
coerces or awaits exactly as it would have: errors, their paths and null propagation
stay graphql-core's. With a middleware that resolves fields (a schema extension with a
`resolve` hook), or a deferred selection, graphql-core executes everything.

tests/unit/test_internals.py records the graphql-core and Strawberry internals this
relies on; tests/api/test_plain_fields.py compares its answers with graphql-core's own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import lru_cache
from operator import attrgetter
from types import CoroutineType, GeneratorType
from typing import Any

from graphql import (
    GraphQLBoolean,
    GraphQLID,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLString,
    is_leaf_type,
    is_object_type,
)
from graphql.pyutils import Path, Undefined, gather_with_cancel
from strawberry.execution import optimized_is_awaitable
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField

# Types seen to be not awaitable (the schema's object types, Money, datetime, enums...),
# so that their values are not asked three questions each again; bounded, in case
# classes are made at run time.
_NOT_AWAITABLE: set[type] = set()
NOT_AWAITABLE_TYPES = 512


def is_awaitable(value: Any) -> bool:
    """Strawberry's `optimized_is_awaitable` (graphql-core asks it of every resolved
    value), answering at once for the types already seen not to be awaitable: a type
    without `__await__` never is (await looks there), and coroutines and generators have
    theirs looked at every time."""
    kind = type(value)
    if kind in _NOT_AWAITABLE:
        return False
    if optimized_is_awaitable(value):
        return True
    if (
        not hasattr(kind, "__await__")
        and kind is not CoroutineType
        and kind is not GeneratorType
        and len(_NOT_AWAITABLE) < NOT_AWAITABLE_TYPES
    ):
        _NOT_AWAITABLE.add(kind)
    return False


# The metadata key of a Strawberry field read from its object and the request's context
# (schema/nodes.py `contextual`): `metadata[CONTEXT_READ](source, context)`.
CONTEXT_READ = "ordergraph.context_read"

# The kinds of step of a plan.
SLOW = 0  # graphql-core's execute_field
LEAF = 1  # read, coerce
OBJECT = 2  # read, execute the object's selection
LIST = 3  # read a list of objects, execute each item's selection
TYPENAME = 4  # the parent type's name


class _Redo:
    """A field for graphql-core to execute (returned in place of a value)."""


REDO = _Redo()
# Completed values that are never awaitable: an object's fields, a list's items.
_DONE = (dict, list)

# Values a leaf type gives back unchanged: a str for String and ID, a bool for Boolean,
# an int within 32 bits for Int (graphql-core's coercion does the rest, and the errors).
_SAME = {GraphQLString: str, GraphQLID: str, GraphQLBoolean: bool, GraphQLInt: int}
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1

# A step: (response name, kind, read, same, field details, detail, the field's type,
# nested), where read(source) gives the field's value; same is the type of a leaf's
# values kept as they are (str for String...), or None; detail is the coercion of a
# leaf, the object type of an object or of a list's items, the name for __typename;
# nested is a one-item list keeping the object's collected and planned selection.
Step = tuple[str, int, Any, Any, Any, Any, GraphQLOutputType, list[Any]]


def plain_read(field: Any, context: Any) -> Callable[[Any], Any] | None:
    """How to read a field without graphql-core, else None. A field Strawberry resolves
    without an Info: the Strawberry field's own `plain_read()` when it has one
    (schema/nodes.py), an attribute getter for a field read by the default resolver, else
    Strawberry's resolver. A field declared with a CONTEXT_READ (and no arguments or field
    extensions): that read with the request's context."""
    if field.args:
        return None
    declared: Any = (field.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    metadata = getattr(declared, "metadata", None) or {}
    if CONTEXT_READ in metadata and not declared.extensions:
        read = metadata[CONTEXT_READ]
        return lambda source: read(source, context)
    resolve = field.resolve
    if resolve is None or not getattr(resolve, "_is_default", False):
        return None
    own = getattr(declared, "plain_read", None)
    if own is not None:
        return own()  # type: ignore[no-any-return]
    if (
        type(declared).get_result is StrawberryField.get_result
        and declared.default_resolver is getattr
    ):
        return attrgetter(declared.python_name)
    return lambda source: resolve(source, None)


def _step(
    schema: Any, context: Any, parent_type: GraphQLObjectType, name: str, details: Any
) -> Step:
    node = details[0].node
    field_name = node.name.value
    if field_name == "__typename":
        return (name, TYPENAME, None, None, details, parent_type.name, GraphQLString, [None])
    field = schema.get_field(parent_type, field_name)
    read = plain_read(field, context) if field is not None and not node.arguments else None
    if read is None:
        return (name, SLOW, None, None, details, None, GraphQLString, [None])
    shown = field.type
    inner = shown.of_type if isinstance(shown, GraphQLNonNull) else shown
    if is_leaf_type(inner):
        same = _SAME.get(inner)  # type: ignore[arg-type]
        return (name, LEAF, read, same, details, inner.coerce_output_value, shown, [None])
    if is_object_type(inner):
        return (name, OBJECT, read, None, details, inner, shown, [None])
    if isinstance(inner, GraphQLList):
        item = inner.of_type
        item = item.of_type if isinstance(item, GraphQLNonNull) else item
        if is_object_type(item):
            return (name, LIST, read, None, details, item, shown, [None])
    return (name, SLOW, None, None, details, None, shown, [None])


def plan_selection(
    schema: Any, context: Any, parent_type: GraphQLObjectType, grouped_field_set: Any
) -> list[Step] | None:
    """The steps of a selection set, or None when none of its fields is plain."""
    steps = [
        _step(schema, context, parent_type, name, details)
        for name, details in grouped_field_set.items()
    ]
    return steps if any(step[1] != SLOW for step in steps) else None


def _leaf(value: Any, coerce: Any, non_null: bool) -> Any:
    """A leaf's value (read once, by `_run`) coerced, or REDO."""
    if value is None:
        return REDO if non_null else None
    if type(value) not in _NOT_AWAITABLE and is_awaitable(value):
        return _dropped(value)
    try:
        coerced = coerce(value)
    except Exception:  # graphql-core reads it again and reports it
        return REDO
    return REDO if coerced is None or coerced is Undefined else coerced


class _Slow(Exception):
    """What a compiled builder raises for a value it does not expect: the object is then
    completed field by field instead (which reads it again; plain reads have no side
    effects)."""


# A builder's shape: per field (response name, kind, leaf type kept as it is, non-null,
# whether its object type has an `is_type_of`).
Shape = tuple[tuple[str, int, Any, bool, bool], ...]
# The most fields of one selection set a builder takes (nested objects have their own).
BUILDER_FIELDS = 64
# After this many objects a builder gave up on in one operation, it is not tried again.
BUILDER_FAILURES = 3


def _leaf_or_slow(value: Any, coerce: Any, non_null: bool) -> Any:
    done = _leaf(value, coerce, non_null)
    if done is REDO:
        raise _Slow  # (a new instance each time: no traceback outlives its request)
    return done


def _fits(value: str, i: int, checked: bool) -> str:
    """The generated test that an object value can be built, as `_completable` asks: of
    its type by the type's `is_type_of` when it has one, else of a type seen not to be
    awaitable (see `_maker`)."""
    return f"k{i}({value}, None) is True" if checked else f"type({value}) in _NA"


@lru_cache(maxsize=256)
def _maker(shape: Shape) -> Callable[..., Callable[[Any], dict[str, Any]]]:
    """Python source for a selection set of this shape, compiled once per shape: a
    function that, given the fields' reads, coercions and nested builders, makes the
    builder (as dataclasses generate their methods). The builder reads each field of its
    object, coerces the leaves, calls the nested builders of its objects and of the items
    of its lists of objects, and gives the result dict in the selection's order; for
    anything but the plain case (a null non-null field or list item, a value that does not
    coerce, an object that is not of its type or of a type not yet seen not to be
    awaitable) it raises `_Slow`, or what a read raised."""
    body = ["    def build(s):"]
    arguments = ["_SLOW", "_leaf", "_NA", "_U"]
    keys = []
    for i, (name, kind, same, non_null, checked) in enumerate(shape):
        keys.append(f"{name!r}: v{i}")
        arguments.append(f"a{i}")
        if kind == TYPENAME:
            body.append(f"        v{i} = a{i}")
            continue
        arguments.append(f"r{i}")
        body.append(f"        v{i} = r{i}(s)")
        if kind == LEAF:
            if same is int:
                inside = f"{_INT_MIN} <= v{i} <= {_INT_MAX}"
                body.append(f"        if type(v{i}) is not int or not {inside}:")
                body.append(f"            v{i} = _leaf(v{i}, a{i}, {non_null})")
            elif same is not None:
                body.append(f"        if type(v{i}) is not {same.__name__}:")
                body.append(f"            v{i} = _leaf(v{i}, a{i}, {non_null})")
            else:  # `_leaf` inline: null, or a type seen not to be awaitable, coerced
                body.append(f"        if v{i} is None:")
                body.append("            raise _SLOW" if non_null else "            pass")
                body.append(f"        elif type(v{i}) in _NA:")
                body.append(f"            v{i} = a{i}(v{i})")
                body.append(f"            if v{i} is None or v{i} is _U:")
                body.append("                raise _SLOW")
                body.append("        else:")
                body.append(f"            v{i} = _leaf(v{i}, a{i}, {non_null})")
            continue
        body.append(f"        if v{i} is None:")
        body.append("            raise _SLOW" if non_null else "            pass")
        if checked:
            arguments.append(f"k{i}")
        if kind == OBJECT:
            body.append(f"        elif {_fits(f'v{i}', i, checked)}:")
            body.append(f"            v{i} = a{i}(v{i})")
        else:  # a list (or tuple) of objects, none of them null
            body.append(f"        elif type(v{i}) is list or type(v{i}) is tuple:")
            body.append("            o = []")
            body.append(f"            for x in v{i}:")
            body.append(f"                if x is None or not ({_fits('x', i, checked)}):")
            body.append("                    raise _SLOW")
            body.append(f"                o.append(a{i}(x))")
            body.append(f"            v{i} = o")
        body.append("        else:")
        body.append("            raise _SLOW")
    body.append(f"        return {{{', '.join(keys)}}}")
    source = "\n".join([f"def make({', '.join(arguments)}):", *body, "    return build"])
    names: dict[str, Any] = {}
    exec(compile(source, "<ordergraph builder>", "exec"), names)
    return names["make"]  # type: ignore[no-any-return]


def compile_builder(steps: list[Step], nested: list[Any]) -> Callable[[Any], dict[str, Any]]:
    """The builder of an object of these steps (LEAF, TYPENAME, OBJECT and LIST ones;
    `nested[i]` is the builder of an OBJECT step's object or a LIST step's items): see
    `_maker`."""
    shape: list[tuple[str, int, Any, bool, bool]] = []
    arguments: list[Any] = [_Slow, _leaf_or_slow, _NOT_AWAITABLE, Undefined]
    for step, inner in zip(steps, nested, strict=True):
        name, kind, read, same, _, detail, shown, _ = step
        is_type_of = detail.is_type_of if kind in (OBJECT, LIST) else None
        shape.append((name, kind, same, type(shown) is GraphQLNonNull, is_type_of is not None))
        if kind == TYPENAME:
            arguments.append(detail)
            continue
        arguments.extend((inner if kind in (OBJECT, LIST) else detail, read))
        if is_type_of is not None:
            arguments.append(is_type_of)
    return _maker(tuple(shape))(*arguments)


class PlainFields(StrawberryGraphQLCoreExecutionContext):
    """An execution context that completes plain fields itself (see the module)."""

    _plans: dict[int, tuple[Any, list[Step] | None]] | None = None
    _builders: dict[int, tuple[Any, Callable[[Any], dict[str, Any]] | None]] | None = None
    _failures: dict[int, int] | None = None
    _fast: bool | None = None

    def _steps_allowed(self) -> bool:
        fast = self._fast
        if fast is None:
            manager = self.middleware_manager  # a resolve hook sees every field: none plain
            fast = self._fast = manager is None or manager._middleware_resolvers is None
        return fast

    def _steps(self, parent_type: GraphQLObjectType, grouped_field_set: Any) -> list[Step] | None:
        if not self._steps_allowed():
            return None
        plans = self._plans
        if plans is None:
            plans = self._plans = {}
        found = plans.get(id(grouped_field_set))
        if found is not None and found[0] is grouped_field_set:
            return found[1]
        steps = plan_selection(self.schema, self.context_value, parent_type, grouped_field_set)
        plans[id(grouped_field_set)] = (grouped_field_set, steps)  # kept alive: ids stay unique
        return steps

    def _builder(self, plan: Any) -> Callable[[Any], dict[str, Any]] | None:
        """The compiled builder of a plan (once per operation), or None when the plan,
        or a nested one, has a field that is not plain (a resolver's, a list of leaves...)
        or more than BUILDER_FIELDS fields; None too once it gave up too often."""
        builders = self._builders
        if builders is None:
            builders = self._builders = {}
        grouped = plan[0]
        found = builders.get(id(grouped))
        if found is not None and found[0] is grouped:
            return found[1]
        build = self._compile(plan[1])
        builders[id(grouped)] = (grouped, build)  # kept alive: ids stay unique
        return build

    def _kept(self, step: Step) -> Any:
        """The nested plan of an OBJECT or LIST step (REDO: none), planned once per
        operation and kept in the step."""
        kept = step[7]
        if kept[0] is None:
            kept[0] = self._nested(step[5], step[4]) or REDO
        return kept[0]

    def _built(self, plan: Any, value: Any) -> Any:
        """The object completed by the plan's builder, or REDO (no builder, or it gave up:
        then it is completed field by field)."""
        build = self._builder(plan)
        if build is None:
            return REDO
        try:
            return build(value)
        except Exception:
            self._gave_up(plan)
            return REDO

    def _gave_up(self, plan: Any) -> None:
        """A builder that gives up again and again (a field whose reads always go to
        graphql-core) is dropped for the rest of the operation: after the first few
        objects (whose types may be new to `_NOT_AWAITABLE`), the objects of its plan are
        completed field by field without trying it first."""
        failures = self._failures
        if failures is None:
            failures = self._failures = {}
        grouped = plan[0]
        failures[id(grouped)] = count = failures.get(id(grouped), 0) + 1
        if count >= BUILDER_FAILURES and self._builders is not None:
            self._builders[id(grouped)] = (grouped, None)  # (kept alive by the plans)

    def _compile(self, steps: list[Step]) -> Callable[[Any], dict[str, Any]] | None:
        if len(steps) > BUILDER_FIELDS:
            return None
        nested: list[Any] = []
        for step in steps:
            kind = step[1]
            if kind in (LEAF, TYPENAME):
                nested.append(None)
                continue
            if kind not in (OBJECT, LIST):
                return None
            plan = self._kept(step)
            inner = None if plan is REDO else self._builder(plan)
            if inner is None:
                return None
            nested.append(inner)
        return compile_builder(steps, nested)

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: Any,
        position_context: Any,
    ) -> Any:
        steps = None
        if position_context is None:  # (not None: under incremental delivery)
            steps = self._steps(parent_type, grouped_field_set)
        if steps is None:
            return super().execute_fields(
                parent_type, source_value, path, grouped_field_set, position_context
            )
        return self._run(parent_type, source_value, path, (grouped_field_set, steps))

    def _run(
        self, parent_type: GraphQLObjectType, source: Any, path: Path | None, plan: Any
    ) -> Any:
        """The object's fields: a leaf read here, and kept as it is inline (the common
        case); every other field, and a leaf's value to coerce, through `_field`."""
        results: dict[str, Any] = {}
        pending: list[str] = []
        try:
            for step in plan[1]:
                name, kind, read, same = step[:4]
                if kind == LEAF:
                    try:
                        value = read(source)
                    except Exception:  # graphql-core reads it again and reports it
                        value = REDO
                    if type(value) is same and (same is not int or _INT_MIN <= value <= _INT_MAX):
                        results[name] = value
                        continue
                else:
                    value = None
                done = self._field(step, parent_type, source, path, value)
                self._keep(results, pending, name, done)
        except Exception:  # a non-null field's error, propagating
            self._abandon(results, pending)
            raise
        if not pending:
            return results
        return self._gather(results, pending)

    def _keep(self, results: dict[str, Any], pending: list[str], name: str, done: Any) -> None:
        if done is not Undefined:
            results[name] = done
            if type(done) not in _DONE and self.is_awaitable(done):
                pending.append(name)

    def _abandon(self, results: dict[str, Any], pending: list[str]) -> None:
        if pending:
            self.settle_in_background([results[name] for name in pending])

    def _field(
        self,
        step: Step,
        parent_type: GraphQLObjectType,
        source: Any,
        path: Path | None,
        value: Any,
    ) -> Any:
        """A field's completed value; `value` is a leaf's, as `_run` read it (REDO when
        the read raised)."""
        name, kind, _, _, details, detail, shown, _ = step
        if kind == LEAF:
            done = REDO if value is REDO else _leaf(value, detail, type(shown) is GraphQLNonNull)
        elif kind == TYPENAME:
            return detail
        elif kind == SLOW:
            done = REDO
        else:
            done = self._complete(step, parent_type, source, path)
        if done is REDO:
            field_path = Path(path, name, parent_type.name)
            return self.execute_field(parent_type, source, details, field_path, None)
        return done

    def _nested(self, object_type: GraphQLObjectType, details: Any) -> Any:
        """The collected selection of an object type under these fields and its plan, or
        None when graphql-core must complete it (a deferred part, or nothing plain)."""
        collected = self.collect_subfields(object_type, details)
        if collected.new_defer_usages:
            return None
        steps = self._steps(object_type, collected.grouped_field_set)
        return None if steps is None else (collected.grouped_field_set, steps)

    def _complete(self, step: Step, parent_type: GraphQLObjectType, source: Any, path: Any) -> Any:
        """An object's or a list of objects' completed value, or REDO."""
        name, kind, read, _, details, object_type, shown, _ = step
        try:
            value = read(source)
        except Exception:
            return REDO
        if value is None:
            return REDO if type(shown) is GraphQLNonNull else None
        if kind == OBJECT and type(value) not in _NOT_AWAITABLE and is_awaitable(value):
            return _dropped(value)
        nested = self._kept(step)
        if nested is REDO or not _completable(value, kind, object_type):
            return REDO
        if kind == OBJECT:
            built = self._built(nested, value)
            if built is not REDO:
                return built
        field_path = Path(path, name, parent_type.name)
        try:
            if kind == OBJECT:
                done = self._run(object_type, value, field_path, nested)
            else:
                done = self._complete_items(value, details, shown, field_path, nested)
        except Exception as raw_error:
            self.handle_field_error(raw_error, shown, details, field_path)
            return None
        if type(done) not in _DONE and self.is_awaitable(done):
            return self._settle(done, shown, details, field_path)
        return done

    def complete_list_value(
        self,
        return_type: GraphQLList[Any],
        field_details_list: Any,
        info: Any,
        path: Path,
        result: Any,
        position_context: Any,
    ) -> Any:
        """A list of objects a resolver returned (a connection's nodes, a trend's
        points): its items completed in one pass, when its item type's selection has
        plain fields; otherwise, or for anything unusual, graphql-core's way."""
        item_type = return_type.of_type
        if isinstance(item_type, GraphQLNonNull):
            item_type = item_type.of_type
        if (
            position_context is None
            and is_object_type(item_type)
            and self._steps_allowed()
            and _completable(result, LIST, item_type)
        ):
            nested = self._nested(item_type, field_details_list)
            if nested is not None:
                return self._complete_items(result, field_details_list, return_type, path, nested)
        return super().complete_list_value(
            return_type, field_details_list, info, path, result, position_context
        )

    def _complete_items(
        self, items: Any, details: Any, shown: GraphQLOutputType, field_path: Path, nested: Any
    ) -> Any:
        """The items of a list of objects; an item's error settled as graphql-core's
        list completion does (null for a nullable item, raised on for a non-null one)."""
        inner: Any = shown.of_type if isinstance(shown, GraphQLNonNull) else shown
        item_shown = inner.of_type
        item_type = item_shown.of_type if isinstance(item_shown, GraphQLNonNull) else item_shown
        completed: list[Any] = []
        waiting: list[int] = []
        build = self._builder(nested)
        for index, item in enumerate(items):
            if build is not None and item is not None:
                try:
                    completed.append(build(item))
                    continue
                except Exception:  # completed field by field below
                    self._gave_up(nested)
                    build = self._builder(nested)
            item_path = Path(field_path, index, None)
            try:
                if item is None:
                    if item_shown is not item_type:
                        raise TypeError(
                            f"Cannot return null for non-nullable field {field_path.typename}."
                            f"{field_path.key}."
                        )
                    done = None
                else:
                    done = self._run(item_type, item, item_path, nested)
                    if type(done) is not dict and self.is_awaitable(done):
                        done = self._settle(done, item_shown, details, item_path)
                        waiting.append(index)
            except Exception as raw_error:
                self.handle_field_error(raw_error, item_shown, details, item_path)
                done = None
            completed.append(done)
        if not waiting:
            return completed
        return self._gather_items(completed, waiting)

    async def _settle(
        self, done: Awaitable[Any], shown: GraphQLOutputType, details: Any, path: Path
    ) -> Any:
        """The awaited value; an error settled as graphql-core's execute_field does (null
        and the error recorded for a nullable field, raised on for a non-null one)."""
        try:
            return await done
        except Exception as raw_error:
            self.handle_field_error(raw_error, shown, details, path)
            return None

    @staticmethod
    async def _gather_items(completed: list[Any], waiting: list[int]) -> list[Any]:
        # Together, as graphql-core does: the items' DataLoader reads go out in one batch.
        awaited = await gather_with_cancel(*(completed[index] for index in waiting))
        for index, value in zip(waiting, awaited, strict=True):
            completed[index] = value
        return completed

    @staticmethod
    async def _gather(results: dict[str, Any], pending: list[str]) -> dict[str, Any]:
        if len(pending) == 1:
            results[pending[0]] = await results[pending[0]]
            return results
        awaited = await gather_with_cancel(*(results[name] for name in pending))
        results.update(zip(pending, awaited, strict=True))
        return results


def _dropped(value: Any) -> _Redo:
    """REDO for an awaitable read the one pass does not await: graphql-core reads the
    field again and awaits its own. A coroutine is closed (never started, it did nothing)."""
    if type(value) is CoroutineType:
        value.close()
    return REDO


def _completable(value: Any, kind: int, object_type: GraphQLObjectType) -> bool:
    """Whether the one pass can complete this value of an object type (kind OBJECT) or
    list of them (LIST): a list or tuple for a list, nothing awaitable, and each of the
    type by its `is_type_of` (Strawberry's ignores the Info; one that wants it raises,
    and graphql-core does it instead)."""
    if kind == LIST:
        if not isinstance(value, list | tuple):
            return False
        items = value
    else:
        items = (value,)
    is_type_of = object_type.is_type_of
    try:
        for item in items:
            if is_type_of is not None:
                if item is not None and is_type_of(item, None) is not True:  # type: ignore[arg-type]
                    return False
            elif type(item) not in _NOT_AWAITABLE and is_awaitable(item):
                return False
    except Exception:
        return False
    return True

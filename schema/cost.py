"""Static query cost: what an operation will cost, computed before any resolver runs.

Two halves. `plan()` turns a validated graphql-core document, its operation and its
(coerced) variables into a small tree of `Selected` fields: the schema's field names,
their argument values and what is selected under them. `cost()` is plain arithmetic over
that tree with the table below; it knows nothing of graphql-core or strawberry.

The unit: one point is about 1 ms of server CPU (Python and database together) on the
demo data, measured field kind by field kind (docs/security.md, section "cost";
bench/cost_calibrate.py measures it again). `CostExtension` refuses an operation over
`max_cost` with MAX_COST_EXCEEDED before execution, charges the key's bucket
(ordergraph.throttle) and puts `extensions.cost` on every response. An operation whose cost
depends on its document alone (no variables, no trend) is planned once: its cost is kept
with the document's validation outcome (schema/caching.py), bounded and per schema as
that is.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    ListValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValueNode,
    VariableNode,
    get_named_type,
    get_operation_ast,
)
from graphql.execution.values import (
    VariableValues,
    get_argument_values,
    get_variable_values,
)
from strawberry.extensions import SchemaExtension

from ordergraph.domain.outcomes import MAX_OUTCOME_POINTS
from ordergraph.domain.paging import DEFAULT_PAGE, MAX_PAGE
from ordergraph.domain.tallies import MAX_TREND_POINTS, TREND_STEPS

# -- the table (points; one point ≈ 1 ms of server CPU, see docs/security.md) ----------

#: Every operation: the request, the token check, parsing and the answer's JSON.
OPERATION = 3.0
#: Any field, scalar or object, once resolved: graphql-core's own work per field.
FIELD = 0.01
#: Each item of a list or connection (its edge and node objects).
ITEM = 0.03
#: A field resolved through a DataLoader (batched with its siblings) or awaiting one.
LOADED = 0.05
#: One page query (orders, products, backorder queue, an order's events, the store's event
#: feed, stores).
PAGE_QUERY = 1.5
#: A connection's totalCount (a COUNT over the store's matching rows).
TOTAL_COUNT = 2.0
#: `backorderedProducts`: one sorted query.
BACKORDERED_QUERY = 1.5
#: `backlog` (now or at a past instant) and `backlogChanged`: the figures at an instant.
FIGURES = 4.0
#: `backlogTrend`: one statement for the whole series (storage/history.py points_over)...
TREND_QUERY = 4.0
#: ...and each of its points: building its figures and its part of the answer (graphql-core
#: completes a list of points without yielding, so this also bounds how long one trend
#: holds the event loop: about one 1,000-point trend fits the default maximum).
TREND_POINT = 0.5
#: `backorderOutcomes` (a store's or a product's): a fixed eight statements over the
#: period's backorder facts (storage/queries/outcomes.py), and their sums.
OUTCOMES = 6.0
#: `backorderOutcomesTrend` and `backorderLeaders`: the same statements for every point
#: (every leader, each in a lane) at once, plus each one's part of the sums and the answer.
OUTCOMES_POINT = 0.5
#: A mutation: one write transaction with its checks, events and idempotency record.
MUTATION = 15.0
#: Subscribing: charged once, when the subscription starts (not per event).
SUBSCRIBE = 2.0
#: Lines assumed per order for `Order.lines` (an order has at most 100; the demo, 2-3).
LINES_PER_ORDER = 5
#: Items assumed for `ApiKey.stores`, `ReceiveStockPayload.filledLines`,
#: `Product.incoming` and `Product.expectedFills` (each at most the product's open
#: receipts plus two: MAX_OPEN_RECEIPTS).
LIST_GUESS = 10
#: A field answered from its product's fill-date walk (`Order.expectedShipDate`,
#: `OrderLine.expectedFillDate`, `OrderLine.queuePosition`, `Product.unitsToReorder`,
#: `Product.expectedFills`): batched per product (two
#: statements), the walk itself linear in the product's waiting lines.
FILL_DATES = 0.2

CONNECTIONS = {
    ("Query", "stores"),
    ("Store", "products"),
    ("Store", "orders"),
    ("Product", "backorderQueue"),
    ("Order", "events"),
    ("Store", "events"),
}
LOADED_FIELDS = {
    ("Query", "node"),
    ("Query", "store"),
    ("Store", "product"),
    ("Store", "order"),
    ("Product", "store"),
    ("Order", "store"),
    ("IncomingReceipt", "product"),
    ("ExpectedFillRun", "receipt"),
    ("ExpectedFillRun", "firstLine"),
    ("ExpectedFillRun", "lastLine"),
    ("OrderLine", "order"),
    ("OrderLine", "product"),
    ("OrderEvent", "order"),
    ("InventoryEvent", "product"),
    ("Order", "total"),
    ("Order", "backorderedValue"),
    ("Product", "price"),
    ("OrderLine", "unitPrice"),
}
GUESSED_LISTS = {
    ("Order", "lines"): LINES_PER_ORDER,
    ("ApiKey", "stores"): LIST_GUESS,
    ("ReceiveStockPayload", "filledLines"): LIST_GUESS,
    ("Product", "incoming"): LIST_GUESS,
    ("Product", "expectedFills"): LIST_GUESS,
}
# Fields whose cost depends on the time (a trend's points stop at now).
TIMED = {("Store", "backlogTrend"), ("Store", "backorderOutcomesTrend")}
# The arguments the cost reads (`_page_size`, `_points`, `ids`): a variable used only
# elsewhere (a mutation's `input`, a directive) leaves the operation's cost as it is.
COSTED_ARGUMENTS = frozenset({"first", "last", "from", "to", "interval", "ids"})
FILL_DATE_FIELDS = {
    ("Order", "expectedShipDate"),
    ("OrderLine", "expectedFillDate"),
    ("OrderLine", "queuePosition"),
    ("Product", "unitsToReorder"),
    ("Product", "expectedFills"),
}


@dataclass(frozen=True)
class Selected:
    """One field of the operation: `parent.name(args) { children }`."""

    parent: str
    name: str
    args: Mapping[str, Any] = field(default_factory=dict)
    children: tuple[Selected, ...] = ()


# -- the arithmetic ------------------------------------------------------------------


def cost(root: str, fields: Sequence[Selected], now: dt.datetime) -> int:
    """The operation's cost in whole points (rounded up); `root` is Query, Mutation or
    Subscription."""
    total = OPERATION
    for f in fields:
        if root == "Mutation":
            total += MUTATION + _field(f, now) - FIELD
        elif root == "Subscription":
            total += SUBSCRIBE + _field(f, now)
        else:
            total += _field(f, now)
    return math.ceil(round(total, 6))


def _children(fields: Sequence[Selected], now: dt.datetime) -> float:
    return sum(_field(f, now) for f in fields)


def _page_size(args: Mapping[str, Any]) -> int:
    size = args.get("first")
    if size is None:
        size = args.get("last")
    if size is None:
        return DEFAULT_PAGE
    return max(0, min(int(size), MAX_PAGE))


def _item_cost(fields: Sequence[Selected], now: dt.datetime) -> float:
    """A connection's per-item selection: under edges { node } and under nodes."""
    each = 0.0
    for f in fields:
        if f.name == "nodes":
            each += ITEM + _children(f.children, now)
        elif f.name == "edges":
            each += ITEM
            for g in f.children:
                each += FIELD + (_children(g.children, now) if g.name == "node" else 0.0)
    return each


def _points(
    args: Mapping[str, Any],
    now: dt.datetime,
    steps: Mapping[str, dt.timedelta],
    cap: int,
    *,
    empty_span_has_a_point: bool,
) -> int:
    """An upper bound of a trend's points, before the store's zone is known: the span
    from `from` to `to` (clipped at now) over the interval's shortest step, plus a
    boundary on each side; 0 when surely over `cap` (the resolver refuses it before any
    query) or when the span is empty (`backlogTrend` still gives its one instant)."""
    start, end, interval = args.get("from"), args.get("to"), args.get("interval")
    step = steps.get(str(getattr(interval, "value", interval)))
    if not isinstance(start, dt.datetime) or not isinstance(end, dt.datetime) or step is None:
        return cap
    if start.tzinfo is None or end.tzinfo is None:
        return 1  # refused by the resolver
    end = min(end, now)
    if end < start or (end == start and not empty_span_has_a_point):
        return 0
    count = int((end - start) / step)
    if count - 1 > cap:
        return 0
    return min(count + 2, cap)


def trend_points(args: Mapping[str, Any], now: dt.datetime) -> int:
    """An upper bound of `backlogTrend`'s points."""
    return _points(args, now, TREND_STEPS, MAX_TREND_POINTS, empty_span_has_a_point=True)


# The shortest a trend's period can be (a day around a clock change is 23 hours).
_OUTCOME_STEPS = {
    "DAY": dt.timedelta(hours=23),
    "WEEK": dt.timedelta(days=7, hours=-1),
    "MONTH": dt.timedelta(days=28, hours=-1),
}


def outcome_points(args: Mapping[str, Any], now: dt.datetime) -> int:
    """An upper bound of `backorderOutcomesTrend`'s points."""
    return _points(args, now, _OUTCOME_STEPS, MAX_OUTCOME_POINTS, empty_span_has_a_point=False)


OUTCOME_FIELDS = {
    ("Store", "backorderOutcomes"),
    ("Product", "backorderOutcomes"),
    ("Store", "backorderOutcomesTrend"),
    ("Store", "backorderLeaders"),
}


def _outcome_field(f: Selected, now: dt.datetime) -> float:
    """What waiting costs: one period, a trend's points, or the leaders' ranking and
    their outcomes, read together (each leader costs what a trend's point does)."""
    if f.name == "backorderOutcomesTrend":
        n = outcome_points(f.args, now)
        return FIELD + OUTCOMES + n * (OUTCOMES_POINT + ITEM + _children(f.children, now))
    if f.name == "backorderLeaders":
        first = f.args.get("first")
        n = max(0, min(int(10 if first is None else first), 100))
        ranking = OUTCOMES
        return FIELD + ranking + OUTCOMES + n * (OUTCOMES_POINT + ITEM + _children(f.children, now))
    return FIELD + OUTCOMES + _children(f.children, now)


def _field(f: Selected, now: dt.datetime) -> float:
    key = (f.parent, f.name)
    if key in CONNECTIONS:
        n = _page_size(f.args)
        extra = sum(
            TOTAL_COUNT if g.name == "totalCount" else FIELD
            for g in f.children
            if g.name not in ("edges", "nodes")
        )
        return FIELD + PAGE_QUERY + extra + n * _item_cost(f.children, now)
    if key == ("Store", "backorderedProducts"):
        n = max(0, min(int(f.args.get("first") or 0), 100))
        return FIELD + BACKORDERED_QUERY + n * (ITEM + _children(f.children, now))
    if key == ("Query", "nodes"):
        ids = f.args.get("ids") or ()
        n = min(len(ids), MAX_PAGE) if isinstance(ids, (list, tuple)) else MAX_PAGE
        return FIELD + n * (ITEM + LOADED + _children(f.children, now))
    if key in (("Store", "backlog"), ("Subscription", "backlogChanged")):
        return FIELD + FIGURES + _children(f.children, now)
    if key == ("Store", "backlogTrend"):
        n = trend_points(f.args, now)
        return FIELD + TREND_QUERY + n * (TREND_POINT + ITEM + _children(f.children, now))
    if key in OUTCOME_FIELDS:
        return _outcome_field(f, now)
    if key in GUESSED_LISTS:
        n = GUESSED_LISTS[key]
        return FIELD + n * (ITEM + LOADED + _children(f.children, now))
    own = FIELD + (LOADED if key in LOADED_FIELDS else 0.0)
    if key in FILL_DATE_FIELDS:
        own += FILL_DATES
    return own + _children(f.children, now)


# -- from a graphql-core document ----------------------------------------------------


class CannotCost(Exception):
    """The variables do not coerce: execution will refuse them, without resolvers."""


def plan(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
) -> tuple[str, list[Selected]]:
    """The operation's root type name and its selected fields, variables substituted."""
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        raise CannotCost("no such operation")
    root = schema.get_root_type(operation.operation)
    if root is None:
        raise CannotCost("no root type")
    coerced = get_variable_values(
        schema, operation.variable_definitions or (), dict(variables or {})
    )
    if isinstance(coerced, list):
        raise CannotCost("variables do not coerce")
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    walker = _Walker(schema, fragments, coerced)
    return root.name, walker.selections(root, operation.selection_set)


@dataclass
class _Walker:
    schema: GraphQLSchema
    fragments: Mapping[str, FragmentDefinitionNode]
    variables: VariableValues

    def selections(self, parent: GraphQLNamedType, node: SelectionSetNode) -> list[Selected]:
        found: list[Selected] = []
        for selection in node.selections:
            if isinstance(selection, FieldNode):
                item = self.field(parent, selection)
                if item is not None:
                    found.append(item)
            elif isinstance(selection, InlineFragmentNode):
                on = parent
                if selection.type_condition is not None:
                    on = self.schema.get_type(selection.type_condition.name.value) or parent
                found.extend(self.selections(on, selection.selection_set))
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments.get(selection.name.value)
                if fragment is not None:
                    on = self.schema.get_type(fragment.type_condition.name.value) or parent
                    found.extend(self.selections(on, fragment.selection_set))
        return found

    def field(self, parent: GraphQLNamedType, node: FieldNode) -> Selected | None:
        name = node.name.value
        if name.startswith("__") or not isinstance(
            parent, (GraphQLObjectType, GraphQLInterfaceType)
        ):
            return Selected(parent.name, name)  # introspection: its own limits apply
        definition: GraphQLField | None = parent.fields.get(name)
        if definition is None:
            return None
        try:
            args = get_argument_values(definition, node, self.variables)
        except GraphQLError:
            args = {}
        children: tuple[Selected, ...] = ()
        if node.selection_set is not None:
            inner = get_named_type(definition.type)
            children = tuple(self.selections(inner, node.selection_set))
        return Selected(parent.name, name, args, children)


def _has_variable(value: ValueNode) -> bool:
    if isinstance(value, VariableNode):
        return True
    if isinstance(value, ListValueNode):
        return any(_has_variable(v) for v in value.values)
    if isinstance(value, ObjectValueNode):
        return any(_has_variable(f.value) for f in value.fields)
    return False


def _costed_by_variables(node: SelectionSetNode | None) -> bool:
    """Whether a field under `node` takes a variable in an argument the cost reads."""
    if node is None:
        return False
    for selection in node.selections:
        if isinstance(selection, FieldNode) and any(
            a.name.value in COSTED_ARGUMENTS and _has_variable(a.value)
            for a in selection.arguments or ()
        ):
            return True
        if _costed_by_variables(getattr(selection, "selection_set", None)):
            return True
    return False


def fixed(document: DocumentNode, operation_name: str | None, fields: Sequence[Selected]) -> bool:
    """Whether the operation's cost depends on its document alone: no variable in an
    argument the cost reads (in the document's operations and fragments), and no trend
    (whose points depend on the time). placeOrder's `input: $input` is such a variable."""
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        return False
    if operation.variable_definitions and any(
        _costed_by_variables(d.selection_set)
        for d in document.definitions
        if isinstance(d, OperationDefinitionNode | FragmentDefinitionNode)
    ):
        return False

    def timeless(found: Sequence[Selected]) -> bool:
        return all((f.parent, f.name) not in TIMED and timeless(f.children) for f in found)

    return timeless(fields)


def operation_root(document: DocumentNode | None, operation_name: str | None) -> str | None:
    if document is None:
        return None
    operation: OperationDefinitionNode | None = get_operation_ast(document, operation_name)
    return None if operation is None else operation.operation.value


# -- the extension --------------------------------------------------------------------


class Admission(Protocol):
    """Lets an operation of a given cost in (ordergraph.throttle.Throttle)."""

    async def admit(self, context: Any, requested: int) -> dict[str, Any] | None:
        """The throttle status to report, or raise a GraphQLError refusing the operation
        (its `throttle_status` attribute, if any, is reported too)."""
        ...

    def running(self, context: Any, requested: int) -> AbstractAsyncContextManager[None]:
        """Held while the admitted operation runs (a key's heavy operations take turns)."""
        ...


class CostExtension(SchemaExtension):
    """Cost before execution, the key's bucket, and `extensions.cost` on every answer.

    Runs in `on_execute`, after parsing and validation (strawberry runs the parse,
    validate and execute hooks in that order, for queries, mutations and subscriptions;
    for a subscription `on_execute` wraps only the subscribe call, so the charge is made
    once, when it starts). A refused query or mutation gets its error as the result, so
    graphql-core never runs; a refused subscription raises, which strawberry reports as
    the subscription's only result.
    """

    def __init__(self, admission: Admission) -> None:
        self.admission = admission
        self.requested = 0
        self.status: dict[str, Any] | None = None

    async def on_execute(self) -> AsyncIterator[None]:
        if not await self.admit_operation():
            yield
            return
        async with self.admission.running(self.execution_context.context, self.requested):
            yield

    async def admit_operation(self) -> bool:
        """Cost the operation and charge it: True if it is to run (held by
        `admission.running` meanwhile), False if it was refused (the result is then set)."""
        context = self.execution_context
        document = context.graphql_document
        app_context = context.context
        clock = getattr(app_context, "clock", None)
        now = clock() if callable(clock) else dt.datetime.now(dt.UTC)
        if document is not None:
            self.requested = self._cost(document, now)
        try:
            self.status = await self.admission.admit(app_context, self.requested)
        except GraphQLError as refused:
            self.status = getattr(refused, "throttle_status", None)
            if operation_root(document, context.operation_name) == "subscription":
                raise
            context.result = ExecutionResult(data=None, errors=[refused])
        except Exception:
            # The token could not be checked (the database is away): the resolvers meet
            # the same fault and report it, masked, as they would without this extension.
            self.status = None
        return context.result is None

    def _cost(self, document: DocumentNode, now: dt.datetime) -> int:
        """The operation's cost: kept with the document's validation outcome
        (schema/caching.py) when it depends on the document alone, so that an operation
        sent again without variables is not planned again."""
        context = self.execution_context
        query, name = context.query, context.operation_name
        documents = getattr(context.schema, "documents", None)
        if documents is not None and query is not None:
            known: int | None = documents.cost_of(query, name)
            if known is not None:
                return known
        try:
            root, fields = plan(context.schema._schema, document, name, context.variables)
        except CannotCost:
            return 0
        requested = cost(root, fields, now)
        if documents is not None and query is not None and fixed(document, name, fields):
            documents.keep_cost(query, name, requested)
        return requested

    def get_results(self) -> dict[str, Any]:
        report: dict[str, Any] = {"requestedQueryCost": self.requested}
        if self.status is not None:
            report["throttleStatus"] = self.status
        return {"cost": report}

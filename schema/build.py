"""The built schema, with its protective limits and error masking."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import strawberry
from graphql import ASTValidationRule, GraphQLError, specified_rules
from graphql.validation.rules import overlapping_fields_can_be_merged as overlapping
from strawberry.extensions import (
    DisableIntrospection,
    MaskErrors,
    MaxAliasesLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.types import ExecutionContext

from ordergraph.schema.caching import DocumentCache
from ordergraph.schema.enums import InventoryEventType
from ordergraph.schema.errors import MASKED, client_errors, coded, is_unexpected, log_unexpected
from ordergraph.schema.execution import PlainFields, is_awaitable
from ordergraph.schema.extension_runner import LeanExtensionsRunner
from ordergraph.schema.input_conversion import input_classes
from ordergraph.schema.input_conversion import install as install_input_conversion
from ordergraph.schema.input_guard import find_forbidden, refusal
from ordergraph.schema.mutations import Mutation
from ordergraph.schema.query import Query
from ordergraph.schema.scalars import SCALAR_OVERRIDES
from ordergraph.schema.sharing import SharedEventExecutor
from ordergraph.schema.subscriptions import Subscription
from ordergraph.schema.types import ApiKeyType, OrderLineType, OrderType, ProductType, StoreType


@dataclass(frozen=True)
class SchemaLimits:
    max_depth: int = 12
    max_aliases: int = 30
    max_tokens: int = 5000
    document_cache_bytes: int = 8_000_000
    max_document_bytes: int = 100_000
    # graphql-core's work budget for comparing fields of the same name (its default,
    # 500,000, lets one document of repeated fields burn about a second of CPU).
    max_validation_complexity: int = 20_000


class MaskUnexpectedErrors(MaskErrors):
    """Masks faults of ours, and gives every error its extensions.code.

    Codes by where the error arose: GRAPHQL_PARSE_FAILED (the document does not parse, or
    holds too many tokens), GRAPHQL_VALIDATION_FAILED (it does not validate, or goes past
    the depth and alias limits or the budget of field comparisons, or asks for
    introspection when that is off; coded by `Gate`, which keeps validation's outcome),
    BAD_USER_INPUT (variables that do not coerce: errors of execution without a field
    path), INTERNAL_SERVER_ERROR (masked faults of ours, and any other field error without
    a code). With `quiet` (introspection off), "Did you mean ...?" suggestions are cut
    from every message, so they reveal no field, type or value names.

    `_process_result` also avoids MaskErrors' runtime Protocol check on every result: that
    isinstance check walks the Protocol's attributes on each call (Python 3.11) and is paid
    for every event sent to every subscriber; this is the same test, by attribute.
    """

    def __init__(
        self,
        should_mask_error: Callable[[GraphQLError], bool],
        error_message: str,
        quiet: bool = False,
        validation_budget: int = overlapping.MAX_COMPLEXITY_BUDGET,
    ) -> None:
        super().__init__(should_mask_error=should_mask_error, error_message=error_message)
        self.quiet = quiet
        self.validation_budget = validation_budget

    def on_parse(self) -> Iterator[None]:
        yield
        for error in self.execution_context.pre_execution_errors or ():
            coded(error, "GRAPHQL_PARSE_FAILED", self.quiet)

    def _process_result(self, result: object) -> None:
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = client_errors(  # type: ignore[attr-defined]
                errors,
                quiet=self.quiet,
                should_mask=self.should_mask_error,
                message=self.error_message,
            )


class GateRules:
    """What every operation of one schema is checked against, made once per schema: the
    validation rules (graphql-core's, then no introspection when it is off, the depth and
    the alias limits, in that order), the token limit of the parser, the budget of field
    comparisons and the document cache."""

    def __init__(
        self, limits: SchemaLimits, documents: DocumentCache, *, introspection: bool
    ) -> None:
        extra: list[type[ASTValidationRule]] = []
        if not introspection:
            extra.extend(DisableIntrospection().validation_rules)
        extra.extend(QueryDepthLimiter(max_depth=limits.max_depth).validation_rules)
        extra.extend(MaxAliasesLimiter(max_alias_count=limits.max_aliases).validation_rules)
        self.validation_rules: tuple[type[ASTValidationRule], ...] = (
            *specified_rules,
            *extra,
        )
        self.max_tokens = limits.max_tokens
        self.validation_budget = limits.max_validation_complexity
        self.quiet = not introspection
        self.documents = documents


class Gate(MaskUnexpectedErrors):
    """The schema's own checks of every operation, as one extension with three hooks
    (strawberry wraps each hook of each extension anew for every operation, which cost
    more than the checks themselves on a cached document: one extension instead of one
    per check, and no validation hook of its own).

    In order: the limits (validation rules and the parser's token limit, from `GateRules`);
    the document from the cache (parsed once per text; a syntax error is
    GRAPHQL_PARSE_FAILED); the outcome of validation from the cache (validated once per
    text: looked up when parsing ends, so that strawberry skips validation; when it is
    not known, graphql-core validates, and the outcome is kept and its errors coded
    GRAPHQL_VALIDATION_FAILED when execution starts or, if validation failed, when the
    result is masked); no control characters in any string argument
    (schema/input_guard.py), checked when execution starts; and the masking and coding of
    errors (MaskUnexpectedErrors).
    """

    def __init__(self, rules: GateRules) -> None:
        super().__init__(
            should_mask_error=is_unexpected,
            error_message=MASKED,
            quiet=rules.quiet,
            validation_budget=rules.validation_budget,
        )
        self.rules = rules
        # The query text graphql-core validates in this operation (not in the cache).
        self._validating: str | None = None

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        context.validation_rules = self.rules.validation_rules
        context.parse_options["max_tokens"] = self.rules.max_tokens
        yield from super().on_operation()

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is None and context.query is not None:
            context.graphql_document = self.rules.documents.document(
                context.query, context.parse_options
            )
        yield from super().on_parse()
        query = context.query
        if query is None or context.pre_execution_errors is not None:
            return
        known = self.rules.documents.get(query)
        if known is not None:
            context.pre_execution_errors = known  # validation is then skipped
            return
        self._validating = query
        # Read by graphql-core when the overlapping-fields rule starts; validation runs
        # right after this hook, without a turn of the event loop (no extension of this
        # schema has a validation hook), so each schema's own budget applies.
        overlapping.MAX_COMPLEXITY_BUDGET = self.validation_budget

    def _validated(self) -> None:
        """Code and keep the outcome of a validation graphql-core has just run."""
        query, self._validating = self._validating, None
        errors = self.execution_context.pre_execution_errors
        if query is None or errors is None:
            return  # not validated here (the operation type was refused first)
        for error in errors:
            coded(error, "GRAPHQL_VALIDATION_FAILED", self.quiet)
        self.rules.documents.put(query, errors)

    def _process_result(self, result: object) -> None:
        if self._validating is not None:  # validation failed: the result is its errors
            self._validated()
        super()._process_result(result)

    def on_execute(self) -> Iterator[None]:
        if self._validating is not None:  # validation passed
            self._validated()
        context = self.execution_context
        document = context.graphql_document
        if document is not None:
            found = find_forbidden(document, context.variables)
            if found is not None:
                raise refusal(*found)
        yield


class Executor(SharedEventExecutor, PlainFields):
    """The schema's execution context: SharedEventExecutor, plain fields completed in
    one pass (schema/execution.py), and `is_awaitable` above."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.is_awaitable = is_awaitable  # type: ignore[assignment]


class OrdergraphSchema(strawberry.Schema):
    def create_extensions_runner(
        self, execution_context: ExecutionContext, extensions: list[SchemaExtension]
    ) -> SchemaExtensionsRunner:
        return LeanExtensionsRunner(execution_context=execution_context, extensions=extensions)

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        context: Any = execution_context.context if execution_context else None
        log_unexpected(errors, getattr(context, "request_id", None))


def build_schema(
    limits: SchemaLimits | None = None,
    *,
    introspection: bool = True,
    extensions: Sequence[Callable[[], SchemaExtension]] = (),
) -> strawberry.Schema:
    """The schema with its limits. With `introspection=False`, documents asking for
    `__schema` or `__type` are refused at validation. `extensions` (factories) come
    first, before the limits and the error masking."""
    limits = limits or SchemaLimits()
    documents = DocumentCache(
        max_bytes=limits.document_cache_bytes, max_document_bytes=limits.max_document_bytes
    )
    gate = GateRules(limits, documents, introspection=introspection)
    schema = OrdergraphSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=[StoreType, ProductType, OrderType, OrderLineType, ApiKeyType, InventoryEventType],
        extensions=[*extensions, lambda: Gate(gate)],
        execution_context_class=Executor,
        scalar_overrides=SCALAR_OVERRIDES,
    )
    schema.documents = documents  # type: ignore[attr-defined]
    install_input_conversion(
        input_classes(schema), schema.config, schema.schema_converter.scalar_registry
    )
    return schema

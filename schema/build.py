"""The built schema, with its protective limits and error masking."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import strawberry
from graphql import GraphQLError
from graphql.validation.rules import overlapping_fields_can_be_merged as overlapping
from strawberry.extensions import (
    DisableIntrospection,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)
from strawberry.types import ExecutionContext

from ordergraph.schema.caching import DocumentCache
from ordergraph.schema.enums import InventoryEventType
from ordergraph.schema.input_guard import InputGuard
from ordergraph.schema.mutations import Mutation
from ordergraph.schema.query import Query
from ordergraph.schema.scalars import SCALAR_OVERRIDES
from ordergraph.schema.subscriptions import SharedEventExecutor, Subscription
from ordergraph.schema.types import ApiKeyType, OrderLineType, OrderType, ProductType, StoreType

log = logging.getLogger("ordergraph.errors")
MASKED = "Internal server error"


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


def is_unexpected(error: GraphQLError) -> bool:
    """True for faults of ours (to be masked); False for errors meant for the client."""
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError)


_SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")


def _coded(error: GraphQLError, code: str, quiet: bool) -> GraphQLError:
    """Give `error` its extensions.code if it has none; drop "Did you mean" when `quiet`.
    Errors are changed in place: the document cache keeps validation errors, and a
    cached one has its code already."""
    if quiet and "Did you mean" in error.message:
        error.message = _SUGGESTION.sub("", error.message)
    if not (error.extensions or {}).get("code"):
        error.extensions = {**(error.extensions or {}), "code": code}
    return error


class MaskUnexpectedErrors(MaskErrors):
    """Masks faults of ours, and gives every error its extensions.code.

    Codes by where the error arose: GRAPHQL_PARSE_FAILED (the document does not parse, or
    holds too many tokens), GRAPHQL_VALIDATION_FAILED (it does not validate, or goes past
    the depth and alias limits or the budget of field comparisons, or asks for
    introspection when that is off),
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
            _coded(error, "GRAPHQL_PARSE_FAILED", self.quiet)

    def on_validate(self) -> Iterator[None]:
        # Read by graphql-core when the overlapping-fields rule starts; validation runs
        # synchronously right after this, so each schema's own budget applies.
        overlapping.MAX_COMPLEXITY_BUDGET = self.validation_budget
        yield
        for error in self.execution_context.pre_execution_errors or ():
            _coded(error, "GRAPHQL_VALIDATION_FAILED", self.quiet)

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        masked = super().anonymise_error(error)
        masked.extensions = {"code": "INTERNAL_SERVER_ERROR"}
        return masked

    def _process_result(self, result: object) -> None:
        errors = getattr(result, "errors", None)
        if errors:
            processed = self._process_errors(errors)
            for error in processed:
                code = "INTERNAL_SERVER_ERROR" if error.path else "BAD_USER_INPUT"
                _coded(error, code, self.quiet)
            result.errors = processed  # type: ignore[attr-defined]


class OrdergraphSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        context: Any = execution_context.context if execution_context else None
        request_id = getattr(context, "request_id", None)
        for error in errors:
            if is_unexpected(error):
                log.error(
                    "unexpected error in %s (request %s)",
                    ".".join(str(p) for p in error.path or []),
                    request_id,
                    exc_info=error.original_error,
                    extra={"request_id": request_id},
                )


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
    chain: list[Callable[[], SchemaExtension]] = [
        *extensions,
        documents.extension(),
        InputGuard,
        lambda: QueryDepthLimiter(max_depth=limits.max_depth),
        lambda: MaxAliasesLimiter(max_alias_count=limits.max_aliases),
        lambda: MaxTokensLimiter(max_token_count=limits.max_tokens),
        lambda: MaskUnexpectedErrors(
            should_mask_error=is_unexpected,
            error_message=MASKED,
            quiet=not introspection,
            validation_budget=limits.max_validation_complexity,
        ),
    ]
    if not introspection:
        chain.insert(len(extensions), DisableIntrospection)
    schema = OrdergraphSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=[StoreType, ProductType, OrderType, OrderLineType, ApiKeyType, InventoryEventType],
        extensions=chain,
        execution_context_class=SharedEventExecutor,
        scalar_overrides=SCALAR_OVERRIDES,
    )
    schema.documents = documents  # type: ignore[attr-defined]
    return schema

"""The built schema, with its protective limits and error masking."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    DisableIntrospection,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)
from strawberry.types import ExecutionContext

from schema.caching import DocumentCache
from schema.enums import InventoryEventType
from schema.input_guard import InputGuard
from schema.mutations import Mutation
from schema.query import Query
from schema.scalars import SCALAR_OVERRIDES
from schema.subscriptions import SharedEventExecutor, Subscription
from schema.types import ApiKeyType, OrderLineType, OrderType, ProductType, StoreType

log = logging.getLogger("ordergraph.errors")
MASKED = "Internal server error"


@dataclass(frozen=True)
class SchemaLimits:
    max_depth: int = 12
    max_aliases: int = 30
    max_tokens: int = 5000


def is_unexpected(error: GraphQLError) -> bool:
    """True for faults of ours (to be masked); False for errors meant for the client."""
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError)


class MaskUnexpectedErrors(MaskErrors):
    """MaskErrors without its runtime Protocol check on every result.

    That isinstance check walks the Protocol's attributes on each call (Python 3.11) and is
    paid for every event sent to every subscriber; this is the same test, by attribute.
    """

    def _process_result(self, result: object) -> None:
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = self._process_errors(errors)  # type: ignore[attr-defined]


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
    documents = DocumentCache()
    chain: list[Callable[[], SchemaExtension]] = [
        *extensions,
        documents.extension(),
        InputGuard,
        lambda: QueryDepthLimiter(max_depth=limits.max_depth),
        lambda: MaxAliasesLimiter(max_alias_count=limits.max_aliases),
        lambda: MaxTokensLimiter(max_token_count=limits.max_tokens),
        lambda: MaskUnexpectedErrors(should_mask_error=is_unexpected, error_message=MASKED),
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

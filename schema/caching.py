"""Parse and validate each distinct document once, not on every request.

Parsing and validating a document against the schema (with the depth, alias and token
limits) costs milliseconds, and clients send the same few documents over and over: the
placeOrder of a storefront, the subscription of a dashboard. `DocumentCache` keeps, per
schema and bounded, the parsed document of each query text and the outcome of validating
it (the rules of one schema never change). A document that does not parse is not kept:
strawberry parses it again and reports the error as usual.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from graphql import DocumentNode, GraphQLError, parse
from strawberry.extensions import SchemaExtension


class DocumentCache:
    """Bounded LRUs of parsed documents and validation outcomes for one schema."""

    def __init__(self, maxsize: int = 256) -> None:
        self.maxsize = maxsize
        self._documents: OrderedDict[tuple[str, str], DocumentNode] = OrderedDict()
        self._results: OrderedDict[str, tuple[GraphQLError, ...]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, query: str) -> list[GraphQLError] | None:
        found = self._results.get(query)
        if found is None:
            self.misses += 1
            return None
        self.hits += 1
        self._results.move_to_end(query)
        return list(found)

    def put(self, query: str, errors: list[GraphQLError]) -> None:
        self._results[query] = tuple(errors)
        self._results.move_to_end(query)
        while len(self._results) > self.maxsize:
            self._results.popitem(last=False)

    def document(self, query: str, options: Mapping[str, Any]) -> DocumentNode | None:
        key = (query, repr(sorted(options.items())))
        found = self._documents.get(key)
        if found is not None:
            self._documents.move_to_end(key)
            return found
        try:
            parsed = parse(query, **options)
        except GraphQLError:
            return None  # not kept: strawberry parses it again and reports the error
        self._documents[key] = parsed
        while len(self._documents) > self.maxsize:
            self._documents.popitem(last=False)
        return parsed

    def extension(self) -> Callable[[], SchemaExtension]:
        results = self

        class CachedDocuments(SchemaExtension):
            def on_parse(self) -> Iterator[None]:
                context = self.execution_context
                if context.graphql_document is None and context.query is not None:
                    options = context.parse_options
                    context.graphql_document = results.document(context.query, options)
                yield

            def on_validate(self) -> Iterator[None]:
                context = self.execution_context
                query = context.query
                known = results.get(query) if query is not None else None
                if known is not None:
                    context.pre_execution_errors = known  # validation is then skipped
                yield
                if known is None and query is not None:
                    errors = context.pre_execution_errors
                    if errors is not None:
                        results.put(query, errors)

        return CachedDocuments

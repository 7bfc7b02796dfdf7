"""Parse and validate each distinct document once, not on every request.

Parsing and validating a document against the schema (with the depth, alias and token
limits) costs milliseconds, and clients send the same few documents over and over: the
placeOrder of a storefront, the subscription of a dashboard. `DocumentCache` keeps, per
schema and bounded, the parsed document of each query text and the outcome of validating
it (the rules of one schema never change). A document that does not parse is not kept,
and its syntax error is reported from the one parse (GRAPHQL_PARSE_FAILED).

The cache is bounded by entries and by the bytes of the query texts it holds
(ORDERGRAPH_DOCUMENT_CACHE_BYTES, counted once per text for both maps; a parsed document
costs several times its text, so the real memory is a small multiple of it). A document
larger than `max_document_bytes` is never kept. A document nested so deeply that the
parser would exhaust the stack is refused as GRAPHQL_PARSE_FAILED.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import DocumentNode, GraphQLError, parse

TOO_DEEP = "the document is nested too deeply to parse"


class DocumentCache:
    """Bounded LRUs of parsed documents and validation outcomes for one schema."""

    def __init__(
        self,
        maxsize: int = 256,
        max_bytes: int = 8_000_000,
        max_document_bytes: int = 100_000,
    ) -> None:
        self.maxsize = maxsize
        self.max_bytes = max_bytes
        self.max_document_bytes = max_document_bytes
        self._documents: OrderedDict[tuple[str, str], DocumentNode] = OrderedDict()
        self._results: OrderedDict[str, _Outcome] = OrderedDict()
        self.document_bytes = 0  # UTF-8 bytes of the query texts in _documents
        self.result_bytes = 0  # and in _results
        self.hits = 0  # validation outcomes found
        self.misses = 0  # and not found (graphql-core then validates the document)
        self.parses = 0  # documents parsed (not found in the cache)

    @property
    def bytes(self) -> int:
        return self.document_bytes + self.result_bytes

    def _keeps(self, query: str) -> bool:
        return _size(query) <= min(self.max_document_bytes, self.max_bytes // 2)

    def get(self, query: str) -> list[GraphQLError] | None:
        found = self._results.get(query)
        if found is None:
            self.misses += 1
            return None
        self.hits += 1
        self._results.move_to_end(query)
        return list(found.errors)

    def put(self, query: str, errors: list[GraphQLError]) -> None:
        if not self._keeps(query):
            return
        if query not in self._results:
            self.result_bytes += _size(query)
        self._results[query] = _Outcome(tuple(errors))
        self._results.move_to_end(query)
        while len(self._results) > self.maxsize or self.result_bytes > self.max_bytes // 2:
            old, _ = self._results.popitem(last=False)
            self.result_bytes -= _size(old)

    def cost_of(self, query: str, operation_name: str | None) -> int | None:
        """The static cost kept for this operation of a validated document, if any."""
        found = self._results.get(query)
        return None if found is None else found.costs.get(operation_name)

    def keep_cost(self, query: str, operation_name: str | None, cost: int) -> None:
        """Keep an operation's cost with its document's validation outcome (and for as long):
        only for a cost that depends on nothing but the document (schema/cost.py)."""
        found = self._results.get(query)
        if found is not None:
            found.costs[operation_name] = cost

    def document(self, query: str, options: Mapping[str, Any]) -> DocumentNode:
        key = (query, repr(sorted(options.items())))
        found = self._documents.get(key)
        if found is not None:
            self._documents.move_to_end(key)
            return found
        self.parses += 1
        try:
            parsed = parse(query, **options)
        except GraphQLError as error:  # reported as it is (not parsed a second time)
            raise _parse_failed(error) from None
        except RecursionError:
            raise GraphQLError(TOO_DEEP, extensions={"code": "GRAPHQL_PARSE_FAILED"}) from None
        if not self._keeps(query):
            return parsed
        self._documents[key] = parsed
        self.document_bytes += _size(query)
        while len(self._documents) > self.maxsize or self.document_bytes > self.max_bytes // 2:
            (old, _), _ = self._documents.popitem(last=False)
            self.document_bytes -= _size(old)
        return parsed


@dataclass
class _Outcome:
    """What validating a document gave (its errors), and the static cost of each of its
    operations once computed, when that depends on the document alone."""

    errors: tuple[GraphQLError, ...]
    costs: dict[str | None, int] = field(default_factory=dict)


def _size(query: str) -> int:
    return len(query.encode("utf-8", "surrogatepass"))


def _parse_failed(error: GraphQLError) -> GraphQLError:
    if not (error.extensions or {}).get("code"):
        error.extensions = {**(error.extensions or {}), "code": "GRAPHQL_PARSE_FAILED"}
    return error

"""Documents are parsed and validated once per schema; the outcome of every request stays
the same as without the cache: same errors, same limits, same results."""

from __future__ import annotations

from ordergraph.schema.build import SchemaLimits, build_schema

DEEP = "query { stores { edges { node { products { edges { node { id } } } } } } }"
BAD = "query { nope }"


async def test_repeated_documents_get_the_same_errors_and_limits_every_time() -> None:
    strict = build_schema(SchemaLimits(max_depth=4))
    lenient = build_schema(SchemaLimits(max_depth=12))
    for _ in range(3):
        refused = await strict.execute(DEEP)
        assert refused.errors
        assert "exceeds maximum operation depth" in refused.errors[0].message
        # Another schema's limits are its own, even for the same document text.
        allowed = await lenient.execute(DEEP, context_value=None)
        assert not allowed.errors or "depth" not in allowed.errors[0].message
        unknown = await strict.execute(BAD)
        assert unknown.errors
        assert "Cannot query field 'nope'" in unknown.errors[0].message


async def test_a_repeated_document_is_validated_once_and_the_cache_is_bounded() -> None:
    schema = build_schema()
    results = schema.documents  # type: ignore[attr-defined]
    for _ in range(20):
        outcome = await schema.execute("query Probe { __typename }")
        assert outcome.data == {"__typename": "Query"}
        assert not outcome.errors
    assert (results.misses, results.hits) == (1, 19)
    for n in range(results.maxsize + 10):
        await schema.execute(f"query {{ q{n}: __typename }}")
    assert len(results._results) == len(results._documents) == results.maxsize


async def test_the_cache_is_bounded_by_bytes_and_keeps_no_oversized_document() -> None:
    schema = build_schema(SchemaLimits(document_cache_bytes=20_000, max_document_bytes=4_000))
    cache = schema.documents  # type: ignore[attr-defined]
    for n in range(100):  # ~500 bytes each: about 20 fit in each half of 20 KB
        document = f"query Q{n} {{ __typename }} # " + "-" * 480
        assert not (await schema.execute(document)).errors
    assert cache.bytes <= 20_000
    assert 15 <= len(cache._documents) <= 20
    assert 15 <= len(cache._results) <= 20
    big = "query Big { __typename } # " + "-" * 4400  # over max_document_bytes
    before = cache.bytes
    outcome = await schema.execute(big)
    assert not outcome.errors
    assert cache.bytes == before
    assert big not in cache._results

"""The schema's own checks run as one extension per operation (the limits, the document
cache, the input guard and the error masking), and each check answers as it did when it
was an extension of its own: same codes and messages, cold or from the cache."""

from __future__ import annotations

from typing import Any

from ordergraph.schema.build import Gate, SchemaLimits, build_schema

DEEP = "query { stores { edges { node { products { edges { node { id } } } } } } }"
ALIASES = "query { " + " ".join(f"a{n}: __typename" for n in range(5)) + " }"
TOKENS = "query { " + "__typename " * 40 + "}"
INTROSPECTION = "query { __schema { queryType { name } } }"
UNPARSED = "query { "
CONTROL = 'query { store(handle: "a\\u0001b") { handle } }'


def outcome(result: Any) -> list[tuple[str | None, str]]:
    return [((e.extensions or {}).get("code"), e.message) for e in result.errors or []]


async def test_each_operation_builds_one_extension_for_the_schemas_own_checks() -> None:
    schema = build_schema()
    extensions = schema.get_extensions()
    assert [type(e) for e in extensions] == [Gate]
    assert extensions[0] is not schema.get_extensions()[0]  # one per operation


async def test_the_limits_answer_the_same_cold_and_from_the_cache() -> None:
    schema = build_schema(
        SchemaLimits(max_depth=4, max_aliases=3, max_tokens=30), introspection=False
    )
    expected = {
        DEEP: ("GRAPHQL_VALIDATION_FAILED", "exceeds maximum operation depth"),
        ALIASES: ("GRAPHQL_VALIDATION_FAILED", "5 aliases found. Allowed: 3"),
        TOKENS: ("GRAPHQL_PARSE_FAILED", "Document contains more than 30 tokens"),
        INTROSPECTION: ("GRAPHQL_VALIDATION_FAILED", "introspection"),
        UNPARSED: ("GRAPHQL_PARSE_FAILED", "Syntax Error"),
        CONTROL: ("INVALID", "must not contain U+0001"),
    }
    first: dict[str, list[tuple[str | None, str]]] = {}
    for round_ in range(3):
        for document, (code, words) in expected.items():
            result = await schema.execute(document)
            assert result.data is None, document
            got = outcome(result)
            assert {c for c, _ in got} == {code}, (document, got)
            assert words in got[0][1], (document, got)
            if round_ == 0:
                first[document] = got
            else:
                assert got == first[document], document
    assert (await schema.execute("query { __typename }")).data == {"__typename": "Query"}

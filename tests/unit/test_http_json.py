"""The JSON of HTTP answers (ordergraph/http.py encode_json): compact UTF-8, the same
values the standard library writes, and a string orjson refuses still written."""

from __future__ import annotations

import json

from ordergraph.http import encode_json


def test_an_answer_is_compact_utf8_with_the_values_the_standard_library_writes() -> None:
    body = {
        "data": {
            "store": {"handle": "café-zürich", "units": 3, "ratio": 0.1, "nothing": None},
            "list": [True, False, {"amount": "12.50"}],
        },
        "errors": [{"message": 'say "hi"\n\ttab', "path": ["store", 0]}],
    }
    written = encode_json(body)
    assert json.loads(written) == body
    assert b"caf\xc3\xa9" in written  # UTF-8, not \\u escapes
    assert b": " not in written
    assert b", " not in written


def test_a_lone_surrogate_is_escaped_rather_than_refused() -> None:
    written = encode_json({"message": "bad \ud800 input"})
    assert written == b'{"message":"bad \\ud800 input"}'

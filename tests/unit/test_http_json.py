"""The JSON the server writes with orjson: HTTP answers (ordergraph/http.py encode_json),
compact UTF-8, and the writes' document to og_apply (storage/pg_unit.py ascii_json),
compact ASCII; the same values the standard library writes, and a string orjson refuses
still written."""

from __future__ import annotations

import json

from ordergraph.http import encode_json
from ordergraph.storage.pg_unit import ascii_json


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


def test_the_writes_document_is_ascii_json_with_the_same_values() -> None:
    """storage/pg_unit.py sends og_apply its document as ASCII JSON in a literal."""
    plain = {"seq": 7, "at": "2026-11-30T16:00:00+00:00", "orders": [{"id": 1, "x": None}]}
    assert ascii_json(plain) == json.dumps(plain, separators=(",", ":"))
    text = {"customer_ref": "Zoë \u2603 \U0001f600", "note": 'a "quote"\n', "ok": True}
    written = ascii_json(text)
    assert written.isascii()
    assert json.loads(written) == text
    assert ascii_json({"bad": "\ud800"}) == '{"bad":"\\ud800"}'

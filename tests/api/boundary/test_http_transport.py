"""GraphQL over HTTP at the edge: sizes, strict JSON, content negotiation, statuses and
error codes, on SQLite and PostgreSQL (the app in process)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from ordergraph.app import create_app
from ordergraph.http import GraphQLOverHTTP
from ordergraph.http_request import GRAPHQL_RESPONSE, response_media_type
from ordergraph.settings import Settings
from ordergraph.storage.db import Database
from tests.client import Api, StoreHandle
from tests.conftest import ADMIN_TOKEN, app_client

GQL = {"accept": GRAPHQL_RESPONSE}
JSON_BODY = {"content-type": "application/json"}
STORE = "query($h: String!) { store(handle: $h) { handle } }"

AppFactory = Callable[..., Any]


@pytest.fixture
def app_with(database: Database) -> AppFactory:
    """An app on this test's database with some settings changed."""

    @asynccontextmanager
    async def make(**changes: Any) -> AsyncIterator[httpx.AsyncClient]:
        async with app_client(database, **changes) as http:
            yield http

    return make


def codes(response: httpx.Response) -> list[str]:
    return [e["extensions"]["code"] for e in response.json()["errors"]]


async def post(
    http: httpx.AsyncClient,
    body: Any,
    headers: dict[str, str] | None = None,
    token: str | None = None,
) -> httpx.Response:
    sent = {**JSON_BODY, **(headers or {})}
    if token:
        sent["authorization"] = f"Bearer {token}"
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await http.post("/graphql", content=content, headers=sent)


# -- sizes -------------------------------------------------------------------------------
async def test_a_body_over_the_limit_is_refused_with_413_before_any_token_is_checked(
    api: Api,
) -> None:
    # 100 MB declared: refused on the Content-Length alone, nothing read, no token.
    started = time.perf_counter()
    response = await api.http.post(
        "/graphql",
        content=b"{}",
        headers={**JSON_BODY, "content-length": str(100_000_000)},
    )
    assert response.status_code == 413
    assert codes(response) == ["PAYLOAD_TOO_LARGE"]
    assert time.perf_counter() - started < 0.5

    # A body streamed without a length is cut off once it passes the limit.
    read = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal read
        yield b'{"query": "{ __typename }", "pad": "'
        for _ in range(2000):  # up to 128 MB if nobody stopped reading
            read += 65536
            yield b"x" * 65536
        yield b'"}'

    response = await api.http.post("/graphql", content=chunks(), headers=JSON_BODY)
    assert response.status_code == 413
    assert read <= 2_000_000  # the server stopped reading at about 1 MB

    # Just under the limit is fine.
    padded = {"query": "{ __typename }", "extensions": {"pad": "x" * 200_000}}
    ok = await post(api.http, padded)
    assert ok.status_code == 200
    assert ok.json()["data"] == {"__typename": "Query"}


async def test_documents_variables_and_operation_names_have_limits(app_with: AppFactory) -> None:
    async with app_with(
        max_document_bytes=2000,
        max_variables_bytes=1000,
        max_variables_depth=3,
        max_operation_name_length=20,
    ) as http:
        big = "{ " + "__typename " * 300 + "}"
        response = await post(http, {"query": big})
        assert response.status_code == 413
        assert codes(response) == ["PAYLOAD_TOO_LARGE"]
        response = await http.get("/graphql", params={"query": big})
        assert response.status_code == 413

        query = "query($v: String) { __typename }"
        response = await post(http, {"query": query, "variables": {"v": "x" * 2000}})
        assert response.status_code == 413
        assert "variables" in response.text
        deep: Any = "x"
        for _ in range(5):
            deep = {"a": deep}
        response = await post(http, {"query": query, "variables": {"v": deep}})
        assert response.status_code == 400
        assert codes(response) == ["BAD_REQUEST"]
        assert "deeper than 3" in response.text
        response = await post(http, {"query": query, "variables": {"v": "ok"}})
        assert response.status_code == 200

        name = "Op" + "x" * 200_000  # a 200 KB operationName: refused, never echoed
        response = await post(http, {"query": "{ __typename }", "operationName": name})
        assert response.status_code == 400
        assert codes(response) == ["BAD_REQUEST"]
        assert "x" * 30 not in response.text
        assert len(response.content) < 300


async def test_a_long_operation_name_is_never_logged(
    app_with: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    name = "Op" + "y" * 200_000
    async with app_with() as http:
        with caplog.at_level(logging.INFO):
            response = await post(
                http, {"query": f"query {name} {{ __typename }}", "operationName": name}
            )
    assert response.status_code == 413  # a 200 KB document is over 100 KB
    with caplog.at_level(logging.INFO):
        async with app_with(max_document_bytes=1_000_000) as http:
            response = await post(
                http, {"query": f"query {name} {{ __typename }}", "operationName": name}
            )
    assert response.status_code == 400
    assert "y" * 200 not in response.text
    assert not any(
        "y" * 200 in r.getMessage() or "y" * 200 in str(r.__dict__) for r in caplog.records
    )
    lines = [r for r in caplog.records if r.name == "ordergraph.request"]
    assert lines
    assert all(r.__dict__.get("operation") is None for r in lines)


async def test_documents_over_the_limit_never_enter_the_document_cache(api: Api) -> None:
    settings = Settings(database_url=api.db.url, max_document_bytes=10_000)  # type: ignore[union-attr]
    app = create_app(settings, db=api.db)
    view_schema = next(r for r in app.routes if getattr(r, "path", "") == "/graphql")
    handler = view_schema.app  # type: ignore[attr-defined]
    assert isinstance(handler, GraphQLOverHTTP)
    cache = handler.schema.documents
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        await post(http, {"query": "{ __typename }"})
        assert cache.bytes == 2 * len("{ __typename }")
        big = "{ " + "__typename " * 1000 + "}"  # 11 KB
        assert (await post(http, {"query": big})).status_code == 413
        assert cache.bytes == 2 * len("{ __typename }")


# -- strict JSON -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"[1, 2]", "batched requests are not supported"),
        (b'"just a string"', "must be a JSON object"),
        (b"42", "must be a JSON object"),
        (b"null", "must be a JSON object"),
        (b'{"query": "{ __typename }", "x": "\xff\xfe"}', "not valid UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"query": "{ __typename }", "variables": ' + b"[" * 5000 + b"]" * 5000 + b"}", ""),
        (b'{"query": "{ __typename }", "variables": {"a": "\\ud800"}}', "surrogate"),
        (b"{not json", "not valid JSON"),
        (b'{"query": "{ __typename }", "variables": {"a": NaN}}', "not valid JSON"),
        (b'{"query": "{ __typename }", "variables": {"a": 1' + b"0" * 5000 + b"}}", "JSON"),
        (b"", "empty"),
        (b'{"query": 1}', "`query` must be a string"),
        (b'{"query": "{ __typename }", "variables": "x"}', "must be an object"),
        (b'{"query": "{ __typename }", "operationName": 7}', "must be a string"),
        (b'{"variables": {}}', "no GraphQL document"),
    ],
)
async def test_transport_garbage_gets_400_with_a_code_and_no_traceback(
    api: Api, body: bytes, expected: str, caplog: pytest.LogCaptureFixture
) -> None:
    for accept in ("application/json", GRAPHQL_RESPONSE):
        with caplog.at_level(logging.WARNING):
            response = await post(api.http, body, {"accept": accept})
        assert response.status_code == 400, response.text
        assert codes(response) == ["BAD_REQUEST"]
        assert expected in response.json()["errors"][0]["message"]
        assert response.headers["content-type"].startswith(accept)
        assert response.headers["x-request-id"]
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


async def test_other_methods_and_media_types_are_refused(api: Api) -> None:
    response = await api.http.put("/graphql", content=b"{}", headers=JSON_BODY)
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    body = json.dumps({"query": "{ __typename }"}).encode()
    for content_type in (None, "text/plain", "application/x-www-form-urlencoded"):
        headers = {"content-type": content_type} if content_type else {}
        response = await api.http.post("/graphql", content=body, headers=headers)
        assert response.status_code == 415, content_type
        assert codes(response) == ["UNSUPPORTED_MEDIA_TYPE"]
    response = await post(api.http, body, {"content-type": "application/json; charset=latin-1"})
    assert response.status_code == 415
    response = await post(api.http, body, {"content-type": "application/json; charset=UTF-8"})
    assert response.status_code == 200


# -- GraphQL over HTTP: media types, statuses, codes --------------------------------------
def test_the_answer_media_type_follows_accept() -> None:
    assert response_media_type(None) == "application/json"
    assert response_media_type("*/*") == "application/json"
    assert response_media_type(GRAPHQL_RESPONSE) == GRAPHQL_RESPONSE
    assert response_media_type(f"{GRAPHQL_RESPONSE}, application/json;q=0.9") == GRAPHQL_RESPONSE
    assert response_media_type(f"application/json, {GRAPHQL_RESPONSE}") == "application/json"
    assert response_media_type(f"{GRAPHQL_RESPONSE};q=0.5, application/json") == "application/json"
    assert response_media_type("text/plain") == "application/json"


async def test_request_errors_get_the_spec_statuses_and_codes(api: Api) -> None:
    store = await api.create_store()
    cases = [
        ({"query": "{ store(handle: "}, "GRAPHQL_PARSE_FAILED"),
        ({"query": "{ nope }"}, "GRAPHQL_VALIDATION_FAILED"),
        ({"query": STORE, "variables": {"h": 7}}, "BAD_USER_INPUT"),
        ({"query": STORE}, "BAD_USER_INPUT"),  # a required variable missing
        ({"query": STORE, "variables": {"h": "x"}, "operationName": "Nope"}, None),
    ]
    for body, code in cases:
        strict = await post(api.http, body, GQL, token=store.token)
        assert strict.status_code == 400, (body, strict.text)
        assert strict.headers["content-type"].startswith(GRAPHQL_RESPONSE)
        assert "data" not in strict.json()
        legacy = await post(api.http, body, {"accept": "application/json"}, token=store.token)
        assert legacy.status_code == 200, (body, legacy.text)  # old clients: 200, as before
        assert legacy.headers["content-type"].startswith("application/json")
        if code is not None:
            assert codes(strict) == codes(legacy) == [code]
        else:
            assert codes(strict) == ["GRAPHQL_VALIDATION_FAILED"]
            assert "Nope" not in strict.text

    ok = await post(api.http, {"query": STORE, "variables": {"h": store.handle}}, GQL, store.token)
    assert ok.status_code == 200
    assert ok.json()["data"] == {"store": {"handle": store.handle}}
    # A field error (no token) is not a request error: data is there, status 200.
    field = await post(api.http, {"query": "{ stores { nodes { id } } }"}, GQL)
    assert field.status_code == 200
    assert "data" in field.json()
    assert codes(field) == ["UNAUTHENTICATED"]


async def test_mutations_over_get_get_405_and_subscriptions_over_http_a_clear_400(
    api: Api,
) -> None:
    store = await api.create_store()
    auth = {"authorization": f"Bearer {store.token}"}
    mutation = 'mutation { revokeApiKey(id: "x") { userErrors { code } } }'
    for accept in ("application/json", GRAPHQL_RESPONSE):
        response = await api.http.get(
            "/graphql", params={"query": mutation}, headers={**auth, "accept": accept}
        )
        assert response.status_code == 405
        assert response.headers["allow"] == "POST"
        assert codes(response) == ["METHOD_NOT_ALLOWED"]

    subscription = "subscription($s: ID!) { orderEvents(storeId: $s) { type } }"
    for accept in ("application/json", GRAPHQL_RESPONSE):
        response = await post(
            api.http,
            {"query": subscription, "variables": {"s": store.id}},
            {"accept": accept},
            token=store.token,
        )
        assert response.status_code == 400, response.text
        assert codes(response) == ["BAD_REQUEST"]
        assert "websocket" in response.json()["errors"][0]["message"]
        response = await api.http.get(
            "/graphql",
            params={"query": subscription, "variables": json.dumps({"s": store.id})},
            headers={**auth, "accept": accept},
        )
        assert response.status_code == 400
        assert "websocket" in response.text


async def test_a_deeply_nested_document_is_a_parse_failure_not_a_fault(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    nested = "{ " + "a { " * 3000 + "b" + " }" * 3001
    with caplog.at_level(logging.ERROR):
        response = await post(api.http, {"query": nested}, GQL)
    assert response.status_code == 400
    assert codes(response) == ["GRAPHQL_PARSE_FAILED"]
    assert not [r for r in caplog.records if r.exc_info]


async def test_with_introspection_off_no_error_suggests_a_name(
    app_with: AppFactory, api: Api
) -> None:
    store = await api.create_store()
    probes = [
        {"query": "{ stor { id } }"},
        {"query": '{ store(handl: "x") { id } }'},
        {"query": '{ store(handle: "x") { handl } }'},
        {"query": 'query { store(handle: "x") { orders(status: OPN) { totalCount } } }'},
        {"query": "{ __schema { types { name } } }"},
        {"query": "query($s: StoreInpt) { __typename }"},
    ]
    async with app_with() as open_http:
        said = [(await post(open_http, p, token=store.token)).text for p in probes]
    assert any("Did you mean" in text for text in said)  # introspection on: suggestions
    async with app_with(introspection=False) as http:
        for probe in probes:
            response = await post(http, probe, GQL, token=store.token)
            assert response.status_code == 400, response.text
            assert "Did you mean" not in response.text, response.text
            assert set(codes(response)) == {"GRAPHQL_VALIDATION_FAILED"}


async def test_faults_of_ours_are_internal_server_error(tmp_path: Any) -> None:
    broken = f"sqlite+aiosqlite:///{tmp_path}/missing/dir/db.sqlite"
    app = create_app(Settings(database_url=broken, admin_token=ADMIN_TOKEN))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        response = await post(http, {"query": "{ stores { nodes { id } } }"}, GQL, "og_x")
    assert codes(response) == ["INTERNAL_SERVER_ERROR"]
    assert response.json()["errors"][0]["message"] == "Internal server error"


async def test_get_queries_keep_working_and_transport_errors_are_counted(api: Api) -> None:
    store: StoreHandle = await api.create_store()
    response = await api.http.get(
        "/graphql",
        params={"query": STORE, "variables": json.dumps({"h": store.handle})},
        headers={"authorization": f"Bearer {store.token}", "accept": GRAPHQL_RESPONSE},
    )
    assert response.status_code == 200
    assert response.json()["data"] == {"store": {"handle": store.handle}}
    bad = await api.http.get("/graphql", params={"query": STORE, "variables": "{nope"})
    assert bad.status_code == 400
    assert codes(bad) == ["BAD_REQUEST"]
    metrics = (await api.http.get("/metrics")).text
    assert 'ordergraph_graphql_operations_total{operation="anonymous",outcome="graphql_error"' in (
        metrics.replace('type="unknown",', "")
    )


def test_throttled_and_timeout_map_to_429_and_504_where_the_media_type_allows() -> None:
    """The statuses for errors other areas raise (THROTTLED from the rate limiter)."""
    from graphql import GraphQLError
    from starlette.responses import Response
    from strawberry.types import ExecutionResult

    handler = GraphQLOverHTTP(None, Settings(), None, None, None)  # type: ignore[arg-type]
    throttled = GraphQLError(
        "slow down", extensions={"code": "THROTTLED", "retryAfterSeconds": 2.2}
    )
    result = ExecutionResult(data=None, errors=[throttled])
    strict = handler._result(result, GRAPHQL_RESPONSE, Response())
    assert strict.status_code == 429
    assert strict.headers["retry-after"] == "3"
    legacy = handler._result(result, "application/json", Response())
    assert legacy.status_code == 200
    assert legacy.headers["retry-after"] == "3"
    partial = ExecutionResult(data={"a": None}, errors=[throttled])
    throttled.path = ["a"]
    with_data = handler._result(partial, GRAPHQL_RESPONSE, Response())
    assert with_data.status_code == 200
    assert with_data.headers["retry-after"] == "3"
    timeout = ExecutionResult(
        data=None, errors=[GraphQLError("late", extensions={"code": "TIMEOUT"})]
    )
    assert handler._result(timeout, GRAPHQL_RESPONSE, Response()).status_code == 504
    assert handler._result(timeout, "application/json", Response()).status_code == 200


async def test_repeated_fields_cannot_make_validation_burn_the_cpu(app_with: AppFactory) -> None:
    """graphql-core compares every pair of same-named fields; its own budget lets one
    small document burn most of a second (docs/security.md). Ours stops the comparison
    early: the same document is refused under the default budget and validates under
    graphql-core's. (Counted in budget units, not timed: CI does not assert timings.)"""
    repeated = {"query": "{ " + "__typename " * 1000 + "}"}  # 11 KB, 1,002 tokens

    async with app_with() as http:
        refused = await post(http, repeated, GQL)
    assert refused.status_code == 400
    assert codes(refused) == ["GRAPHQL_VALIDATION_FAILED"]
    async with app_with(max_validation_complexity=2_000_000) as http:
        allowed = await post(http, repeated, GQL)  # what graphql-core's own budget allows
    assert allowed.status_code == 200


async def test_refused_operations_are_counted_as_graphql_errors(api: Api) -> None:
    store = await api.create_store()
    auth = {"authorization": f"Bearer {store.token}"}
    await api.http.get("/graphql", params={"query": "mutation M { __typename }"}, headers=auth)
    await post(
        api.http,
        {
            "query": "subscription S($s: ID!) { orderEvents(storeId: $s) { type } }",
            "variables": {"s": store.id},
        },
        token=store.token,
    )
    await post(api.http, b"[]")
    metrics = (await api.http.get("/metrics")).text
    assert 'operation="M",outcome="graphql_error",type="mutation"} 1.0' in metrics
    assert 'operation="S",outcome="graphql_error",type="subscription"} 1.0' in metrics
    assert 'operation="anonymous",outcome="graphql_error",type="unknown"} 1.0' in metrics
    assert 'outcome="ok",type="subscription"' not in metrics

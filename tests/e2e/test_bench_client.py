"""The benches' light HTTP client and their reading of the lock-hold histogram."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from bench.harness import serve_in_loop
from bench.light_client import Connection, HttpError, encode_head
from bench.prom import CHANGES, METRIC, Scrape, lock_hold_between, parse


def _app() -> Starlette:
    async def echo(request: Request) -> Response:
        body = await request.json()
        return JSONResponse({"got": body, "port": request.client.port if request.client else 0})

    async def chunked(_: Request) -> Response:
        async def parts() -> AsyncIterator[bytes]:
            for part in (b"first,", b"second,", b"third"):
                yield part

        return StreamingResponse(parts(), media_type="text/plain")

    async def closing(_: Request) -> Response:
        return Response(b"bye", headers={"Connection": "close"})

    return Starlette(
        routes=[
            Route("/echo", echo, methods=["POST"]),
            Route("/chunked", chunked, methods=["POST"]),
            Route("/closing", closing, methods=["POST"]),
        ]
    )


async def test_light_client_keeps_the_connection_reads_both_framings_and_reopens() -> None:
    async with serve_in_loop(_app()) as url:
        connection = Connection(url, timeout=10)
        try:

            def head(path: str) -> bytes:
                return encode_head("POST", path, connection.authority, {})

            status, first = await connection.request(head("/echo"), b'{"n": 1}')
            _, second = await connection.request(head("/echo"), b'{"n": 2}')
            assert status == 200
            assert first.startswith(b'{"got":{"n":1}')
            # keep-alive: the server saw both requests from the same client port
            assert first.split(b'"port":')[1] == second.split(b'"port":')[1]

            status, streamed = await connection.request(head("/chunked"), b"{}")
            assert (status, streamed) == (200, b"first,second,third")

            assert await connection.request(head("/closing"), b"") == (200, b"bye")
            status, again = await connection.request(head("/echo"), b'{"n": 3}')
            assert status == 200
            assert again.startswith(b'{"got":{"n":3}')
        finally:
            await connection.close()


async def test_light_client_reports_a_refused_connection_as_an_http_error() -> None:
    async with serve_in_loop(_app()) as url:
        pass  # the server is gone: its port refuses connections
    connection = Connection(url, timeout=5)
    with pytest.raises(HttpError):
        await connection.request(encode_head("POST", "/echo", connection.authority, {}), b"{}")


def _exposition(total: float, count: int, buckets: dict[str, int], name: str = METRIC) -> str:
    lines = [f"# TYPE {name} histogram"]
    lines += [f'{name}_bucket{{backend="pg",le="{le}"}} {n}' for le, n in buckets.items()]
    lines += [f'{name}_sum{{backend="pg"}} {total}', f'{name}_count{{backend="pg"}} {count}']
    return "\n".join(["# HELP other_metric x", "other_metric 3", *lines])


def _scrape(text: str) -> Scrape | None:
    hold = parse(text)
    return None if hold is None else Scrape(hold, parse(text, CHANGES))


def test_lock_hold_is_the_difference_of_two_scrapes_with_a_median_from_the_buckets() -> None:
    before = _scrape(_exposition(0.5, 100, {"0.001": 40, "0.002": 90, "0.005": 100, "+Inf": 100}))
    after = _scrape(
        _exposition(2.5, 1100, {"0.001": 140, "0.002": 990, "0.005": 1100, "+Inf": 1100})
    )
    hold = lock_hold_between(before, after)
    assert hold is not None
    assert hold.holds == 1000
    assert hold.mean_ms == pytest.approx(2.0)
    # 1000 holds: 100 up to 1 ms, 800 in (1, 2] ms: the 500th is 400/800 of the way in
    assert hold.median_ms == pytest.approx(1.5)
    assert hold.per_change_ms is None  # a server that does not count changes per unit


def test_lock_hold_per_change_is_the_units_hold_over_the_changes_they_ran() -> None:
    def scrape(hold_sum: float, units: int, changes: int) -> Scrape | None:
        return _scrape(
            _exposition(hold_sum, units, {"0.005": units, "+Inf": units})
            + "\n"
            + _exposition(float(changes), units, {"8": units, "+Inf": units}, CHANGES)
        )

    # 200 units of 4 ms each ran 1,000 changes: 5 per unit, 0.8 ms of hold per change
    hold = lock_hold_between(scrape(0.1, 50, 60), scrape(0.9, 250, 1060))
    assert hold is not None
    assert hold.mean_ms == pytest.approx(4.0)
    assert hold.changes_per_unit == pytest.approx(5.0)
    assert hold.per_change_ms == pytest.approx(0.8)


def test_a_server_without_the_histogram_has_no_lock_hold() -> None:
    assert parse("# HELP other_metric x\nother_metric 3\n") is None
    assert lock_hold_between(None, None) is None
    empty = _scrape(_exposition(0.0, 0, {"0.001": 0, "+Inf": 0}))
    hold = lock_hold_between(empty, empty)
    assert hold is not None
    assert math.isnan(hold.mean_ms)

"""The attacks over HTTP: expensive and nested queries, the flood with its bystander timings,
oversized bodies and the single-request probes."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import statistics
import time
from collections.abc import Awaitable
from typing import Any

import httpx

from bench.attacks_world import ALLOWED_ORIGIN, ATTACKER_STORE, Row, World, make_key_with_id
from bench.proc import cpu_seconds


def outcome_of(response: httpx.Response) -> str:
    """Status, then the first error code (or `data`), kept short."""
    try:
        body = response.json()
    except ValueError:
        return f"{response.status_code} {response.text[:60]!r}"
    if isinstance(body, dict) and body.get("errors"):
        first = body["errors"][0]
        code = (first.get("extensions") or {}).get("code") or first.get("message", "")[:60]
        return f"{response.status_code} {code}"
    if isinstance(body, dict) and body.get("data") is not None:
        errors = _user_errors(body["data"])
        return f"{response.status_code} " + (f"userError {errors}" if errors else "data")
    return f"{response.status_code} {str(body)[:60]}"


def _user_errors(data: Any) -> str:
    if isinstance(data, dict):
        for key, value in data.items():
            if key == "userErrors" and value:
                return ",".join(str(e.get("code")) for e in value)
            found = _user_errors(value)
            if found:
                return found
    return ""


async def timed(call: Awaitable[httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    response = await call
    return response, (time.perf_counter() - started) * 1000


def trend_query(aliases: int, days: int = 40) -> tuple[str, dict[str, Any]]:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    fields = " ".join(
        f"t{i}: backlogTrend(from: $from, to: $to, interval: HOUR) {{ at backlog {{ orders }} }}"
        for i in range(aliases)
    )
    query = f"""query($from: DateTime!, $to: DateTime!) {{ store(handle: "{ATTACKER_STORE}") {{
        {fields} }} }}"""
    return query, {
        "from": (now - dt.timedelta(days=days)).isoformat(),
        "to": now.isoformat(),
    }


NESTED = f"""{{ store(handle: "{ATTACKER_STORE}") {{ orders(first: 50) {{ nodes {{
  lines {{ product {{ backorderQueue(first: 50) {{ nodes {{ order {{
    lines {{ product {{ backorderQueue(first: 50) {{ nodes {{ quantity }} }} }} }} }} }} }} }} }}
}} }} }} }}"""


async def post(
    http: httpx.AsyncClient, world: World, query: str, variables: Any = None, token: str = ""
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await http.post(
        world.url + "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
    )


async def expensive(http: httpx.AsyncClient, world: World) -> list[Row]:
    rows = []
    for name, (query, variables) in {
        "backlogTrend HOUR over 40 days (~960 points)": trend_query(1),
        "the same trend under 30 aliases": trend_query(30),
        "nested connections orders>lines>product>backorderQueue>order (first: 50)": (NESTED, {}),
    }.items():
        response, ms = await timed(post(http, world, query, variables, world.reader))
        rows.append(Row(name, outcome_of(response), ms))
    return rows


async def flood(http: httpx.AsyncClient, world: World, seconds: float) -> list[Row]:
    """A READ key sends its most expensive operations from 4 connections while another store
    places orders and lists stores; the victim's latencies and the server's CPU."""
    stop = time.monotonic() + seconds
    attacker_outcomes: dict[str, int] = {}
    victim_ms: list[float] = []
    victim_failures: dict[str, int] = {}
    # The heaviest trend a key may ask for (HOUR over 8 days, ~800 points), and three
    # that are refused (over the maximum cost).
    attacks = [trend_query(1, days=8), trend_query(30), (NESTED, {}), trend_query(1)]

    async def attacker(i: int) -> None:
        async with httpx.AsyncClient(timeout=60) as own:
            n = i
            while time.monotonic() < stop:
                query, variables = attacks[n % len(attacks)]
                n += 1
                response = await post(own, world, query, variables, world.reader)
                key = outcome_of(response)
                attacker_outcomes[key] = attacker_outcomes.get(key, 0) + 1

    async def victim() -> None:
        place = """mutation($input: PlaceOrderInput!) { placeOrder(input: $input) {
            order { id } userErrors { code } } }"""
        n = 0
        while time.monotonic() < stop:
            n += 1
            if n % 2:
                variables = {
                    "input": {
                        "storeId": world.victim_store_id,
                        "lines": [{"sku": world.victim_sku, "quantity": 1}],
                    }
                }
                call = post(http, world, place, variables, world.victim)
            else:
                call = post(
                    http, world, "{ stores(first: 10) { nodes { handle } } }", None, world.victim
                )
            response, ms = await timed(call)
            victim_ms.append(ms)
            got = outcome_of(response)
            if not got.endswith("data"):
                victim_failures[got] = victim_failures.get(got, 0) + 1
            await asyncio.sleep(0.05)

    cpu_before = cpu_seconds([world.pid]) or 0.0
    await asyncio.gather(*(attacker(i) for i in range(4)), victim())
    cpu = (cpu_seconds([world.pid]) or 0.0) - cpu_before
    victim_ms.sort()
    p99 = victim_ms[max(0, int(len(victim_ms) * 0.99) - 1)] if victim_ms else float("nan")
    summary = ", ".join(f"{k} x{v}" for k, v in sorted(attacker_outcomes.items()))
    return [
        Row(f"flood for {seconds:.0f} s, attacker got", summary, float("nan")),
        Row(
            f"  meanwhile another store: {len(victim_ms)} placeOrder/stores, "
            f"failures {victim_failures or 'none'}, server CPU {cpu:.1f} s",
            f"p50 {statistics.median(victim_ms):.0f} ms" if victim_ms else "none",
            p99,
        ),
    ]


async def oversized(world: World, name: str, size: int, chunked: bool) -> Row:
    """Send a huge body the way a careless client does (writing on while the answer comes)
    and time the answer's status line from the first byte sent."""
    host, port = world.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}"
    head = f"POST /graphql HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
    started = time.perf_counter()
    writer.write(f"{head}{framing}\r\n\r\n".encode())

    async def send_body() -> None:
        chunk = b'{"query": "' + b" " * (1_000_000 - 11)
        with contextlib.suppress(OSError):
            for _ in range(size // len(chunk)):
                writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
                await writer.drain()

    sender = asyncio.create_task(send_body())
    try:
        status = await asyncio.wait_for(reader.readline(), 30)
        ms = (time.perf_counter() - started) * 1000
    except (TimeoutError, OSError) as err:
        # The server answered 413 and closed; a client still writing may get a reset
        # before it reads the answer (TCP drops what it had not read).
        return Row(name, f"connection closed ({type(err).__name__})", float("nan"))
    finally:
        sender.cancel()
        writer.close()
    return Row(name, status.decode().strip(), ms)


async def single_requests(http: httpx.AsyncClient, world: World) -> list[Row]:
    rows: list[Row] = []
    url = world.url + "/graphql"

    async def check(name: str, call: Awaitable[httpx.Response]) -> None:
        try:
            response, ms = await timed(call)
            rows.append(Row(name, outcome_of(response), ms))
        except httpx.HTTPError as err:
            rows.append(Row(name, f"transport error {type(err).__name__}", float("nan")))

    place = """mutation($input: PlaceOrderInput!) { placeOrder(input: $input) {
        order { id store { orders(first: 5) { nodes { id } } } } userErrors { code } } }"""
    await check(
        "ORDERS-only key reads the store through placeOrder's payload",
        post(
            http,
            world,
            place,
            {
                "input": {
                    "storeId": world.attacker_store_id,
                    "lines": [{"sku": world.attacker_sku, "quantity": 1}],
                }
            },
            world.writer,
        ),
    )
    _, key_id = make_key_with_id(world.database_url, ATTACKER_STORE, "READ")
    through_key = """query($id: ID!) { node(id: $id) { ... on ApiKey { stores {
        handle orders(first: 5) { nodes { id } } } } } }"""
    await check(
        "admin token reads orders through ApiKey.stores",
        post(http, world, through_key, {"id": key_id}, world.admin),
    )

    for name, size, chunked in (
        ("100 MB body without a token, with Content-Length", 100_000_000, False),
        ("100 MB body without a token, chunked", 100_000_000, True),
        ("10 MB document", 10_000_000, False),
    ):
        rows.append(await oversized(world, name, size, chunked))
    await check(
        "200 KB operationName",
        http.post(
            url,
            json={"query": "{ __typename }", "operationName": "x" * 200_000},
            headers={"Authorization": f"Bearer {world.reader}"},
        ),
    )
    for name, raw in {
        "JSON body that is not an object": b"[1, 2, 3]",
        "invalid UTF-8": b'{"query": "\xff\xfe"}',
        "deeply nested JSON": b'{"query": "{ __typename }", "variables": '
        + b"[" * 100_000
        + b"]" * 100_000
        + b"}",
    }.items():
        await check(
            name,
            http.post(
                url,
                content=raw,
                headers={
                    "content-type": "application/json",
                    "Authorization": f"Bearer {world.reader}",
                },
            ),
        )
    await check(
        "subscription over plain HTTP",
        post(
            http,
            world,
            'subscription { backlogChanged(storeId: "x") { asOf } }',
            None,
            world.reader,
        ),
    )
    store = f'store(handle: "{ATTACKER_STORE}")'
    cursor = "b3JkZXI6OTk5OTk5OTk5OTk5OTk5OTk5OTk5"
    for name, inner in {
        "date without an offset": 'backlog(asOf: "2026-01-01T00:00:00") { asOf }',
        "out-of-range date": 'backlog(asOf: "0001-01-01T00:00:00Z") { asOf }',
        "crafted cursor": f'orders(first: 5, after: "{cursor}") {{ nodes {{ id }} }}',
        "field suggestion with introspection off": "ordrs { id }",
    }.items():
        query = f"{{ {store} {{ {inner} }} }}"
        await check(name, post(http, world, query, None, world.reader))
    order = {"storeId": world.victim_store_id, "lines": [{"sku": world.victim_sku, "quantity": 1}]}
    place_plain = """mutation($input: PlaceOrderInput!) { placeOrder(input: $input) {
        order { id } userErrors { code field } } }"""
    await check(
        "requestedShipDate 9999-12-31",
        post(
            http,
            world,
            place_plain,
            {"input": {**order, "requestedShipDate": "9999-12-31"}},
            world.victim,
        ),
    )
    await check(
        "a NUL character in customerRef",
        post(http, world, place_plain, {"input": {**order, "customerRef": "a\x00b"}}, world.victim),
    )
    upsert = """mutation($input: UpsertProductInput!) { upsertProduct(input: $input) {
        product { sku } userErrors { code field } } }"""
    for label, sku in {
        "trailing newline": "SKU-1\n",
        "zero-width": "SKU\u200b1",
        "bidi": "\u202eSKU1",
    }.items():
        await check(
            f"SKU with a {label}",
            post(
                http,
                world,
                upsert,
                {"input": {"storeId": world.victim_store_id, "sku": sku}},
                world.victim,
            ),
        )
    nodes = "query($ids: [ID!]!) { nodes(ids: $ids) { id } }"
    await check(
        "250 nodes in one request",
        post(http, world, nodes, {"ids": [world.victim_store_id] * 250}, world.victim),
    )
    await check(
        "CORS preflight from an allowed origin",
        http.options(
            url,
            headers={
                "Origin": ALLOWED_ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        ),
    )
    fields = "id number status placedAt lines { sku quantity }"
    page = f"{{ {store} {{ orders(first: 250) {{ nodes {{ {fields} }} }} }} }}"
    response = await http.post(
        url,
        json={"query": page},
        headers={"Authorization": f"Bearer {world.reader}", "Accept-Encoding": "gzip"},
    )
    rows.append(
        Row(
            "a 250-order page, gzip accepted",
            f"{response.status_code} {response.headers.get('content-encoding', 'identity')} "
            f"{response.num_bytes_downloaded} B on the wire, {len(response.content)} B",
            float("nan"),
        )
    )
    return rows

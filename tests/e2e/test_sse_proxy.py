"""Server-Sent Events through the compose proxy's configuration (deploy/nginx.conf).

The test runs the nginx found on this machine with deploy/nginx.conf, changed only where
compose's network is not here: the two API upstreams become one `ordergraph serve` on a
local port (no compose DNS, so no `resolver`/`resolve`/`zone`), and it listens on a free
port. Through it, a subscription over /graphql/stream must deliver each event as it
happens (the proxy must not buffer the stream) and the idle pings.

Without an nginx binary it skips with a banner (CI machines have none; the docs say how
to run it by hand).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.harness import free_port
from tests import conftest
from tests.client import Api
from tests.conftest import ADMIN_TOKEN, LiveServer

ROOT = Path(__file__).resolve().parents[2]
SERVER_ENV = {"ORDERGRAPH_WS_PING_SECONDS": "1", "ORDERGRAPH_TAIL_POLL_MS": "200"}


def local_config(upstream: int, listen: int, prefix: Path) -> str:
    """deploy/nginx.conf with the compose-only parts replaced, inside an http block."""
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    conf = re.sub(r"^resolver .*;$", "", conf, flags=re.M)
    conf = re.sub(r"^\s*zone ordergraph .*;$", "", conf, flags=re.M)
    conf = re.sub(
        r"^\s*server api-1:8000 .*;$", f"    server 127.0.0.1:{upstream};", conf, flags=re.M
    )
    conf = re.sub(r"^\s*server api-2:8000 .*;$", "", conf, flags=re.M)
    conf = conf.replace("listen 8000;", f"listen 127.0.0.1:{listen};")
    assert f"127.0.0.1:{upstream}" in conf, "the upstream block changed shape"
    assert f"127.0.0.1:{listen}" in conf, "the listen directive changed shape"
    return (
        f"pid {prefix}/nginx.pid;\nerror_log {prefix}/error.log warn;\n"
        "events { worker_connections 256; }\n"
        f"http {{\nclient_body_temp_path {prefix};\nproxy_temp_path {prefix};\n{conf}\n}}\n"
    )


@pytest.fixture
def nginx() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found is None:
        print("\n" + "!" * 70 + "\n!! SKIPPING the proxy test: no nginx binary here\n" + "!" * 70)
        pytest.skip("no nginx binary (see docs/operations.md to run it by hand)")
    return found


@pytest.fixture
def server(sqlite_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    live = conftest.start_server(sqlite_url, tmp_path / "server.log", SERVER_ENV)
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture
def proxy(nginx: str, server: LiveServer, tmp_path: Path) -> Iterator[str]:
    upstream = int(server.url.rsplit(":", 1)[1])
    listen = free_port()
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    conf = prefix / "nginx.conf"
    conf.write_text(local_config(upstream, listen, prefix))
    process = subprocess.Popen(
        [nginx, "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"],
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{listen}"
    try:
        deadline = time.monotonic() + 10
        while True:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            try:
                httpx.get(url + "/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(10)
        if process.stderr is not None:
            process.stderr.close()


async def test_a_subscription_streams_through_the_proxy_unbuffered(proxy: str) -> None:
    async with httpx.AsyncClient(base_url=proxy, timeout=30) as http:
        api = Api(http, ADMIN_TOKEN, None)
        store = await api.create_store(policy="ALLOW")
        await api.upsert(store, "A")
        body = {
            "query": "subscription($s: ID!) { orderEvents(storeId: $s) { type } }",
            "variables": {"s": store.id},
        }
        headers = {"accept": "text/event-stream", "authorization": f"Bearer {store.token}"}
        async with http.stream("POST", "/graphql/stream", json=body, headers=headers) as r:
            assert r.status_code == 200
            lines = r.aiter_lines()
            pings = 0
            started = asyncio.get_running_loop().time()
            while pings < 2:  # ORDERGRAPH_WS_PING_SECONDS=1: each ping comes through
                line = await asyncio.wait_for(anext(lines), 5)
                pings += line.startswith(":")
            assert asyncio.get_running_loop().time() - started < 4
            await api.place(store, [("A", 1)])
            placed_at = asyncio.get_running_loop().time()
            while True:
                line = await asyncio.wait_for(anext(lines), 5)
                if line.startswith("data:"):
                    break
            waited = asyncio.get_running_loop().time() - placed_at
    assert '"type":"PLACED"' in line
    assert waited < 2, f"the event took {waited:.1f} s through the proxy"

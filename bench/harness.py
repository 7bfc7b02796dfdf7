"""Start a server process and wait until it answers; stop it. One copy for benches and tests.

`start` runs any command that serves /healthz on a port (`ordergraph serve`, or the
baseline app) with its output in a log file, and returns once /healthz answers 200.
`start_serve` is `python -m ordergraph serve` on a free port. `serve_in_loop` runs an
ASGI app under uvicorn in the running event loop, for tests that need the app's state.
The benches import this module as `bench.harness` (each puts the repository root on
sys.path), and so do the tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import uvicorn


class ServerFailed(RuntimeError):
    """The server exited early or did not answer in time; the message ends with its log."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A server process on 127.0.0.1 and the log file its output goes to."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path
    name: str = "the server"

    @property
    def port(self) -> int:
        return int(urlsplit(self.url).port or 0)

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM, then SIGKILL if it has not exited within `timeout` seconds."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def serve_command(port: int, *args: str) -> list[str]:
    """`python -m ordergraph serve` on `port`, with these arguments."""
    return [sys.executable, "-m", "ordergraph", "serve", "--port", str(port), *args]


def start(
    command: Sequence[str],
    *,
    port: int,
    log: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    name: str = "the server",
    timeout: float = 60,
) -> Server:
    """Run `command` (serving on `port`) and wait until its /healthz answers 200."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            list(command),
            env=dict(os.environ if env is None else env),
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(f"http://127.0.0.1:{port}", process, log, name)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerFailed(f"{name} exited early:\n{log.read_text()}")
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    server.stop()
    raise ServerFailed(f"{name} did not start within {timeout:g} s:\n{log.read_text()}")


def start_serve(
    log: Path,
    env: Mapping[str, str],
    *args: str,
    base_env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 60,
    port: int | None = None,
) -> Server:
    """`ordergraph serve` on `port` (default: a free one); its environment is `base_env`
    (default: this process's) with `env` on top."""
    port = free_port() if port is None else port
    return start(
        serve_command(port, *args),
        port=port,
        log=log,
        env={**(os.environ if base_env is None else base_env), **env},
        cwd=cwd,
        name="ordergraph serve",
        timeout=timeout,
    )


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    """Stop the server when the block ends, however it ends."""
    try:
        yield server
    finally:
        server.stop()


class _QuietServer(uvicorn.Server):
    """uvicorn in someone else's event loop: the signals stay with that loop's owner."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@asynccontextmanager
async def serve_in_loop(app: Any, *, start_within: float = 15) -> AsyncIterator[str]:
    """Serve `app` under uvicorn in the running event loop on a free port; yield its URL."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", log_config=None, lifespan="on"
    )
    server = _QuietServer(config)
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + start_within
    while not server.started:
        if task.done():
            task.result()
            raise ServerFailed("the in-process server stopped before it started")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise ServerFailed("the in-process server did not start")
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 20)

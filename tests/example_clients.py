"""What the tests of the example clients (examples/python, examples/node) share."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests import conftest
from tests.conftest import LiveServer


async def restart_on_same_port(
    server: LiveServer, database_url: str, log: Path, env: dict[str, str]
) -> LiveServer:
    """Terminate the server (it closes websockets with 1012) and serve the same database on
    the same port again, as a deployment would."""
    server.stop()
    port = int(server.url.rsplit(":", 1)[1])
    return await asyncio.to_thread(conftest.start_server, database_url, log, env, port)


async def one_line_failure(*command: str, cwd: Path | None = None, wait: float = 30) -> str:
    """Run an example that must fail: exit status 1, nothing on stdout, one stderr line."""
    done = await asyncio.create_subprocess_exec(
        *command, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(done.communicate(), wait)
    assert done.returncode == 1, (out, err)
    assert out == b""
    [line] = err.decode().splitlines()
    return line


class PrintingClient:
    """An example client running as a subprocess that prints one event per line."""

    def __init__(self, process: asyncio.subprocess.Process, log: Path, wait: float) -> None:
        self.process = process
        self.log = log
        self.wait = wait

    async def lines(self, count: int) -> list[bytes]:
        """The next `count` lines it prints."""
        assert self.process.stdout is not None
        lines = []
        for _ in range(count):
            line = await asyncio.wait_for(self.process.stdout.readline(), self.wait)
            assert line, f"the client ended early: {self.log.read_text()}"
            lines.append(line)
        return lines

    async def rest(self) -> list[bytes]:
        """Wait for it to exit by itself (status 0); the lines it printed not read yet."""
        out, _ = await asyncio.wait_for(self.process.communicate(), self.wait)
        assert self.process.returncode == 0, self.log.read_text()
        return out.splitlines()

    def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()

"""The floor of fan-out on this machine: a bare process writing ready websocket frames.

Delivering an event to a subscriber costs at least one write to its socket, and on
loopback that system call also does the receiving side's TCP work. This measures that
floor with everything else taken away: one bare uvloop process accepts N TCP connections
(from client processes that only count bytes), then at the given rate writes one
ready-made text frame of the given size to every connection, for the given time. It
prints the bare process's CPU per write (user + system, from /proc), the figure
bench/fanout.py's "server CPU per delivered event" compares with.

    python bench/fanout_floor.py --subscribers 5000            # 5 events/s, 15 s, 600 B
    python bench/fanout_floor.py --subscribers 2000 --bytes 400

bench/fanout.py runs it after its own load with the same subscribers, rate and frame size,
and prints both side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing
import os
import socket
import struct
import sys
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.proc import process_cpu_seconds, raise_fd_limit


@dataclass(frozen=True)
class Floor:
    subscribers: int
    writes: int
    cpu_seconds: float
    seconds: float
    received_bytes: int
    expected_bytes: int

    @property
    def us_per_write(self) -> float:
        return self.cpu_seconds / self.writes * 1e6 if self.writes else math.nan


def _frame(size: int) -> bytes:
    body = b'{"id":"1","type":"next","payload":' + b"x" * max(0, size - 36) + b"}"
    if len(body) < 126:
        return struct.pack("!BB", 0x81, len(body)) + body
    return struct.pack("!BBH", 0x81, 126, len(body)) + body


def _writer(
    port_pipe: Connection, subscribers: int, rate: float, seconds: float, size: int
) -> None:
    """The bare server: accept, then write one frame per connection per tick."""
    import uvloop

    raise_fd_limit(subscribers + 100)

    async def run() -> None:
        transports: list[asyncio.Transport] = []
        everyone = asyncio.Event()

        class Quiet(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                transports.append(transport)  # type: ignore[arg-type]
                if len(transports) == subscribers:
                    everyone.set()

        server = await asyncio.get_running_loop().create_server(Quiet, "127.0.0.1", 0, backlog=4096)
        port_pipe.send(server.sockets[0].getsockname()[1])
        await everyone.wait()
        port_pipe.recv()  # "go"
        frame = _frame(size)
        ticks = max(1, round(rate * seconds))
        start = time.monotonic()
        cpu0 = time.process_time()
        for tick in range(ticks):
            for transport in transports:
                transport.write(frame)
            delay = start + (tick + 1) / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        cpu = time.process_time() - cpu0
        port_pipe.send((ticks * len(transports), cpu, time.monotonic() - start, len(frame)))
        port_pipe.recv()  # "stop"
        server.close()

    uvloop.run(run())


def _reader(port: int, count: int, pipe: Connection) -> None:
    """A client process: `count` connections that only count the bytes they receive."""
    import uvloop

    raise_fd_limit(count + 100)

    async def run() -> None:
        received = 0

        class Counter(asyncio.Protocol):
            def data_received(self, data: bytes) -> None:
                nonlocal received
                received += len(data)

        loop = asyncio.get_running_loop()
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port))
            await loop.create_connection(Counter, sock=sock)
        pipe.send("connected")
        await loop.run_in_executor(None, pipe.recv)  # "stop"
        await asyncio.sleep(0.5)  # what is still in flight
        pipe.send(received)

    uvloop.run(run())


def measure(subscribers: int, rate: float, seconds: float, size: int, clients: int) -> Floor:
    context = multiprocessing.get_context("spawn")
    server_end, here = context.Pipe()
    writer = context.Process(
        target=_writer, args=(server_end, subscribers, rate, seconds, size), daemon=True
    )
    writer.start()
    port = here.recv()
    readers = []
    each, extra = divmod(subscribers, clients)
    share = [each + (1 if i < extra else 0) for i in range(clients)]
    for count in share:
        mine, theirs = context.Pipe()
        process = context.Process(target=_reader, args=(port, count, theirs), daemon=True)
        process.start()
        readers.append((process, mine))
    for _, pipe in readers:
        assert pipe.recv() == "connected"
    assert writer.pid is not None
    cpu_before = process_cpu_seconds(writer.pid)
    here.send("go")
    writes, _, elapsed, frame_bytes = here.recv()
    cpu = process_cpu_seconds(writer.pid) - cpu_before  # user + system, as for the server
    for _, pipe in readers:
        pipe.send("stop")
    received = sum(pipe.recv() for _, pipe in readers)
    here.send("stop")
    for process, _ in readers:
        process.join(timeout=10)
    writer.join(timeout=10)
    return Floor(subscribers, writes, cpu, elapsed, received, writes * frame_bytes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=5.0, help="events per second")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--bytes", type=int, default=600, help="message size")
    parser.add_argument("--clients", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    raise_fd_limit(args.subscribers + 100)
    clients = args.clients or max(1, min(16, math.ceil(args.subscribers / 500)))
    figures = []
    for round_ in range(args.repeat):
        floor = measure(args.subscribers, args.rate, args.seconds, args.bytes, clients)
        figures.append(floor.us_per_write)
        print(
            f"round {round_ + 1}: {floor.writes} writes of {args.bytes} B to "
            f"{floor.subscribers} sockets in {floor.seconds:.1f} s: "
            f"{floor.us_per_write:.1f} us of CPU per write "
            f"(received {floor.received_bytes} of {floor.expected_bytes} bytes)",
            flush=True,
        )
    figures.sort()
    print(
        f"bare write floor, us per write: min {figures[0]:.1f} median "
        f"{figures[len(figures) // 2]:.1f} max {figures[-1]:.1f} (pid {os.getpid()})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The subscribers of bench/fanout.py: client processes, each holding its share of the
orderEvents subscriptions open and recording what arrives, driven over a pipe."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import json
import math
import multiprocessing
import os
import time
from array import array
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.typing import Subprotocol
from websockets.uri import WebSocketURI, parse_uri

from bench.proc import raise_fd_limit

SUBSCRIPTION = """subscription($s: ID!, $after: String) {
  orderEvents(storeId: $s, after: $after) { cursor type occurredAt status order { id number } }
}"""
PROTOCOL = Subprotocol("graphql-transport-ws")
GOAL_P99_SECONDS = 1.0


# -- small helpers ----------------------------------------------------------------


def cursor_of(seq: int) -> str:
    raw = json.dumps([seq], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def seq_of(cursor: str) -> int:
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    return int(json.loads(raw)[0])


def percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[index]


# -- the client processes ------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """What one client process does: hold `count` subscriptions open and record what comes."""

    index: int
    ws_url: str
    token: str
    store_gid: str
    after: str
    count: int
    compression: bool
    connect_concurrency: int
    nice: int = 0


@dataclass
class SubscriberState:
    seqs: array[int] = field(default_factory=lambda: array("q"))
    subscribed: bool = False
    last: int = -1
    error: str | None = None
    close_code: int | None = None

    @property
    def dead(self) -> bool:
        return self.error is not None or self.close_code is not None


class LeanSocket(asyncio.Protocol):
    """One subscriber's websocket, driven by the websockets library's sans-I/O client
    inside the event loop's callbacks: a message costs no task wake-up, and identical
    messages are parsed once per process (ClientWorker.on_text), so that thousands of
    subscribers on the bench's own cores leave the server the CPU it needs."""

    def __init__(
        self, worker: ClientWorker, state: SubscriberState, uri: WebSocketURI, compression: bool
    ) -> None:
        self.worker = worker
        self.state = state
        extensions = [ClientPerMessageDeflateFactory()] if compression else None
        self.conn = ClientProtocol(uri, subprotocols=[PROTOCOL], extensions=extensions)
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.acked: asyncio.Future[None] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        self.conn.send_request(self.conn.connect())
        self._flush()

    def _flush(self) -> None:
        assert self.transport is not None
        for data in self.conn.data_to_send():
            if data:
                self.transport.write(data)
            else:  # the protocol is done with the connection
                self.transport.close()

    def send_text(self, text: str) -> None:
        self.conn.send_text(text.encode())
        self._flush()

    def data_received(self, data: bytes) -> None:
        now = time.time()
        self.conn.receive_data(data)
        for event in self.conn.events_received():
            if isinstance(event, Response):
                if self.conn.state is State.OPEN and not self.opened.done():
                    self.opened.set_result(None)
                elif not self.opened.done():
                    self.opened.set_exception(RuntimeError(f"handshake: {event.status_code}"))
            elif isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                if not event.fin:
                    raise RuntimeError("a fragmented message (the server does not fragment)")
                try:
                    self.worker.on_text(self, bytes(event.data), now)
                except Exception as err:
                    self.state.error = repr(err)[:300]
                    if self.transport is not None:
                        self.transport.close()
        self._flush()  # pongs, and the reply to a close

    def connection_lost(self, exc: Exception | None) -> None:
        if self.state.close_code is None:
            received = self.conn.close_rcvd
            self.state.close_code = received.code if received is not None else 1006
        for future in (self.opened, self.acked):
            if not future.done():
                future.set_exception(ConnectionError(f"closed ({self.state.close_code})"))
        if not self.lost.done():
            self.lost.set_result(None)
        self.worker.changed.set()


class ClientWorker:
    def __init__(self, job: Job, pipe: Connection) -> None:
        self.job = job
        self.pipe = pipe
        self.states = [SubscriberState() for _ in range(job.count)]
        self.received_seq: array[int] = array("q")
        self.latency: array[float] = array("d")
        self.changed = asyncio.Event()  # a subscriber subscribed, received or ended
        self.parsed: dict[bytes, tuple[int, float]] = {}  # a `next` message -> (seq, occurred)
        self.subscribe_payload = json.dumps(
            {
                "id": "1",
                "type": "subscribe",
                "payload": {
                    "query": SUBSCRIPTION,
                    "variables": {"s": job.store_gid, "after": job.after},
                },
            }
        )

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(self.job.connect_concurrency)
        tasks = [asyncio.create_task(self.subscriber(state, gate)) for state in self.states]
        await self.until(lambda: all(s.subscribed or s.dead for s in self.states))
        failed = [s for s in self.states if not s.subscribed]
        first_error = next((s.error for s in failed if s.error), None)
        self.pipe.send(("ready", (len(self.states) - len(failed), first_error)))
        while True:
            command, argument = await loop.run_in_executor(None, self.pipe.recv)
            if command == "await":
                seq, timeout = argument
                self.pipe.send(("reached", await self.await_seq(seq, timeout)))
            elif command == "report":
                self.pipe.send(("result", self.report(argument)))
                break
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def until(self, done: Callable[[], bool]) -> None:
        while not done():
            self.changed.clear()
            await self.changed.wait()

    async def await_seq(self, seq: int, within: float) -> int:
        """Wait until every live subscriber has received the event at `seq`; return how many."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await self.until(lambda: all(s.last >= seq or s.dead for s in self.states))
        return sum(1 for s in self.states if s.last >= seq)

    async def subscriber(self, state: SubscriberState, gate: asyncio.Semaphore) -> None:
        loop = asyncio.get_running_loop()
        uri = parse_uri(self.job.ws_url)
        transport: asyncio.BaseTransport | None = None
        try:
            async with gate:
                transport, socket = await loop.create_connection(
                    lambda: LeanSocket(self, state, uri, self.job.compression), uri.host, uri.port
                )
                await asyncio.wait_for(socket.opened, 120)
                init = {"authorization": f"Bearer {self.job.token}"}
                socket.send_text(json.dumps({"type": "connection_init", "payload": init}))
                await asyncio.wait_for(socket.acked, 120)
                socket.send_text(self.subscribe_payload)
            state.subscribed = True
            self.changed.set()
            await socket.lost
        except asyncio.CancelledError:
            pass
        except Exception as err:
            state.error = repr(err)[:300]
        finally:
            self.changed.set()
            if transport is not None:
                transport.close()

    def on_text(self, socket: LeanSocket, raw: bytes, now: float) -> None:
        """One text message: identical `next` messages (every subscriber of this process
        gets the same bytes for an event) are parsed once."""
        known = self.parsed.get(raw)
        if known is None:
            message = json.loads(raw)
            kind = message["type"]
            if kind != "next":
                if kind == "ping":
                    socket.send_text('{"type":"pong"}')
                elif kind == "connection_ack":
                    socket.acked.set_result(None)
                else:
                    raise RuntimeError(f"unexpected message: {message}")
                return
            payload = message["payload"]
            if payload.get("errors"):
                raise RuntimeError(f"error result: {payload['errors']}")
            event = payload["data"]["orderEvents"]
            known = self.parsed[raw] = (
                seq_of(event["cursor"]),
                dt.datetime.fromisoformat(event["occurredAt"]).timestamp(),
            )
        seq, occurred = known
        state = socket.state
        state.seqs.append(seq)
        if seq > state.last:
            state.last = seq
        self.received_seq.append(seq)
        self.latency.append(now - occurred)
        self.changed.set()

    def report(self, expected: list[int]) -> dict[str, Any]:
        wanted = array("q", expected)
        wanted_set = set(expected)
        missing = duplicate = unexpected = out_of_order = complete = 0
        delivered = 0
        for state in self.states:
            got = state.seqs
            delivered += len(got)
            if got == wanted:
                complete += 1
                continue
            distinct = set(got)
            missing += len(wanted_set - distinct)
            duplicate += len(got) - len(distinct)
            unexpected += len(distinct - wanted_set)
            if list(got) != sorted(got):
                out_of_order += 1
        closes: dict[str, int] = {}
        for state in self.states:
            if state.close_code is not None:
                closes[str(state.close_code)] = closes.get(str(state.close_code), 0) + 1
        return {
            "delivered": delivered,
            "missing": missing,
            "duplicate": duplicate,
            "unexpected": unexpected,
            "out_of_order": out_of_order,
            "complete": complete,
            "closes": closes,
            "errors": sum(1 for s in self.states if s.error),
            "first_error": next((s.error for s in self.states if s.error), None),
            "received_seq": self.received_seq.tobytes(),
            "latency": self.latency.tobytes(),
        }


def client_process(job: Job, pipe: Connection) -> None:
    raise_fd_limit(job.count + 100)
    if job.nice:
        os.nice(job.nice)
    runner: Callable[[Coroutine[Any, Any, None]], None] = asyncio.run
    with contextlib.suppress(ImportError):
        import uvloop

        runner = uvloop.run
    try:
        runner(ClientWorker(job, pipe).run())
    except Exception as err:
        with contextlib.suppress(Exception):
            pipe.send(("failed", repr(err)))
        raise


@dataclass
class Client:
    process: multiprocessing.process.BaseProcess
    pipe: Connection

    def expect(self, kind: str, timeout: float) -> Any:
        if not self.pipe.poll(timeout):
            raise RuntimeError(f"client process {self.process.pid}: no {kind!r} in {timeout:g} s")
        got, value = self.pipe.recv()
        if got != kind:
            raise RuntimeError(f"client process {self.process.pid}: {got} {value}")
        return value

    def stop(self) -> None:
        self.process.join(timeout=15)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout=5)


def ask_all(clients: list[Client], command: str, argument: Any, kind: str, timeout: float) -> Any:
    for client in clients:
        client.pipe.send((command, argument))
    return [client.expect(kind, timeout) for client in clients]

"""Follow the order events of one store, live, and pick up where it left off.

    export ORDERGRAPH_TOKEN=og_...
    python follow_orders.py --url ws://127.0.0.1:8000/graphql --store-id <Store.id>

It speaks graphql-transport-ws with the `websockets` library and nothing else.
After each event it writes the event's cursor to a small state file. Whenever
the connection drops (network trouble, a server restart) or the client itself
is restarted, it subscribes again with `after: <that cursor>`: the server
replays what happened in between, then goes on live, so every event is
printed once, in order.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import sys
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI
from websockets.typing import Subprotocol

PROTOCOL = Subprotocol("graphql-transport-ws")
SUBSCRIPTION = """
subscription FollowOrders($storeId: ID!, $after: String) {
  orderEvents(storeId: $storeId, after: $after) {
    cursor
    type
    occurredAt
    status
    stockStatus
    order { number }
  }
}
"""
ACK_TIMEOUT = 10.0  # seconds to wait for connection_ack
FIRST_DELAY, MAX_DELAY = 0.5, 30.0  # reconnection backoff, in seconds
FORBIDDEN = 4403  # close code: the token is missing, unknown or lacks the READ scope


class Fatal(Exception):
    """A problem that retrying cannot fix: a bad token, an unknown store, a bad cursor."""


class Dropped(Exception):
    """The server ended the stream without closing the connection: reconnect and resume."""


class StateFile:
    """The cursor of the last event handled, kept as JSON and replaced atomically."""

    def __init__(self, path: Path, store_id: str) -> None:
        self.path = path
        self.store_id = store_id

    def load(self) -> str | None:
        try:
            state = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None  # the first run: follow from now on
        except ValueError:
            state = None
        if not isinstance(state, dict) or not isinstance(state.get("after"), str):
            raise Fatal(f"{self.path} is not a state file of this client")
        if state.get("storeId") != self.store_id:
            raise Fatal(f"{self.path} holds the cursor of another store ({state.get('storeId')})")
        after: str = state["after"]
        return after

    def save(self, cursor: str) -> None:
        temporary = self.path.with_name(self.path.name + ".tmp")
        temporary.write_text(json.dumps({"storeId": self.store_id, "after": cursor}) + "\n")
        os.replace(temporary, self.path)  # atomic: a crash leaves the old or the new cursor


class Follower:
    def __init__(self, args: argparse.Namespace) -> None:
        self.url: str = args.url
        self.token: str = args.token
        self.store_id: str = args.store_id
        self.max_events: int | None = args.max_events
        self.quiet: bool = args.quiet
        self.state = StateFile(Path(args.state_file), args.store_id)
        self.after = self.state.load()
        self.handled = 0
        self.delay = FIRST_DELAY

    def note(self, text: str) -> None:
        if not self.quiet:
            print(f"follow_orders: {text}", file=sys.stderr, flush=True)

    async def run(self) -> None:
        """Follow until --max-events events were handled; reconnect after every drop."""
        while True:
            try:
                await self.session()
                return
            except ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd else None
                if code == FORBIDDEN:
                    raise Fatal("the server refused the token (4403): check --token") from None
                if code is not None and 4400 <= code < 4500:  # a protocol error: ours to fix
                    raise Fatal(f"the server closed the connection: {closed.rcvd}") from None
                problem = f"connection closed ({code or 'no close frame'})"
            except InvalidStatus as refused:
                if refused.response.status_code < 500:
                    raise Fatal(f"no GraphQL websocket at {self.url}: {refused}") from None
                problem = str(refused)  # a proxy or load balancer while the server restarts
            except (OSError, TimeoutError, Dropped) as error:
                problem = str(error) or type(error).__name__
            pause = self.delay * random.uniform(0.8, 1.2)  # jitter: clients don't move in step
            self.note(f"{problem}; reconnecting in {pause:.1f}s")
            await asyncio.sleep(pause)
            self.delay = min(self.delay * 2, MAX_DELAY)

    async def session(self) -> None:
        """One connection: init, subscribe from the last cursor, handle events."""
        async with connect(self.url, subprotocols=[PROTOCOL], open_timeout=10) as ws:
            auth = {"authorization": f"Bearer {self.token}"}
            await send(ws, {"type": "connection_init", "payload": auth})
            async with asyncio.timeout(ACK_TIMEOUT):
                while (await receive(ws))["type"] != "connection_ack":
                    pass
            self.delay = FIRST_DELAY  # connected and accepted: the next drop starts over
            variables = {"storeId": self.store_id, "after": self.after}
            request = {"query": SUBSCRIPTION, "variables": variables}
            await send(ws, {"id": "1", "type": "subscribe", "payload": request})
            since = "the saved cursor" if self.after else "now"
            self.note(f"following store {self.store_id} from {since}")
            while self.max_events is None or self.handled < self.max_events:
                message = await receive(ws)
                if message["type"] == "next":
                    self.handle(message["payload"])
                elif message["type"] == "error":
                    raise Fatal(f"subscription refused: {error_text(message['payload'])}")
                elif message["type"] == "complete":
                    raise Dropped("the server ended the subscription")

    def handle(self, payload: dict[str, Any]) -> None:
        """Print one event and remember its cursor. No await in here: a stop request
        (Ctrl-C, SIGTERM) cannot fall between printing and saving."""
        errors: list[dict[str, Any]] = payload.get("errors") or []
        if errors:
            codes = {(e.get("extensions") or {}).get("code") for e in errors}
            if "SLOW_CONSUMER" in codes:  # we fell behind; resuming from the cursor catches up
                raise Dropped("the server dropped this slow subscriber")
            raise Fatal(f"subscription refused: {error_text(errors)}")
        event: dict[str, Any] = payload["data"]["orderEvents"]
        print(
            f"{event['occurredAt']}  #{event['order']['number']}  {event['type']}"
            f"  status={event['status']}  stockStatus={event['stockStatus'] or '-'}",
            flush=True,
        )
        self.after = event["cursor"]
        self.state.save(self.after)
        self.handled += 1


async def send(ws: ClientConnection, message: dict[str, Any]) -> None:
    await ws.send(json.dumps(message))


async def receive(ws: ClientConnection) -> dict[str, Any]:
    """The next message that is not a ping; pings are answered on the way."""
    while True:
        message: dict[str, Any] = json.loads(await ws.recv())
        if message["type"] == "ping":
            await send(ws, {"type": "pong"})
        elif message["type"] != "pong":
            return message


def error_text(errors: Any) -> str:
    if isinstance(errors, list):
        return "; ".join(str(e.get("message", e)) for e in errors if isinstance(e, dict))
    return str(errors)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Print a store's order events as they happen.")
    parser.add_argument("--url", default="ws://127.0.0.1:8000/graphql", help="default: %(default)s")
    parser.add_argument(
        "--token",
        default=os.environ.get("ORDERGRAPH_TOKEN"),
        help="an API token with the READ scope (default: $ORDERGRAPH_TOKEN)",
    )
    parser.add_argument("--store-id", required=True, help="the store's global ID (Store.id)")
    parser.add_argument(
        "--state-file",
        default="follow_orders.state.json",
        help="where the last cursor is kept (default: %(default)s)",
    )
    parser.add_argument("--max-events", type=int, help="exit after this many events")
    parser.add_argument("--quiet", action="store_true", help="print events only, no status lines")
    args = parser.parse_args(argv)
    if not args.token:
        parser.error("a token is needed: --token or ORDERGRAPH_TOKEN")
    if args.url.startswith(("http://", "https://")):
        args.url = "ws" + args.url.removeprefix("http")
    return args


async def follow(args: argparse.Namespace) -> int:
    main = asyncio.current_task()
    assert main is not None
    with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main.cancel)
    try:
        await Follower(args).run()
    except (Fatal, InvalidURI) as error:
        print(f"follow_orders: error: {error}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return asyncio.run(follow(args))
    except KeyboardInterrupt:  # Ctrl-C
        return 130
    except asyncio.CancelledError:  # SIGTERM: a stop request, honoured between two events
        return 0


if __name__ == "__main__":
    sys.exit(main())

"""A webhook receiver for ordergraph, standard library only.

It checks each request's `Ordergraph-Signature` against the subscription's secret (and
refuses stale timestamps), answers 200 at once, skips event ids it has already seen (a
delivery can come again after a failed or cut attempt, or a redeliver), and prints one
JSON line per new event on stdout.

    export ORDERGRAPH_WEBHOOK_SECRET=whsec_...   # shown once by createWebhookSubscription
    python examples/python/webhook_receiver.py --port 8080

Put it behind an https endpoint that ordergraph can reach (ordergraph refuses plain http
and addresses on private networks, unless ORDERGRAPH_WEBHOOK_ALLOW_PRIVATE=true).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import json
import os
import sys
import time
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Lock

TOLERANCE_SECONDS = 300  # refuse signatures older (or newer) than this
MAX_BODY_BYTES = 1_000_000
# Event ids remembered for deduplication (a real receiver keeps them in its database).
SEEN_IDS = 100_000


def verify_signature(header: str, body: bytes, secret: str, now: float) -> bool:
    """True when one `v1=` in `t=<unix>,v1=<hex>[,v1=<hex>]` is the HMAC-SHA256 of
    "<t>.<body>" with the secret, and t is within TOLERANCE_SECONDS of now."""
    timestamp = None
    signatures = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            signatures.append(value)
    if timestamp is None or abs(now - timestamp) > TOLERANCE_SECONDS:
        return False
    expected = hmac.new(
        secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    return any(hmac.compare_digest(expected, candidate) for candidate in signatures)


class Seen:
    """The last SEEN_IDS event ids, oldest forgotten first."""

    def __init__(self) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._lock = Lock()

    def first_time(self, event_id: str) -> bool:
        with self._lock:
            if event_id in self._ids:
                return False
            self._ids[event_id] = None
            if len(self._ids) > SEEN_IDS:
                self._ids.popitem(last=False)
            return True


def handler(secret: str, seen: Seen) -> type[BaseHTTPRequestHandler]:
    class Receive(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self._answer(413)
                return
            body = self.rfile.read(length)
            header = self.headers.get("Ordergraph-Signature") or ""
            if not verify_signature(header, body, secret, time.time()):
                self._answer(400)
                return
            event = json.loads(body)
            if seen.first_time(event["id"]):
                print(json.dumps(event, separators=(",", ":")), flush=True)
            self._answer(200)

        def _answer(self, status: int) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass  # stdout carries the events only

    return Receive


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument(
        "--secret",
        default=os.environ.get("ORDERGRAPH_WEBHOOK_SECRET"),
        help="the subscription's signing secret (default: $ORDERGRAPH_WEBHOOK_SECRET)",
    )
    args = parser.parse_args()
    if not args.secret:
        sys.exit("give the signing secret: --secret or ORDERGRAPH_WEBHOOK_SECRET")
    server = ThreadingHTTPServer((args.host, args.port), handler(args.secret, Seen()))
    print(f"listening on http://{args.host}:{server.server_port}/", file=sys.stderr, flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()

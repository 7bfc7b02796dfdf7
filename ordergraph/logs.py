"""Logging for `ordergraph serve`: JSON lines (default) or text, with the request's context.

Every record logged while a request is being handled carries that request's id and, once
it is known, its GraphQL operation name: both live in a context variable set by the
GraphQL view (ordergraph.app), so code deeper down logs as usual and gets them for free.

What is never logged: headers (so no Authorization token), query strings, request
bodies and GraphQL variables. The one line per request names the operation, the
outcome, the status and the duration, nothing the client sent beyond the operation name
(at most ORDERGRAPH_MAX_OPERATION_NAME_LENGTH characters: longer ones are refused).
Server lines that name a path (uvicorn's websocket handshake lines) lose its query
string on the way out (`QueryStringFilter`).
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import re
import sys
from dataclasses import dataclass
from typing import Any

from ordergraph.settings import Settings

# Attributes every LogRecord has; anything else was passed with `extra=` and is logged.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
# uvicorn's copy of its message with terminal colour codes: the message says it already.
_STANDARD.add("color_message")


@dataclass
class RequestInfo:
    """What is known of the request being handled, filled in as it goes."""

    transport: str  # "http" or "ws"
    request_id: str | None = None
    operation: str | None = None  # the GraphQL operation name, as the client gave it
    operation_type: str | None = None
    outcome: str | None = None
    cancelled: str | None = None  # "timeout" or "cancelled" (client gone) when stopped


current_request: contextvars.ContextVar[RequestInfo | None] = contextvars.ContextVar(
    "ordergraph_request", default=None
)


class RequestContextFilter(logging.Filter):
    """Adds request_id and operation of the current request to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        info = current_request.get()
        if info is not None:
            if getattr(record, "request_id", None) is None and info.request_id is not None:
                record.request_id = info.request_id
            if getattr(record, "operation", None) is None and info.operation is not None:
                record.operation = info.operation
        return True


_PATH_WITH_QUERY = re.compile(r"(/[^\s?\"]*)\?[^\s\"]*")


def _without_query(value: object) -> object:
    if isinstance(value, str) and "?" in value:
        return _PATH_WITH_QUERY.sub(r"\1", value)
    return value


class QueryStringFilter(logging.Filter):
    """Cuts the query string off any path in a record's message and arguments: uvicorn
    logs websocket handshakes as `"WebSocket /graphql?query=..." [accepted]`, and a query
    string may carry a token or a document."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and "?" in record.msg:
            record.msg = _without_query(record.msg)
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(_without_query(arg) for arg in record.args)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, context, extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_") and value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Human-readable lines with the same fields as the JSON ones, as key=value pairs."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        pairs = [
            f"{key}={value}"
            for key, value in record.__dict__.items()
            if key not in _STANDARD and not key.startswith("_") and value is not None
        ]
        if not pairs:
            return line
        head, sep, rest = line.partition("\n")  # keep a traceback below the pairs
        return head + " " + " ".join(pairs) + sep + rest


def make_handler(log_format: str, stream: Any = None) -> logging.Handler:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(RequestContextFilter())
    handler.addFilter(QueryStringFilter())
    return handler


def configure_logging(settings: Settings) -> None:
    """Send every logger (ours and uvicorn's) to stderr in the chosen format."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(make_handler(settings.log_format))
    root.setLevel(settings.log_level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.asgi"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # Never an access line: GET query strings carry the query and its variables.
    logging.getLogger("uvicorn.access").disabled = True

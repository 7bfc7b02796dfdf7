"""Settings, read once from flags and the environment (ORDERGRAPH_*)."""

from __future__ import annotations

import datetime as dt
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./ordergraph.db"
#: The most orders or products one page of a bulk export reads (ORDERGRAPH_EXPORT_PAGE_SIZE
#: is cut to it): a page is held in memory while it is written.
MAX_EXPORT_PAGE = 5000


class SettingsError(ValueError):
    """A setting that cannot be used, with the variable's name in the message."""


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return raw


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """A comma-separated list; blanks are dropped."""
    return tuple(part.strip() for part in (env.get(name) or "").split(",") if part.strip())


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    admin_token: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    db_pool_size: int = 10
    max_depth: int = 12
    max_aliases: int = 30
    max_tokens: int = 5000
    idempotency_ttl_hours: int = 24
    overdue_sweep_seconds: int = 60
    # storage/statistics.py; 0 = leave it to autovacuum. A served process reads 1000 from
    # the environment's default; an app built in code (tests, benches) looks only if told,
    # so that its statements do not mix with the ones a test counts.
    first_stats_ms: int = 0
    ws_init_timeout_seconds: int = 10
    ws_ping_seconds: int = 15
    max_subscriptions_per_connection: int = 100
    subscriber_buffer: int = 1000
    tail_poll_ms: int = 500
    ws_compression: bool = False
    gc_freeze_seconds: int = 10  # ordergraph.gc_governor; 0 = CPython's collector as is
    gc_full_seconds: int = 3600  # 0 = a full pass only when the memory in use doubled
    log_level: str = "INFO"
    log_format: str = "json"
    graphiql: bool = True
    introspection: bool = True
    metrics_max_operations: int = 50
    # The boundary (docs/security.md): sizes, time, cost, rates, sockets, browsers.
    max_body_bytes: int = 1_000_000
    max_document_bytes: int = 100_000
    max_variables_bytes: int = 256_000
    max_variables_depth: int = 16
    max_operation_name_length: int = 100
    document_cache_bytes: int = 8_000_000
    operation_timeout_ms: int = 10_000
    max_connections_per_request: int = 2
    store_batch_max: int = 32
    max_cost: int = 1000
    rate_limit_capacity: int = 5000
    rate_limit_restore_per_second: int = 250
    anonymous_requests_per_minute: int = 60
    max_websockets_per_key: int = 50
    max_subscriptions_per_key: int = 500
    auth_cache_seconds: int = 2
    max_ws_message_bytes: int = 1_000_000
    metrics_token: str | None = None
    metrics_port: int = 0
    cors_origins: tuple[str, ...] = ()
    gzip_min_bytes: int = 1024
    max_validation_complexity: int = 20_000
    revocation_check_ms: int = 2000
    heavy_operation_cost: int = 100
    max_heavy_operations_per_key: int = 1
    # Webhooks (docs/webhooks.md).
    webhook_delivery: bool = True
    webhook_allow_private: bool = False
    webhook_timeout_seconds: int = 10
    webhook_retry_hours: int = 24
    webhook_backoff_base_seconds: int = 5
    webhook_backoff_max_seconds: int = 3600
    webhook_poll_ms: int = 1000
    webhook_claim_seconds: int = 60
    webhook_max_response_bytes: int = 4096
    webhook_concurrency: int = 20
    webhook_log_days: int = 7
    webhook_max_skus: int = 100
    # Bulk export (docs/integrations.md).
    export_page_size: int = 500
    export_max_concurrent: int = 2
    export_rows_per_point: int = 20

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            database_url=env.get("ORDERGRAPH_DATABASE_URL") or DEFAULT_DATABASE_URL,
            admin_token=env.get("ORDERGRAPH_ADMIN_TOKEN") or None,
            host=env.get("ORDERGRAPH_HOST") or "127.0.0.1",
            port=_int(env, "ORDERGRAPH_PORT", 8000),
            db_pool_size=_int(env, "ORDERGRAPH_DB_POOL_SIZE", 10),
            max_depth=_int(env, "ORDERGRAPH_MAX_DEPTH", 12),
            max_aliases=_int(env, "ORDERGRAPH_MAX_ALIASES", 30),
            max_tokens=_int(env, "ORDERGRAPH_MAX_TOKENS", 5000),
            idempotency_ttl_hours=_int(env, "ORDERGRAPH_IDEMPOTENCY_TTL_HOURS", 24),
            overdue_sweep_seconds=_int(env, "ORDERGRAPH_OVERDUE_SWEEP_SECONDS", 60, minimum=0),
            first_stats_ms=_int(env, "ORDERGRAPH_FIRST_STATS_MS", 1000, minimum=0),
            ws_init_timeout_seconds=_int(env, "ORDERGRAPH_WS_INIT_TIMEOUT_SECONDS", 10),
            ws_ping_seconds=_int(env, "ORDERGRAPH_WS_PING_SECONDS", 15),
            max_subscriptions_per_connection=_int(
                env, "ORDERGRAPH_MAX_SUBSCRIPTIONS_PER_CONNECTION", 100
            ),
            subscriber_buffer=_int(env, "ORDERGRAPH_SUBSCRIBER_BUFFER", 1000),
            tail_poll_ms=_int(env, "ORDERGRAPH_TAIL_POLL_MS", 500, minimum=10),
            ws_compression=_bool(env, "ORDERGRAPH_WS_COMPRESSION", False),
            gc_freeze_seconds=_int(env, "ORDERGRAPH_GC_FREEZE_SECONDS", 10, minimum=0),
            gc_full_seconds=_int(env, "ORDERGRAPH_GC_FULL_SECONDS", 3600, minimum=0),
            log_level=(env.get("ORDERGRAPH_LOG_LEVEL") or "INFO").upper(),
            log_format=_choice(env, "ORDERGRAPH_LOG_FORMAT", "json", ("json", "text")),
            graphiql=_bool(env, "ORDERGRAPH_GRAPHIQL", True),
            introspection=_bool(env, "ORDERGRAPH_INTROSPECTION", True),
            metrics_max_operations=_int(env, "ORDERGRAPH_METRICS_MAX_OPERATIONS", 50),
            max_body_bytes=_int(env, "ORDERGRAPH_MAX_BODY_BYTES", 1_000_000),
            max_document_bytes=_int(env, "ORDERGRAPH_MAX_DOCUMENT_BYTES", 100_000),
            max_variables_bytes=_int(env, "ORDERGRAPH_MAX_VARIABLES_BYTES", 256_000),
            max_variables_depth=_int(env, "ORDERGRAPH_MAX_VARIABLES_DEPTH", 16),
            max_operation_name_length=_int(env, "ORDERGRAPH_MAX_OPERATION_NAME_LENGTH", 100),
            document_cache_bytes=_int(env, "ORDERGRAPH_DOCUMENT_CACHE_BYTES", 8_000_000),
            operation_timeout_ms=_int(env, "ORDERGRAPH_OPERATION_TIMEOUT_MS", 10_000),
            max_connections_per_request=_int(env, "ORDERGRAPH_MAX_CONNECTIONS_PER_REQUEST", 2),
            store_batch_max=_int(env, "ORDERGRAPH_STORE_BATCH_MAX", 32),
            max_cost=_int(env, "ORDERGRAPH_MAX_COST", 1000),
            rate_limit_capacity=_int(env, "ORDERGRAPH_RATE_LIMIT_CAPACITY", 5000),
            rate_limit_restore_per_second=_int(
                env, "ORDERGRAPH_RATE_LIMIT_RESTORE_PER_SECOND", 250
            ),
            anonymous_requests_per_minute=_int(env, "ORDERGRAPH_ANONYMOUS_REQUESTS_PER_MINUTE", 60),
            max_websockets_per_key=_int(env, "ORDERGRAPH_MAX_WEBSOCKETS_PER_KEY", 50),
            max_subscriptions_per_key=_int(env, "ORDERGRAPH_MAX_SUBSCRIPTIONS_PER_KEY", 500),
            auth_cache_seconds=_int(env, "ORDERGRAPH_AUTH_CACHE_SECONDS", 2, minimum=0),
            max_ws_message_bytes=_int(env, "ORDERGRAPH_MAX_WS_MESSAGE_BYTES", 1_000_000),
            metrics_token=env.get("ORDERGRAPH_METRICS_TOKEN") or None,
            metrics_port=_int(env, "ORDERGRAPH_METRICS_PORT", 0, minimum=0),
            cors_origins=_list(env, "ORDERGRAPH_CORS_ORIGINS"),
            gzip_min_bytes=_int(env, "ORDERGRAPH_GZIP_MIN_BYTES", 1024, minimum=0),
            max_validation_complexity=_int(env, "ORDERGRAPH_MAX_VALIDATION_COMPLEXITY", 20_000),
            revocation_check_ms=_int(env, "ORDERGRAPH_REVOCATION_CHECK_MS", 2000, minimum=50),
            heavy_operation_cost=_int(env, "ORDERGRAPH_HEAVY_OPERATION_COST", 100),
            max_heavy_operations_per_key=_int(env, "ORDERGRAPH_MAX_HEAVY_OPERATIONS_PER_KEY", 1),
            webhook_delivery=_bool(env, "ORDERGRAPH_WEBHOOK_DELIVERY", True),
            webhook_allow_private=_bool(env, "ORDERGRAPH_WEBHOOK_ALLOW_PRIVATE", False),
            webhook_timeout_seconds=_int(env, "ORDERGRAPH_WEBHOOK_TIMEOUT_SECONDS", 10),
            webhook_retry_hours=_int(env, "ORDERGRAPH_WEBHOOK_RETRY_HOURS", 24),
            webhook_backoff_base_seconds=_int(env, "ORDERGRAPH_WEBHOOK_BACKOFF_BASE_SECONDS", 5),
            webhook_backoff_max_seconds=_int(env, "ORDERGRAPH_WEBHOOK_BACKOFF_MAX_SECONDS", 3600),
            webhook_poll_ms=_int(env, "ORDERGRAPH_WEBHOOK_POLL_MS", 1000, minimum=10),
            webhook_claim_seconds=_int(env, "ORDERGRAPH_WEBHOOK_CLAIM_SECONDS", 60),
            webhook_max_response_bytes=_int(env, "ORDERGRAPH_WEBHOOK_MAX_RESPONSE_BYTES", 4096),
            webhook_concurrency=_int(env, "ORDERGRAPH_WEBHOOK_CONCURRENCY", 20),
            webhook_log_days=_int(env, "ORDERGRAPH_WEBHOOK_LOG_DAYS", 7),
            webhook_max_skus=_int(env, "ORDERGRAPH_WEBHOOK_MAX_SKUS", 100, minimum=1),
            export_page_size=min(_int(env, "ORDERGRAPH_EXPORT_PAGE_SIZE", 500), MAX_EXPORT_PAGE),
            export_max_concurrent=_int(env, "ORDERGRAPH_EXPORT_MAX_CONCURRENT", 2),
            export_rows_per_point=_int(env, "ORDERGRAPH_EXPORT_ROWS_PER_POINT", 20),
        )

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @property
    def idempotency_ttl(self) -> dt.timedelta:
        return dt.timedelta(hours=self.idempotency_ttl_hours)

    @property
    def sqlite_path(self) -> Path | None:
        url = make_url(self.database_url)
        if not url.drivername.startswith("sqlite") or not url.database:
            return None
        if url.database == ":memory:":
            return None
        return Path(url.database)


def ensure_admin_token(settings: Settings) -> tuple[Settings, str | None]:
    """On the embedded default with no admin token set, make one and keep it beside the database.

    Returns the settings to use and, when a token was just made, the token to print once.
    """
    if settings.admin_token:
        return settings, None
    path = settings.sqlite_path
    if path is None:
        return settings, None
    token_file = path.with_name(path.name + ".admin-token")
    if token_file.exists():
        return replace(settings, admin_token=token_file.read_text().strip()), None
    token = "og_admin_" + secrets.token_urlsafe(32)
    token_file.parent.mkdir(parents=True, exist_ok=True)
    token_file.touch(mode=0o600)
    token_file.write_text(token + "\n")
    return replace(settings, admin_token=token), token

"""Configuration from environment variables (12-factor).

`DATABASE_URL`, `BROADCAST_URL` and `SECRET_KEY` are the common ones; everything
else is `MEIHUA_*`. `Settings.from_env()` is the only place that reads them.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

logger = logging.getLogger("meihua")

DEV_SECRET_KEY = "meihua-development-secret-do-not-use-in-production"
DATABASE_SCHEMES = ("sqlite://", "postgres://", "postgresql://")
MIN_SECRET_LENGTH = 32  # HS256 wants a key at least as long as its hash
LOG_FORMATS = ("json", "text")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
MIN_METRICS_TOKEN = 16  # a bearer token short enough to guess protects nothing


class ConfigurationError(RuntimeError):
    """The environment describes a configuration Meihua refuses to run with."""


def _bool(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be an integer, got {raw!r}") from None


def _float(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number, got {raw!r}") from None


def _list(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(item.strip() for item in value.split(",") if item.strip())


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite://meihua.sqlite3"
    broadcast_url: str = "memory://"
    secret_key: str = DEV_SECRET_KEY
    env: str = "development"
    cors_origins: tuple[str, ...] = ()
    token_lifetime_minutes: int = 60 * 12
    page_size_max: int = 100
    # How many of the caller's customers (the most recently updated) `likelyDuplicates` compares.
    duplicate_scan_max: int = 10_000
    # Operation limits (schema/limits.py; refused with QUERY_TOO_COMPLEX before running).
    # Cost counts fields times page sizes (schema/measure.py): 100 customers with their
    # opportunities, stages, history and products cost about 300 000. The body cap must
    # leave room for a CSV import: 5 MB of file, which base64 or JSON escaping grows to
    # about 10 MB. Timeouts are seconds; 0 turns one off.
    query_depth_max: int = 12
    query_aliases_max: int = 30
    query_root_fields_max: int = 20
    query_cost_max: int = 500_000
    query_tokens_max: int = 3000
    list_input_max: int = 500
    body_bytes_max: int = 12 * 1024 * 1024
    request_timeout: float = 30.0
    statement_timeout: float = 20.0
    introspection: bool = True
    graphiql: bool = True
    timezone: str = "Asia/Shanghai"
    # Live events a subscriber may have waiting before it is closed (it resumes with `after:`).
    subscriber_queue_size: int = 1000
    # Records each subscription remembers having shown, to say once when one leaves
    # the subscriber's sight (subscriptions/scope.py); the oldest are forgotten past it.
    subscription_watch_limit: int = 1000
    # Seconds between recycling passes inside each server process; 0 leaves them to
    # `meihua clock`.
    recycle_interval: int = 300
    # How long the event log keeps events (and `after:` can replay them), in hours.
    event_retention_hours: int = 168
    # Seconds `meihua serve` lets requests in flight finish after SIGTERM (web/shutdown.py).
    shutdown_timeout: int = 30
    # Rate limits (resolvers/rate_limits.py). Counts live at rate_limit_url (memory:// or
    # redis://…; empty: BROADCAST_URL when it is Redis, else memory) under the key prefix.
    # Root fields per caller per minute (0: off); login failures allowed per username and
    # per client IP (0: off) before each further attempt waits, the wait doubling from
    # login_backoff_seconds up to login_backoff_max_seconds.
    rate_limit_url: str = ""
    rate_limit_prefix: str = "meihua:ratelimit:"
    operations_per_minute: int = 600
    login_failures_per_username: int = 5
    login_failures_per_ip: int = 50
    login_backoff_seconds: int = 30
    login_backoff_max_seconds: int = 900
    # Seconds a WebSocket may stay open before `connection_init` (then 4408), and the
    # operations one socket may run at once (more get LIMIT_EXCEEDED).
    ws_init_timeout: float = 10.0
    ws_max_operations: int = 50
    # Logs: "json" (one object per line) or "text"; json by default in production.
    log_format: str = "text"
    log_level: str = "INFO"
    # When set, GET /metrics needs `Authorization: Bearer <token>`; without one,
    # production does not serve /metrics at all.
    metrics_token: str | None = None
    # Webhooks (subscriptions/webhook_worker.py): seconds per request, attempts before a
    # delivery gives up, the first retry's delay in seconds (doubling after each failure,
    # jittered, at most webhook_backoff_max), and seconds between the worker's rounds (0:
    # no worker in this process). Hooks aimed at private or loopback addresses are
    # refused unless webhook_private_targets (None: allowed except in production).
    webhook_timeout: float = 10.0
    webhook_max_attempts: int = 8
    webhook_backoff: float = 30.0
    webhook_backoff_max: float = 6 * 3600.0
    webhook_poll_interval: float = 1.0
    webhook_private_targets: bool | None = None

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def allows_private_webhook_targets(self) -> bool:
        if self.webhook_private_targets is None:
            return not self.production
        return self.webhook_private_targets

    @property
    def uses_dev_secret(self) -> bool:
        return self.secret_key == DEV_SECRET_KEY

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        mode = env.get("MEIHUA_ENV", "development").strip().lower() or "development"
        secret = env.get("SECRET_KEY", "")
        if not secret:
            if mode == "production":
                raise ConfigurationError(
                    "SECRET_KEY is required when MEIHUA_ENV=production "
                    "(tokens signed with a public default could be forged)."
                )
            secret = DEV_SECRET_KEY
        elif mode == "production" and (len(secret) < MIN_SECRET_LENGTH or secret == DEV_SECRET_KEY):
            raise ConfigurationError(
                f"SECRET_KEY must be a private value of at least {MIN_SECRET_LENGTH} "
                "characters in production."
            )
        settings = cls(
            database_url=env.get("DATABASE_URL") or cls.database_url,
            broadcast_url=env.get("BROADCAST_URL") or cls.broadcast_url,
            secret_key=secret,
            env=mode,
            cors_origins=_list(env.get("MEIHUA_CORS_ORIGINS")),
            token_lifetime_minutes=_int(env, "MEIHUA_TOKEN_LIFETIME_MINUTES", 60 * 12),
            page_size_max=_int(env, "MEIHUA_PAGE_SIZE_MAX", 100),
            duplicate_scan_max=_int(env, "MEIHUA_DUPLICATE_SCAN_MAX", cls.duplicate_scan_max),
            query_depth_max=_int(env, "MEIHUA_QUERY_DEPTH_MAX", cls.query_depth_max),
            query_aliases_max=_int(env, "MEIHUA_QUERY_ALIASES_MAX", cls.query_aliases_max),
            query_root_fields_max=_int(
                env, "MEIHUA_QUERY_ROOT_FIELDS_MAX", cls.query_root_fields_max
            ),
            query_cost_max=_int(env, "MEIHUA_QUERY_COST_MAX", cls.query_cost_max),
            query_tokens_max=_int(env, "MEIHUA_QUERY_TOKENS_MAX", cls.query_tokens_max),
            list_input_max=_int(env, "MEIHUA_LIST_INPUT_MAX", cls.list_input_max),
            body_bytes_max=_int(env, "MEIHUA_BODY_BYTES_MAX", cls.body_bytes_max),
            request_timeout=_float(env, "MEIHUA_REQUEST_TIMEOUT", cls.request_timeout),
            statement_timeout=_float(env, "MEIHUA_STATEMENT_TIMEOUT", cls.statement_timeout),
            introspection=_bool(env.get("MEIHUA_INTROSPECTION"), mode != "production"),
            graphiql=_bool(env.get("MEIHUA_GRAPHIQL"), mode != "production"),
            timezone=env.get("MEIHUA_TIMEZONE") or cls.timezone,
            subscriber_queue_size=_int(env, "MEIHUA_SUBSCRIBER_QUEUE_SIZE", 1000),
            subscription_watch_limit=_int(env, "MEIHUA_SUBSCRIPTION_WATCH_LIMIT", 1000),
            recycle_interval=_int(env, "MEIHUA_RECYCLE_INTERVAL", 300),
            event_retention_hours=_int(env, "MEIHUA_EVENT_RETENTION_HOURS", 168),
            shutdown_timeout=_int(env, "MEIHUA_SHUTDOWN_TIMEOUT", 30),
            rate_limit_url=env.get("MEIHUA_RATE_LIMIT_URL") or "",
            rate_limit_prefix=env.get("MEIHUA_RATE_LIMIT_PREFIX") or cls.rate_limit_prefix,
            operations_per_minute=_int(env, "MEIHUA_OPERATIONS_PER_MINUTE", 600),
            login_failures_per_username=_int(env, "MEIHUA_LOGIN_FAILURES_PER_USERNAME", 5),
            login_failures_per_ip=_int(env, "MEIHUA_LOGIN_FAILURES_PER_IP", 50),
            login_backoff_seconds=_int(env, "MEIHUA_LOGIN_BACKOFF_SECONDS", 30),
            login_backoff_max_seconds=_int(env, "MEIHUA_LOGIN_BACKOFF_MAX_SECONDS", 900),
            ws_init_timeout=_float(env, "MEIHUA_WS_INIT_TIMEOUT", 10.0),
            ws_max_operations=_int(env, "MEIHUA_WS_MAX_OPERATIONS", 50),
            log_format=(env.get("MEIHUA_LOG_FORMAT") or "").strip().lower()
            or ("json" if mode == "production" else "text"),
            log_level=(env.get("MEIHUA_LOG_LEVEL") or "INFO").strip().upper(),
            metrics_token=env.get("MEIHUA_METRICS_TOKEN") or None,
            webhook_timeout=_float(env, "MEIHUA_WEBHOOK_TIMEOUT", cls.webhook_timeout),
            webhook_max_attempts=_int(env, "MEIHUA_WEBHOOK_MAX_ATTEMPTS", cls.webhook_max_attempts),
            webhook_backoff=_float(env, "MEIHUA_WEBHOOK_BACKOFF", cls.webhook_backoff),
            webhook_backoff_max=_float(env, "MEIHUA_WEBHOOK_BACKOFF_MAX", cls.webhook_backoff_max),
            webhook_poll_interval=_float(
                env, "MEIHUA_WEBHOOK_POLL_INTERVAL", cls.webhook_poll_interval
            ),
            webhook_private_targets=_bool(env["MEIHUA_WEBHOOK_PRIVATE_TARGETS"], False)
            if env.get("MEIHUA_WEBHOOK_PRIVATE_TARGETS")
            else None,
        )
        if not settings.database_url.startswith(DATABASE_SCHEMES):
            raise ConfigurationError(
                f"DATABASE_URL must start with one of {', '.join(DATABASE_SCHEMES)}; "
                f"got {settings.database_url.split('://')[0]!r}"
            )
        if settings.token_lifetime_minutes <= 0:
            raise ConfigurationError("MEIHUA_TOKEN_LIFETIME_MINUTES must be positive")
        if not 1 <= settings.page_size_max <= 1000:
            raise ConfigurationError("MEIHUA_PAGE_SIZE_MAX must be between 1 and 1000")
        for name, value, least in (
            ("MEIHUA_DUPLICATE_SCAN_MAX", settings.duplicate_scan_max, 2),
            ("MEIHUA_QUERY_DEPTH_MAX", settings.query_depth_max, 1),
            ("MEIHUA_QUERY_ALIASES_MAX", settings.query_aliases_max, 0),
            ("MEIHUA_QUERY_ROOT_FIELDS_MAX", settings.query_root_fields_max, 1),
            ("MEIHUA_QUERY_COST_MAX", settings.query_cost_max, 1),
            ("MEIHUA_QUERY_TOKENS_MAX", settings.query_tokens_max, 100),
            ("MEIHUA_LIST_INPUT_MAX", settings.list_input_max, 1),
            ("MEIHUA_BODY_BYTES_MAX", settings.body_bytes_max, 64 * 1024),
        ):
            if value < least:
                raise ConfigurationError(f"{name} must be at least {least}, got {value}")
        for name, value in (
            ("MEIHUA_REQUEST_TIMEOUT", settings.request_timeout),
            ("MEIHUA_STATEMENT_TIMEOUT", settings.statement_timeout),
        ):
            if not 0 <= value <= 3600:
                raise ConfigurationError(f"{name} must be 0 (off) to 3600 seconds, got {value}")
        if not 10 <= settings.subscriber_queue_size <= 100_000:
            raise ConfigurationError("MEIHUA_SUBSCRIBER_QUEUE_SIZE must be between 10 and 100000")
        if not 1 <= settings.subscription_watch_limit <= 100_000:
            raise ConfigurationError("MEIHUA_SUBSCRIPTION_WATCH_LIMIT must be between 1 and 100000")
        if settings.recycle_interval < 0:
            raise ConfigurationError("MEIHUA_RECYCLE_INTERVAL must be 0 (off) or more seconds")
        if settings.event_retention_hours < 1:
            raise ConfigurationError("MEIHUA_EVENT_RETENTION_HOURS must be at least 1")
        if not 1 <= settings.shutdown_timeout <= 3600:
            raise ConfigurationError("MEIHUA_SHUTDOWN_TIMEOUT must be between 1 and 3600 seconds")
        rate_limit_schemes = ("memory://", "redis://", "rediss://", "unix://")
        if settings.rate_limit_url and not settings.rate_limit_url.startswith(rate_limit_schemes):
            raise ConfigurationError(
                "MEIHUA_RATE_LIMIT_URL must start with one of " + ", ".join(rate_limit_schemes)
            )
        for name, value in (
            ("MEIHUA_OPERATIONS_PER_MINUTE", settings.operations_per_minute),
            ("MEIHUA_LOGIN_FAILURES_PER_USERNAME", settings.login_failures_per_username),
            ("MEIHUA_LOGIN_FAILURES_PER_IP", settings.login_failures_per_ip),
        ):
            if value < 0:
                raise ConfigurationError(f"{name} must be 0 (off) or more")
        if not 1 <= settings.login_backoff_seconds <= settings.login_backoff_max_seconds:
            raise ConfigurationError(
                "MEIHUA_LOGIN_BACKOFF_SECONDS must be at least 1 and at most "
                "MEIHUA_LOGIN_BACKOFF_MAX_SECONDS"
            )
        if not 0 < settings.ws_init_timeout <= 300:
            raise ConfigurationError("MEIHUA_WS_INIT_TIMEOUT must be more than 0 and at most 300")
        if not 1 <= settings.ws_max_operations <= 1000:
            raise ConfigurationError("MEIHUA_WS_MAX_OPERATIONS must be between 1 and 1000")
        if settings.log_format not in LOG_FORMATS:
            raise ConfigurationError(
                f"MEIHUA_LOG_FORMAT must be json or text, got {settings.log_format!r}"
            )
        if settings.log_level not in LOG_LEVELS:
            raise ConfigurationError(
                f"MEIHUA_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, "
                f"got {settings.log_level!r}"
            )
        if settings.metrics_token is not None and len(settings.metrics_token) < MIN_METRICS_TOKEN:
            raise ConfigurationError(
                f"MEIHUA_METRICS_TOKEN must be at least {MIN_METRICS_TOKEN} characters"
            )
        if not 0 < settings.webhook_timeout <= 300:
            raise ConfigurationError("MEIHUA_WEBHOOK_TIMEOUT must be more than 0 and at most 300")
        if not 1 <= settings.webhook_max_attempts <= 50:
            raise ConfigurationError("MEIHUA_WEBHOOK_MAX_ATTEMPTS must be between 1 and 50")
        if not 0 < settings.webhook_backoff <= settings.webhook_backoff_max:
            raise ConfigurationError(
                "MEIHUA_WEBHOOK_BACKOFF must be more than 0 and at most MEIHUA_WEBHOOK_BACKOFF_MAX"
            )
        if not 0 <= settings.webhook_poll_interval <= 3600:
            raise ConfigurationError("MEIHUA_WEBHOOK_POLL_INTERVAL must be 0 (off) to 3600 seconds")
        return settings

    def warn_if_insecure(self) -> None:
        if self.uses_dev_secret:
            logger.warning(
                "\n%s\n  SECRET_KEY is not set: tokens are signed with the public development"
                " key.\n"
                "  Anyone can forge a login. Set SECRET_KEY before real data goes in.\n%s",
                "!" * 78,
                "!" * 78,
            )

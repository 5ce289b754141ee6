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
    introspection: bool = True
    graphiql: bool = True
    timezone: str = "Asia/Shanghai"
    # Live events a subscriber may have waiting before it is closed (it resumes with `after:`).
    subscriber_queue_size: int = 1000
    # Seconds between recycling passes inside each server process; 0 leaves them to
    # `meihua clock`.
    recycle_interval: int = 300
    # How long the event log keeps events (and `after:` can replay them), in hours.
    event_retention_hours: int = 168

    @property
    def production(self) -> bool:
        return self.env == "production"

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
            introspection=_bool(env.get("MEIHUA_INTROSPECTION"), mode != "production"),
            graphiql=_bool(env.get("MEIHUA_GRAPHIQL"), mode != "production"),
            timezone=env.get("MEIHUA_TIMEZONE") or cls.timezone,
            subscriber_queue_size=_int(env, "MEIHUA_SUBSCRIBER_QUEUE_SIZE", 1000),
            recycle_interval=_int(env, "MEIHUA_RECYCLE_INTERVAL", 300),
            event_retention_hours=_int(env, "MEIHUA_EVENT_RETENTION_HOURS", 168),
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
        if not 10 <= settings.subscriber_queue_size <= 100_000:
            raise ConfigurationError("MEIHUA_SUBSCRIBER_QUEUE_SIZE must be between 10 and 100000")
        if settings.recycle_interval < 0:
            raise ConfigurationError("MEIHUA_RECYCLE_INTERVAL must be 0 (off) or more seconds")
        if settings.event_retention_hours < 1:
            raise ConfigurationError("MEIHUA_EVENT_RETENTION_HOURS must be at least 1")
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

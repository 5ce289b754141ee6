"""Database wiring: the tortoise config, migrations and a readiness probe."""

from __future__ import annotations

import socket
from collections.abc import Callable

import asyncpg
from tortoise import Tortoise, connections
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.backends.base.executor import EXECUTOR_CACHE
from tortoise.context import TortoiseContext
from tortoise.exceptions import DBConnectionError
from tortoise.migrations.api import migrate as run_migrations

MODELS_MODULE = "meihua.models"
MIGRATIONS_MODULE = "meihua.migrations"


# Set on every PostgreSQL connection the app opens.
POSTGRES_SERVER_SETTINGS = {
    # The JIT compiles the dashboard's aggregates for longer than they run:
    # bench/dashboard.py measured it adding a third to a month's figures.
    "jit": "off",
}

# How long a SQLite write waits for another process's (a second worker, a CLI
# import) before failing with "database is locked". tortoise already opens
# SQLite in WAL mode, so readers never wait for writers.
SQLITE_BUSY_TIMEOUT_MS = 5000


def connection_config(database_url: str, statement_timeout: float = 0) -> dict:
    """`statement_timeout` (seconds, PostgreSQL only): the server passes its setting;
    CLI jobs (migrations, seeding, a recycle pass) run without one."""
    if database_url.startswith("postgresql://"):
        # tortoise knows the asyncpg scheme as postgres://
        database_url = "postgres://" + database_url.removeprefix("postgresql://")
    connection = expand_db_url(database_url)
    if database_url.startswith("postgres://"):
        credentials = connection["credentials"]
        credentials["server_settings"] = {
            **POSTGRES_SERVER_SETTINGS,
            **credentials.get("server_settings", {}),
        }
        if statement_timeout:
            milliseconds = str(max(1, round(statement_timeout * 1000)))
            credentials["server_settings"]["statement_timeout"] = milliseconds
    if database_url.startswith("sqlite://"):
        connection["engine"] = "meihua.sqlite_engine"
        connection["credentials"].setdefault("busy_timeout", SQLITE_BUSY_TIMEOUT_MS)
    return connection


def tortoise_config(database_url: str, statement_timeout: float = 0) -> dict:
    return {
        "connections": {"default": connection_config(database_url, statement_timeout)},
        "apps": {
            "models": {
                "models": [MODELS_MODULE],
                "default_connection": "default",
                "migrations": MIGRATIONS_MODULE,
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


async def migrate(database_url: str, progress: Callable[[str], object] | None = None) -> None:
    """Bring the database to the latest migration (a no-op when it already is).

    Runs in its own tortoise context so it can be called before or beside the
    app's own one.
    """

    def report(event: str, app_label: str, name: str) -> None:
        if progress is not None and event == "apply_done":
            progress(f"applied {app_label}.{name}")

    async with TortoiseContext():
        await run_migrations(config=tortoise_config(database_url), progress=report)
    # tortoise caches each table's INSERT statement by table name: the one a data
    # migration built from its historical model (e.g. stages without a pipeline)
    # would otherwise be reused by today's model and leave new columns out.
    EXECUTOR_CACHE.clear()


async def open_database(database_url: str, statement_timeout: float = 0) -> None:
    """Open tortoise for the whole process (request tasks included)."""
    await Tortoise.init(
        config=tortoise_config(database_url, statement_timeout), _enable_global_fallback=True
    )


async def close_database() -> None:
    await Tortoise.close_connections()


async def ping() -> None:
    """Raise if the database does not answer."""
    await connections.get("default").execute_query("SELECT 1")


# What asyncpg and tortoise raise when the server cannot be reached, or drops
# the connection or shuts down under a query.
_UNREACHABLE = (
    ConnectionError,
    socket.gaierror,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
    DBConnectionError,
)


def unreachable(error: BaseException | None) -> bool:
    """Whether an error, or one it came from, says the database could not be reached."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, _UNREACHABLE):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


# For tortoise's own CLI (`tortoise makemigrations`, see pyproject.toml): the
# autodetector diffs the models against the migration files, no database needed.
TORTOISE_ORM = tortoise_config("sqlite://:memory:")

"""Database wiring: the tortoise config, migrations and a readiness probe."""

from __future__ import annotations

from collections.abc import Callable

from tortoise import Tortoise, connections
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.context import TortoiseContext
from tortoise.migrations.api import migrate as run_migrations

MODELS_MODULE = "meihua.models"
MIGRATIONS_MODULE = "meihua.migrations"


# Set on every PostgreSQL connection the app opens.
POSTGRES_SERVER_SETTINGS = {
    # The JIT compiles the dashboard's aggregates for longer than they run:
    # bench/dashboard.py measured it adding a third to a month's figures.
    "jit": "off",
}


def connection_config(database_url: str) -> dict:
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
    return connection


def tortoise_config(database_url: str) -> dict:
    return {
        "connections": {"default": connection_config(database_url)},
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


async def open_database(database_url: str) -> None:
    """Open tortoise for the whole process (request tasks included)."""
    await Tortoise.init(config=tortoise_config(database_url), _enable_global_fallback=True)


async def close_database() -> None:
    await Tortoise.close_connections()


async def ping() -> None:
    """Raise if the database does not answer."""
    await connections.get("default").execute_query("SELECT 1")


# For tortoise's own CLI (`tortoise makemigrations`, see pyproject.toml): the
# autodetector diffs the models against the migration files, no database needed.
TORTOISE_ORM = tortoise_config("sqlite://:memory:")

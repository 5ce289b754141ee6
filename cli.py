"""The `meihua` command line (click: subcommands, options and help for free)."""

from __future__ import annotations

import asyncio
import logging
import sys

import click

from meihua import db
from meihua.settings import ConfigurationError, Settings
from meihua.subscriptions.bus import EventBus


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigurationError as error:
        raise click.ClickException(str(error)) from None


def _check_sqlite_file(database_url: str) -> None:
    """Fail clearly on a SQLite file that cannot be opened (e.g. its folder is missing).

    tortoise keeps its connection lock after such a failure, so the command
    would otherwise hang forever without a word.
    """
    if not database_url.startswith("sqlite://"):
        return
    import sqlite3

    from tortoise.backends.base.config_generator import expand_db_url

    path = expand_db_url(database_url)["credentials"]["file_path"]
    try:
        sqlite3.connect(path).close()
    except sqlite3.Error as error:
        raise click.ClickException(
            f"DATABASE_URL: cannot open SQLite file {path!r}: {error}"
        ) from None


def _migrate(settings: Settings) -> None:
    _check_sqlite_file(settings.database_url)
    asyncio.run(db.migrate(settings.database_url, progress=click.echo))


@click.group()
@click.version_option(package_name="meihua")
def main() -> None:
    """Meihua (梅花): a GraphQL CRM backend with real-time collaboration."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1))
def serve(host: str, port: int, workers: int) -> None:
    """Migrate the database if needed, then serve HTTP and WebSocket."""
    import uvicorn

    settings = _settings()
    if workers > 1 and not EventBus(settings.broadcast_url).crosses_processes:
        raise click.UsageError(
            f"--workers {workers} needs a shared event bus: with BROADCAST_URL=memory:// "
            "live events would stay inside the worker that made them, so teammates on the "
            "other workers would miss them. Set BROADCAST_URL=redis://… or use --workers 1."
        )
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    _migrate(settings)
    click.echo(f"Meihua on http://{host}:{port}/graphql ({settings.database_url.split('://')[0]})")
    uvicorn.run(
        "meihua.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        proxy_headers=True,
        log_level="info",
    )


@main.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    _migrate(_settings())
    click.echo("Database is up to date.")


@main.command("create-admin")
@click.option("--username", required=True)
@click.option("--password", required=True)
@click.option("--name", default=None, help="Display name (defaults to the username).")
def create_admin(username: str, password: str, name: str | None) -> None:
    """Create a super admin, or make an existing user one (safe to repeat)."""
    from meihua.resolvers.bootstrap import ensure_super_admin
    from meihua.resolvers.errors import MeihuaError

    settings = _settings()
    _migrate(settings)

    async def run() -> str:
        await db.open_database(settings.database_url)
        try:
            return await ensure_super_admin(username, password, name)
        finally:
            await db.close_database()

    try:
        click.echo(asyncio.run(run()))
    except MeihuaError as error:
        raise click.ClickException(error.message) from None


@main.command()
@click.option("--demo", is_flag=True, help="Fill in a believable demo company.")
@click.option("--customers", default=200, show_default=True, type=click.IntRange(min=1))
@click.option("--seed-value", type=int, default=None, help="Same value, same data.")
def seed(demo: bool, customers: int, seed_value: int | None) -> None:
    """Fill an empty database with demo data (refuses once customers exist)."""
    from meihua.resolvers.demo import DEMO_PASSWORD, refuse_if_not_empty, seed_demo
    from meihua.resolvers.errors import MeihuaError

    if not demo:
        raise click.UsageError("Demo data is the only kind there is: meihua seed --demo.")
    settings = _settings()
    _migrate(settings)

    async def run():
        await db.open_database(settings.database_url)
        try:
            await refuse_if_not_empty()  # before the progress bar shows
            with click.progressbar(length=customers, label="Demo customers") as bar:
                return await seed_demo(customers, seed=seed_value, progress=bar.update)
        finally:
            await db.close_database()

    try:
        summary = asyncio.run(run())
    except MeihuaError as error:
        raise click.ClickException(error.message) from None
    click.echo(", ".join(f"{count} {name}" for name, count in summary.counts.items()))
    click.echo(f"Demo users (password {DEMO_PASSWORD!r}): {', '.join(summary.usernames)}")


@main.command("export-schema")
def export_schema() -> None:
    """Print the GraphQL SDL (what schema.graphql holds)."""
    from meihua.schema import print_sdl

    sys.stdout.write(print_sdl())

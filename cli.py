"""The `meihua` command line (click: subcommands, options and help for free)."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TypeVar

import click

from meihua import db, logs
from meihua.settings import ConfigurationError, Settings
from meihua.subscriptions.bus import EventBus

if TYPE_CHECKING:
    from meihua.resolvers.access import Viewer

T = TypeVar("T")
CSV_KINDS = ["customers", "leads", "contacts"]
AS_HELP = (
    "Act as this user: their permissions, their data scope [default: first active super admin]."
)


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


def _migrate(settings: Settings, err: bool = False) -> None:
    _check_sqlite_file(settings.database_url)
    asyncio.run(db.migrate(settings.database_url, progress=lambda line: click.echo(line, err=err)))


def _with_database(settings: Settings, work: Callable[[], Awaitable[T]]) -> T:
    """Run `work` with the database open; a refusal becomes a plain error message."""
    from meihua.resolvers.errors import MeihuaError

    async def run() -> T:
        await db.open_database(settings.database_url)
        try:
            return await work()
        finally:
            await db.close_database()

    try:
        return asyncio.run(run())
    except MeihuaError as error:
        raise click.ClickException(error.message) from None


async def _acting_as(username: str | None) -> Viewer:
    """The Viewer of `--as`: the named active user, or the first active super admin."""
    from meihua.models import User
    from meihua.resolvers.access import Viewer
    from meihua.resolvers.auth import normalize_username

    if username is None:
        admins = User.filter(is_super_admin=True, is_active=True)
        user = await admins.order_by("id").first()
        if user is None:
            raise click.ClickException(
                "There is no active super admin to act as: name a user with --as, "
                "or create one with meihua create-admin."
            )
    else:
        user = await User.get_or_none(username=normalize_username(username))
        if user is None:
            raise click.ClickException(f"There is no user {username!r}.")
        if not user.is_active:
            raise click.ClickException(f"User {username!r} is deactivated.")
    return await Viewer.load(user)


def _progress_bar(stack: ExitStack, label: str) -> Callable[[int, int], None]:
    """An import's progress callback, drawing its bar once the rows are counted."""
    bar = None
    shown = 0

    def progress(settled: int, total: int) -> None:
        nonlocal bar, shown
        if bar is None:
            bar = stack.enter_context(click.progressbar(length=total, label=label, file=sys.stderr))
        bar.update(settled - shown)
        shown = settled

    return progress


@click.group()
@click.version_option(package_name="meihua")
def main() -> None:
    """Meihua (梅花): a GraphQL CRM backend with real-time collaboration."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1))
def serve(host: str, port: int, workers: int) -> None:
    """Migrate the database if needed, then serve HTTP and WebSocket.

    On SIGTERM it stops taking connections, closes WebSockets with 1001 and
    finishes the requests in flight (MEIHUA_SHUTDOWN_TIMEOUT seconds at most).
    """
    import signal

    import uvicorn

    settings = _settings()
    if workers > 1 and not EventBus(settings.broadcast_url).crosses_processes:
        raise click.UsageError(
            f"--workers {workers} needs a shared event bus: with BROADCAST_URL=memory:// "
            "live events would stay inside the worker that made them, so teammates on the "
            "other workers would miss them. Set BROADCAST_URL=redis://… or use --workers 1."
        )
    logs.configure(settings)
    _migrate(settings)
    click.echo(f"Meihua on http://{host}:{port}/graphql ({settings.database_url.split('://')[0]})")
    # Once uvicorn has drained after SIGTERM, it raises the signal again for the
    # handler it found: a graceful stop then ends with status 0, not as killed.
    signal.signal(signal.SIGTERM, _stopped)
    with _shared_metrics(workers):
        uvicorn.run(
            "meihua.app:serve_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            proxy_headers=True,
            log_config=logs.dict_config(settings),
            log_level=settings.log_level.lower(),
            access_log=False,  # meihua.web.request_log writes them, with request ids
            timeout_graceful_shutdown=settings.shutdown_timeout,
            # A WebSocket message is held whole before it is read, like a request body.
            ws_max_size=settings.body_bytes_max,
        )


def _stopped(signum: int, frame: object) -> None:
    raise SystemExit(0)


@contextmanager
def _shared_metrics(workers: int) -> Iterator[None]:
    """With several workers, a fresh folder for their Prometheus figures (see meihua.metrics)."""
    if workers == 1 or os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        yield
        return
    with tempfile.TemporaryDirectory(prefix="meihua-metrics-") as folder:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
        try:
            yield
        finally:
            del os.environ["PROMETHEUS_MULTIPROC_DIR"]


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


async def _with_event_bus(settings: Settings, work: Callable[[], Awaitable[T]]) -> T:
    """Run `work` with its events ringing the bus, so servers deliver them at once."""
    from meihua.subscriptions import events

    bus = EventBus(settings.broadcast_url)
    await bus.connect()
    events.use_bus(bus)
    try:
        return await work()
    finally:
        events.use_bus(None)
        await bus.disconnect()


@main.command()
def recycle() -> None:
    """Send the customers the pools' rules say are due back to their pools, now.

    The servers do this by themselves every MEIHUA_RECYCLE_INTERVAL seconds;
    this is one pass on demand. Owners of customers due soon are warned, and
    expired customer-team seats are cleared as the servers' clock does.
    """
    from meihua.resolvers.recycling import recycle as recycle_pass
    from meihua.resolvers.team_expiry import clear_expired_seats

    async def run():
        return await recycle_pass(), await clear_expired_seats()

    settings = _settings()
    _migrate(settings)
    report, expired = _with_database(settings, lambda: _with_event_bus(settings, run))
    if not report.moved:
        click.echo("Nothing to recycle.")
    else:
        total = len(report.moved)
        click.echo(f"Moved {total} customer{'s' if total != 1 else ''} back to their pools:")
        for (pool, rule), count in report.counts.items():
            moved = [c for c in report.moved if (c.pool, c.rule) == (pool, rule)]
            click.echo(f"  {pool}, {moved[0].reason}: {count}")
            for customer in moved:
                click.echo(f"    #{customer.id} {customer.name} (was {customer.previous_owner}'s)")
    if report.warned:
        click.echo(f"Warned the owners of {report.warned} customers due soon.")
    if expired:
        click.echo(f"Cleared {len(expired)} expired team seat{'s' if len(expired) != 1 else ''}.")


@main.command()
def clock() -> None:
    """Recycle and prune the event log on a schedule, in the foreground.

    For the Procfile's `clock:` process. It runs every MEIHUA_RECYCLE_INTERVAL
    seconds (300 when that is 0, which only turns the servers' own loop off)
    until it gets SIGINT or SIGTERM.
    """
    import signal
    from dataclasses import replace

    from meihua.clock import run_periodically

    settings = _settings()
    logs.configure(settings)
    _migrate(settings)
    settings = replace(settings, recycle_interval=settings.recycle_interval or 300)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        click.echo(f"Meihua clock: recycling every {settings.recycle_interval} s")
        await run_periodically(settings, stop, at_once=True)

    _with_database(settings, lambda: _with_event_bus(settings, run))
    click.echo("Meihua clock stopped.")


@main.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace PATH if it exists.")
def backup(path: Path, force: bool) -> None:
    """Copy the SQLite database to PATH, consistent while servers write to it.

    PostgreSQL databases are backed up with pg_dump; for them this prints
    the command to run.
    """
    from meihua.backup import BackupError, backup_sqlite, pg_dump_command

    settings = _settings()
    if not settings.database_url.startswith("sqlite://"):
        raise click.ClickException(
            "meihua backup copies SQLite databases; back up PostgreSQL with pg_dump "
            "(password in PGPASSWORD or ~/.pgpass):\n"
            f"  {pg_dump_command(settings.database_url, path)}"
        )
    try:
        report = backup_sqlite(settings.database_url, path, force=force)
    except BackupError as error:
        raise click.ClickException(str(error)) from None
    total = sum(report.rows.values())
    click.echo(
        f"Backed up to {report.path}: {report.size:,} bytes, "
        f"{total:,} rows in {len(report.rows)} tables."
    )
    for table, count in report.rows.items():
        if count:
            click.echo(f"  {table}: {count:,}")


@main.command("export-schema")
def export_schema() -> None:
    """Print the GraphQL SDL (what schema.graphql holds)."""
    from meihua.schema import print_sdl

    sys.stdout.write(print_sdl())


@main.command("export")
@click.argument("kind", type=click.Choice(CSV_KINDS))
@click.option("--as", "username", metavar="USERNAME", help=AS_HELP)
@click.option(
    "--output",
    "-o",
    metavar="FILE",
    help="Where to write; - for standard output [default: KIND-YYYYMMDD-HHMMSS.csv].",
)
def export_csv(kind: str, username: str | None, output: str | None) -> None:
    """Write every customer, lead or contact the user sees as CSV.

    The same file the API's export gives (UTF-8 with a BOM, for Excel), but
    without its 10,000-row cap: the rows are read in batches.
    """
    from meihua.resolvers import csv_io, exports

    export = exports.EXPORTS[kind]
    output = output or exports.filename(kind)
    to_stdout = output == "-"
    settings = _settings()
    _migrate(settings, err=to_stdout)  # standard output may be the file

    async def run() -> int:
        viewer = await _acting_as(username)
        query = await exports.matching(export, viewer)
        total = await query.count()
        written = 0
        # Atomic: a failed export leaves no half-written file behind.
        with (
            click.open_file(output, "wb", atomic=True) as out,
            click.progressbar(length=total, label=f"Exporting {kind}", file=sys.stderr) as bar,
        ):
            out.write(csv_io.encode(export.columns, []).encode())
            async for rows in exports.batches(export, viewer, query):
                out.write(csv_io.encode_rows(rows).encode())
                written += len(rows)
                bar.update(len(rows))
        return written

    written = _with_database(settings, run)
    where = "standard output" if to_stdout else output
    click.echo(f"Exported {written} {kind} to {where}.", err=to_stdout)


@main.command("import")
@click.argument("kind", type=click.Choice(CSV_KINDS))
@click.argument("file", type=click.File("rb"))
@click.option("--as", "username", metavar="USERNAME", help=AS_HELP)
@click.option("--dry-run", is_flag=True, help="Check every row, write nothing.")
def import_csv(kind: str, file: BinaryIO, username: str | None, dry_run: bool) -> None:
    """Import customers, leads or contacts from a CSV FILE (- for standard input).

    The rules are the API's: the header names the columns as `meihua export`
    writes them; UTF-8 with or without a BOM, or GBK; at most 10,000 rows
    and 5 MB.
    Rows that break a rule are listed with their line numbers and skipped,
    and all the others are imported, in one transaction, owned by the user.
    The exit status is 1 when any row was rejected: check a file with
    --dry-run first to import all or nothing.
    """
    from meihua.resolvers import csv_io, imports
    from meihua.resolvers.errors import MeihuaError

    importer = {
        "customers": imports.import_customers,
        "leads": imports.import_leads,
        "contacts": imports.import_contacts,
    }[kind]
    try:
        text = csv_io.decode(file.read())
    except MeihuaError as error:
        raise click.ClickException(error.message) from None
    settings = _settings()
    _migrate(settings)

    async def run() -> imports.ImportReport:
        viewer = await _acting_as(username)
        with ExitStack() as stack:
            label = f"Checking {kind}" if dry_run else f"Importing {kind}"
            return await importer(viewer, text, None, dry_run, _progress_bar(stack, label))

    report = _with_database(settings, run)
    if dry_run:
        click.echo(f"Would import {report.imported} of {report.total} {kind} (dry run: no change).")
    else:
        click.echo(f"Imported {report.imported} of {report.total} {kind}.")
    if report.errors:
        click.echo(f"{len(report.errors)} rejected:", err=True)
        for error in report.errors:
            field = f" ({error.field})" if error.field else ""
            click.echo(f"  line {error.line}{field}: {error.message}", err=True)
        sys.exit(1)

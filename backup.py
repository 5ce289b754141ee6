"""`meihua backup`: a consistent copy of a SQLite database while servers write to it.

SQLite's online backup API copies the database from one read snapshot. In WAL
mode a reader never blocks writers, so the servers keep committing while the
copy is taken, and the copy holds every transaction committed before it began
and nothing of any that came later. PostgreSQL has pg_dump for the same job;
`pg_dump_command` spells it out for the configured database.
"""

from __future__ import annotations

import os
import shlex
import sqlite3
import tempfile
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from tortoise.backends.base.config_generator import expand_db_url

from meihua.db import SQLITE_BUSY_TIMEOUT_MS


class BackupError(RuntimeError):
    """The backup was not made; the message says why."""


@dataclass(frozen=True)
class BackupReport:
    path: Path
    size: int  # bytes
    rows: dict[str, int]  # table → rows, as the copy holds them


def backup_sqlite(database_url: str, target: Path, *, force: bool = False) -> BackupReport:
    """Copy the SQLite database to `target` (replacing it only with `force`)."""
    source = Path(expand_db_url(database_url)["credentials"]["file_path"])
    if not source.is_file():
        raise BackupError(f"There is no SQLite database at {str(source)!r} to back up.")
    if target.exists() and not force:
        raise BackupError(f"{target} already exists; pass --force to replace it.")
    if target.exists() and target.resolve() == source.resolve():
        raise BackupError("The backup would overwrite the database itself.")
    if not target.parent.is_dir():
        raise BackupError(f"The folder {str(target.parent)!r} does not exist.")
    # Written beside the target and renamed at the end: an interrupted backup
    # never leaves a half-written file, nor destroys the one --force replaces.
    handle, partial = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=".partial", dir=target.parent
    )
    os.close(handle)
    try:
        rows = _copy(source, Path(partial))
        os.replace(partial, target)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    return BackupReport(target, target.stat().st_size, rows)


def _copy(source: Path, partial: Path) -> dict[str, int]:
    with (
        closing(sqlite3.connect(source, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)) as live,
        closing(sqlite3.connect(partial)) as copy,
    ):
        # All pages in one step: one snapshot. (Copied step by step, the
        # backup would start over whenever a server wrote between steps.)
        live.backup(copy)
        # One self-contained file, no -wal or -shm beside it.
        copy.execute("PRAGMA journal_mode=DELETE")
        check = copy.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise BackupError(f"The copy failed SQLite's integrity check: {check}")
        tables = [
            name
            for (name,) in copy.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        return {
            table: copy.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0] for table in tables
        }


def pg_dump_command(database_url: str, target: Path) -> str:
    """The pg_dump command that backs up this PostgreSQL database to `target`.

    The password is left out of the printed URL (give it in PGPASSWORD or
    ~/.pgpass), and so is the query string, which holds tortoise's pool
    options that libpq would refuse.
    """
    parts = urlsplit(database_url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    url = urlunsplit(("postgresql", netloc, parts.path, "", ""))
    return shlex.join(["pg_dump", "--format=custom", f"--file={target}", url])

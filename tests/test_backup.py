"""`meihua backup`: a consistent SQLite copy while the app writes; pg_dump for PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

MEIHUA = str(Path(sys.executable).with_name("meihua"))
CREATE = "mutation($name: String!) { createCustomer(input: {name: $name}) { name } }"


def _backup(*args: str, database_url: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": database_url}
    return subprocess.run(
        [MEIHUA, "backup", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )


@pytest.mark.sqlite_only
async def test_backup_while_the_app_writes_holds_whole_transactions(db, gql, org, tmp_path):
    admin = await org.admin()
    written: list[str] = []
    stop = asyncio.Event()

    async def keep_writing() -> None:
        while not stop.is_set():
            name = f"Customer {len(written):04}"
            await gql.ok(CREATE, {"name": name}, as_user=admin)
            written.append(name)

    writer = asyncio.create_task(keep_writing())
    while len(written) < 20:
        await asyncio.sleep(0.01)
    before = len(written)
    env = {**os.environ, "DATABASE_URL": db}
    process = await asyncio.create_subprocess_exec(
        MEIHUA, "backup", "copy.sqlite3", cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    stop.set()
    await writer
    assert process.returncode == 0, err.decode()
    assert len(written) > before, "the app kept writing during the backup"

    with closing(sqlite3.connect(tmp_path / "copy.sqlite3")) as copy:
        names = [n for (n,) in copy.execute("SELECT name FROM customer ORDER BY id")]
        logged = copy.execute(
            "SELECT count(*) FROM operation_log "
            "WHERE record_type = 'CUSTOMER' AND action = 'CREATE'"
        ).fetchone()[0]
        check = copy.execute("PRAGMA integrity_check").fetchone()[0]
    assert check == "ok"
    # Everything committed before the backup began, in order, then nothing torn:
    # each customer in the copy comes with its operation-log row.
    assert before <= len(names) <= len(written)
    assert names == written[: len(names)]
    assert logged == len(names)
    assert f"customer: {len(names)}" in out.decode()
    assert "bytes" in out.decode()
    assert not list(tmp_path.glob("*.partial")) and not list(tmp_path.glob("copy.sqlite3-*"))


@pytest.mark.sqlite_only
async def test_backup_replaces_an_existing_file_only_with_force(db, tmp_path):
    target = tmp_path / "copy.sqlite3"
    target.write_text("last night's backup")

    refused = _backup("copy.sqlite3", database_url=db, cwd=tmp_path)
    assert refused.returncode == 1
    assert "already exists; pass --force" in refused.stderr
    assert target.read_text() == "last night's backup"

    forced = _backup("copy.sqlite3", "--force", database_url=db, cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    with closing(sqlite3.connect(target)) as copy:
        assert copy.execute("SELECT count(*) FROM role").fetchone()[0] > 0


def test_backup_of_postgres_prints_the_pg_dump_command_without_the_password(tmp_path):
    url = "postgres://crm:s3cret@db.internal:5433/meihua?maxsize=20"
    result = _backup("crm.dump", database_url=url, cwd=tmp_path)
    assert result.returncode == 1
    assert (
        "pg_dump --format=custom --file=crm.dump postgresql://crm@db.internal:5433/meihua"
        in result.stderr
    )
    assert "s3cret" not in result.stderr
    assert not (tmp_path / "crm.dump").exists()

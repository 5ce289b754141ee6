"""How the app opens its database."""

from __future__ import annotations

import asyncio
import sqlite3
import threading

import pytest
from tortoise import connections
from tortoise.backends.base.config_generator import expand_db_url

from meihua import db as meihua_db
from meihua.app import create_app
from meihua.db import SQLITE_BUSY_TIMEOUT_MS
from meihua.settings import Settings


@pytest.mark.postgres_only
async def test_postgres_connections_run_without_jit(db):
    _, rows = await connections.get("default").execute_query("SHOW jit")
    assert rows[0]["jit"] == "off"


@pytest.mark.sqlite_only
async def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(db):
    conn = connections.get("default")
    _, journal = await conn.execute_query("PRAGMA journal_mode")
    _, timeout = await conn.execute_query("PRAGMA busy_timeout")
    assert journal[0][0] == "wal"
    assert timeout[0][0] == SQLITE_BUSY_TIMEOUT_MS


@pytest.mark.sqlite_only
async def test_a_sqlite_mutation_waits_for_another_process_writing(db, gql, org):
    """Another writer (a CLI import, a second worker) holds the lock: the mutation
    waits its turn instead of failing with "database is locked"."""
    admin = await org.admin()
    path = expand_db_url(db)["credentials"]["file_path"]
    locked, release = threading.Event(), threading.Event()

    def hold_the_write_lock() -> None:
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            locked.set()
            release.wait(10)
            other.execute("COMMIT")
        finally:
            other.close()

    holder = asyncio.create_task(asyncio.to_thread(hold_the_write_lock))
    await asyncio.to_thread(locked.wait, 10)
    asyncio.get_running_loop().call_later(0.5, release.set)
    result = await gql(
        'mutation { createCustomer(input: {name: "Waited Ltd"}) { name } }', as_user=admin
    )
    await holder
    assert not result.errors, result.errors
    assert result.data == {"createCustomer": {"name": "Waited Ltd"}}


async def test_the_database_is_closed_even_when_an_earlier_shutdown_step_fails(db, monkeypatch):
    calls: list[str] = []

    async def opened(*args) -> None:
        calls.append("open")

    async def closed() -> None:
        calls.append("close")

    monkeypatch.setattr(meihua_db, "open_database", opened)
    monkeypatch.setattr(meihua_db, "close_database", closed)
    # The hub reads the event log of the test's database; opening and closing are recorded.
    application = create_app(Settings(database_url=db, recycle_interval=0))

    async def broken_stop() -> None:
        raise RuntimeError("the hub failed to stop")

    monkeypatch.setattr(application.state.hub, "stop", broken_stop)
    with pytest.raises(RuntimeError, match="hub failed"):
        async with application.router.lifespan_context(application):
            pass
    assert calls == ["open", "close"]

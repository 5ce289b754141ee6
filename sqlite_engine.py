"""tortoise's SQLite backend, with transactions that take the write lock up front.

SQLite has one writer at a time. tortoise begins transactions DEFERRED, so a
mutation that reads before it writes (nearly all of them) asks for the write
lock halfway through; if another process (a second worker, `meihua import`)
holds it then, SQLite fails the transaction at once with "database is locked"
and never applies the busy timeout. BEGIN IMMEDIATE waits for the lock, up to
the busy timeout, before the transaction reads anything.

Dates and times come back from sqlite3 already parsed (C `fromisoformat`)
rather than as text tortoise parses with the pure-Python iso8601 package:
on a list page of customers with their contacts and opportunities that
parsing was a tenth of the request's CPU time.

db.connection_config names this module as the engine of every SQLite URL.
"""

from __future__ import annotations

import sqlite3
from datetime import date, datetime

import aiosqlite
from tortoise.backends.base.client import TransactionContext
from tortoise.backends.sqlite.client import (
    SqliteClient,
    SqliteTransactionContext,
    SqliteTransactionWrapper,
)
from tortoise.exceptions import TransactionManagementError


class ImmediateTransactionWrapper(SqliteTransactionWrapper):
    async def begin(self) -> None:
        try:
            await self._connection.commit()  # as tortoise does: end any implicit transaction
            await self._connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            raise TransactionManagementError(error) from error


class ImmediateSqliteClient(SqliteClient):
    async def create_connection(self, with_db: bool) -> None:
        if self._connection is None:
            # tortoise's own steps, with declared types parsed (see parse_column).
            self._connection = await aiosqlite.connect(
                self.filename, isolation_level=None, detect_types=sqlite3.PARSE_DECLTYPES
            )
            self._connection._conn.row_factory = sqlite3.Row
            for pragma, value in self.pragmas.items():
                cursor = await self._connection.execute(f"PRAGMA {pragma}={value}")
                await cursor.close()
            await self._post_connect()

    def _in_transaction(self) -> TransactionContext:
        return SqliteTransactionContext(ImmediateTransactionWrapper(self), self._lock)


def _parse_timestamp(value: bytes) -> datetime:
    return datetime.fromisoformat(value.decode())


def _parse_date(value: bytes) -> date:
    return date.fromisoformat(value.decode())


# Keyed by the column types tortoise declares for DatetimeField and DateField;
# these replace sqlite3's own (deprecated) converters of the same names.
sqlite3.register_converter("TIMESTAMP", _parse_timestamp)
sqlite3.register_converter("DATE", _parse_date)


client_class = ImmediateSqliteClient

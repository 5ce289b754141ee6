"""tortoise's SQLite backend, with transactions that take the write lock up front.

SQLite has one writer at a time. tortoise begins transactions DEFERRED, so a
mutation that reads before it writes (nearly all of them) asks for the write
lock halfway through; if another process (a second worker, `meihua import`)
holds it then, SQLite fails the transaction at once with "database is locked"
and never applies the busy timeout. BEGIN IMMEDIATE waits for the lock, up to
the busy timeout, before the transaction reads anything.

db.connection_config names this module as the engine of every SQLite URL.
"""

from __future__ import annotations

import sqlite3

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
    def _in_transaction(self) -> TransactionContext:
        return SqliteTransactionContext(ImmediateTransactionWrapper(self), self._lock)


client_class = ImmediateSqliteClient

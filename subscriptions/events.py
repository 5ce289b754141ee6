"""Domain events: recorded with the change, published once it commits.

Every change someone else may want to see live goes through `record_event`
inside `transaction()`. The event rows are written in the same transaction as
the change (so an event exists exactly when its change does); after the
commit the bus rings, and every process's hub reads the new rows from the log
and delivers them to the subscribers allowed to see them. A rolled-back
mutation publishes nothing.

Cursors are the log's ids, and a reader must never see id 11 before id 10:
a client that got 11 and resumes `after: 11` would miss 10 for good. So the
rows are written last, just before the commit, under a lock held until the
commit: ids become visible in the order they were handed out. SQLite has a
single writer and needs no lock.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from meihua.models import Event
from meihua.resolvers.raw_sql import execute
from meihua.subscriptions.bus import EventBus

logger = logging.getLogger("meihua.events")

EVENTS_CHANNEL = "meihua.events"

_pending: contextvars.ContextVar[list[Event | EventQuery] | None] = contextvars.ContextVar(
    "meihua_pending_events", default=None
)
_bus: EventBus | None = None


def use_bus(bus: EventBus | None) -> None:
    """Where committed events go; the app sets it at start-up (None: only persisted)."""
    global _bus
    _bus = bus


@asynccontextmanager
async def transaction() -> AsyncIterator[None]:
    """One mutation's transaction. Nested calls join the outer one."""
    if _pending.get() is not None:
        yield
        return
    pending: list[Event | EventQuery] = []
    token = _pending.set(pending)
    try:
        async with in_transaction() as connection:
            yield
            await _write_in_commit_order(connection, pending)
    finally:
        _pending.reset(token)
    await _publish(pending)


# Any constant works; it only has to be the same in every process.
_EVENT_LOG_LOCK = 0x6D65_6968


async def _write_in_commit_order(
    connection: BaseDBAsyncClient, pending: list[Event | EventQuery]
) -> None:
    if not pending:
        return
    if connection.capabilities.dialect == "postgres":
        await connection.execute_query("SELECT pg_advisory_xact_lock($1)", [_EVENT_LOG_LOCK])
    if events := [event for event in pending if isinstance(event, Event)]:
        await Event.bulk_create(events, using_db=connection)
    for query in pending:
        if isinstance(query, EventQuery):
            await execute(query.sql, query.params)


async def record_event(
    kind: str,
    *,
    record_type: str,
    record_id: int,
    owner_id: int | None = None,
    customer_id: int | None = None,
    recipient_id: int | None = None,
    actor_id: int | None = None,
    payload: dict[str, Any] | None = None,
) -> Event:
    """Add an event to the current transaction; it is published after commit."""
    pending = _pending.get()
    if pending is None:
        raise RuntimeError("record_event must run inside subscriptions.events.transaction()")
    event = Event(
        kind=kind,
        record_type=record_type,
        record_id=record_id,
        owner_id=owner_id,
        customer_id=customer_id,
        recipient_id=recipient_id,
        actor_id=actor_id,
        payload=payload or {},
        created_at=datetime.now(UTC),
    )
    pending.append(event)
    return event


@dataclass(frozen=True)
class EventQuery:
    """Events written by one INSERT … SELECT: for the many rows of a set-based change."""

    kind: str
    sql: str  # `?` placeholders (raw_sql)
    params: Sequence[Any] = ()


def record_events_by_query(query: EventQuery) -> None:
    """Add an INSERT of event rows to the current transaction, run with the other events.

    They are written after the transaction's `record_event` rows.
    """
    pending = _pending.get()
    if pending is None:
        raise RuntimeError("record_events_by_query must run inside transaction()")
    pending.append(query)


async def _publish(events: list[Event | EventQuery]) -> None:
    """Ring every process's hub once; they read the new events from the log."""
    if _bus is None or not events:
        return
    try:
        await _bus.publish(EVENTS_CHANNEL, events[-1].kind)
    except Exception:
        # The change is committed and its events are in the log: hubs poll
        # the log as well, so a bus hiccup delays delivery but loses nothing.
        logger.exception("could not ring the event bus")

"""Domain events: recorded with the change, published once it commits.

Every change someone else may want to see live goes through `record_event`
inside `transaction()`. The event row is written in the same transaction as
the change (so an event exists exactly when its change does); after the
commit its cursor is published on the bus, and the real-time layer delivers
it to the subscribers allowed to see it. A rolled-back mutation publishes
nothing.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from tortoise.transactions import in_transaction

from meihua.models import Event
from meihua.subscriptions.bus import EventBus

logger = logging.getLogger("meihua.events")

EVENTS_CHANNEL = "meihua.events"

_pending: contextvars.ContextVar[list[Event] | None] = contextvars.ContextVar(
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
    pending: list[Event] = []
    token = _pending.set(pending)
    try:
        async with in_transaction():
            yield
    finally:
        _pending.reset(token)
    await _publish(pending)


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
    """Write an event in the current transaction; it is published after commit."""
    pending = _pending.get()
    if pending is None:
        raise RuntimeError("record_event must run inside subscriptions.events.transaction()")
    event = await Event.create(
        kind=kind,
        record_type=record_type,
        record_id=record_id,
        owner_id=owner_id,
        customer_id=customer_id,
        recipient_id=recipient_id,
        actor_id=actor_id,
        payload=payload or {},
    )
    pending.append(event)
    return event


async def _publish(events: list[Event]) -> None:
    if _bus is None:
        return
    for event in events:
        try:
            await _bus.publish(EVENTS_CHANNEL, str(event.id))
        except Exception:
            # The change is committed and the event persisted: subscribers
            # catch up from the log on replay, so a bus hiccup loses nothing.
            logger.exception("could not publish event %s", event.id)

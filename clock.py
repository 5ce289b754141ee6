"""The clock: the periodic jobs, recycling customers, clearing expired team
seats and pruning the event and webhook logs.

Every server process runs them in the background every
`MEIHUA_RECYCLE_INTERVAL` seconds. A deployment with many workers can run one
`meihua clock` process instead (the Procfile's `clock:`) and set the interval
to 0 on the web workers; running both is safe, as a recycling pass moves each
customer once however many run at the same time, and an expired seat is
cleared (and announced) once.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from meihua.models import Event, WebhookDelivery
from meihua.resolvers.recycling import recycle
from meihua.resolvers.team_expiry import clear_expired_seats
from meihua.settings import Settings

logger = logging.getLogger("meihua.clock")


async def prune_events(retention: timedelta, now: datetime | None = None) -> int:
    """Delete the events older than the retention window; `after:` replays no further."""
    cutoff = (now or datetime.now(UTC)) - retention
    return await Event.filter(created_at__lt=cutoff).delete()


async def prune_webhook_deliveries(retention: timedelta, now: datetime | None = None) -> int:
    """Delete the finished webhook deliveries older than the retention window."""
    cutoff = (now or datetime.now(UTC)) - retention
    return await WebhookDelivery.filter(created_at__lt=cutoff, next_attempt_at=None).delete()


async def tick(settings: Settings) -> None:
    """One round of the jobs; one failing does not keep the others from running."""
    try:
        await recycle()
    except Exception:
        logger.exception("recycling failed; it runs again next round")
    try:
        await clear_expired_seats()
    except Exception:
        logger.exception("clearing expired team seats failed; it runs again next round")
    retention = timedelta(hours=settings.event_retention_hours)
    try:
        await prune_webhook_deliveries(retention)
    except Exception:
        logger.exception("pruning the webhook deliveries failed; it runs again next round")
    try:
        pruned = await prune_events(retention)
    except Exception:
        logger.exception("pruning the event log failed; it runs again next round")
    else:
        if pruned:
            logger.info(
                "pruned %d events older than %d hours", pruned, settings.event_retention_hours
            )


async def run_periodically(
    settings: Settings, stop: asyncio.Event, *, at_once: bool = False
) -> None:
    """Run the jobs every `settings.recycle_interval` seconds until `stop` is set.

    The first round comes one interval after the start unless `at_once`: a
    restarting server should not hold a pass up on the way in.
    """
    if not at_once and await _stopped(stop, settings.recycle_interval):
        return
    while True:
        await tick(settings)
        if await _stopped(stop, settings.recycle_interval):
            return


async def _stopped(stop: asyncio.Event, seconds: float) -> bool:
    """Wait up to `seconds`; True as soon as `stop` is set."""
    if stop.is_set():
        return True
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return False
    return True


class Clock:
    """The jobs as a background task of a server process; off when the interval is 0."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self.settings.recycle_interval > 0:
            self._stop = asyncio.Event()
            self._task = asyncio.create_task(
                run_periodically(self.settings, self._stop), name="meihua-clock"
            )

    async def stop(self) -> None:
        """Let a round under way finish, then end."""
        if self._task is not None:
            self._stop.set()
            await self._task
            self._task = None

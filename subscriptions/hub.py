"""Each process's reader of the event log, fanning events out to its subscribers.

The log is the truth and the bus only a doorbell: when any process commits
events it rings the bus, and every hub reads what is new from the log, in
cursor order, once for all its subscribers. A lost Redis connection therefore
loses nothing: the hub also polls the log, so at worst delivery waits for the
next poll.

For each batch the hub loads, once, where the records sit now and who is on
their customers' teams, and each subscriber's `Sight` decides what they may
see. Every subscriber gets a bounded queue; one that falls too far behind is
closed with LIMIT_EXCEEDED and resumes with `after:` from its last cursor.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from meihua import metrics
from meihua.models import Event
from meihua.resolvers.access import Viewer
from meihua.resolvers.errors import BadUserInput, LimitExceeded, MeihuaError, Unauthenticated
from meihua.resolvers.sight import RecordState, Sight, Teams, load_states, load_teams
from meihua.subscriptions.bus import EventBus
from meihua.subscriptions.events import EVENTS_CHANNEL

logger = logging.getLogger("meihua.events")

# Events after which what people may see has to be worked out again.
SIGHT_CHANGES = ("org.", "user.", "pool.changed")

BATCH = 500


@dataclass
class Batch:
    """Events read together, with what visibility needs to know about their records."""

    states: dict[tuple[str, int], RecordState]
    teams: Teams

    @classmethod
    async def load(cls, events: list[Event]) -> Batch:
        states = await load_states({ref for e in events if (ref := visibility_record(e))})
        customers = {e.customer_id for e in events} | {s.customer_id for s in states.values()}
        customers.discard(None)
        return cls(states, await load_teams(customers))

    def state_of(self, event: Event) -> RecordState:
        """Where the event's record sits now; as the event left it if it is gone."""
        ref = visibility_record(event)
        if ref is not None and ref in self.states:
            return self.states[ref]
        return RecordState(event.owner_id, event.customer_id, event.payload.get("pool_id"))


def visibility_record(event: Event) -> tuple[str, int] | None:
    """The record whose visibility decides who may see the event."""
    if event.record_type in ("CUSTOMER", "OPPORTUNITY", "CONTRACT", "LEAD"):
        return event.record_type, event.record_id
    if event.customer_id is not None:  # contacts, tasks: with their customer
        return "CUSTOMER", event.customer_id
    return None


def may_see(sight: Sight, event: Event, batch: Batch) -> bool:
    """The access layer's rule for the event's record, as it sits now."""
    ref = visibility_record(event)
    if ref is None:
        return sight.sees_everything
    return sight.sees(ref[0], batch.state_of(event), batch.teams)


Accept = Callable[[Sight, Event, Batch], bool]
"""Whether a subscriber wants, and may see, one event."""


@dataclass(eq=False)
class Feed:
    """One subscription's queue of events, fed by the hub."""

    user_id: int
    accept: Accept
    start: int
    # Signing out everywhere (deactivation, new password) ends the feed.
    token_version: int
    queue: asyncio.Queue[Event | None] = field(default_factory=asyncio.Queue)
    error: MeihuaError | None = None

    def offer(self, event: Event) -> None:
        if self.error is not None:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.fail(
                LimitExceeded(
                    "You fell too far behind the live events; subscribe again with "
                    "`after:` set to the last cursor you received."
                )
            )

    def fail(self, error: MeihuaError) -> None:
        """End the feed: what is queued is dropped, the reader gets the error next."""
        self.error = error
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)

    async def next(self) -> Event:
        event = await self.queue.get()
        if event is None:
            raise self.error or Unauthenticated("Subscribe again.")
        return event


class EventHub:
    def __init__(self, bus: EventBus, *, queue_size: int = 1000, poll_interval: float = 1.0):
        self.bus = bus
        self.queue_size = queue_size
        self.poll_interval = poll_interval
        self.position = 0
        self._feeds: set[Feed] = set()
        self._sights: dict[int, Sight] = {}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        latest = await Event.all().order_by("-id").first().values_list("id", flat=True)
        self.position = latest or 0
        self._tasks = [
            asyncio.create_task(self._listen(), name="meihua-hub-doorbell"),
            asyncio.create_task(self._run(), name="meihua-hub"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for feed in list(self._feeds):
            feed.fail(Unauthenticated("The server is shutting down; subscribe again."))
        self._feeds.clear()

    @property
    def subscriber_count(self) -> int:
        return len(self._feeds)

    def viewer_of(self, user_id: int) -> Viewer | None:
        """The user as the hub currently sees them (roles and scope up to date)."""
        sight = self._sights.get(user_id)
        return sight.viewer if sight is not None else None

    # -- subscribers ---------------------------------------------------------

    async def follow(self, user_id: int, accept: Accept, after: str | None) -> AsyncIterator[Event]:
        """Events the user wants and may see: missed ones after `after`, then live ones.

        The feed is registered before the replay reads the log, and the
        replay stops where live delivery starts, so nothing falls between
        the two and nothing comes twice.
        """
        resume_from = await self._resume_point(after)
        sight = self._sights.get(user_id) or await Sight.load(user_id)
        self._sights.setdefault(user_id, sight)
        feed = Feed(
            user_id,
            accept,
            self.position,
            sight.token_version,
            asyncio.Queue(maxsize=self.queue_size),
        )
        self._feeds.add(feed)
        last = resume_from
        try:
            if resume_from is not None:
                async for event in self._replay(feed, resume_from):
                    last = event.id
                    yield event
            while True:
                try:
                    event = await feed.next()
                except LimitExceeded as error:
                    if last is not None:
                        error.extensions["cursor"] = str(last)
                    raise
                last = event.id
                yield event
        finally:
            self._feeds.discard(feed)
            if not any(f.user_id == user_id for f in self._feeds):
                self._sights.pop(user_id, None)

    async def _resume_point(self, after: str | None) -> int | None:
        if after is None:
            return None
        if not after.isdigit():
            raise BadUserInput("`after` is not a cursor this server gave out.", field="after")
        cursor = int(after)
        oldest = await Event.all().order_by("id").first().values_list("id", flat=True)
        if oldest is not None and cursor < oldest - 1:
            raise BadUserInput(
                "Events after this cursor are no longer kept; reload what you show and "
                "subscribe again without `after`.",
                field="after",
            )
        return cursor

    async def _replay(self, feed: Feed, cursor: int) -> AsyncIterator[Event]:
        while cursor < feed.start:
            events = list(
                await Event.filter(id__gt=cursor, id__lte=feed.start).order_by("id").limit(BATCH)
            )
            if not events:
                return
            batch = await Batch.load(events)
            sight = self._sights.get(feed.user_id) or await Sight.load(feed.user_id)
            for event in events:
                if feed.accept(sight, event, batch):
                    yield event
            cursor = events[-1].id

    # -- the log reader ------------------------------------------------------

    async def _listen(self) -> None:
        """Turn bus messages into a wake-up; retry when the bus is down."""
        backoff = 0.5
        while True:
            try:
                async with self.bus.subscribe(EVENTS_CHANNEL) as doorbell:
                    backoff = 0.5
                    while True:
                        await doorbell.get()
                        self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("event bus subscription failed; polling the log meanwhile")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    async def _run(self) -> None:
        while True:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow
            # the cancellation that stops the hub when the wake-up lands at the
            # same moment, and the loop would run on forever.
            try:
                async with asyncio.timeout(self.poll_interval):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self._catch_up()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("could not read the event log; retrying")
                await asyncio.sleep(self.poll_interval)

    async def _catch_up(self) -> None:
        while True:
            events = list(await Event.filter(id__gt=self.position).order_by("id").limit(BATCH))
            if not events:
                return
            if self._feeds:
                await self._deliver(events)
            self.position = events[-1].id

    async def _deliver(self, events: list[Event]) -> None:
        if any(e.kind.startswith(SIGHT_CHANGES) for e in events):
            await self._refresh_sights()
        batch = await Batch.load(events)
        # From here to the position update nothing awaits: a feed opened
        # meanwhile starts after this batch, and replays it from the log.
        offered: dict[int, Event] = {}
        for feed in list(self._feeds):
            sight = self._sights.get(feed.user_id)
            if sight is None:
                continue
            if not sight.active or sight.token_version != feed.token_version:
                feed.fail(Unauthenticated("You have been signed out; sign in again."))
                continue
            for event in events:
                if event.id > feed.start and feed.accept(sight, event, batch):
                    feed.offer(event)
                    offered[event.id] = event
        metrics.delivered(offered.values())

    async def _refresh_sights(self) -> None:
        users = list(self._sights)
        sights = await asyncio.gather(*(Sight.load(user_id) for user_id in users))
        self._sights.update(zip(users, sights, strict=True))

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
Feeds that remember what they showed are told once when a record leaves the
subscriber's sight (subscriptions/scope.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field

from meihua import metrics
from meihua.models import Contact, Event, Task
from meihua.resolvers.access import Viewer
from meihua.resolvers.errors import BadUserInput, LimitExceeded, MeihuaError, Unauthenticated
from meihua.resolvers.sight import RecordState, Sight, Teams, load_states, load_teams
from meihua.subscriptions.bus import EventBus
from meihua.subscriptions.events import EVENTS_CHANNEL
from meihua.subscriptions.scope import SCOPE_CHANGED, Ref, Watched, left_scope, reason_of

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


# Records visible by their own owner; the others (contacts, tasks) go with their customer.
SELF_SCOPED = ("CUSTOMER", "OPPORTUNITY", "CONTRACT", "LEAD")


def visibility_record(event: Event) -> Ref | None:
    """The record whose visibility decides who may see the event."""
    if event.record_type in SELF_SCOPED:
        return event.record_type, event.record_id
    if event.customer_id is not None:  # contacts, tasks: with their customer
        return "CUSTOMER", event.customer_id
    return None


async def visibility_of(record_type: str, pk: int) -> Ref | None:
    """`visibility_record` for a record rather than an event about it."""
    if record_type in SELF_SCOPED:
        return record_type, pk
    model = {"CONTACT": Contact, "TASK": Task}.get(record_type)
    if model is None:
        return None
    customer_id = await model.filter(id=pk).first().values_list("customer_id", flat=True)
    return ("CUSTOMER", customer_id) if customer_id is not None else None


def shown_record(event: Event) -> Ref | None:
    """The event's own record, when it is the one deciding the event's visibility."""
    ref = visibility_record(event)
    return ref if ref == (event.record_type, event.record_id) else None


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
    # The records shown, for telling when one leaves the user's sight (None: not told).
    watched: Watched | None = None

    def consider(self, sight: Sight, event: Event, batch: Batch) -> Iterator[Event]:
        """What this feed gets of one event: the event if accepted, else perhaps a notice."""
        accepted = self.accept(sight, event, batch)
        if accepted:
            yield event
        ref = visibility_record(event)
        if self.watched is None or ref is None:
            return
        if event.kind.endswith(".deleted"):
            self.watched.forget(ref)
        elif accepted:
            # Not every accepted event shows its record: some are addressed to
            # the user whatever their scope (an approval to decide).
            if (shown := shown_record(event)) is not None and may_see(sight, event, batch):
                self.watched.remember(ref, shown)
        elif ref in self.watched and not may_see(sight, event, batch):
            yield left_scope(event, self.watched.forget(ref), reason_of(event))

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
    def __init__(
        self,
        bus: EventBus,
        *,
        queue_size: int = 1000,
        poll_interval: float = 1.0,
        watch_limit: int = 1000,
    ):
        self.bus = bus
        self.queue_size = queue_size
        self.watch_limit = watch_limit
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

    async def follow(
        self,
        user_id: int,
        accept: Accept,
        after: str | None,
        *,
        watch: dict[Ref, Ref] | None = None,
    ) -> AsyncIterator[Event]:
        """Events the user wants and may see: missed ones after `after`, then live ones.

        The feed is registered before the replay reads the log, and the
        replay stops where live delivery starts, so nothing falls between
        the two and nothing comes twice. With `watch` (the records the
        subscription already shows, maybe none) the feed also gets a
        left-scope notice when a record it showed leaves the user's sight.
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
            watched=None if watch is None else Watched(self.watch_limit, watch),
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
                for delivered in feed.consider(sight, event, batch):
                    yield delivered
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
        changed: set[int] = set()
        if any(e.kind.startswith(SIGHT_CHANGES) for e in events):
            changed = await self._refresh_sights()
        batch = await Batch.load(events)
        watched = await self._watched_states(changed)
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
                if event.id <= feed.start:
                    continue
                for delivered in feed.consider(sight, event, batch):
                    feed.offer(delivered)
                    if delivered is event:
                        offered[event.id] = event
            if feed.user_id in changed and events[-1].id > feed.start:
                for notice in _out_of_sight(feed, sight, watched, events[-1]):
                    feed.offer(notice)
        metrics.delivered(offered.values())

    async def _refresh_sights(self) -> set[int]:
        """Work out again what everyone may see; the users whose sight changed."""
        users = list(self._sights)
        sights = await asyncio.gather(*(Sight.load(user_id) for user_id in users))
        changed = {
            user_id
            for user_id, sight in zip(users, sights, strict=True)
            if (before := self._sights.get(user_id)) is not None and before.reach != sight.reach
        }
        self._sights.update(zip(users, sights, strict=True))
        return changed

    async def _watched_states(self, users: set[int]) -> Batch:
        """Where the records the users' feeds remember sit now, to check them again."""
        refs = {
            ref
            for feed in self._feeds
            if feed.user_id in users and feed.watched is not None
            for ref in feed.watched.refs()
        }
        states: dict[Ref, RecordState] = {}
        ordered = sorted(refs)
        for start in range(0, len(ordered), BATCH):
            states |= await load_states(set(ordered[start : start + BATCH]))
        customers = sorted({s.customer_id for s in states.values() if s.customer_id is not None})
        teams: Teams = {}
        for start in range(0, len(customers), BATCH):
            teams |= await load_teams(set(customers[start : start + BATCH]))
        return Batch(states, teams)


def _out_of_sight(feed: Feed, sight: Sight, watched: Batch, trigger: Event) -> Iterator[Event]:
    """Notices for the records a feed remembers that its user's new sight leaves out.

    They take the batch's last cursor, so they never come before an event
    the feed was already given.
    """
    if feed.watched is None:
        return
    for ref in feed.watched.refs():
        state = watched.states.get(ref)
        if state is None:  # gone, or heard of in this very batch
            continue
        if not sight.sees(ref[0], state, watched.teams):
            shown = feed.watched.forget(ref)
            yield left_scope(trigger, shown, SCOPE_CHANGED)

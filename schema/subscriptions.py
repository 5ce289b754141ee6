"""Live events over WebSocket: the pool, stage changes, records being edited, notifications.

Every subscription takes `after:`, the last cursor the client received: it
first replays what the client missed, then goes live, with no gap and no
duplicate. Each event reaches a subscriber only if they may see its record
when it is delivered (the hub checks per event; strawberry's permission
classes only run once, at subscribe time).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import suppress
from datetime import datetime
from enum import Enum
from weakref import WeakValueDictionary

import strawberry
from starlette.websockets import WebSocket

from meihua.models import Event
from meihua.resolvers.errors import NotFound, Unauthenticated
from meihua.schema.context import Info
from meihua.schema.customers import Customer
from meihua.schema.loaders import Loaders
from meihua.schema.node import visible_node
from meihua.schema.opportunities import Opportunity, OpportunityStage
from meihua.schema.org import User
from meihua.schema.permissions import SignedIn
from meihua.schema.pools import Pool
from meihua.schema.recycling import RecycleRule
from meihua.schema.relay import Node, from_global_id, to_global_id
from meihua.subscriptions import delivery, scope
from meihua.subscriptions.hub import Accept, visibility_of


@strawberry.enum(description="How a customer moved in or out of a pool.")
class PoolEventKind(Enum):
    RELEASED = "RELEASED"
    CLAIMED = "CLAIMED"
    ASSIGNED = "ASSIGNED"
    RECYCLED = "RECYCLED"


@strawberry.enum(description="What a personal notification is about.")
class NotificationKind(Enum):
    TASK_ASSIGNED = "TASK_ASSIGNED"
    TASK_COMPLETED = "TASK_COMPLETED"
    APPROVAL_REQUESTED = "APPROVAL_REQUESTED"
    APPROVAL_DECIDED = "APPROVAL_DECIDED"
    CUSTOMER_ASSIGNED = "CUSTOMER_ASSIGNED"
    CUSTOMER_TRANSFERRED = "CUSTOMER_TRANSFERRED"
    RECYCLE_WARNING = "RECYCLE_WARNING"
    LEAD_ASSIGNED = "LEAD_ASSIGNED"
    ADDED_TO_TEAM = "ADDED_TO_TEAM"
    OPPORTUNITY_TRANSFERRED = "OPPORTUNITY_TRANSFERRED"
    CONTRACT_TRANSFERRED = "CONTRACT_TRANSFERRED"
    LEFT_SCOPE = "LEFT_SCOPE"


@strawberry.enum(description="Why a record left what you may see.")
class LeftScopeReason(Enum):
    TRANSFERRED = "TRANSFERRED"
    RELEASED = "RELEASED"
    RECYCLED = "RECYCLED"
    TEAM_EXPIRED = "TEAM_EXPIRED"
    REMOVED_FROM_TEAM = "REMOVED_FROM_TEAM"
    SCOPE_CHANGED = "SCOPE_CHANGED"


@strawberry.type(
    description="A record this subscription showed you is no longer yours to see; "
    "nothing more about it follows unless it comes back into your sight."
)
class RecordLeftScope:
    record_id: strawberry.ID
    record_type: str = strawberry.field(description="Its type, e.g. `Customer`.")
    reason: LeftScopeReason | None = strawberry.field(description="Null when not known.")

    @classmethod
    def of(cls, event: Event) -> RecordLeftScope | None:
        """The notice an event carries, if it is one."""
        if event.kind != scope.LEFT_SCOPE:
            return None
        type_name = delivery.NODE_TYPES[event.record_type]
        reason = event.payload.get("reason")
        return cls(
            record_id=to_global_id(type_name, event.record_id),
            record_type=type_name,
            reason=LeftScopeReason(reason) if reason else None,
        )


async def _user(info: Info, pk: int | None) -> User | None:
    if pk is None:
        return None
    return User.of(await info.context.loaders.user.load(pk))


@strawberry.interface(description="Something that happened, in the order of the event log.")
class LiveEvent:
    cursor: str = strawberry.field(description="Pass the last one you got as `after:`.")
    at: datetime
    actor_pk: strawberry.Private[int | None]

    @strawberry.field(description="Who did it; null when the system did (recycling).")
    async def actor(self, info: Info) -> User | None:
        return await _user(info, self.actor_pk)


@strawberry.type(description="A customer released to, claimed from, assigned or recycled.")
class PoolEvent(LiveEvent):
    kind: PoolEventKind
    reason: str | None
    rule: RecycleRule | None = strawberry.field(description="For RECYCLED: the rule.")
    customer_pk: strawberry.Private[int]
    pool_pk: strawberry.Private[int | None]
    previous_owner_pk: strawberry.Private[int | None]
    new_owner_pk: strawberry.Private[int | None]

    @classmethod
    def of(cls, event: Event) -> PoolEvent:
        return cls(
            cursor=str(event.id),
            at=event.created_at,
            actor_pk=event.actor_id,
            kind=PoolEventKind(delivery.POOL_KINDS[event.kind]),
            reason=event.payload.get("reason"),
            rule=RecycleRule(event.payload["rule"]) if event.payload.get("rule") else None,
            customer_pk=event.record_id,
            pool_pk=event.payload.get("pool_id"),
            previous_owner_pk=event.payload.get("previous_owner_id"),
            new_owner_pk=event.payload.get("new_owner_id"),
        )

    @strawberry.field(description="The customer as it is now.")
    async def customer(self, info: Info) -> Customer:
        row = await info.context.loaders.customer.load(self.customer_pk)
        if row is None:
            raise NotFound("This customer has been deleted.")
        return Customer.of(row)

    @strawberry.field(description="The pool it went to or came from.")
    async def pool(self, info: Info) -> Pool | None:
        if self.pool_pk is None:
            return None
        row = await info.context.loaders.pool.load(self.pool_pk)
        return Pool.of(row) if row is not None else None

    @strawberry.field
    async def previous_owner(self, info: Info) -> User | None:
        return await _user(info, self.previous_owner_pk)

    @strawberry.field
    async def new_owner(self, info: Info) -> User | None:
        return await _user(info, self.new_owner_pk)


@strawberry.type(description="An opportunity moved stage, was won or was lost.")
class OpportunityStageEvent(LiveEvent):
    status: str = strawberry.field(description="OPEN, WON or LOST after the move.")
    opportunity_pk: strawberry.Private[int]
    from_stage_pk: strawberry.Private[int | None]
    to_stage_pk: strawberry.Private[int | None]

    @classmethod
    def of(cls, event: Event) -> OpportunityStageEvent:
        return cls(
            cursor=str(event.id),
            at=event.created_at,
            actor_pk=event.actor_id,
            status=event.payload.get("status") or "OPEN",
            opportunity_pk=event.record_id,
            from_stage_pk=event.payload.get("fromStageId"),
            to_stage_pk=event.payload.get("toStageId"),
        )

    @strawberry.field(description="The opportunity as it is now.")
    async def opportunity(self, info: Info) -> Opportunity:
        node = await visible_node(info.context.viewer, "Opportunity", self.opportunity_pk)
        if node is None:
            raise NotFound("This opportunity is gone.")
        return node

    @strawberry.field
    async def from_stage(self, info: Info) -> OpportunityStage | None:
        return await self._stage(info, self.from_stage_pk)

    @strawberry.field
    async def to_stage(self, info: Info) -> OpportunityStage | None:
        return await self._stage(info, self.to_stage_pk)

    @staticmethod
    async def _stage(info: Info, pk: int | None) -> OpportunityStage | None:
        if pk is None:
            return None
        row = await info.context.loaders.opportunity_stage.load(pk)
        return OpportunityStage.of(row) if row is not None else None


@strawberry.type(description="Someone changed a record you are looking at.")
class RecordChange(LiveEvent):
    kind: str = strawberry.field(description="The event, e.g. `customer.changed`.")
    record_id: strawberry.ID
    fields: list[str] = strawberry.field(description="The fields that changed, if any.")
    version: int | None = strawberry.field(description="The record's version after the change.")
    left_scope: RecordLeftScope | None = strawberry.field(
        description="Set (kind `record.left_scope`) when the record left your sight."
    )
    type_name: strawberry.Private[str]
    pk: strawberry.Private[int]

    @classmethod
    def of(cls, event: Event, type_name: str) -> RecordChange:
        return cls(
            cursor=str(event.id),
            at=event.created_at,
            actor_pk=event.actor_id,
            kind=event.kind,
            record_id=to_global_id(type_name, event.record_id),
            fields=list(event.payload.get("fields") or []),
            version=event.payload.get("version"),
            left_scope=RecordLeftScope.of(event),
            type_name=type_name,
            pk=event.record_id,
        )

    @strawberry.field(description="The record as it is now; null once it is deleted.")
    async def record(self, info: Info) -> Node | None:
        return await visible_node(info.context.viewer, self.type_name, self.pk)


@strawberry.type(description="Something addressed to you (a task, an approval, a customer).")
class Notification(LiveEvent):
    kind: NotificationKind
    title: str
    record_id: strawberry.ID | None
    left_scope: RecordLeftScope | None = strawberry.field(
        description="Set (kind LEFT_SCOPE) when a record you were told about left your sight."
    )
    type_name: strawberry.Private[str | None]
    pk: strawberry.Private[int]

    @classmethod
    def of(cls, event: Event) -> Notification:
        type_name = delivery.NODE_TYPES.get(event.record_type)
        return cls(
            cursor=str(event.id),
            at=event.created_at,
            actor_pk=event.actor_id,
            kind=NotificationKind(delivery.NOTIFICATION_KINDS[event.kind]),
            title=delivery.notification_title(event),
            record_id=to_global_id(type_name, event.record_id) if type_name else None,
            left_scope=RecordLeftScope.of(event),
            type_name=type_name,
            pk=event.record_id,
        )

    @strawberry.field(description="What it is about, if you may still see it.")
    async def record(self, info: Info) -> Node | None:
        if self.type_name is None:
            return None
        return await visible_node(info.context.viewer, self.type_name, self.pk)


async def _follow(
    info: Info,
    accept: Accept,
    after: str | None,
    watch: dict[scope.Ref, scope.Ref] | None = None,
) -> AsyncIterator[Event]:
    """The hub's events for the signed-in user; a signed-out user's socket is closed.

    `watch`: the subscription's type can say a record left the user's sight,
    starting with the records given (see subscriptions/scope.py).
    """
    hub = info.context.hub
    try:
        async for event in hub.follow(info.context.viewer.id, accept, after, watch=watch):
            _fresh(info, event)
            yield event
    except Unauthenticated:
        if isinstance(info.context.request, WebSocket):
            asyncio.create_task(_close_soon(info.context.request))
        raise


async def _close_soon(websocket: WebSocket) -> None:
    # After the error has gone out on the socket, so the client knows why.
    await asyncio.sleep(0.2)
    with suppress(Exception):
        await websocket.close(code=4403, reason="Signed out")


# One set of loaders per event, shared by every subscriber resolving it: a
# thousand boards receiving the same claim load its customer once, not a
# thousand times. Held only while some subscriber's context still uses it.
_event_loaders: WeakValueDictionary[int, Loaders] = WeakValueDictionary()


def _fresh(info: Info, event: Event) -> None:
    # A subscription's context lives as long as it does; each event is
    # resolved with the loaders of that event, so it never shows rows cached
    # for an earlier one, and as the user is now, so a narrowed scope narrows
    # the nested fields too (loaders that filter by visibility key on the viewer).
    loaders = _event_loaders.get(event.id)
    if loaders is None:
        loaders = _event_loaders[event.id] = Loaders()
    info.context.loaders = loaders
    viewer = info.context.hub.viewer_of(info.context.viewer.id)
    if viewer is not None:
        info.context._viewer = viewer


@strawberry.type
class Subscription:
    @strawberry.subscription(
        permission_classes=[SignedIn],
        description="Customers moving in and out of the pools you may see (公海).",
    )
    async def pool_events(
        self, info: Info, after: str | None = None
    ) -> AsyncGenerator[PoolEvent, None]:
        async for event in _follow(info, delivery.pool_event, after):
            yield PoolEvent.of(event)

    @strawberry.subscription(
        permission_classes=[SignedIn],
        description="Opportunities you may see moving stage, won or lost.",
    )
    async def opportunity_stage_changed(
        self, info: Info, after: str | None = None
    ) -> AsyncGenerator[OpportunityStageEvent, None]:
        async for event in _follow(info, delivery.stage_change, after):
            yield OpportunityStageEvent.of(event)

    @strawberry.subscription(
        permission_classes=[SignedIn],
        description="Who changes the record you are viewing, and its new version; "
        "one `record.left_scope` event when it leaves your sight.",
    )
    async def record_changed(
        self, info: Info, id: strawberry.ID, after: str | None = None
    ) -> AsyncGenerator[RecordChange, None]:
        try:
            type_name, pk = from_global_id(id)
        except ValueError:
            raise NotFound("No such object.") from None
        record_type = delivery.RECORD_TYPES.get(type_name)
        if record_type is None or await visible_node(info.context.viewer, type_name, pk) is None:
            raise NotFound("No such object.")
        ref = await visibility_of(record_type, pk)
        watch = {ref: (record_type, pk)} if ref is not None else {}
        async for event in _follow(info, delivery.changes_of(record_type, pk), after, watch):
            yield RecordChange.of(event, type_name)

    @strawberry.subscription(
        permission_classes=[SignedIn],
        description="Tasks, approvals and customers handed to you, recycle warnings, and "
        "LEFT_SCOPE when a record you were told about leaves your sight.",
    )
    async def my_notifications(
        self, info: Info, after: str | None = None
    ) -> AsyncGenerator[Notification, None]:
        async for event in _follow(info, delivery.notification, after, {}):
            yield Notification.of(event)

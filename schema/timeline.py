"""GraphQL API of record history: timelines and the operation log (操作日志)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry.scalars import JSON

from meihua import models
from meihua.resolvers import timeline
from meihua.resolvers.access import Viewer
from meihua.resolvers.field_access import visible_changes
from meihua.resolvers.field_rules import api_name
from meihua.resolvers.pagination import Ordering
from meihua.schema.activity import (
    RecordType,
    company_time,
    record_global_id,
    record_key,
    record_reference,
)
from meihua.schema.context import Info
from meihua.schema.followups import FollowUp
from meihua.schema.org import User
from meihua.schema.relay import Connection, connection, from_global_id, reference_id, to_global_id
from meihua.schema.tasks import Task

if TYPE_CHECKING:
    from meihua.schema.pools import PoolMovement

TimelineKind = strawberry.enum(timeline.TimelineKind, description="What a timeline entry is.")


@strawberry.type(description="One field of one change, with its old and new value.")
class FieldChange:
    field: str
    old_value: JSON | None
    new_value: JSON | None


@strawberry.type(description="Who did what to which record, and when (操作日志).")
class OperationLogEntry:
    id: strawberry.ID
    action: str = strawberry.field(description="CREATE, UPDATE, DELETE, TRANSFER, FOLLOW_UP, …")
    record_type: RecordType
    record_id: strawberry.ID
    summary: str
    at: datetime
    actor_pk: strawberry.Private[int | None]
    logged_changes: strawberry.Private[dict[str, list[Any]]]

    @classmethod
    def of(cls, row: models.OperationLog) -> OperationLogEntry:
        changes: dict[str, Any] = row.changes or {}
        return cls(
            id=to_global_id("OperationLogEntry", row.id),
            action=row.action,
            record_type=row.record_type,
            record_id=record_global_id(row.record_type, row.record_id),
            summary=row.summary,
            at=row.created_at,
            actor_pk=row.actor_id,
            logged_changes=changes,
        )

    @strawberry.field(description="Old and new values; fields hidden from you read masked.")
    async def changes(self, info: Info) -> list[FieldChange]:
        changes = await visible_changes(info.context.viewer, self.record_type, self.logged_changes)
        # Sorted: PostgreSQL's jsonb keeps no key order, and one order everywhere is kinder.
        return [
            FieldChange(field=api_name(field), old_value=old, new_value=new)
            for field, (old, new) in sorted(changes.items())
        ]

    @strawberry.field(description="None for what the system did by itself (e.g. recycling).")
    async def actor(self, info: Info) -> User | None:
        if self.actor_pk is None:
            return None
        return User.of(await info.context.loaders.user.load(self.actor_pk))


@strawberry.type(description="A step of a contract's approval history.")
class ApprovalEntry:
    decision: str = strawberry.field(description="SUBMITTED, APPROVED, REJECTED or VOIDED.")
    step: int | None
    comment: str | None


@strawberry.type(description="One entry of a record's timeline; the field of its kind is set.")
class TimelineEntry:
    at: datetime
    kind: TimelineKind
    summary: str
    record_type: RecordType = strawberry.field(
        description="The record it is about: on a customer's timeline, maybe one under it."
    )
    record_id: strawberry.ID
    follow_up: FollowUp | None
    task: Task | None
    approval: ApprovalEntry | None
    operation: OperationLogEntry | None
    pool_movement: Annotated[PoolMovement, strawberry.lazy("meihua.schema.pools")] | None
    actor_pk: strawberry.Private[int | None]

    @classmethod
    def of(cls, entry: timeline.Entry) -> TimelineEntry:
        # Imported here: schema.pools imports schema.customers, which imports this module.
        from meihua.schema.pools import PoolMovement

        row = entry.row
        record_type, record_pk = entry.record
        return cls(
            at=entry.at,
            kind=entry.kind,
            summary=entry.summary,
            record_type=record_type,
            record_id=record_global_id(record_type, record_pk),
            follow_up=FollowUp.of(row) if isinstance(row, models.FollowUp) else None,
            task=Task.of(row) if isinstance(row, models.Task) else None,
            approval=(
                ApprovalEntry(decision=row.decision.value, step=row.step, comment=row.comment)
                if isinstance(row, models.ApprovalRecord)
                else None
            ),
            operation=(OperationLogEntry.of(row) if isinstance(row, models.OperationLog) else None),
            pool_movement=(PoolMovement.of(row) if isinstance(row, models.PoolMovement) else None),
            actor_pk=entry.actor_id,
        )

    @strawberry.field(description="Who wrote, scheduled, decided, did or moved it.")
    async def actor(self, info: Info) -> User | None:
        if self.actor_pk is None:
            return None
        return User.of(await info.context.loaders.user.load(self.actor_pk))


async def _timeline(
    info: Info,
    viewer: Viewer,
    record_type: models.RecordType,
    pk: int,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
    *,
    seen: bool = False,
) -> Connection[TimelineEntry]:
    page = await timeline.timeline(
        viewer,
        record_type,
        pk,
        first=first,
        after=after,
        last=last,
        before=before,
        max_page=info.context.settings.page_size_max,
        seen=seen,
    )
    return Connection[TimelineEntry].of(page, TimelineEntry.of)


def timeline_field(record_type: models.RecordType) -> Any:
    """The `timeline` field of a record type: `timeline = timeline_field(RecordType.LEAD)`."""

    async def resolve(
        root: Any,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[TimelineEntry]:
        viewer = info.context.viewer
        _, pk = from_global_id(root.id)
        # The record itself came through the access layer: no need to look again.
        return await _timeline(info, viewer, record_type, pk, first, after, last, before, seen=True)

    return strawberry.field(
        resolver=resolve,
        description="Follow-ups, tasks, approvals and changes, newest first"
        + (
            "; with its pool movements and everything under the customer."
            if record_type is models.RecordType.CUSTOMER
            else "."
        ),
    )


@strawberry.input
class OperationLogFilter:
    record_id: strawberry.ID | None = strawberry.field(
        default=None, description="Entries of exactly this record."
    )
    actor_id: strawberry.ID | None = None
    action: str | None = None
    from_: datetime | None = strawberry.field(default=None, name="from")
    to: datetime | None = strawberry.field(default=None, description="Exclusive.")


@strawberry.type
class TimelineQuery:
    @strawberry.field(
        description="The timeline of any lead, customer, contact, opportunity or contract."
    )
    async def timeline(
        self,
        info: Info,
        record_id: strawberry.ID,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[TimelineEntry]:
        viewer = info.context.viewer
        record_type, pk = record_key(record_id)
        return await _timeline(info, viewer, record_type, pk, first, after, last, before)

    @strawberry.field(
        description="The operation log, newest first: entries of records you may see; "
        "with `settings:manage` and the ALL scope, the whole log, deleted records included."
    )
    async def operation_log(
        self,
        info: Info,
        filter: OperationLogFilter | None = None,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[OperationLogEntry]:
        viewer = info.context.viewer
        where = filter or OperationLogFilter()
        timezone = info.context.settings.timezone
        query = await timeline.list_operations(
            viewer,
            timeline.OperationFilter(
                record=record_reference(where.record_id, "recordId") if where.record_id else None,
                actor_id=reference_id(where.actor_id, "User", "actorId")
                if where.actor_id
                else None,
                action=where.action,
                since=company_time(where.from_, timezone),
                until=company_time(where.to, timezone),
            ),
        )
        return await connection(
            info,
            query,
            Ordering("created_at", descending=True),
            OperationLogEntry,
            first=first,
            after=after,
            last=last,
            before=before,
        )

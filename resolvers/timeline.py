"""A record's history: its timeline and the operation log (操作日志).

The timeline of a record merges five kinds of entry, newest first: its
follow-ups, its tasks, its approval history (contracts), its operation-log
entries and its pool movements (customers: released, claimed, assigned,
recycled, transferred). A customer's timeline also holds everything under it
(contacts, opportunities, contracts) except what sits under an opportunity or
contract the viewer cannot see.

Pages use a keyset cursor over (time, kind, id): each kind is read with one
statement (the page size plus one of its newest rows beyond the cursor) and
the kinds are merged here, so a page costs the same at entry 10 or 10 000.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from tortoise.expressions import Q, Subquery
from tortoise.models import Model
from tortoise.queryset import QuerySet

from meihua.models import (
    ApprovalDecision,
    ApprovalRecord,
    FollowUp,
    OperationLog,
    PoolMovement,
    PoolMovementKind,
    RecordType,
    Task,
    TaskStatus,
)
from meihua.resolvers.access import Viewer
from meihua.resolvers.errors import BadUserInput
from meihua.resolvers.followups import describe
from meihua.resolvers.pagination import MAX_KEY
from meihua.resolvers.records import MODELS, about_visible, get_visible, visible

SETTINGS_MANAGE = "settings:manage"


class TimelineKind(StrEnum):
    # Declaration order breaks ties between entries of the same instant.
    FOLLOW_UP = "FOLLOW_UP"
    TASK = "TASK"
    APPROVAL = "APPROVAL"
    OPERATION = "OPERATION"
    POOL_MOVEMENT = "POOL_MOVEMENT"


_RANK = {kind: rank for rank, kind in enumerate(TimelineKind)}

# Log entries that only restate an entry the timeline shows in its own right
# (a follow-up entered, a task created, an approval step); the operation log
# keeps them.
_RESTATED = ("FOLLOW_UP", "TASK_CREATE", *(decision.value for decision in ApprovalDecision))
# A customer's own log entries its pool movements restate, with owners and reason.
_MOVEMENT_ACTIONS = ("RELEASE", "CLAIM", "ASSIGN", "RECYCLE", "TRANSFER")

_APPROVAL_WORDS = {
    ApprovalDecision.SUBMITTED: "Submitted for approval",
    ApprovalDecision.APPROVED: "Approved",
    ApprovalDecision.REJECTED: "Rejected",
    ApprovalDecision.VOIDED: "Voided",
}


_MOVEMENT_WORDS = {
    PoolMovementKind.RELEASED: "Released to {pool}",
    PoolMovementKind.CLAIMED: "Claimed from {pool} by {new}",
    PoolMovementKind.ASSIGNED: "Assigned to {new} from {pool}",
    PoolMovementKind.RECYCLED: "Recycled to {pool}",
    PoolMovementKind.TRANSFERRED: "Transferred from {previous} to {new}",
}


def _describe_movement(row: PoolMovement) -> str:
    """A movement in words; its pool and owners come loaded with it (see `_sources`)."""
    text = _MOVEMENT_WORDS[row.kind].format(
        pool=row.pool.name if row.pool else "a deleted pool",
        previous=row.previous_owner.name if row.previous_owner else "nobody",
        new=row.new_owner.name if row.new_owner else "nobody",
    )
    return f"{text}: {row.reason}" if row.reason else text


@dataclass(frozen=True)
class Entry:
    kind: TimelineKind
    at: datetime
    row: Model  # FollowUp, Task, ApprovalRecord, OperationLog or PoolMovement

    @property
    def key(self) -> tuple[datetime, int, int]:
        return (self.at, _RANK[self.kind], self.row.pk)

    @property
    def cursor(self) -> str:
        raw = json.dumps([self.at.isoformat(), self.kind.value, self.row.pk])
        return base64.urlsafe_b64encode(raw.encode()).decode()

    @property
    def actor_id(self) -> int | None:
        if isinstance(self.row, FollowUp):
            return self.row.author_id
        if isinstance(self.row, Task):
            return self.row.creator_id
        return self.row.actor_id

    @property
    def record(self) -> tuple[RecordType, int]:
        """The record the entry is about (on a customer's timeline, maybe one under it)."""
        row = self.row
        if isinstance(row, FollowUp):
            return row.target_type, row.target_id
        if isinstance(row, Task):
            return row.related_type, row.related_id
        if isinstance(row, ApprovalRecord):
            return RecordType.CONTRACT, row.contract_id
        if isinstance(row, PoolMovement):
            return RecordType.CUSTOMER, row.customer_id
        return row.record_type, row.record_id

    @property
    def summary(self) -> str:
        row = self.row
        if isinstance(row, FollowUp):
            return describe(row)
        if isinstance(row, Task):
            done = " (done)" if row.status == TaskStatus.DONE else ""
            return f"Task: {row.title}{done}"
        if isinstance(row, ApprovalRecord):
            text = _APPROVAL_WORDS[row.decision]
            if row.step is not None:
                text += f" (step {row.step})"
            return f"{text}: {row.comment}" if row.comment else text
        if isinstance(row, PoolMovement):
            return _describe_movement(row)
        return row.summary or f"{row.action.title()} {row.record_type.lower()}"


@dataclass(frozen=True)
class _Source:
    kind: TimelineKind
    query: QuerySet
    time_field: str


async def _sources(
    viewer: Viewer, record_type: RecordType, pk: int, *, seen: bool
) -> list[_Source]:
    """One query per kind of entry of a visible record (NOT_FOUND otherwise).

    `seen`: the caller already reached the record through the access layer.
    """
    if not seen:
        await get_visible(viewer, record_type, pk)
    if record_type is RecordType.CUSTOMER:
        hidden = await _hidden_children(viewer, pk)
        followups = FollowUp.filter(customer_id=pk)
        tasks = Task.filter(customer_id=pk)
        approvals = ApprovalRecord.filter(contract__customer_id=pk)
        operations = OperationLog.filter(
            Q(customer_id=pk) | Q(record_type=RecordType.CUSTOMER, record_id=pk)
        ).exclude(Q(record_type=RecordType.CUSTOMER, action__in=_MOVEMENT_ACTIONS))
        # One Q per exclusion: tortoise's exclude(a=…, b=…) means NOT a AND NOT b.
        for kind, ids in hidden.items():
            followups = followups.exclude(Q(target_type=kind, target_id__in=ids))
            tasks = tasks.exclude(Q(related_type=kind, related_id__in=ids))
            operations = operations.exclude(Q(record_type=kind, record_id__in=ids))
            if kind is RecordType.CONTRACT:
                approvals = approvals.exclude(contract_id__in=ids)
    else:
        followups = FollowUp.filter(target_type=record_type, target_id=pk)
        tasks = Task.filter(related_type=record_type, related_id=pk)
        approvals = ApprovalRecord.filter(contract_id=pk)
        operations = OperationLog.filter(record_type=record_type, record_id=pk)
    sources = [
        _Source(TimelineKind.FOLLOW_UP, followups, "occurred_at"),
        _Source(TimelineKind.TASK, tasks, "created_at"),
        _Source(TimelineKind.OPERATION, operations.exclude(action__in=_RESTATED), "created_at"),
    ]
    if record_type in (RecordType.CUSTOMER, RecordType.CONTRACT):
        sources.append(_Source(TimelineKind.APPROVAL, approvals, "at"))
    if record_type is RecordType.CUSTOMER:
        movements = PoolMovement.filter(customer_id=pk).select_related(
            "pool", "previous_owner", "new_owner"
        )
        sources.append(_Source(TimelineKind.POOL_MOVEMENT, movements, "created_at"))
    return sources


async def _hidden_children(viewer: Viewer, customer_id: int) -> dict[RecordType, list[int]]:
    """Opportunities and contracts of the customer the viewer may not see."""
    hidden: dict[RecordType, list[int]] = {}
    if viewer.sees_everything:
        return hidden
    for kind in (RecordType.OPPORTUNITY, RecordType.CONTRACT):
        seen = Subquery((await visible(viewer, kind)).filter(customer_id=customer_id).values("id"))
        ids = await (
            MODELS[kind]
            .filter(customer_id=customer_id)
            .exclude(id__in=seen)
            .values_list("id", flat=True)
        )
        if ids:
            hidden[kind] = list(ids)
    return hidden


def _decode(cursor: str, arg: str) -> tuple[datetime, TimelineKind, int]:
    try:
        at, kind, pk = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        if type(at) is not str or type(pk) is not int or not 0 < pk <= MAX_KEY:
            raise TypeError(cursor)
        moment = datetime.fromisoformat(at)
        if moment.tzinfo is None:
            raise TypeError(cursor)
        return moment, TimelineKind(kind), pk
    except (ValueError, TypeError):
        raise BadUserInput("Invalid cursor.", field=arg) from None


def _beyond(source: _Source, cursor: tuple[datetime, TimelineKind, int], *, older: bool) -> Q:
    """Rows of one kind past the cursor in (time, kind, id) order, older or newer."""
    at, kind, pk = cursor
    op = "lt" if older else "gt"
    field = source.time_field
    strictly = Q(**{f"{field}__{op}": at})
    if source.kind is kind:
        return strictly | Q(Q(**{field: at}), Q(**{f"id__{op}": pk}))
    # At the cursor's instant, the kinds ranked below it come after it (newest first).
    comes_after = (_RANK[source.kind] < _RANK[kind]) == older
    return Q(**{f"{field}__{op}e": at}) if comes_after else strictly


@dataclass
class TimelinePage:
    """Quacks like pagination.Page, so it makes a Relay connection the same way."""

    items: list[Entry]
    cursors: list[str]
    has_next_page: bool
    has_previous_page: bool
    sources: list[_Source]

    async def total_count(self) -> int:
        return sum([await source.query.count() for source in self.sources])


async def timeline(
    viewer: Viewer,
    record_type: RecordType,
    pk: int,
    *,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
    max_page: int,
    default_page: int = 20,
    seen: bool = False,
) -> TimelinePage:
    if first is not None and last is not None:
        raise BadUserInput("Pass either `first` or `last`, not both.", field="last")
    for arg, size in (("first", first), ("last", last)):
        if size is not None and not 0 <= size <= max_page:
            raise BadUserInput(f"`{arg}` must be between 0 and {max_page}.", field=arg)
    cursors = {arg: _decode(value, arg) for arg, value in (("after", after), ("before", before))
               if value is not None}  # fmt: skip
    sources = await _sources(viewer, record_type, pk, seen=seen)
    forward = last is None
    size = (first if forward else last) or 0
    if first is None and last is None:
        size = default_page
    entries: list[Entry] = []
    for source in sources:
        query = source.query
        if "after" in cursors:
            query = query.filter(_beyond(source, cursors["after"], older=True))
        if "before" in cursors:
            query = query.filter(_beyond(source, cursors["before"], older=False))
        # Newest first going forward; oldest first when paging back from `before`.
        prefix = "-" if forward else ""
        rows = await query.order_by(f"{prefix}{source.time_field}", f"{prefix}id").limit(size + 1)
        entries += [Entry(source.kind, getattr(row, source.time_field), row) for row in rows]
    entries.sort(key=lambda entry: entry.key, reverse=forward)
    more = len(entries) > size
    entries = entries[:size]
    if not forward:
        entries.reverse()
    return TimelinePage(
        items=entries,
        cursors=[entry.cursor for entry in entries],
        has_next_page=more if forward else before is not None,
        has_previous_page=more if not forward else after is not None,
        sources=sources,
    )


# --- the operation log -------------------------------------------------------


@dataclass
class OperationFilter:
    record: tuple[RecordType, int] | None = None
    actor_id: int | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None


async def list_operations(viewer: Viewer, where: OperationFilter) -> QuerySet[OperationLog]:
    """Entries of records the viewer sees; the whole log (deleted records too) for admins.

    An admin here is one who also sees all data: `settings:manage` on a role
    with a narrower scope must not read other people's records in the log.
    """
    admin = viewer.can(SETTINGS_MANAGE) and viewer.sees_everything
    if where.record is not None:
        if not admin:
            await get_visible(viewer, *where.record)
        query = OperationLog.filter(record_type=where.record[0], record_id=where.record[1])
    elif admin:
        query = OperationLog.all()
    else:
        query = OperationLog.filter(await about_visible(viewer, "record_type", "record_id"))
    filters: dict[str, Any] = {
        "actor_id": where.actor_id,
        "action": where.action.strip().upper() if where.action else None,
        "created_at__gte": where.since,
        "created_at__lt": where.until,
    }
    return query.filter(**{name: value for name, value in filters.items() if value is not None})

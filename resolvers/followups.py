"""Follow-up records (跟进记录): who was contacted, how, what was said, when to call again.

A follow-up hangs off a lead, customer, contact, opportunity or contract and
is visible exactly when that record is. Its time moves the "last followed up"
clock of the record and of the customer above it, the clock customer
recycling measures; entering follow-ups out of order never winds it back.

Only its author may correct or delete a follow-up, and only for a day after
entering it (super admins always): after that it is part of the record's
history, which managers rely on. Its time cannot be edited at all, or a
follow-up could be moved forward to dodge recycling; enter a new one instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.expressions import Q
from tortoise.models import Model
from tortoise.queryset import QuerySet

from meihua.models import (
    Contact,
    Customer,
    FollowUp,
    FollowUpMethod,
    Lead,
    LeadStatus,
    RecordType,
    Task,
)
from meihua.resolvers.access import Viewer
from meihua.resolvers.errors import BadUserInput, Conflict, Forbidden, NotFound
from meihua.resolvers.oplog import diff, log_operation, plain
from meihua.resolvers.records import (
    MODELS,
    about_visible,
    customer_id_of,
    owner_id_of,
    require_write,
    visible,
)
from meihua.resolvers.tasks import record_task_change, task_title
from meihua.subscriptions.events import record_event, transaction

# A client clock a little ahead of ours is not "the future".
CLOCK_SKEW = timedelta(minutes=2)
EDIT_WINDOW = timedelta(hours=24)
MAX_CONTENT = 10_000

EVENTS = {
    "FOLLOW_UP": "followup.created",
    "FOLLOW_UP_UPDATE": "followup.changed",
    "FOLLOW_UP_DELETE": "followup.deleted",
}

METHOD_LABELS = {
    FollowUpMethod.PHONE: "Phone call",
    FollowUpMethod.EMAIL: "Email",
    FollowUpMethod.VISIT: "Visit",
    FollowUpMethod.SMS: "SMS",
    FollowUpMethod.WECHAT: "WeChat",
    FollowUpMethod.OTHER: "Follow-up",
}


def describe(followup: FollowUp) -> str:
    """One line for logs and timelines: how, and the start of what was said."""
    first_line = followup.content.splitlines()[0]
    return f"{METHOD_LABELS[followup.method]}: {first_line}"[:200]


# --- reading -----------------------------------------------------------------


async def get_visible_followup(viewer: Viewer, pk: int) -> tuple[FollowUp, Model]:
    """The follow-up and its record, or NOT_FOUND when the record is out of sight."""
    followup = await FollowUp.get_or_none(id=pk)
    if followup is not None:
        records = await visible(viewer, followup.target_type)
        target = await records.get_or_none(id=followup.target_id)
        if target is not None:
            return followup, target
    raise NotFound("No such follow-up.")


@dataclass
class FollowUpFilter:
    target: tuple[RecordType, int] | None = None
    customer_id: int | None = None  # everything under the customer, the customer included
    author_id: int | None = None
    method: FollowUpMethod | None = None
    occurred_from: datetime | None = None
    occurred_to: datetime | None = None


async def list_followups(viewer: Viewer, where: FollowUpFilter) -> QuerySet[FollowUp]:
    query = FollowUp.filter(await about_visible(viewer, "target_type", "target_id"))
    if where.target is not None:
        query = query.filter(target_type=where.target[0], target_id=where.target[1])
    if where.customer_id is not None:
        query = query.filter(customer_id=where.customer_id)
    if where.author_id is not None:
        query = query.filter(author_id=where.author_id)
    if where.method is not None:
        query = query.filter(method=where.method)
    if where.occurred_from is not None:
        query = query.filter(occurred_at__gte=where.occurred_from)
    if where.occurred_to is not None:
        query = query.filter(occurred_at__lt=where.occurred_to)
    return query


# --- entering ----------------------------------------------------------------


@dataclass
class FollowUpInput:
    target_type: RecordType
    target_id: int
    method: FollowUpMethod
    content: str
    occurred_at: datetime | None = None
    next_contact_at: datetime | None = None


def _content(value: str) -> str:
    content = value.strip()
    if not content:
        raise BadUserInput("`content` must not be blank.", field="content")
    if len(content) > MAX_CONTENT:
        raise BadUserInput(f"`content` is longer than {MAX_CONTENT} characters.", field="content")
    return content


async def _writable_target(viewer: Viewer, record_type: RecordType, pk: int) -> Model:
    records = await visible(viewer, record_type)
    # Locked, so a conversion or a deletion cannot slip in under the follow-up.
    target = await records.select_for_update().get_or_none(id=pk)
    if target is None:
        raise NotFound(f"No such {record_type.value.lower()}.")
    await require_write(viewer, target)
    if isinstance(target, Lead) and target.status == LeadStatus.CONVERTED:
        raise Conflict("The lead was converted; follow up on the customer it became.")
    return target


async def _owner_of(target: Model) -> int | None:
    """Whose record it is, for delivering the live event (a contact: its customer's)."""
    if isinstance(target, Contact):
        return (await Customer.get(id=target.customer_id)).owner_id
    return owner_id_of(target)


async def _advance_clocks(
    target: Model, at: datetime, next_contact_at: datetime | None
) -> dict[str, list[Any]]:
    """Move the follow-up clocks of the target and its customer forward to `at`.

    Conditional updates: a follow-up entered late with an older time leaves a
    newer clock alone, also when two are entered at once. Returns what changed
    on the target.
    """
    changes: dict[str, Any] = {"last_followup_at": at}
    if next_contact_at is not None:
        changes["next_contact_at"] = next_contact_at
    not_newer = Q(last_followup_at=None) | Q(last_followup_at__lte=at)
    # A customer's clock moved, so the recycling warning starts over.
    customer_changes = {**changes, "recycle_warned_at": None}
    target_changes = customer_changes if isinstance(target, Customer) else changes
    changed: dict[str, list[Any]] = {}
    if await type(target).filter(not_newer, id=target.pk).update(**target_changes):
        changed = diff(target, changes)
    customer_id = customer_id_of(target)
    if customer_id is not None and not isinstance(target, Customer):
        await Customer.filter(not_newer, id=customer_id).update(**customer_changes)
    if isinstance(target, Lead):
        # A lead someone has talked to is being followed (跟进中).
        if await Lead.filter(id=target.pk, status=LeadStatus.NEW).update(
            status=LeadStatus.FOLLOWING
        ):
            changed["status"] = [LeadStatus.NEW.value, LeadStatus.FOLLOWING.value]
    return changed


async def create_followup(viewer: Viewer, data: FollowUpInput) -> FollowUp:
    """Record a follow-up; a next contact time also puts a task in the author's schedule."""
    now = datetime.now(UTC)
    async with transaction():
        target = await _writable_target(viewer, data.target_type, data.target_id)
        content = _content(data.content)
        occurred_at = (data.occurred_at or now).astimezone(UTC)
        if occurred_at > now + CLOCK_SKEW:
            raise BadUserInput("`occurredAt` must not be in the future.", field="occurredAt")
        next_contact_at = data.next_contact_at.astimezone(UTC) if data.next_contact_at else None
        if next_contact_at is not None and next_contact_at <= occurred_at:
            raise BadUserInput(
                "`nextContactAt` must come after the follow-up.", field="nextContactAt"
            )
        customer_id = customer_id_of(target)
        followup = await FollowUp.create(
            target_type=data.target_type,
            target_id=target.pk,
            customer_id=customer_id,
            method=data.method,
            content=content,
            occurred_at=occurred_at,
            next_contact_at=next_contact_at,
            author_id=viewer.id,
        )
        changed = _followup_fields(followup, created=True)
        changed |= await _advance_clocks(target, occurred_at, next_contact_at)
        await _record(viewer, "FOLLOW_UP", followup, target, changed, describe(followup))
        if next_contact_at is not None:
            await _schedule(viewer, followup)
    return followup


async def _schedule(viewer: Viewer, followup: FollowUp) -> None:
    """The author's own reminder to contact again: no notification needed."""
    title = task_title(followup.content)
    task = await Task.create(
        title=title,
        description=followup.content if followup.content != title else None,
        assignee_id=viewer.id,
        creator_id=viewer.id,
        due_at=followup.next_contact_at,
        related_type=followup.target_type,
        related_id=followup.target_id,
        customer_id=followup.customer_id,
        followup_id=followup.id,
    )
    await record_task_change(
        viewer, "TASK_CREATE", task, {"title": [None, task.title]}, f"Task: {task.title}"
    )


def _followup_fields(followup: FollowUp, *, created: bool) -> dict[str, list[Any]]:
    """The follow-up itself in a log entry of its record, as `followup.<field>`."""
    fields = ("method", "content", "occurred_at", "next_contact_at")
    values = {f"followup.{name}": plain(getattr(followup, name)) for name in fields}
    return {key: [None, value] if created else [value, None] for key, value in values.items()}


async def _record(
    viewer: Viewer,
    action: str,
    followup: FollowUp,
    target: Model,
    changed: dict[str, list[Any]],
    summary: str,
) -> None:
    """The log entry on the record, and the live event for whoever is looking at it."""
    await log_operation(
        viewer.id,
        action,
        followup.target_type,
        followup.target_id,
        customer_id=followup.customer_id,
        changes=changed,
        summary=summary,
    )
    await record_event(
        EVENTS[action],
        record_type=followup.target_type.value,
        record_id=followup.target_id,
        owner_id=await _owner_of(target),
        customer_id=followup.customer_id,
        actor_id=viewer.id,
        payload={"followUpId": followup.id, "fields": sorted(changed)},
    )


# --- correcting and deleting -------------------------------------------------


async def _editable(viewer: Viewer, pk: int) -> tuple[FollowUp, Model]:
    followup, target = await get_visible_followup(viewer, pk)
    if not viewer.is_super_admin:
        if followup.author_id != viewer.id:
            raise Forbidden("Only its author can change a follow-up.")
        if datetime.now(UTC) - followup.created_at > EDIT_WINDOW:
            raise Forbidden(
                "A follow-up can be changed for 24 hours after it was entered; "
                "it is part of the record's history now."
            )
        await require_write(viewer, target)
    return followup, target


async def update_followup(
    viewer: Viewer, pk: int, *, method: FollowUpMethod | None, content: str | None
) -> FollowUp:
    async with transaction():
        followup, target = await _editable(viewer, pk)
        changes: dict[str, Any] = {}
        if method is not None:
            changes["method"] = method
        if content is not None:
            changes["content"] = _content(content)
        changed = diff(followup, changes)
        if changed:
            await FollowUp.filter(id=pk).update(**changes)
            await followup.refresh_from_db()
            logged = {f"followup.{name}": values for name, values in changed.items()}
            await _record(viewer, "FOLLOW_UP_UPDATE", followup, target, logged, describe(followup))
    return followup


async def delete_followup(viewer: Viewer, pk: int) -> int:
    """Delete a follow-up; the clocks fall back to the latest one left.

    The task it scheduled stays in its assignee's schedule (unlinked): it may
    already be planned around, and can be deleted on its own.
    """
    async with transaction():
        followup, target = await _editable(viewer, pk)
        await followup.delete()
        changed = _followup_fields(followup, created=False)
        changed |= await _rewind_clocks(target, followup)
        await _record(
            viewer,
            "FOLLOW_UP_DELETE",
            followup,
            target,
            changed,
            f"Follow-up deleted ({describe(followup)})",
        )
    return pk


async def _rewind_clocks(target: Model, deleted: FollowUp) -> dict[str, list[Any]]:
    """Set the clocks back to the latest remaining follow-up, where the deleted one set them."""
    of_target = Q(target_type=deleted.target_type, target_id=deleted.target_id)
    changed = await _rewind(MODELS[deleted.target_type], deleted.target_id, of_target, deleted)
    if deleted.customer_id is not None and deleted.target_type is not RecordType.CUSTOMER:
        await _rewind(Customer, deleted.customer_id, Q(customer_id=deleted.customer_id), deleted)
    if isinstance(target, Lead) and not await FollowUp.filter(of_target).exists():
        # Nobody has talked to the lead after all.
        if await Lead.filter(id=target.pk, status=LeadStatus.FOLLOWING).update(
            status=LeadStatus.NEW
        ):
            changed["status"] = [LeadStatus.FOLLOWING.value, LeadStatus.NEW.value]
    return changed


async def _rewind(
    model: type[Model], pk: int, remaining: Q, deleted: FollowUp
) -> dict[str, list[Any]]:
    # The row is locked before the remaining follow-ups are read, so one
    # entered at the same moment is either counted here or moves the clock after.
    row = await model.filter(id=pk).select_for_update().get()
    if row.last_followup_at is None or row.last_followup_at > deleted.occurred_at:
        return {}
    latest = await FollowUp.filter(remaining).order_by("-occurred_at").first()
    value = latest.occurred_at if latest is not None else None
    await model.filter(id=pk).update(last_followup_at=value)
    return diff(row, {"last_followup_at": value})

"""Tasks (任务): something someone has to do, maybe by a time, maybe about a record.

Who sees a task: its assignee and its creator, those whose data scope covers
the assignee (managers see their reps' tasks), and those who see the record it
is about (it is on that record's timeline). Who changes it: the assignee, the
creator, and those whose scope covers the assignee; seeing it only through
the record is read-only.

`myTasks` views split the caller's tasks by the company's calendar day
(Settings.timezone), so "today" ends at midnight where the team works, not
at midnight UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from tortoise.expressions import F, Q
from tortoise.queryset import QuerySet

from meihua.models import RecordType, Task, TaskPriority, TaskStatus, User
from meihua.resolvers.access import Viewer
from meihua.resolvers.errors import BadUserInput, Forbidden, NotFound
from meihua.resolvers.oplog import diff, log_operation, plain
from meihua.resolvers.org import UNSET, clean_name
from meihua.resolvers.pagination import Ordering
from meihua.resolvers.records import about_visible, customer_id_of, get_visible, require_write
from meihua.resolvers.versioning import update_versioned
from meihua.subscriptions.events import record_event, transaction

TITLE_LENGTH = 200
MAX_DESCRIPTION = 10_000
# Tasks without a due time sort after every dated one.
UNDATED = datetime(9999, 12, 31, tzinfo=UTC)


def task_title(text: str) -> str:
    """A title from free text: its first line, shortened to fit."""
    line = text.strip().splitlines()[0].strip()
    return line if len(line) <= TITLE_LENGTH else line[: TITLE_LENGTH - 1] + "…"


def due_ordering(descending: bool = False) -> Ordering:
    return Ordering("due_at", descending, if_null=UNDATED)


# --- who sees and changes a task ---------------------------------------------


async def task_filter(viewer: Viewer) -> Q:
    if viewer.sees_everything:
        return Q()
    return (
        Q(creator_id=viewer.id)
        | await viewer.owner_filter("assignee_id")  # the viewer's own included
        | await about_visible(viewer, "related_type", "related_id")
    )


async def visible_tasks(viewer: Viewer) -> QuerySet[Task]:
    return Task.filter(await task_filter(viewer))


async def get_visible_task(viewer: Viewer, pk: int) -> Task:
    task = await (await visible_tasks(viewer)).get_or_none(id=pk)
    if task is None:
        raise NotFound("No such task.")
    return task


async def require_edit(viewer: Viewer, task: Task) -> None:
    if viewer.id in (task.assignee_id, task.creator_id) or await viewer.in_scope(task.assignee_id):
        return
    raise Forbidden("You can see this task but not change it.")


# --- listing -----------------------------------------------------------------


class TaskView(StrEnum):
    INBOX = "INBOX"  # open, no due time
    TODAY = "TODAY"  # open, due before tonight's midnight (overdue included)
    NEXT = "NEXT"  # open, due in the following 7 days
    FUTURE = "FUTURE"  # open, due later
    DONE = "DONE"  # completed, most recent first


def view_window(view: TaskView, now: datetime, timezone: ZoneInfo) -> tuple[Q, Ordering]:
    """Which of someone's tasks a view shows, and in what order."""
    today = now.astimezone(timezone).date()

    def midnight(days: int) -> datetime:
        # Built from the calendar date, so a daylight-saving change stays a day.
        return datetime.combine(today + timedelta(days=days), time(), timezone).astimezone(UTC)

    tomorrow, week_out = midnight(1), midnight(8)
    is_open = Q(status=TaskStatus.OPEN)
    soonest = Ordering("due_at")
    if view is TaskView.INBOX:
        return Q(is_open, due_at__isnull=True), Ordering("created_at", descending=True)
    if view is TaskView.TODAY:
        return Q(is_open, due_at__lt=tomorrow), soonest
    if view is TaskView.NEXT:
        return Q(is_open, due_at__gte=tomorrow, due_at__lt=week_out), soonest
    if view is TaskView.FUTURE:
        return Q(is_open, due_at__gte=week_out), soonest
    return Q(status=TaskStatus.DONE), Ordering("completed_at", descending=True)


def my_tasks(
    viewer: Viewer, view: TaskView, *, now: datetime, timezone: str
) -> tuple[QuerySet[Task], Ordering]:
    where, ordering = view_window(view, now, ZoneInfo(timezone))
    return Task.filter(where, assignee_id=viewer.id), ordering


@dataclass
class TaskFilter:
    assignee_id: int | None = None
    status: TaskStatus | None = None
    related: tuple[RecordType, int] | None = None
    due_before: datetime | None = None
    due_after: datetime | None = None


async def list_tasks(viewer: Viewer, where: TaskFilter) -> QuerySet[Task]:
    query = await visible_tasks(viewer)
    if where.assignee_id is not None:
        query = query.filter(assignee_id=where.assignee_id)
    if where.status is not None:
        query = query.filter(status=where.status)
    if where.related is not None:
        query = query.filter(related_type=where.related[0], related_id=where.related[1])
    if where.due_before is not None:
        query = query.filter(due_at__lt=where.due_before)
    if where.due_after is not None:
        query = query.filter(due_at__gte=where.due_after)
    return query


# --- changing ----------------------------------------------------------------


@dataclass
class TaskInput:
    title: str | None = None
    description: str | None = None  # "" clears it
    assignee_id: int | None = None
    due_at: Any = UNSET  # None clears it
    priority: TaskPriority | None = None
    related: Any = UNSET  # (RecordType, pk); None detaches the task from its record


async def _changes(viewer: Viewer, data: TaskInput) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if data.related is not UNSET:
        changes |= await _related(viewer, data.related)
    if data.title is not None:
        changes["title"] = clean_name(data.title, "title", max_length=TITLE_LENGTH)
    if data.description is not None:
        description = data.description.strip()
        if len(description) > MAX_DESCRIPTION:
            raise BadUserInput(
                f"`description` is longer than {MAX_DESCRIPTION} characters.", field="description"
            )
        changes["description"] = description or None
    if data.assignee_id is not None:
        assignee = await User.get_or_none(id=data.assignee_id)
        if assignee is None or not assignee.is_active:
            raise BadUserInput("No such active user.", field="assigneeId")
        changes["assignee_id"] = assignee.id
    if data.due_at is not UNSET:
        changes["due_at"] = data.due_at.astimezone(UTC) if data.due_at is not None else None
    if data.priority is not None:
        changes["priority"] = data.priority
    return changes


async def _related(viewer: Viewer, related: tuple[RecordType, int] | None) -> dict[str, Any]:
    """A task about a record joins its timeline: that needs write access to the record."""
    if related is None:
        return {"related_type": None, "related_id": None, "customer_id": None}
    record = await get_visible(viewer, *related)
    await require_write(viewer, record)
    return {
        "related_type": related[0],
        "related_id": record.pk,
        "customer_id": customer_id_of(record),
    }


async def create_task(viewer: Viewer, data: TaskInput) -> Task:
    async with transaction():
        changes = await _changes(viewer, data)
        if "title" not in changes:
            raise BadUserInput("`title` is required.", field="title")
        changes.setdefault("assignee_id", viewer.id)
        task = await Task.create(**changes, creator_id=viewer.id)
        created = {
            field: [None, plain(getattr(task, field))]
            for field in ("title", "description", "assignee_id", "due_at", "priority")
            if getattr(task, field) is not None
        }
        await record_task_change(viewer, "TASK_CREATE", task, created, f"Task: {task.title}")
        if task.assignee_id != viewer.id:
            await _notify_assignee(viewer, task)
    return task


async def update_task(
    viewer: Viewer, pk: int, data: TaskInput, expected_version: int | None
) -> Task:
    async with transaction():
        task = await get_visible_task(viewer, pk)
        await require_edit(viewer, task)
        changes = await _changes(viewer, data)
        changed = diff(task, changes)
        # The record it was about keeps the entry, even when it is moved elsewhere.
        was_about = task.related_type is not None
        before = (task.related_type, task.related_id, task.customer_id) if was_about else None
        task = await update_versioned(task, expected_version, **changes)
        if changed:
            summary = f"Task updated: {task.title}"
            await record_task_change(viewer, "TASK_UPDATE", task, changed, summary, about=before)
            if "assignee_id" in changed and task.assignee_id != viewer.id:
                await _notify_assignee(viewer, task)
    return task


async def complete_task(viewer: Viewer, pk: int) -> Task:
    """Mark done; completing a done task changes nothing (two clicks, one completion)."""
    return await _set_status(viewer, pk, TaskStatus.DONE)


async def reopen_task(viewer: Viewer, pk: int) -> Task:
    return await _set_status(viewer, pk, TaskStatus.OPEN)


async def _set_status(viewer: Viewer, pk: int, status: TaskStatus) -> Task:
    now = datetime.now(UTC)
    async with transaction():
        task = await get_visible_task(viewer, pk)
        await require_edit(viewer, task)
        completed_at = now if status is TaskStatus.DONE else None
        # Conditional on the old status: of two at once, one does it.
        still_other = Task.filter(id=pk).exclude(status=status)
        moved = await still_other.update(
            status=status, completed_at=completed_at, version=F("version") + 1, updated_at=now
        )
        previous = task.status
        await task.refresh_from_db()
        if moved:
            action = "TASK_COMPLETE" if status is TaskStatus.DONE else "TASK_REOPEN"
            verb = "done" if status is TaskStatus.DONE else "reopened"
            changed = {"status": [plain(previous), status.value]}
            await record_task_change(viewer, action, task, changed, f"Task {verb}: {task.title}")
            if status is TaskStatus.DONE and task.creator_id != viewer.id:
                await _notify(viewer, task, "task.completed", recipient_id=task.creator_id)
    return task


async def delete_task(viewer: Viewer, pk: int) -> int:
    async with transaction():
        task = await get_visible_task(viewer, pk)
        await require_edit(viewer, task)
        await task.delete()
        gone = {"title": [task.title, None], "status": [plain(task.status), None]}
        await record_task_change(viewer, "TASK_DELETE", task, gone, f"Task deleted: {task.title}")
    return pk


# --- history and notifications -----------------------------------------------


async def record_task_change(
    viewer: Viewer,
    action: str,
    task: Task,
    changed: dict[str, list[Any]],
    summary: str,
    *,
    about: tuple[RecordType | None, int | None, int | None] | None = None,
) -> None:
    """Log the change on the record the task is about.

    The operation log is kept per record; a task about no record has its own
    timestamps (created, updated, completed) as its history.
    """
    related_type, related_id, customer_id = about or (
        task.related_type,
        task.related_id,
        task.customer_id,
    )
    if related_type is None or related_id is None:
        return
    await log_operation(
        viewer.id,
        action,
        related_type,
        related_id,
        customer_id=customer_id,
        changes={f"task.{field}": values for field, values in changed.items()},
        summary=summary,
    )


async def _notify_assignee(viewer: Viewer, task: Task) -> None:
    await _notify(viewer, task, "task.assigned", recipient_id=task.assignee_id)


async def _notify(viewer: Viewer, task: Task, kind: str, *, recipient_id: int) -> None:
    """A personal notification; the real-time layer delivers it to the recipient."""
    await record_event(
        kind,
        record_type="TASK",
        record_id=task.id,
        owner_id=task.assignee_id,
        customer_id=task.customer_id,
        recipient_id=recipient_id,
        actor_id=viewer.id,
        payload={
            "title": task.title,
            "dueAt": plain(task.due_at),
            "priority": plain(task.priority),
        },
    )

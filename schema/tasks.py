"""GraphQL API of tasks (任务) and the caller's schedule (`myTasks`)."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated

import strawberry

from meihua import models
from meihua.resolvers import tasks
from meihua.resolvers.org import UNSET
from meihua.resolvers.pagination import Ordering
from meihua.schema.activity import RecordType, company_time, record_global_id, record_reference
from meihua.schema.context import Info
from meihua.schema.followups import FollowUp
from meihua.schema.org import DeletePayload, User
from meihua.schema.relay import Connection, Node, connection, record_id, reference_id, to_global_id

if TYPE_CHECKING:
    from meihua.schema.customers import Customer

TaskPriority = strawberry.enum(models.TaskPriority)
TaskStatus = strawberry.enum(models.TaskStatus)
TaskView = strawberry.enum(
    tasks.TaskView,
    description="Slices of your open tasks by due day in the company's timezone, and DONE.",
)


@strawberry.type(description="Something to do (任务), maybe by a time, maybe about a record.")
class Task(Node):
    title: str
    description: str | None
    due_at: datetime | None
    priority: TaskPriority
    status: TaskStatus
    completed_at: datetime | None
    related_id: strawberry.ID | None = strawberry.field(description="The record it is about.")
    related_type: RecordType | None
    version: int
    created_at: datetime
    updated_at: datetime
    assignee_pk: strawberry.Private[int]
    creator_pk: strawberry.Private[int]
    customer_pk: strawberry.Private[int | None]
    followup_pk: strawberry.Private[int | None]

    @classmethod
    def of(cls, row: models.Task) -> Task:
        return cls(
            id=to_global_id("Task", row.id),
            title=row.title,
            description=row.description,
            due_at=row.due_at,
            priority=row.priority,
            status=row.status,
            completed_at=row.completed_at,
            related_id=(
                record_global_id(row.related_type, row.related_id)
                if row.related_type is not None and row.related_id is not None
                else None
            ),
            related_type=row.related_type,
            version=row.version,
            created_at=row.created_at,
            updated_at=row.updated_at,
            assignee_pk=row.assignee_id,
            creator_pk=row.creator_id,
            customer_pk=row.customer_id,
            followup_pk=row.followup_id,
        )

    @strawberry.field(description="Open and past its due time.")
    def is_overdue(self) -> bool:
        return (
            self.status == models.TaskStatus.OPEN
            and self.due_at is not None
            and self.due_at < datetime.now(UTC)
        )

    @strawberry.field
    async def assignee(self, info: Info) -> User:
        return User.of(await info.context.loaders.user.load(self.assignee_pk))

    @strawberry.field
    async def creator(self, info: Info) -> User:
        return User.of(await info.context.loaders.user.load(self.creator_pk))

    @strawberry.field(description="The customer above its record, when you may see it.")
    async def customer(
        self, info: Info
    ) -> Annotated[Customer, strawberry.lazy("meihua.schema.customers")] | None:
        viewer = info.context.viewer
        # Imported here: schema.customers imports this module for Customer.timeline.
        from meihua.schema.customers import Customer

        if self.customer_pk is None:
            return None
        row = await info.context.loaders.visible_customer.load((viewer, self.customer_pk))
        return Customer.of(row) if row is not None else None

    @strawberry.field(description="The follow-up that scheduled it, when you may see it.")
    async def follow_up(self, info: Info) -> FollowUp | None:
        viewer = info.context.viewer
        if self.followup_pk is None:
            return None
        row = await info.context.loaders.followup.load(self.followup_pk)
        if row is None:
            return None
        target = (viewer, row.target_type, row.target_id)
        if await info.context.loaders.visible_record.load(target) is None:
            return None
        return FollowUp.of(row)


@strawberry.input
class TaskFilter:
    assignee_id: strawberry.ID | None = None
    status: TaskStatus | None = None
    related_id: strawberry.ID | None = strawberry.field(
        default=None, description="Tasks about exactly this record."
    )
    due_before: datetime | None = strawberry.field(default=None, description="Exclusive.")
    due_after: datetime | None = strawberry.field(default=None, description="Inclusive.")


@strawberry.enum
class TaskOrderField(Enum):
    DUE_AT = "due_at"
    CREATED_AT = "created_at"
    UPDATED_AT = "updated_at"


@strawberry.input
class TaskOrder:
    field: TaskOrderField = strawberry.field(
        default=TaskOrderField.DUE_AT, description="Undated tasks come after dated ones."
    )
    descending: bool = False


@strawberry.input
class CreateTaskInput:
    title: str
    description: str | None = None
    assignee_id: strawberry.ID | None = strawberry.field(
        default=None, description="Defaults to you; someone else is notified."
    )
    due_at: datetime | None = None
    priority: TaskPriority | None = strawberry.field(default=None, description="NORMAL if unset.")
    related_id: strawberry.ID | None = strawberry.field(
        default=None, description="A lead, customer, contact, opportunity or contract."
    )


@strawberry.input(description="Send only what changes; null `dueAt`/`relatedId` clear them.")
class UpdateTaskInput:
    title: str | None = None
    description: str | None = None
    assignee_id: strawberry.ID | None = None
    due_at: datetime | None = strawberry.UNSET
    priority: TaskPriority | None = None
    related_id: strawberry.ID | None = strawberry.UNSET


def _input(info: Info, data: CreateTaskInput | UpdateTaskInput) -> tasks.TaskInput:
    timezone = info.context.settings.timezone
    due_at, related = data.due_at, data.related_id
    return tasks.TaskInput(
        title=data.title,
        description=data.description,
        assignee_id=(
            reference_id(data.assignee_id, "User", "assigneeId") if data.assignee_id else None
        ),
        due_at=UNSET if due_at is strawberry.UNSET else company_time(due_at, timezone),
        priority=data.priority,
        related=(
            UNSET
            if related is strawberry.UNSET
            else None
            if related is None
            else record_reference(related, "relatedId")
        ),
    )


async def _page(info: Info, query, ordering: Ordering, **window) -> Connection[Task]:
    return await connection(info, query, ordering, Task, **window)


@strawberry.type
class TaskQuery:
    @strawberry.field(
        description="Your tasks in one view: INBOX (no due time), TODAY (due today or "
        "overdue), NEXT (the following 7 days), FUTURE (later), DONE (latest first)."
    )
    async def my_tasks(
        self,
        info: Info,
        view: TaskView,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[Task]:
        viewer = info.context.viewer
        query, ordering = tasks.my_tasks(
            viewer, view, now=datetime.now(UTC), timezone=info.context.settings.timezone
        )
        return await _page(
            info, query, ordering, first=first, after=after, last=last, before=before
        )

    @strawberry.field(
        description="Tasks you may see: yours, your team's (by data scope), and those "
        "about records you may see."
    )
    async def tasks(
        self,
        info: Info,
        filter: TaskFilter | None = None,
        order_by: TaskOrder | None = None,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[Task]:
        viewer = info.context.viewer
        where = filter or TaskFilter()
        timezone = info.context.settings.timezone
        query = await tasks.list_tasks(
            viewer,
            tasks.TaskFilter(
                assignee_id=(
                    reference_id(where.assignee_id, "User", "assigneeId")
                    if where.assignee_id
                    else None
                ),
                status=where.status,
                related=record_reference(where.related_id, "relatedId")
                if where.related_id
                else None,
                due_before=company_time(where.due_before, timezone),
                due_after=company_time(where.due_after, timezone),
            ),
        )
        order = order_by or TaskOrder()
        ordering = (
            tasks.due_ordering(order.descending)
            if order.field is TaskOrderField.DUE_AT
            else Ordering(order.field.value, order.descending)
        )
        return await _page(
            info, query, ordering, first=first, after=after, last=last, before=before
        )


@strawberry.type
class TaskMutation:
    @strawberry.mutation
    async def create_task(self, info: Info, input: CreateTaskInput) -> Task:
        viewer = info.context.viewer
        return Task.of(await tasks.create_task(viewer, _input(info, input)))

    @strawberry.mutation(description="Fails with CONFLICT when `expectedVersion` is stale.")
    async def update_task(
        self,
        info: Info,
        id: strawberry.ID,
        input: UpdateTaskInput,
        expected_version: int | None = None,
    ) -> Task:
        viewer = info.context.viewer
        row = await tasks.update_task(
            viewer, record_id(id, "Task"), _input(info, input), expected_version
        )
        return Task.of(row)

    @strawberry.mutation(description="Mark a task done (a done task stays as it is).")
    async def complete_task(self, info: Info, id: strawberry.ID) -> Task:
        viewer = info.context.viewer
        return Task.of(await tasks.complete_task(viewer, record_id(id, "Task")))

    @strawberry.mutation(description="Open a done task again.")
    async def reopen_task(self, info: Info, id: strawberry.ID) -> Task:
        viewer = info.context.viewer
        return Task.of(await tasks.reopen_task(viewer, record_id(id, "Task")))

    @strawberry.mutation
    async def delete_task(self, info: Info, id: strawberry.ID) -> DeletePayload:
        viewer = info.context.viewer
        await tasks.delete_task(viewer, record_id(id, "Task"))
        return DeletePayload(deleted_id=id)

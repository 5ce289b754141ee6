"""What happens around records: follow-ups (跟进记录), tasks (任务), the operation log."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from meihua.models.customers import Customer
from meihua.models.org import User


class RecordType(StrEnum):
    """The kinds of record follow-ups, tasks and log entries attach to."""

    LEAD = "LEAD"
    CUSTOMER = "CUSTOMER"
    CONTACT = "CONTACT"
    OPPORTUNITY = "OPPORTUNITY"
    CONTRACT = "CONTRACT"


class FollowUpMethod(StrEnum):
    PHONE = "PHONE"
    EMAIL = "EMAIL"
    VISIT = "VISIT"
    SMS = "SMS"
    WECHAT = "WECHAT"
    OTHER = "OTHER"


class TaskPriority(StrEnum):
    LOW = "LOW"
    NORMAL = "NORMAL"
    HIGH = "HIGH"
    URGENT = "URGENT"


class TaskStatus(StrEnum):
    OPEN = "OPEN"
    DONE = "DONE"


class FollowUp(Model):
    id = fields.IntField(primary_key=True)
    target_type = fields.CharEnumField(RecordType, max_length=16)
    target_id = fields.IntField()
    # The customer above the target (null for leads): its timeline and
    # recycling clock include this follow-up.
    customer: fields.ForeignKeyNullableRelation[Customer] = fields.ForeignKeyField(
        "models.Customer", related_name="followups", null=True, on_delete=fields.RESTRICT
    )
    method = fields.CharEnumField(FollowUpMethod, max_length=16)
    content = fields.TextField()
    occurred_at = fields.DatetimeField(db_index=True)
    next_contact_at = fields.DatetimeField(null=True)
    author: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="followups", on_delete=fields.RESTRICT, db_index=True
    )
    created_at = fields.DatetimeField(auto_now_add=True)

    customer_id: int | None
    author_id: int

    class Meta:
        table = "followup"
        # A customer's follow-ups (customerId filter, its timeline).
        indexes = (("target_type", "target_id"), ("customer_id", "occurred_at"))


class Task(Model):
    id = fields.IntField(primary_key=True)
    title = fields.CharField(max_length=200)
    description = fields.TextField(null=True)
    assignee: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="tasks", on_delete=fields.RESTRICT, db_index=True
    )
    creator: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="created_tasks", on_delete=fields.RESTRICT
    )
    due_at = fields.DatetimeField(null=True, db_index=True)
    priority = fields.CharEnumField(TaskPriority, max_length=8, default=TaskPriority.NORMAL)
    status = fields.CharEnumField(TaskStatus, max_length=8, default=TaskStatus.OPEN)
    completed_at = fields.DatetimeField(null=True)
    related_type = fields.CharEnumField(RecordType, max_length=16, null=True)
    related_id = fields.IntField(null=True)
    customer: fields.ForeignKeyNullableRelation[Customer] = fields.ForeignKeyField(
        "models.Customer", related_name="tasks", null=True, on_delete=fields.RESTRICT
    )
    followup: fields.ForeignKeyNullableRelation[FollowUp] = fields.ForeignKeyField(
        "models.FollowUp", related_name="tasks", null=True, on_delete=fields.SET_NULL
    )
    version = fields.IntField(default=1)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    assignee_id: int
    creator_id: int
    customer_id: int | None

    class Meta:
        table = "task"
        # My tasks (assignee, status, by due time); a customer's tasks (timeline).
        indexes = (
            ("related_type", "related_id"),
            ("assignee_id", "status", "due_at"),
            ("customer_id",),
        )


class OperationLog(Model):
    """Who did what to which record, with old and new values of the fields."""

    id = fields.IntField(primary_key=True)
    actor: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name=False, null=True, on_delete=fields.RESTRICT
    )
    action = fields.CharField(max_length=32)  # CREATE, UPDATE, DELETE, TRANSFER, …
    record_type = fields.CharEnumField(RecordType, max_length=16)
    record_id = fields.IntField()
    customer: fields.ForeignKeyNullableRelation[Customer] = fields.ForeignKeyField(
        "models.Customer", related_name="operations", null=True, on_delete=fields.SET_NULL
    )
    # {field: [old, new]} in JSON-friendly values
    changes = fields.JSONField(default=dict)
    summary = fields.CharField(max_length=500, default="")
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)

    actor_id: int | None
    customer_id: int | None

    class Meta:
        table = "operation_log"
        # A customer's timeline reads its log entries by customer.
        indexes = (("record_type", "record_id"), ("customer_id",))

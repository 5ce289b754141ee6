"""Customers (客户) and their teams."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from meihua.models.org import User


class DealStatus(StrEnum):
    NOT_DEALT = "NOT_DEALT"
    DEALT = "DEALT"


class TeamAccess(StrEnum):
    READ = "READ"
    WRITE = "WRITE"


class Customer(Model):
    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=200)
    # First in owns (谁先录入谁拥有): normalized name and phone are unique.
    name_key = fields.CharField(max_length=200, unique=True)
    phone = fields.CharField(max_length=40, null=True)
    phone_key = fields.CharField(max_length=40, null=True, unique=True)
    industry = fields.CharField(max_length=100, null=True)
    region = fields.CharField(max_length=100, null=True)
    source = fields.CharField(max_length=100, null=True)
    level = fields.CharField(max_length=20, null=True)
    address = fields.CharField(max_length=300, null=True)
    remarks = fields.TextField(null=True)
    tags = fields.JSONField(default=list)
    # Locked customers are exempt from automatic recycling (锁定).
    locked = fields.BooleanField(default=False)
    deal_status = fields.CharEnumField(DealStatus, max_length=16, default=DealStatus.NOT_DEALT)
    # What recycling measures: the last follow-up on the customer or anything under it.
    last_followup_at = fields.DatetimeField(null=True, db_index=True)
    next_contact_at = fields.DatetimeField(null=True)
    owner: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User",
        related_name="owned_customers",
        null=True,
        on_delete=fields.RESTRICT,
        db_index=True,
    )
    created_by: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="created_customers", on_delete=fields.RESTRICT
    )
    # The pool the customer belongs to: it sits there while it has no owner,
    # and that pool's rules decide when it goes back there.
    pool: fields.ForeignKeyNullableRelation = fields.ForeignKeyField(
        "models.Pool", related_name="customers", null=True, on_delete=fields.RESTRICT
    )
    # When the current owner got it (created, claimed, assigned, transferred):
    # the no-deal clock and a fresh claim start here.
    taken_at = fields.DatetimeField(null=True)
    pool_entered_at = fields.DatetimeField(null=True)
    # Who owned it last before it went to the pool (the reclaim cool-down is theirs).
    previous_owner: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name=False, null=True, on_delete=fields.RESTRICT
    )
    # The owner was warned of recycling for the current ownership.
    recycle_warned_at = fields.DatetimeField(null=True)
    # Marks the rows one set-based recycling statement moved, to read them back.
    recycle_batch = fields.UUIDField(null=True, db_index=True)
    version = fields.IntField(default=1)
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)
    updated_at = fields.DatetimeField(auto_now=True)

    owner_id: int | None
    created_by_id: int
    pool_id: int | None
    previous_owner_id: int | None

    class Meta:
        table = "customer"
        # Pool scope and list; then the dealStatus filter and recycling scan, and
        # the UPDATED_AT ordering (CREATED_AT, owner, last follow-up: db_index).
        indexes = (("pool_id", "owner_id"), ("deal_status",), ("updated_at",))


class CustomerTeamMember(Model):
    """A colleague who shares a customer (READ or WRITE), until an optional expiry."""

    id = fields.IntField(primary_key=True)
    customer: fields.ForeignKeyRelation[Customer] = fields.ForeignKeyField(
        "models.Customer", related_name="team", on_delete=fields.CASCADE
    )
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="customer_teams", on_delete=fields.RESTRICT, db_index=True
    )
    access = fields.CharEnumField(TeamAccess, max_length=8, default=TeamAccess.READ)
    expires_at = fields.DatetimeField(null=True)
    added_by: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name=False, null=True, on_delete=fields.SET_NULL
    )
    created_at = fields.DatetimeField(auto_now_add=True)

    customer_id: int
    user_id: int

    class Meta:
        table = "customer_team_member"
        unique_together = (("customer", "user"),)

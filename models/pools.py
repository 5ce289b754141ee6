"""Public pools (公海), their rules, and the history of every pool movement."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from meihua.models.customers import Customer
from meihua.models.org import Department, User


class PoolMovementKind(StrEnum):
    RELEASED = "RELEASED"
    CLAIMED = "CLAIMED"
    ASSIGNED = "ASSIGNED"
    RECYCLED = "RECYCLED"
    TRANSFERRED = "TRANSFERRED"


class RecycleRule(StrEnum):
    """Why a customer went back to its pool by itself."""

    NO_FOLLOW_UP_NOT_DEALT = "NO_FOLLOW_UP_NOT_DEALT"
    NO_FOLLOW_UP_DEALT = "NO_FOLLOW_UP_DEALT"
    NO_DEAL = "NO_DEAL"


class Pool(Model):
    """A public pool. The company-wide one is open to everybody, others to member departments."""

    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=100, unique=True)
    company_wide = fields.BooleanField(default=False)
    # Members are the users of these departments and of every department below them.
    departments: fields.ManyToManyRelation[Department] = fields.ManyToManyField(
        "models.Department", related_name="pools", through="pool_department"
    )
    # Claim rules. null means no limit.
    max_owned = fields.IntField(null=True)
    max_claims_per_day = fields.IntField(null=True)
    reclaim_cooldown_days = fields.IntField(null=True)
    # Recycle rules, in days. null turns a rule off.
    recycle_not_dealt_after_days = fields.IntField(null=True)
    recycle_dealt_after_days = fields.IntField(null=True)
    recycle_no_deal_after_days = fields.IntField(null=True)
    warning_days = fields.IntField(default=3)
    version = fields.IntField(default=1)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "pool"


class PoolMovement(Model):
    """One pool movement of a customer: who moved it, from whom, to whom, and why."""

    id = fields.BigIntField(primary_key=True)
    customer: fields.ForeignKeyRelation[Customer] = fields.ForeignKeyField(
        "models.Customer", related_name="pool_movements", on_delete=fields.CASCADE
    )
    pool: fields.ForeignKeyNullableRelation[Pool] = fields.ForeignKeyField(
        "models.Pool", related_name="movements", null=True, on_delete=fields.SET_NULL
    )
    kind = fields.CharEnumField(PoolMovementKind, max_length=16)
    # null for recycling, which nobody does by hand
    actor: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name=False, null=True, on_delete=fields.RESTRICT
    )
    previous_owner: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name=False, null=True, on_delete=fields.RESTRICT
    )
    new_owner: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name=False, null=True, on_delete=fields.RESTRICT
    )
    reason = fields.TextField(null=True)
    rule = fields.CharEnumField(RecycleRule, max_length=32, null=True)
    created_at = fields.DatetimeField(db_index=True)

    customer_id: int
    pool_id: int | None
    actor_id: int | None
    previous_owner_id: int | None
    new_owner_id: int | None

    class Meta:
        table = "pool_movement"
        indexes = (("customer_id", "created_at"), ("new_owner_id", "kind", "created_at"))

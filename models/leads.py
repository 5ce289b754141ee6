"""Leads (线索): prospects before they become customers."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from meihua.models.org import User


class LeadStatus(StrEnum):
    NEW = "NEW"
    FOLLOWING = "FOLLOWING"
    CONVERTED = "CONVERTED"
    INVALID = "INVALID"


class Lead(Model):
    id = fields.IntField(primary_key=True)
    company_name = fields.CharField(max_length=200)
    contact_name = fields.CharField(max_length=100, null=True)
    phone = fields.CharField(max_length=40, null=True)
    phone_key = fields.CharField(max_length=40, null=True, db_index=True)
    email = fields.CharField(max_length=200, null=True)
    source = fields.CharField(max_length=100, null=True)
    industry = fields.CharField(max_length=100, null=True)
    region = fields.CharField(max_length=100, null=True)
    # null = in the lead pool, waiting to be distributed
    owner: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="leads", null=True, on_delete=fields.RESTRICT, db_index=True
    )
    status = fields.CharEnumField(LeadStatus, max_length=16, default=LeadStatus.NEW)
    invalid_reason = fields.TextField(null=True)
    last_followup_at = fields.DatetimeField(null=True)
    next_contact_at = fields.DatetimeField(null=True)
    remarks = fields.TextField(null=True)
    converted_customer: fields.ForeignKeyNullableRelation = fields.ForeignKeyField(
        "models.Customer", related_name="source_leads", null=True, on_delete=fields.SET_NULL
    )
    converted_contact: fields.ForeignKeyNullableRelation = fields.ForeignKeyField(
        "models.Contact", related_name=False, null=True, on_delete=fields.SET_NULL
    )
    converted_opportunity: fields.ForeignKeyNullableRelation = fields.ForeignKeyField(
        "models.Opportunity", related_name=False, null=True, on_delete=fields.SET_NULL
    )
    converted_at = fields.DatetimeField(null=True)
    created_by: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name=False, on_delete=fields.RESTRICT
    )
    version = fields.IntField(default=1)
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)
    updated_at = fields.DatetimeField(auto_now=True)

    owner_id: int | None

    class Meta:
        table = "lead"
        # The status filter and the followed-up range filter.
        indexes = (("status",), ("last_followup_at",))

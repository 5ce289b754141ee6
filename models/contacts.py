"""Contacts (联系人) and the five petals of the decision circle (梅花分配理论)."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from meihua.models.customers import Customer
from meihua.models.org import User


class DecisionRole(StrEnum):
    INITIATOR = "INITIATOR"  # 首倡者
    TECHNICAL_GATEKEEPER = "TECHNICAL_GATEKEEPER"  # 技术把关者
    KEY_USER = "KEY_USER"  # 关键使用者
    INFLUENCER = "INFLUENCER"  # 辅助决策者
    INSIDE_SUPPORTER = "INSIDE_SUPPORTER"  # 内线支持者


class Contact(Model):
    id = fields.IntField(primary_key=True)
    customer: fields.ForeignKeyRelation[Customer] = fields.ForeignKeyField(
        "models.Customer", related_name="contacts", on_delete=fields.RESTRICT, db_index=True
    )
    name = fields.CharField(max_length=100)
    title = fields.CharField(max_length=100, null=True)
    phone = fields.CharField(max_length=40, null=True)
    mobile = fields.CharField(max_length=40, null=True)
    email = fields.CharField(max_length=200, null=True)
    is_primary = fields.BooleanField(default=False)
    decision_role = fields.CharEnumField(DecisionRole, max_length=32, null=True)
    remarks = fields.TextField(null=True)
    last_followup_at = fields.DatetimeField(null=True)
    next_contact_at = fields.DatetimeField(null=True)
    created_by: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name=False, on_delete=fields.RESTRICT
    )
    version = fields.IntField(default=1)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    customer_id: int

    class Meta:
        table = "contact"
        # The contact list's default ordering.
        indexes = (("created_at",),)

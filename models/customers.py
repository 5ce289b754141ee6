"""Customers (客户)."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from meihua.models.org import User


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
    version = fields.IntField(default=1)
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)
    updated_at = fields.DatetimeField(auto_now=True)

    owner_id: int | None
    created_by_id: int

    class Meta:
        table = "customer"

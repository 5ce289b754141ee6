"""Sales targets (销售目标): what a user or a department should reach each month."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from meihua.models.org import Department, User

MONEY = {"max_digits": 18, "decimal_places": 2}


class TargetMetric(StrEnum):
    CONTRACT_AMOUNT = "CONTRACT_AMOUNT"
    PAYMENT_AMOUNT = "PAYMENT_AMOUNT"
    NEW_CUSTOMERS = "NEW_CUSTOMERS"


class SalesTarget(Model):
    """One month of one metric for a user or a department (exactly one of the two)."""

    id = fields.IntField(primary_key=True)
    user: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="targets", null=True, on_delete=fields.RESTRICT
    )
    department: fields.ForeignKeyNullableRelation[Department] = fields.ForeignKeyField(
        "models.Department", related_name="targets", null=True, on_delete=fields.CASCADE
    )
    metric = fields.CharEnumField(TargetMetric, max_length=24)
    year = fields.IntField()
    month = fields.IntField()
    value = fields.DecimalField(**MONEY)
    version = fields.IntField(default=1)
    updated_at = fields.DatetimeField(auto_now=True)

    user_id: int | None
    department_id: int | None

    class Meta:
        table = "sales_target"
        unique_together = (("user", "department", "metric", "year", "month"),)

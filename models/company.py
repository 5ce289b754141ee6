"""Company-wide settings (one row)."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class CompanySettings(Model):
    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=200, default="")
    currency = fields.CharField(max_length=3, default="CNY")  # ISO 4217
    version = fields.IntField(default=1)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "company_settings"

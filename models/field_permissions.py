"""Field-level permissions (字段权限): per role, which fields of a record it may see or change."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from meihua.models.activity import RecordType
from meihua.models.org import Role


class FieldAccess(StrEnum):
    """What a role may do with one field; a field without an entry is EDIT."""

    HIDDEN = "HIDDEN"
    READ = "READ"
    EDIT = "EDIT"


class FieldMask(StrEnum):
    """How a hidden field reads: null, or a masked text such as 138****5678."""

    NULL = "NULL"
    PHONE = "PHONE"
    EMAIL = "EMAIL"


class FieldPermission(Model):
    """The access of one role to one field of one kind of record.

    Entries with in_pool apply instead of the general entry of the same field
    while the record sits in a pool (a customer or its contact without owner,
    a lead in the lead pool).
    """

    id = fields.IntField(primary_key=True)
    role: fields.ForeignKeyRelation[Role] = fields.ForeignKeyField(
        "models.Role", related_name="field_permissions", on_delete=fields.CASCADE
    )
    record_type = fields.CharEnumField(RecordType, max_length=16)
    # The field as the API spells it, e.g. `phone` or `lastFollowUpAt`.
    field = fields.CharField(max_length=64)
    in_pool = fields.BooleanField(default=False)
    access = fields.CharEnumField(FieldAccess, max_length=8)
    mask = fields.CharEnumField(FieldMask, max_length=8, default=FieldMask.NULL)
    updated_at = fields.DatetimeField(auto_now=True)

    role_id: int

    class Meta:
        table = "field_permission"
        unique_together = (("role", "record_type", "field", "in_pool"),)

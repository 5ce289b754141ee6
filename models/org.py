"""Organization: the department tree, roles with data scopes, and users."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class DataScope(StrEnum):
    """Whose records a role may see (数据权限)."""

    SELF = "SELF"
    SELF_AND_SUBORDINATES = "SELF_AND_SUBORDINATES"
    DEPARTMENT = "DEPARTMENT"
    DEPARTMENT_TREE = "DEPARTMENT_TREE"
    CUSTOM = "CUSTOM"
    ALL = "ALL"


class Department(Model):
    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=100)
    parent: fields.ForeignKeyNullableRelation[Department] = fields.ForeignKeyField(
        "models.Department",
        related_name="children",
        null=True,
        on_delete=fields.RESTRICT,
        db_index=True,
    )
    version = fields.IntField(default=1)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    parent_id: int | None

    class Meta:
        table = "department"


class Role(Model):
    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=100, unique=True)
    # Operation permissions, `resource:action` strings from resolvers.permissions.
    permissions = fields.JSONField(default=list)
    data_scope = fields.CharEnumField(DataScope, max_length=32, default=DataScope.SELF)
    # Only read for DataScope.CUSTOM (定制): the departments the role may see.
    departments: fields.ManyToManyRelation[Department] = fields.ManyToManyField(
        "models.Department", related_name="custom_scope_roles", through="role_department"
    )
    version = fields.IntField(default=1)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "role"


class User(Model):
    """A team member. Never deleted: deactivated, or handed over by renaming."""

    id = fields.IntField(primary_key=True)
    username = fields.CharField(max_length=64, unique=True)
    name = fields.CharField(max_length=100)
    password_hash = fields.CharField(max_length=255)
    department: fields.ForeignKeyRelation[Department] = fields.ForeignKeyField(
        "models.Department", related_name="users", on_delete=fields.RESTRICT, db_index=True
    )
    manager: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User",
        related_name="subordinates",
        null=True,
        on_delete=fields.RESTRICT,
        db_index=True,
    )
    roles: fields.ManyToManyRelation[Role] = fields.ManyToManyField(
        "models.Role", related_name="users", through="user_role"
    )
    is_super_admin = fields.BooleanField(default=False)
    is_active = fields.BooleanField(default=True, db_index=True)
    # Bumped on password change and deactivation; tokens carry it, so old ones die.
    token_version = fields.IntField(default=1)
    last_login_at = fields.DatetimeField(null=True)
    version = fields.IntField(default=1)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    department_id: int
    manager_id: int | None

    class Meta:
        table = "users"

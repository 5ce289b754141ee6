"""Organization rules: departments, roles and users (组织 / 角色 / 用户).

The department tree stays a single tree without cycles; users are never
deleted; the last active super admin can neither be demoted nor deactivated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F

from meihua.models import ApprovalStep, DataScope, Department, Role, User
from meihua.resolvers.access import Viewer
from meihua.resolvers.auth import (
    check_password_strength,
    hash_password,
    normalize_username,
    verify_password,
)
from meihua.resolvers.errors import BadUserInput, Conflict, Duplicate, Forbidden, NotFound
from meihua.resolvers.hierarchy import department_subtree, reporting_tree
from meihua.resolvers.permissions import ORG_MANAGE, unknown_permissions
from meihua.resolvers.versioning import update_versioned
from meihua.subscriptions.events import record_event, transaction

USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9_.@-]{3,64}$")
UNSET: Any = object()  # a field the caller did not send


def clean_name(value: str, field: str, max_length: int = 100) -> str:
    value = value.strip()
    if not value:
        raise BadUserInput(f"`{field}` must not be blank.", field=field)
    if len(value) > max_length:
        raise BadUserInput(f"`{field}` is longer than {max_length} characters.", field=field)
    return value


# --- departments -------------------------------------------------------------


async def org_changed(viewer: Viewer, change: str, pk: int | None) -> None:
    """Tell every event hub to work out again what people may see (and who is gone).

    Recorded first thing in the transaction, it is only kept if the change commits.
    """
    await record_event(
        "user.deactivated" if change == "user.deactivated" else "org.changed",
        record_type="ORG",
        record_id=pk or 0,
        actor_id=viewer.id,
        payload={"change": change},
    )


async def top_department() -> Department:
    return await Department.filter(parent_id=None).order_by("id").first()


async def _department(pk: int, field: str | None = None) -> Department:
    department = await Department.get_or_none(id=pk)
    if department is None:
        message = "No such department."
        raise BadUserInput(message, field=field) if field else NotFound(message)
    return department


async def _check_sibling_name(name: str, parent_id: int | None, exclude: int | None = None):
    siblings = Department.filter(parent_id=parent_id, name=name)
    if exclude is not None:
        siblings = siblings.exclude(id=exclude)
    if await siblings.exists():
        raise Duplicate(f"A department named {name!r} already exists here.", field="name")


async def _lock_children_of(parent_id: int | None) -> None:
    """Serialise sibling-name checks under one parent (PostgreSQL; SQLite
    serialises writers anyway): without it two admins creating "Sales" at once
    both pass the check, as no database constraint backs it."""
    if parent_id is not None:
        await Department.filter(id=parent_id).select_for_update().first()


async def create_department(viewer: Viewer, name: str, parent_id: int | None) -> Department:
    viewer.require(ORG_MANAGE)
    name = clean_name(name, "name")
    async with transaction():
        await org_changed(viewer, "department.created", None)
        parent = await (_department(parent_id, "parentId") if parent_id else top_department())
        await _lock_children_of(parent.id)
        await _check_sibling_name(name, parent.id)
        return await Department.create(name=name, parent_id=parent.id)


async def update_department(
    viewer: Viewer,
    pk: int,
    *,
    name: str | None,
    parent_id: int | None,
    expected_version: int | None,
) -> Department:
    viewer.require(ORG_MANAGE)
    changes: dict[str, Any] = {}
    async with transaction():
        await org_changed(viewer, "department.updated", pk)
        department = await _department(pk)
        if name is not None:
            changes["name"] = clean_name(name, "name")
        if parent_id is not None and parent_id != department.parent_id:
            if department.parent_id is None:
                raise BadUserInput("The top department cannot be moved.", field="parentId")
            await _department(parent_id, "parentId")
            if parent_id in await department_subtree(department.id):
                raise BadUserInput(
                    "A department cannot move under itself or its own sub-department.",
                    field="parentId",
                )
            changes["parent_id"] = parent_id
        await _lock_children_of(changes.get("parent_id", department.parent_id))
        await _check_sibling_name(
            changes.get("name", department.name),
            changes.get("parent_id", department.parent_id),
            exclude=department.id,
        )
        return await update_versioned(department, expected_version, **changes)


async def delete_department(viewer: Viewer, pk: int) -> int:
    viewer.require(ORG_MANAGE)
    async with transaction():
        await org_changed(viewer, "department.deleted", pk)
        department = await _department(pk)
        if department.parent_id is None:
            raise Conflict("The top department cannot be deleted.")
        if await User.filter(department_id=pk).exists():
            raise Conflict("The department still has users; move them first.")
        if await Department.filter(parent_id=pk).exists():
            raise Conflict("The department still has sub-departments; move or delete them first.")
        stranded = [
            role.name
            for role in await Role.filter(data_scope=DataScope.CUSTOM, departments__id=pk)
            if await role.departments.all().count() == 1
        ]
        if stranded:
            raise Conflict(
                f"The custom scope of {', '.join(sorted(stranded))} covers only this "
                "department; give those roles another department first."
            )
        await department.delete()
    return pk


# --- roles -------------------------------------------------------------------


@dataclass
class RoleInput:
    name: str | None = None
    permissions: list[str] | None = None
    data_scope: DataScope | None = None
    department_ids: list[int] | None = None


async def _validated_role(data: RoleInput, current: Role | None) -> tuple[dict, list | None]:
    changes: dict[str, Any] = {}
    if data.name is not None:
        changes["name"] = clean_name(data.name, "name")
        clash = Role.filter(name=changes["name"])
        if current is not None:
            clash = clash.exclude(id=current.id)
        if await clash.exists():
            raise Duplicate(
                f"A role named {changes['name']!r} already exists.", field="name"
            ) from None
    if data.permissions is not None:
        if unknown := unknown_permissions(data.permissions):
            raise BadUserInput(
                f"Unknown permissions: {', '.join(unknown)}. See the `permissions` query.",
                field="permissions",
            )
        changes["permissions"] = sorted(set(data.permissions))
    if data.data_scope is not None:
        changes["data_scope"] = data.data_scope
    departments = None
    if data.department_ids is not None:
        wanted = set(data.department_ids)
        departments = await Department.filter(id__in=wanted)
        if len(departments) != len(wanted):
            raise BadUserInput("Some departments do not exist.", field="departmentIds")
    scope = changes.get("data_scope", current.data_scope if current else None)
    if scope == DataScope.CUSTOM:
        has_departments = (
            bool(departments)
            if departments is not None
            else current is not None and await current.departments.all().exists()
        )
        if not has_departments:
            raise BadUserInput(
                "A CUSTOM data scope needs at least one department.", field="departmentIds"
            )
    return changes, departments


async def create_role(viewer: Viewer, data: RoleInput) -> Role:
    viewer.require(ORG_MANAGE)
    async with transaction():
        await org_changed(viewer, "role.created", None)
        changes, departments = await _validated_role(data, None)
        try:
            role = await Role.create(**changes)
        except IntegrityError:
            raise Duplicate(
                f"A role named {changes['name']!r} already exists.", field="name"
            ) from None
        if departments:
            await role.departments.add(*departments)
        return role


async def update_role(
    viewer: Viewer, pk: int, data: RoleInput, expected_version: int | None
) -> Role:
    viewer.require(ORG_MANAGE)
    async with transaction():
        await org_changed(viewer, "role.updated", pk)
        role = await Role.get_or_none(id=pk)
        if role is None:
            raise NotFound("No such role.")
        changes, departments = await _validated_role(data, role)
        if changes.get("data_scope", role.data_scope) != DataScope.CUSTOM:
            departments = []  # only a CUSTOM scope keeps chosen departments
        if departments is not None:
            await role.departments.clear()
            if departments:
                await role.departments.add(*departments)
        try:
            return await update_versioned(role, expected_version, **changes)
        except IntegrityError:
            if "name" not in changes:
                raise
            # Another admin took the name between the check and the write.
            raise Duplicate(
                f"A role named {changes['name']!r} already exists.", field="name"
            ) from None


async def delete_role(viewer: Viewer, pk: int) -> int:
    viewer.require(ORG_MANAGE)
    async with transaction():
        await org_changed(viewer, "role.deleted", pk)
        role = await Role.get_or_none(id=pk)
        if role is None:
            raise NotFound("No such role.")
        if await User.filter(roles__id=pk).exists():
            raise Conflict("The role is still given to users; take it from them first.")
        if await ApprovalStep.filter(role_id=pk).exists():
            raise Conflict("A contract approval step names this role; change the flow first.")
        await role.delete()
    return pk


# --- users -------------------------------------------------------------------


@dataclass
class UserInput:
    username: str | None = None
    password: str | None = None
    name: str | None = None
    department_id: int | None = None
    role_ids: list[int] | None = None
    manager_id: int | None = UNSET  # None clears the manager
    is_super_admin: bool | None = None


async def _get_user(pk: int) -> User:
    user = await User.get_or_none(id=pk)
    if user is None:
        raise NotFound("No such user.")
    return user


def _guard_super_admin_accounts(viewer: Viewer, target: User | None, data: UserInput) -> None:
    """Only super admins grant super admin or touch a super admin's account."""
    if viewer.is_super_admin:
        return
    if data.is_super_admin or (target is not None and target.is_super_admin):
        raise Forbidden("Only a super admin can manage super admin accounts.")


async def _ensure_another_super_admin(user: User) -> None:
    """Refuse to lose the last active super admin.

    Locking every active super admin row, the target's included, in id order
    serialises concurrent demotions on PostgreSQL (SQLite serialises writers
    anyway), so two admins cannot demote each other at once: the second waits,
    then no longer sees the first as a super admin. (Locking only the others,
    and through `values_list`, which drops FOR UPDATE, let both go through.)
    """
    admins = (
        await User.filter(is_super_admin=True, is_active=True).order_by("id").select_for_update()
    )
    others = [admin.id for admin in admins if admin.id != user.id]
    if not others:
        raise Conflict("This is the last active super admin; make someone else one first.")


async def _validated_user(data: UserInput, current: User | None) -> tuple[dict, list | None]:
    changes: dict[str, Any] = {}
    if data.username is not None:
        username = normalize_username(data.username)
        if not USERNAME_PATTERN.match(username):
            raise BadUserInput("Usernames are 3–64 letters, digits or . _ @ -.", field="username")
        clash = User.filter(username=username)
        if current is not None:
            clash = clash.exclude(id=current.id)
        if await clash.exists():
            raise Duplicate(f"The username {username!r} is taken.", field="username")
        changes["username"] = username
    if data.name is not None:
        changes["name"] = clean_name(data.name, "name")
    if data.password is not None:
        check_password_strength(data.password)
        changes["password_hash"] = hash_password(data.password)
    if data.department_id is not None:
        await _department(data.department_id, "departmentId")
        changes["department_id"] = data.department_id
    if data.manager_id is not UNSET:
        if data.manager_id is not None:
            await _check_manager(data.manager_id, current)
        changes["manager_id"] = data.manager_id
    if data.is_super_admin is not None:
        changes["is_super_admin"] = data.is_super_admin
    roles = None
    if data.role_ids is not None:
        wanted = set(data.role_ids)
        roles = await Role.filter(id__in=wanted)
        if len(roles) != len(wanted):
            raise BadUserInput("Some roles do not exist.", field="roleIds")
    return changes, roles


async def _check_manager(manager_id: int, user: User | None) -> None:
    if await User.get_or_none(id=manager_id) is None:
        raise BadUserInput("No such manager.", field="managerId")
    if user is None:
        return
    if manager_id in await reporting_tree(user.id):
        raise BadUserInput(
            "A user cannot report to themselves or to someone who reports to them.",
            field="managerId",
        )


async def create_user(viewer: Viewer, data: UserInput) -> User:
    viewer.require(ORG_MANAGE)
    _guard_super_admin_accounts(viewer, None, data)
    for field, value in (
        ("username", data.username),
        ("password", data.password),
        ("name", data.name),
    ):
        if value is None:
            raise BadUserInput(f"`{field}` is required.", field=field)
    async with transaction():
        await org_changed(viewer, "user.created", None)
        changes, roles = await _validated_user(data, None)
        changes.setdefault("manager_id", None)
        try:
            user = await User.create(**changes)
        except IntegrityError:
            raise Duplicate(
                f"The username {changes['username']!r} is taken.", field="username"
            ) from None
        if roles:
            await user.roles.add(*roles)
        return user


async def update_user(
    viewer: Viewer, pk: int, data: UserInput, expected_version: int | None
) -> User:
    """Edit a user; with a new username, name and password this hands the account over."""
    viewer.require(ORG_MANAGE)
    async with transaction():
        await org_changed(viewer, "user.updated", pk)
        user = await _get_user(pk)
        _guard_super_admin_accounts(viewer, user, data)
        changes, roles = await _validated_user(data, user)
        if data.is_super_admin is False and user.is_super_admin and user.is_active:
            await _ensure_another_super_admin(user)
        if "password_hash" in changes or changes.get("username", user.username) != user.username:
            # A new password or a hand-over to someone else ends every session.
            changes["token_version"] = F("token_version") + 1
        if roles is not None:
            await user.roles.clear()
            if roles:
                await user.roles.add(*roles)
        try:
            return await update_versioned(user, expected_version, **changes)
        except IntegrityError:
            if "username" not in changes:
                raise
            # Another admin took the username between the check and the write.
            raise Duplicate(
                f"The username {changes['username']!r} is taken.", field="username"
            ) from None


async def set_user_active(viewer: Viewer, pk: int, active: bool) -> User:
    viewer.require(ORG_MANAGE)
    async with transaction():
        await org_changed(viewer, "user.activated" if active else "user.deactivated", pk)
        user = await _get_user(pk)
        _guard_super_admin_accounts(viewer, user, UserInput())
        if user.is_active == active:
            return user
        changes: dict[str, Any] = {"is_active": active}
        if not active:
            if user.is_super_admin:
                await _ensure_another_super_admin(user)
            # Deactivation kills every token the user holds.
            changes["token_version"] = F("token_version") + 1
        return await update_versioned(user, None, **changes)


async def change_own_password(viewer: Viewer, current: str, new: str) -> User:
    user = await _get_user(viewer.id)
    if not verify_password(user.password_hash, current):
        raise BadUserInput("The current password is wrong.", field="currentPassword")
    check_password_strength(new, field="newPassword")
    async with transaction():
        await org_changed(viewer, "user.password_changed", viewer.id)
        return await update_versioned(
            user,
            None,
            password_hash=hash_password(new),
            token_version=F("token_version") + 1,
        )

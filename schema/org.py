"""GraphQL API of the organization: departments, roles, users, login and `me`."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry
from tortoise.expressions import Q

from meihua import models
from meihua.models import DataScope as DataScopeModel
from meihua.resolvers import auth, org
from meihua.resolvers.hierarchy import department_subtree
from meihua.resolvers.pagination import Ordering
from meihua.resolvers.permissions import ALL_PERMISSIONS
from meihua.schema.context import Info
from meihua.schema.permissions import SignedIn
from meihua.schema.rate_limits import client_ip
from meihua.schema.relay import (
    Connection,
    Node,
    connection,
    record_id,
    reference_id,
    reference_ids,
    to_global_id,
)

DataScope = strawberry.enum(DataScopeModel, description="Whose records a role may see (数据权限).")


@strawberry.type
class Department(Node):
    name: str
    version: int
    created_at: datetime
    parent_pk: strawberry.Private[int | None]
    pk: strawberry.Private[int]

    @classmethod
    def of(cls, row: models.Department) -> Department:
        return cls(
            id=to_global_id("Department", row.id),
            pk=row.id,
            name=row.name,
            version=row.version,
            created_at=row.created_at,
            parent_pk=row.parent_id,
        )

    @strawberry.field
    async def parent(self, info: Info) -> Department | None:
        if self.parent_pk is None:
            return None
        return Department.of(await info.context.loaders.department.load(self.parent_pk))

    @strawberry.field(description="Direct sub-departments, by name.")
    async def children(self, info: Info) -> list[Department]:
        rows = await info.context.loaders.children_of_department.load(self.pk)
        return [Department.of(row) for row in rows]


@strawberry.type
class Role(Node):
    name: str
    permissions: list[str]
    data_scope: DataScope
    version: int
    pk: strawberry.Private[int]

    @classmethod
    def of(cls, row: models.Role) -> Role:
        return cls(
            id=to_global_id("Role", row.id),
            pk=row.id,
            name=row.name,
            permissions=list(row.permissions),
            data_scope=DataScopeModel(row.data_scope),
            version=row.version,
        )

    @strawberry.field(description="The departments a CUSTOM data scope covers.")
    async def departments(self, info: Info) -> list[Department]:
        rows = await info.context.loaders.departments_of_role.load(self.pk)
        return [Department.of(row) for row in rows]


@strawberry.type(description="A team member. The password is never readable.")
class User(Node):
    username: str
    name: str
    is_active: bool
    is_super_admin: bool
    version: int
    created_at: datetime
    last_login_at: datetime | None
    pk: strawberry.Private[int]
    department_pk: strawberry.Private[int]
    manager_pk: strawberry.Private[int | None]

    @classmethod
    def of(cls, row: models.User) -> User:
        return cls(
            id=to_global_id("User", row.id),
            pk=row.id,
            username=row.username,
            name=row.name,
            is_active=row.is_active,
            is_super_admin=row.is_super_admin,
            version=row.version,
            created_at=row.created_at,
            last_login_at=row.last_login_at,
            department_pk=row.department_id,
            manager_pk=row.manager_id,
        )

    @strawberry.field
    async def department(self, info: Info) -> Department:
        return Department.of(await info.context.loaders.department.load(self.department_pk))

    @strawberry.field(description="上级: whose subordinate this user is.")
    async def manager(self, info: Info) -> User | None:
        if self.manager_pk is None:
            return None
        return User.of(await info.context.loaders.user.load(self.manager_pk))

    @strawberry.field
    async def roles(self, info: Info) -> list[Role]:
        return [Role.of(r) for r in await info.context.loaders.roles_of_user.load(self.pk)]

    @strawberry.field(
        description="The union of the user's role permissions (all for super admins)."
    )
    async def permissions(self, info: Info) -> list[str]:
        if self.is_super_admin:
            return list(ALL_PERMISSIONS)
        roles = await info.context.loaders.roles_of_user.load(self.pk)
        granted = {p for role in roles for p in role.permissions}
        return [p for p in ALL_PERMISSIONS if p in granted]


@strawberry.type
class AuthPayload:
    token: str
    user: User


@strawberry.type
class DeletePayload:
    deleted_id: strawberry.ID


@strawberry.enum
class UserOrderField(Enum):
    USERNAME = "username"
    NAME = "name"
    CREATED_AT = "created_at"


@strawberry.input
class UserOrder:
    field: UserOrderField = UserOrderField.USERNAME
    descending: bool = False


@strawberry.input
class UserFilter:
    department_id: strawberry.ID | None = None
    include_sub_departments: bool = False
    is_active: bool | None = None
    search: str | None = strawberry.field(default=None, description="Matches username or name.")


@strawberry.input
class CreateDepartmentInput:
    name: str
    parent_id: strawberry.ID | None = strawberry.field(
        default=None, description="Defaults to the top department."
    )


@strawberry.input
class UpdateDepartmentInput:
    name: str | None = None
    parent_id: strawberry.ID | None = strawberry.field(
        default=None, description="Move the department under another one."
    )


@strawberry.input
class CreateRoleInput:
    name: str
    permissions: list[str]
    data_scope: DataScope
    department_ids: list[strawberry.ID] | None = None


@strawberry.input
class UpdateRoleInput:
    name: str | None = None
    permissions: list[str] | None = None
    data_scope: DataScope | None = None
    department_ids: list[strawberry.ID] | None = None


@strawberry.input
class CreateUserInput:
    username: str
    password: str
    name: str
    department_id: strawberry.ID
    role_ids: list[strawberry.ID]
    manager_id: strawberry.ID | None = None
    is_super_admin: bool | None = False


@strawberry.input(
    description="Send only what changes; a new username, name and password hand the account over."
)
class UpdateUserInput:
    username: str | None = None
    password: str | None = None
    name: str | None = None
    department_id: strawberry.ID | None = None
    role_ids: list[strawberry.ID] | None = None
    manager_id: strawberry.ID | None = strawberry.UNSET
    is_super_admin: bool | None = None


def _role_input(data: CreateRoleInput | UpdateRoleInput) -> org.RoleInput:
    return org.RoleInput(
        name=data.name,
        permissions=data.permissions,
        data_scope=DataScopeModel(data.data_scope.value) if data.data_scope else None,
        department_ids=(
            reference_ids(data.department_ids, "Department", "departmentIds")
            if data.department_ids is not None
            else None
        ),
    )


def _user_input(data: CreateUserInput | UpdateUserInput) -> org.UserInput:
    manager = data.manager_id
    return org.UserInput(
        username=data.username,
        password=data.password,
        name=data.name,
        department_id=(
            reference_id(data.department_id, "Department", "departmentId")
            if data.department_id is not None
            else None
        ),
        role_ids=(
            reference_ids(data.role_ids, "Role", "roleIds") if data.role_ids is not None else None
        ),
        manager_id=(
            org.UNSET
            if manager is strawberry.UNSET
            else None
            if manager is None
            else reference_id(manager, "User", "managerId")
        ),
        is_super_admin=data.is_super_admin,
    )


@strawberry.type
class OrgQuery:
    @strawberry.field(description="The signed-in user.")
    async def me(self, info: Info) -> User:
        return User.of(info.context.viewer.user)

    @strawberry.field(
        description="Every operation permission a role can hold.", permission_classes=[SignedIn]
    )
    def permissions(self) -> list[str]:
        return list(ALL_PERMISSIONS)

    @strawberry.field(
        description="All departments, top department first.", permission_classes=[SignedIn]
    )
    async def departments(self) -> list[Department]:
        rows = await models.Department.all().order_by("id")
        return [Department.of(row) for row in rows]

    @strawberry.field(permission_classes=[SignedIn])
    async def roles(self) -> list[Role]:
        return [Role.of(row) for row in await models.Role.all().order_by("id")]

    @strawberry.field(
        description="The team directory; every signed-in user may read it.",
        permission_classes=[SignedIn],
    )
    async def users(
        self,
        info: Info,
        filter: UserFilter | None = None,
        order_by: UserOrder | None = None,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[User]:
        query = models.User.all()
        where = filter or UserFilter()
        if where.department_id is not None:
            dept = reference_id(where.department_id, "Department", "departmentId")
            ids = await department_subtree(dept) if where.include_sub_departments else {dept}
            query = query.filter(department_id__in=ids)
        if where.is_active is not None:
            query = query.filter(is_active=where.is_active)
        if where.search:
            term = where.search.strip()
            query = query.filter(Q(username__icontains=term) | Q(name__icontains=term))
        order = order_by or UserOrder()
        return await connection(
            info,
            query,
            Ordering(order.field.value, order.descending),
            User,
            first=first,
            after=after,
            last=last,
            before=before,
        )


@strawberry.type
class OrgMutation:
    @strawberry.mutation(description="Sign in; send the token as `Authorization: Bearer <token>`.")
    async def login(self, info: Info, username: str, password: str) -> AuthPayload:
        # Counted before the password is checked: while an attempt has to wait, no
        # guess reaches the check at all.
        limits, ip = info.context.rate_limits, client_ip(info.context)
        await limits.login_attempt(username, ip)
        token, user = await auth.login(username, password, info.context.signer)
        await limits.login_succeeded(username, ip)
        return AuthPayload(token=token, user=User.of(user))

    @strawberry.mutation(description="Change your own password; your other sessions end.")
    async def change_password(
        self, info: Info, current_password: str, new_password: str
    ) -> AuthPayload:
        # The current password is a guess like a sign-in's: a stolen token must not
        # be able to try passwords here faster than at `login`.
        viewer, limits, ip = info.context.viewer, info.context.rate_limits, client_ip(info.context)
        await limits.login_attempt(viewer.user.username, ip)
        user = await org.change_own_password(viewer, current_password, new_password)
        await limits.login_succeeded(viewer.user.username, ip)
        return AuthPayload(token=info.context.signer.issue(user), user=User.of(user))

    @strawberry.mutation
    async def create_department(self, info: Info, input: CreateDepartmentInput) -> Department:
        viewer = info.context.viewer
        parent = (
            reference_id(input.parent_id, "Department", "parentId") if input.parent_id else None
        )
        row = await org.create_department(viewer, input.name, parent)
        return Department.of(row)

    @strawberry.mutation(description="Rename or move a department (never under itself).")
    async def update_department(
        self,
        info: Info,
        id: strawberry.ID,
        input: UpdateDepartmentInput,
        expected_version: int | None = None,
    ) -> Department:
        viewer = info.context.viewer
        parent = (
            reference_id(input.parent_id, "Department", "parentId") if input.parent_id else None
        )
        row = await org.update_department(
            viewer,
            record_id(id, "Department"),
            name=input.name,
            parent_id=parent,
            expected_version=expected_version,
        )
        return Department.of(row)

    @strawberry.mutation(description="Delete an empty department (no users, no sub-departments).")
    async def delete_department(self, info: Info, id: strawberry.ID) -> DeletePayload:
        viewer = info.context.viewer
        await org.delete_department(viewer, record_id(id, "Department"))
        return DeletePayload(deleted_id=id)

    @strawberry.mutation
    async def create_role(self, info: Info, input: CreateRoleInput) -> Role:
        viewer = info.context.viewer
        return Role.of(await org.create_role(viewer, _role_input(input)))

    @strawberry.mutation
    async def update_role(
        self,
        info: Info,
        id: strawberry.ID,
        input: UpdateRoleInput,
        expected_version: int | None = None,
    ) -> Role:
        viewer = info.context.viewer
        row = await org.update_role(
            viewer, record_id(id, "Role"), _role_input(input), expected_version
        )
        return Role.of(row)

    @strawberry.mutation(description="Delete a role nobody holds.")
    async def delete_role(self, info: Info, id: strawberry.ID) -> DeletePayload:
        viewer = info.context.viewer
        await org.delete_role(viewer, record_id(id, "Role"))
        return DeletePayload(deleted_id=id)

    @strawberry.mutation
    async def create_user(self, info: Info, input: CreateUserInput) -> User:
        viewer = info.context.viewer
        return User.of(await org.create_user(viewer, _user_input(input)))

    @strawberry.mutation
    async def update_user(
        self,
        info: Info,
        id: strawberry.ID,
        input: UpdateUserInput,
        expected_version: int | None = None,
    ) -> User:
        viewer = info.context.viewer
        row = await org.update_user(
            viewer, record_id(id, "User"), _user_input(input), expected_version
        )
        return User.of(row)

    @strawberry.mutation(
        description="Lock a user out; their records stay. Users are never deleted."
    )
    async def deactivate_user(self, info: Info, id: strawberry.ID) -> User:
        viewer = info.context.viewer
        return User.of(await org.set_user_active(viewer, record_id(id, "User"), False))

    @strawberry.mutation
    async def reactivate_user(self, info: Info, id: strawberry.ID) -> User:
        viewer = info.context.viewer
        return User.of(await org.set_user_active(viewer, record_id(id, "User"), True))

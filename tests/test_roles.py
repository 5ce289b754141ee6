"""Roles: operation permissions plus a data scope (spec §2)."""

import asyncio

import pytest

from meihua.models import DataScope, Department, Role
from meihua.resolvers.permissions import ALL_PERMISSIONS
from meihua.schema.relay import to_global_id

ROLE_FIELDS = "id name permissions dataScope version departments { id name }"
CREATE = f"mutation($input: CreateRoleInput!) {{ createRole(input: $input) {{ {ROLE_FIELDS} }} }}"
UPDATE = f"""
mutation($id: ID!, $input: UpdateRoleInput!, $expectedVersion: Int) {{
  updateRole(id: $id, input: $input, expectedVersion: $expectedVersion) {{ {ROLE_FIELDS} }}
}}
"""
DELETE = "mutation($id: ID!) { deleteRole(id: $id) { deletedId } }"
ROLES = "{ roles { name dataScope permissions } }"


def gid(role: Role) -> str:
    return to_global_id("Role", role.id)


def dept_gid(department: Department) -> str:
    return to_global_id("Department", department.id)


async def snapshot() -> list[tuple]:
    roles = (
        await Role.all()
        .order_by("id")
        .values_list("id", "name", "data_scope", "permissions", "version")
    )
    links = await Role.all().order_by("id", "departments__id").values_list("id", "departments__id")
    return [*roles, *links]


def assert_refused(result, code: str, field: str | None = None) -> None:
    assert result.data is None
    assert result.codes == [code], result.errors
    if field is not None:
        assert result.error["extensions"]["field"] == field


@pytest.fixture
async def admin(org):
    return await org.admin()


# --- what exists from the start -------------------------------------------------


async def test_default_roles_exist_with_their_scopes(gql, org):
    user = await org.user("alice")
    roles = {r["name"]: r for r in (await gql.ok(ROLES, as_user=user))["roles"]}

    assert {name: r["dataScope"] for name, r in roles.items()} == {
        "Sales Rep": "SELF",
        "Sales Manager": "DEPARTMENT_TREE",
        "Finance": "ALL",
        "Administrator": "ALL",
    }
    assert "customer:create" in roles["Sales Rep"]["permissions"]
    assert "org:manage" not in roles["Sales Rep"]["permissions"]
    assert "org:manage" not in roles["Sales Manager"]["permissions"]
    assert {"contract:approve", "payment:create"} <= set(roles["Finance"]["permissions"])
    assert "customer:create" not in roles["Finance"]["permissions"]
    assert {"org:manage", "settings:manage"} <= set(roles["Administrator"]["permissions"])


async def test_permissions_query_lists_the_whole_catalogue(gql, org):
    user = await org.user("alice")
    permissions = (await gql.ok("{ permissions }", as_user=user))["permissions"]

    assert permissions == list(ALL_PERMISSIONS)
    assert len(permissions) == len(set(permissions))
    assert all(p.count(":") == 1 and all(p.split(":")) for p in permissions)
    spec_named = {
        "customer:create", "customer:update", "customer:delete", "customer:import",
        "customer:export", "customer:transfer", "customer:lock",
        "pool:claim", "pool:assign", "pool:release", "pool:manage",
        "lead:create", "lead:update", "lead:delete", "lead:import", "lead:export",
        "lead:transfer", "lead:convert", "lead:distribute",
        "contract:approve", "product:manage", "dashboard:view", "org:manage", "settings:manage",
    }  # fmt: skip
    assert spec_named <= set(permissions)
    # Every permission a default role holds comes from the catalogue.
    for role in await Role.all():
        assert set(role.permissions) <= set(permissions), role.name


async def test_permissions_query_needs_a_signed_in_user(gql, org):
    result = await gql("{ permissions }")
    assert result.codes == ["UNAUTHENTICATED"]


# --- create -----------------------------------------------------------------------


@pytest.mark.parametrize("scope", [s.value for s in DataScope])
async def test_create_role_with_each_data_scope(gql, org, admin, scope):
    sales = await org.department("Sales")
    variables = {
        "input": {
            "name": f"{scope} role",
            "permissions": ["customer:create", "customer:update"],
            "dataScope": scope,
        }
    }
    if scope == "CUSTOM":
        variables["input"]["departmentIds"] = [dept_gid(sales)]

    created = (await gql.ok(CREATE, variables, as_user=admin))["createRole"]

    assert created["name"] == f"{scope} role"
    assert created["dataScope"] == scope
    assert sorted(created["permissions"]) == ["customer:create", "customer:update"]
    assert created["departments"] == (
        [{"id": dept_gid(sales), "name": "Sales"}] if scope == "CUSTOM" else []
    )
    stored = await Role.get(name=f"{scope} role")
    assert created["id"] == gid(stored)
    assert stored.data_scope == scope
    assert sorted(stored.permissions) == ["customer:create", "customer:update"]


async def test_created_role_shows_up_in_the_roles_list(gql, admin):
    await gql.ok(
        CREATE, {"input": {"name": "Auditor", "permissions": [], "dataScope": "ALL"}}, as_user=admin
    )
    names = [r["name"] for r in (await gql.ok(ROLES, as_user=admin))["roles"]]
    assert names[-1] == "Auditor"
    assert len(names) == 5


async def test_repeated_permissions_are_kept_once(gql, admin):
    created = (
        await gql.ok(
            CREATE,
            {
                "input": {
                    "name": "Claimer",
                    "permissions": ["pool:claim", "pool:claim"],
                    "dataScope": "SELF",
                }
            },
            as_user=admin,
        )
    )["createRole"]
    assert created["permissions"] == ["pool:claim"]


@pytest.mark.parametrize("department_ids", [None, []])
async def test_custom_scope_needs_departments(gql, admin, department_ids):
    before = await snapshot()
    result = await gql(
        CREATE,
        {
            "input": {
                "name": "Custom",
                "permissions": [],
                "dataScope": "CUSTOM",
                "departmentIds": department_ids,
            }
        },
        as_user=admin,
    )

    assert_refused(result, "BAD_USER_INPUT", "departmentIds")
    assert await snapshot() == before


async def test_custom_scope_with_unknown_department_is_refused(gql, org, admin):
    sales = await org.department("Sales")
    before = await snapshot()
    result = await gql(
        CREATE,
        {
            "input": {
                "name": "Custom",
                "permissions": [],
                "dataScope": "CUSTOM",
                "departmentIds": [dept_gid(sales), to_global_id("Department", 999)],
            }
        },
        as_user=admin,
    )
    assert_refused(result, "BAD_USER_INPUT", "departmentIds")
    assert await snapshot() == before


async def test_unknown_permission_is_refused(gql, admin):
    before = await snapshot()
    result = await gql(
        CREATE,
        {
            "input": {
                "name": "Hacker",
                "permissions": ["customer:create", "customer:fly"],
                "dataScope": "ALL",
            }
        },
        as_user=admin,
    )

    assert_refused(result, "BAD_USER_INPUT", "permissions")
    assert "customer:fly" in result.error["message"]
    assert await snapshot() == before


@pytest.mark.parametrize("name", ["Sales Rep", "  Sales Rep "])
async def test_duplicate_role_name_is_refused(gql, admin, name):
    before = await snapshot()
    result = await gql(
        CREATE, {"input": {"name": name, "permissions": [], "dataScope": "ALL"}}, as_user=admin
    )
    assert_refused(result, "DUPLICATE", "name")
    assert await snapshot() == before


async def test_blank_role_name_is_refused(gql, admin):
    before = await snapshot()
    result = await gql(
        CREATE, {"input": {"name": "  ", "permissions": [], "dataScope": "ALL"}}, as_user=admin
    )
    assert_refused(result, "BAD_USER_INPUT", "name")
    assert await snapshot() == before


# --- update -----------------------------------------------------------------------


async def test_update_role_name_permissions_and_scope(gql, org, admin):
    role = await org.role("Helpers", DataScope.SELF, ["customer:create"])
    sales = await org.department("Sales")

    updated = (
        await gql.ok(
            UPDATE,
            {
                "id": gid(role),
                "input": {
                    "name": "Sales Helpers",
                    "permissions": ["customer:update", "pool:claim"],
                    "dataScope": "CUSTOM",
                    "departmentIds": [dept_gid(sales)],
                },
                "expectedVersion": role.version,
            },
            as_user=admin,
        )
    )["updateRole"]

    assert updated["name"] == "Sales Helpers"
    assert sorted(updated["permissions"]) == ["customer:update", "pool:claim"]
    assert updated["dataScope"] == "CUSTOM"
    assert updated["departments"] == [{"id": dept_gid(sales), "name": "Sales"}]
    assert updated["version"] == role.version + 1
    stored = await Role.get(id=role.id)
    assert (stored.name, stored.data_scope) == ("Sales Helpers", DataScope.CUSTOM)


async def test_update_sends_only_what_changes(gql, org, admin):
    sales = await org.department("Sales")
    role = await org.role("Watchers", DataScope.CUSTOM, ["dashboard:view"], [sales])

    updated = (
        await gql.ok(UPDATE, {"id": gid(role), "input": {"name": "Observers"}}, as_user=admin)
    )["updateRole"]

    assert updated["name"] == "Observers"
    assert updated["dataScope"] == "CUSTOM"
    assert updated["permissions"] == ["dashboard:view"]
    assert updated["departments"] == [{"id": dept_gid(sales), "name": "Sales"}]


async def test_default_roles_can_be_edited(gql, org, admin):
    rep = await org.default_role("Sales Rep")
    updated = (
        await gql.ok(UPDATE, {"id": gid(rep), "input": {"dataScope": "DEPARTMENT"}}, as_user=admin)
    )["updateRole"]
    assert updated["dataScope"] == "DEPARTMENT"
    assert (await Role.get(id=rep.id)).data_scope == DataScope.DEPARTMENT


async def test_switching_to_custom_without_departments_is_refused(gql, org, admin):
    role = await org.role("Helpers", DataScope.SELF)
    before = await snapshot()
    result = await gql(UPDATE, {"id": gid(role), "input": {"dataScope": "CUSTOM"}}, as_user=admin)
    assert_refused(result, "BAD_USER_INPUT", "departmentIds")
    assert await snapshot() == before


async def test_custom_role_cannot_lose_all_its_departments(gql, org, admin):
    sales = await org.department("Sales")
    role = await org.role("Watchers", DataScope.CUSTOM, departments=[sales])
    before = await snapshot()
    result = await gql(UPDATE, {"id": gid(role), "input": {"departmentIds": []}}, as_user=admin)
    assert_refused(result, "BAD_USER_INPUT", "departmentIds")
    assert await snapshot() == before


async def test_update_refuses_bad_input_and_writes_nothing(gql, org, admin):
    role = await org.role("Helpers", DataScope.SELF, ["customer:create"])
    before = await snapshot()
    cases = [
        ({"name": "Finance"}, "DUPLICATE", "name"),
        ({"name": ""}, "BAD_USER_INPUT", "name"),
        ({"permissions": ["customer:teleport"]}, "BAD_USER_INPUT", "permissions"),
        # A valid part of the input is not written when another part is refused.
        ({"name": "Renamed", "permissions": ["nope:nope"]}, "BAD_USER_INPUT", "permissions"),
    ]
    for changes, code, field in cases:
        result = await gql(UPDATE, {"id": gid(role), "input": changes}, as_user=admin)
        assert_refused(result, code, field)
    assert await snapshot() == before


async def test_stale_expected_version_is_a_conflict(gql, org, admin):
    sales = await org.department("Sales")
    role = await org.role("Helpers", DataScope.SELF, ["customer:create"])
    await gql.ok(
        UPDATE,
        {"id": gid(role), "input": {"name": "Helpers 2"}, "expectedVersion": role.version},
        as_user=admin,
    )
    before = await snapshot()

    result = await gql(
        UPDATE,
        {
            "id": gid(role),
            "input": {
                "name": "Helpers 3",
                "dataScope": "CUSTOM",
                "departmentIds": [dept_gid(sales)],
            },
            "expectedVersion": role.version,
        },
        as_user=admin,
    )

    assert_refused(result, "CONFLICT")
    assert await snapshot() == before


async def test_permission_changes_apply_to_holders_at_once(gql, org, admin):
    role = await org.role("Clerks", DataScope.SELF, ["dashboard:view"])
    clerk = await org.user("clerk", roles=[role])
    create_department = 'mutation { createDepartment(input: {name: "Archive"}) { name } }'
    assert (await gql(create_department, as_user=clerk)).codes == ["FORBIDDEN"]

    await gql.ok(UPDATE, {"id": gid(role), "input": {"permissions": ["org:manage"]}}, as_user=admin)

    assert (await gql.ok(create_department, as_user=clerk))["createDepartment"]["name"] == "Archive"
    me = await gql.ok("{ me { permissions } }", as_user=clerk)
    assert me["me"]["permissions"] == ["org:manage"]


async def test_update_unknown_role_is_not_found(gql, admin):
    result = await gql(
        UPDATE, {"id": to_global_id("Role", 999), "input": {"name": "X"}}, as_user=admin
    )
    assert_refused(result, "NOT_FOUND")


async def test_simultaneous_renames_to_one_name_are_a_duplicate(gql, org, admin):
    for round_ in range(3):
        a = await org.role(f"A{round_}", DataScope.SELF)
        b = await org.role(f"B{round_}", DataScope.SELF)
        results = await asyncio.gather(
            gql(UPDATE, {"id": gid(a), "input": {"name": f"Same{round_}"}}, as_user=admin),
            gql(UPDATE, {"id": gid(b), "input": {"name": f"Same{round_}"}}, as_user=admin),
        )
        assert sorted(r.codes for r in results) == [[], ["DUPLICATE"]]
        assert await Role.filter(name=f"Same{round_}").count() == 1


async def test_simultaneous_creates_of_one_name_are_a_duplicate(gql, admin):
    variables = {"input": {"name": "Auditors", "permissions": [], "dataScope": "ALL"}}
    results = await asyncio.gather(*(gql(CREATE, variables, as_user=admin) for _ in range(3)))
    assert sorted(r.codes for r in results) == [[], ["DUPLICATE"], ["DUPLICATE"]]
    assert await Role.filter(name="Auditors").count() == 1


# --- delete -----------------------------------------------------------------------


async def test_role_held_by_a_user_cannot_be_deleted(gql, org, admin):
    role = await org.role("Helpers", DataScope.SELF)
    holder = await org.user("helper", roles=[role])
    holder.is_active = False  # even an inactive holder keeps the role
    await holder.save()
    before = await snapshot()

    result = await gql(DELETE, {"id": gid(role)}, as_user=admin)

    assert_refused(result, "CONFLICT")
    assert await snapshot() == before
    assert [r.id for r in await holder.roles.all()] == [role.id]


async def test_unused_role_can_be_deleted(gql, org, admin):
    sales = await org.department("Sales")
    role = await org.role("Helpers", DataScope.CUSTOM, departments=[sales])
    holder = await org.user("helper", roles=[role])
    await holder.roles.clear()

    data = await gql.ok(DELETE, {"id": gid(role)}, as_user=admin)

    assert data["deleteRole"] == {"deletedId": gid(role)}
    assert not await Role.exists(id=role.id)
    assert await Department.exists(id=sales.id)
    names = [r["name"] for r in (await gql.ok(ROLES, as_user=admin))["roles"]]
    assert "Helpers" not in names


async def test_delete_unknown_role_is_not_found(gql, admin):
    result = await gql(DELETE, {"id": to_global_id("Role", 999)}, as_user=admin)
    assert_refused(result, "NOT_FOUND")


# --- who may ----------------------------------------------------------------------


async def test_without_org_manage_role_mutations_are_forbidden(gql, org):
    manager = await org.user("boss", roles=[await org.default_role("Sales Manager")])
    target = await org.role("Helpers", DataScope.SELF)
    before = await snapshot()
    attempts = [
        (CREATE, {"input": {"name": "Mine", "permissions": ["org:manage"], "dataScope": "ALL"}}),
        (UPDATE, {"id": gid(target), "input": {"permissions": ["org:manage"]}}),
        (
            UPDATE,
            {
                "id": gid(await org.default_role("Sales Manager")),
                "input": {"permissions": ["org:manage"]},
            },
        ),
        (DELETE, {"id": gid(target)}),
    ]
    for query, variables in attempts:
        result = await gql(query, variables, as_user=manager)
        assert_refused(result, "FORBIDDEN")
    assert await snapshot() == before


async def test_org_manage_without_super_admin_may_manage_roles(gql, org):
    ops = await org.user("ops", roles=[await org.default_role("Administrator")])
    created = (
        await gql.ok(
            CREATE,
            {
                "input": {
                    "name": "Temp",
                    "permissions": [],
                    "dataScope": "SELF",
                }
            },
            as_user=ops,
        )
    )["createRole"]
    await gql.ok(UPDATE, {"id": created["id"], "input": {"dataScope": "ALL"}}, as_user=ops)
    await gql.ok(DELETE, {"id": created["id"]}, as_user=ops)
    assert not await Role.exists(name="Temp")


async def test_leaving_the_custom_scope_forgets_its_departments(gql, org, admin):
    sales = await org.department("Sales")
    role = await org.role("Watcher", DataScope.CUSTOM, departments=[sales])

    data = await gql.ok(
        UPDATE, {"id": gid(role), "input": {"dataScope": "DEPARTMENT"}}, as_user=admin
    )

    assert data["updateRole"]["departments"] == []
    assert await role.departments.all().count() == 0


async def test_a_role_named_by_the_approval_flow_cannot_be_deleted(gql, admin):
    finance = await Role.get(name="Finance")  # migration 0004's approval step
    before = await snapshot()

    result = await gql(DELETE, {"id": gid(finance)}, as_user=admin)

    assert_refused(result, "CONFLICT")
    assert "approval" in result.error["message"]
    assert await snapshot() == before

"""The department tree (spec §2): create, rename, move, delete, and who may."""

import asyncio

import pytest

from meihua.models import DataScope, Department
from meihua.schema.relay import to_global_id

CREATE = """
mutation($input: CreateDepartmentInput!) {
  createDepartment(input: $input) { id name version parent { id name } }
}
"""
UPDATE = """
mutation($id: ID!, $input: UpdateDepartmentInput!, $expectedVersion: Int) {
  updateDepartment(id: $id, input: $input, expectedVersion: $expectedVersion) {
    id name version parent { id name }
  }
}
"""
DELETE = "mutation($id: ID!) { deleteDepartment(id: $id) { deletedId } }"
DEPARTMENTS = "{ departments { id name parent { id } children { name } } }"


def gid(department: Department) -> str:
    return to_global_id("Department", department.id)


async def snapshot() -> list[tuple]:
    """The whole tree as stored, to prove a refused mutation wrote nothing."""
    return await Department.all().order_by("id").values_list("id", "name", "parent_id", "version")


def assert_refused(result, code: str, field: str | None = None) -> None:
    assert result.data is None
    assert result.codes == [code], result.errors
    if field is not None:
        assert result.error["extensions"]["field"] == field


@pytest.fixture
async def admin(org):
    return await org.admin()


@pytest.fixture
async def tree(org):
    """Office > Sales > East > Shanghai, and Office > Support."""
    sales = await org.department("Sales")
    east = await org.department("East", sales)
    shanghai = await org.department("Shanghai", east)
    support = await org.department("Support")
    return sales, east, shanghai, support


# --- the top department -------------------------------------------------------


async def test_office_exists_from_the_start(gql, org):
    user = await org.user("alice")
    data = await gql.ok(DEPARTMENTS, as_user=user)
    assert data["departments"] == [
        {"id": gid(await org.office()), "name": "Office", "parent": None, "children": []}
    ]
    assert await Department.filter(parent_id=None).count() == 1


async def test_office_can_be_renamed(gql, org, admin):
    office = await org.office()
    data = await gql.ok(UPDATE, {"id": gid(office), "input": {"name": "办公室"}}, as_user=admin)
    assert data["updateDepartment"]["name"] == "办公室"
    assert (await Department.get(id=office.id)).name == "办公室"


async def test_office_cannot_be_moved(gql, org, admin, tree):
    office, sales = await org.office(), tree[0]
    before = await snapshot()

    result = await gql(
        UPDATE, {"id": gid(office), "input": {"parentId": gid(sales)}}, as_user=admin
    )

    assert_refused(result, "BAD_USER_INPUT", "parentId")
    assert await snapshot() == before


async def test_office_cannot_be_deleted(gql, org, admin):
    office = await org.office()
    result = await gql(DELETE, {"id": gid(office)}, as_user=admin)
    assert_refused(result, "CONFLICT")
    assert await Department.exists(id=office.id)


# --- create -----------------------------------------------------------------------


async def test_create_department_defaults_to_under_office(gql, org, admin):
    office = await org.office()
    data = await gql.ok(CREATE, {"input": {"name": "Sales"}}, as_user=admin)

    created = data["createDepartment"]
    assert created["name"] == "Sales"
    assert created["parent"] == {"id": gid(office), "name": "Office"}
    stored = await Department.get(name="Sales")
    assert stored.parent_id == office.id
    assert created["id"] == gid(stored)


async def test_create_nested_departments_several_levels_deep(gql, admin):
    parent_id = None
    for name in ("Sales", "East", "Shanghai", "Pudong"):
        data = await gql.ok(CREATE, {"input": {"name": name, "parentId": parent_id}}, as_user=admin)
        parent_id = data["createDepartment"]["id"]

    chain = await gql.ok(
        "query($id: ID!) { node(id: $id) { ... on Department {"
        " name parent { name parent { name parent { name parent { name parent { id } } } } } } } }",
        {"id": parent_id},
        as_user=admin,
    )
    pudong = chain["node"]
    assert pudong["name"] == "Pudong"
    assert pudong["parent"]["name"] == "Shanghai"
    assert pudong["parent"]["parent"]["name"] == "East"
    assert pudong["parent"]["parent"]["parent"]["name"] == "Sales"
    assert pudong["parent"]["parent"]["parent"]["parent"] == {"name": "Office", "parent": None}


async def test_departments_list_shows_children_by_name(gql, org, admin):
    await gql.ok(CREATE, {"input": {"name": "Support"}}, as_user=admin)
    await gql.ok(CREATE, {"input": {"name": "Marketing"}}, as_user=admin)
    data = await gql.ok(DEPARTMENTS, as_user=admin)
    office = data["departments"][0]
    assert office["name"] == "Office"
    assert office["children"] == [{"name": "Marketing"}, {"name": "Support"}]


async def test_create_under_unknown_parent_is_refused(gql, org, admin):
    before = await snapshot()
    for parent_id in (to_global_id("Department", 999), to_global_id("User", admin.id)):
        result = await gql(
            CREATE, {"input": {"name": "Ghost", "parentId": parent_id}}, as_user=admin
        )
        assert_refused(result, "BAD_USER_INPUT", "parentId")
    assert await snapshot() == before


@pytest.mark.parametrize("name", ["", "   ", "x" * 101])
async def test_create_with_blank_or_overlong_name_is_refused(gql, admin, name):
    before = await snapshot()
    result = await gql(CREATE, {"input": {"name": name}}, as_user=admin)
    assert_refused(result, "BAD_USER_INPUT", "name")
    assert await snapshot() == before


async def test_name_is_trimmed(gql, admin):
    data = await gql.ok(CREATE, {"input": {"name": "  Sales  "}}, as_user=admin)
    assert data["createDepartment"]["name"] == "Sales"


async def test_sibling_with_the_same_name_is_a_duplicate(gql, admin, tree):
    sales, _, _, _ = tree
    before = await snapshot()

    for name, parent in (("Sales", None), (" Sales ", None), ("East", gid(sales))):
        result = await gql(CREATE, {"input": {"name": name, "parentId": parent}}, as_user=admin)
        assert_refused(result, "DUPLICATE", "name")

    assert await snapshot() == before
    # The same name elsewhere in the tree is fine.
    data = await gql.ok(
        CREATE, {"input": {"name": "East", "parentId": gid(tree[3])}}, as_user=admin
    )
    assert data["createDepartment"]["parent"]["name"] == "Support"


# --- rename and move --------------------------------------------------------------


async def test_rename_department(gql, admin, tree):
    east = tree[1]
    data = await gql.ok(UPDATE, {"id": gid(east), "input": {"name": "East China"}}, as_user=admin)

    assert data["updateDepartment"]["name"] == "East China"
    assert data["updateDepartment"]["version"] == east.version + 1
    stored = await Department.get(id=east.id)
    assert (stored.name, stored.parent_id) == ("East China", east.parent_id)


async def test_move_department_with_its_subtree(gql, org, admin, tree):
    _, east, shanghai, support = tree
    data = await gql.ok(
        UPDATE, {"id": gid(east), "input": {"parentId": gid(support)}}, as_user=admin
    )

    assert data["updateDepartment"]["parent"] == {"id": gid(support), "name": "Support"}
    assert (await Department.get(id=east.id)).parent_id == support.id
    assert (await Department.get(id=shanghai.id)).parent_id == east.id
    listing = {d["name"]: d for d in (await gql.ok(DEPARTMENTS, as_user=admin))["departments"]}
    assert listing["Sales"]["children"] == []
    assert listing["Support"]["children"] == [{"name": "East"}]


async def test_rename_and_move_at_once(gql, admin, tree):
    east, support = tree[1], tree[3]
    data = await gql.ok(
        UPDATE,
        {"id": gid(east), "input": {"name": "Helpdesk", "parentId": gid(support)}},
        as_user=admin,
    )
    assert data["updateDepartment"]["name"] == "Helpdesk"
    assert data["updateDepartment"]["parent"]["name"] == "Support"


@pytest.mark.parametrize("target", ["itself", "child", "grandchild"])
async def test_cannot_move_under_itself_or_a_descendant(gql, admin, tree, target):
    sales, east, shanghai, _ = tree
    new_parent = {"itself": sales, "child": east, "grandchild": shanghai}[target]
    before = await snapshot()

    result = await gql(
        UPDATE, {"id": gid(sales), "input": {"parentId": gid(new_parent)}}, as_user=admin
    )

    assert_refused(result, "BAD_USER_INPUT", "parentId")
    assert await snapshot() == before


async def test_move_to_unknown_parent_is_refused(gql, admin, tree):
    before = await snapshot()
    result = await gql(
        UPDATE,
        {"id": gid(tree[1]), "input": {"parentId": to_global_id("Department", 999)}},
        as_user=admin,
    )
    assert_refused(result, "BAD_USER_INPUT", "parentId")
    assert await snapshot() == before


async def test_rename_or_move_onto_a_siblings_name_is_a_duplicate(gql, org, admin, tree):
    _, east, _, support = tree
    await org.department("East", support)
    before = await snapshot()

    renamed = await gql(UPDATE, {"id": gid(support), "input": {"name": "Sales"}}, as_user=admin)
    assert_refused(renamed, "DUPLICATE", "name")
    moved = await gql(UPDATE, {"id": gid(east), "input": {"parentId": gid(support)}}, as_user=admin)
    assert_refused(moved, "DUPLICATE", "name")

    assert await snapshot() == before


async def test_rename_to_blank_is_refused(gql, admin, tree):
    before = await snapshot()
    result = await gql(UPDATE, {"id": gid(tree[0]), "input": {"name": "  "}}, as_user=admin)
    assert_refused(result, "BAD_USER_INPUT", "name")
    assert await snapshot() == before


async def test_stale_expected_version_is_a_conflict(gql, admin, tree):
    east = tree[1]
    first = await gql.ok(
        UPDATE,
        {"id": gid(east), "input": {"name": "East 1"}, "expectedVersion": east.version},
        as_user=admin,
    )
    assert first["updateDepartment"]["version"] == east.version + 1
    before = await snapshot()

    stale = await gql(
        UPDATE,
        {
            "id": gid(east),
            "input": {"name": "East 2", "parentId": gid(tree[3])},
            "expectedVersion": east.version,
        },
        as_user=admin,
    )

    assert_refused(stale, "CONFLICT")
    assert await snapshot() == before
    assert (await Department.get(id=east.id)).name == "East 1"


async def test_update_unknown_department_is_not_found(gql, admin):
    result = await gql(
        UPDATE, {"id": to_global_id("Department", 999), "input": {"name": "X"}}, as_user=admin
    )
    assert_refused(result, "NOT_FOUND")


async def test_simultaneous_creates_of_one_name_leave_one_department(gql, org, admin):
    office = await org.office()
    for _ in range(3):
        results = await asyncio.gather(
            *(gql(CREATE, {"input": {"name": "Sales"}}, as_user=admin) for _ in range(3))
        )
        assert sorted(r.codes for r in results) == [[], ["DUPLICATE"], ["DUPLICATE"]]
        assert await Department.filter(parent_id=office.id, name="Sales").count() == 1
        await Department.filter(name="Sales").delete()


async def test_simultaneous_renames_to_one_name_leave_one(gql, org, admin):
    for round_ in range(3):
        a = await org.department(f"A{round_}")
        b = await org.department(f"B{round_}")
        results = await asyncio.gather(
            gql(UPDATE, {"id": gid(a), "input": {"name": f"Same{round_}"}}, as_user=admin),
            gql(UPDATE, {"id": gid(b), "input": {"name": f"Same{round_}"}}, as_user=admin),
        )
        assert sorted(r.codes for r in results) == [[], ["DUPLICATE"]]
        assert await Department.filter(name=f"Same{round_}").count() == 1


# --- delete -----------------------------------------------------------------------


async def test_delete_empty_department(gql, admin, tree):
    shanghai = tree[2]
    data = await gql.ok(DELETE, {"id": gid(shanghai)}, as_user=admin)

    assert data["deleteDepartment"] == {"deletedId": gid(shanghai)}
    assert not await Department.exists(id=shanghai.id)
    names = {d["name"] for d in (await gql.ok(DEPARTMENTS, as_user=admin))["departments"]}
    assert "Shanghai" not in names


async def test_department_with_users_cannot_be_deleted(gql, org, admin, tree):
    support = tree[3]
    member = await org.user("bob", department=support)
    result = await gql(DELETE, {"id": gid(support)}, as_user=admin)
    assert_refused(result, "CONFLICT")
    assert await Department.exists(id=support.id)

    # A deactivated member still counts: users are never deleted.
    member.is_active = False
    await member.save()
    result = await gql(DELETE, {"id": gid(support)}, as_user=admin)
    assert_refused(result, "CONFLICT")
    assert await Department.exists(id=support.id)


async def test_department_with_sub_departments_cannot_be_deleted(gql, admin, tree):
    sales, east, _, _ = tree
    before = await snapshot()
    for department in (sales, east):
        result = await gql(DELETE, {"id": gid(department)}, as_user=admin)
        assert_refused(result, "CONFLICT")
    assert await snapshot() == before


async def test_delete_unknown_department_is_not_found(gql, admin):
    result = await gql(DELETE, {"id": to_global_id("Department", 999)}, as_user=admin)
    assert_refused(result, "NOT_FOUND")


async def test_deleting_a_department_drops_it_from_custom_roles(gql, org, admin, tree):
    sales, support = tree[0], tree[3]
    role = await org.role("Watcher", DataScope.CUSTOM, departments=[support, sales])

    await gql.ok(DELETE, {"id": gid(support)}, as_user=admin)

    data = await gql.ok("{ roles { name departments { name } } }", as_user=admin)
    watcher = next(r for r in data["roles"] if r["name"] == role.name)
    assert watcher["departments"] == [{"name": "Sales"}]


# --- who may ----------------------------------------------------------------------


async def test_org_manage_permission_is_enough(gql, org, tree):
    manager = await org.user("ops", roles=[await org.default_role("Administrator")])
    data = await gql.ok(CREATE, {"input": {"name": "Legal"}}, as_user=manager)
    legal = data["createDepartment"]["id"]
    await gql.ok(UPDATE, {"id": legal, "input": {"name": "Legal & Compliance"}}, as_user=manager)
    await gql.ok(DELETE, {"id": legal}, as_user=manager)
    assert not await Department.exists(name__startswith="Legal")


async def test_without_org_manage_every_department_mutation_is_forbidden(gql, org, tree):
    sales, east, shanghai, support = tree
    rep = await org.user("rep", roles=[await org.default_role("Sales Manager")], department=sales)
    before = await snapshot()
    attempts = [
        (CREATE, {"input": {"name": "Rogue"}}),
        (CREATE, {"input": {"name": "Rogue", "parentId": gid(sales)}}),
        (UPDATE, {"id": gid(east), "input": {"name": "Renamed"}}),
        (UPDATE, {"id": gid(east), "input": {"parentId": gid(support)}}),
        (UPDATE, {"id": gid(sales), "input": {"name": "Mine"}, "expectedVersion": 1}),
        (DELETE, {"id": gid(shanghai)}),
    ]
    for query, variables in attempts:
        result = await gql(query, variables, as_user=rep)
        assert_refused(result, "FORBIDDEN")
    assert await snapshot() == before


async def test_department_mutations_need_a_signed_in_user(gql, org, tree):
    before = await snapshot()
    result = await gql(CREATE, {"input": {"name": "Anon"}})
    assert_refused(result, "UNAUTHENTICATED")
    result = await gql(DELETE, {"id": gid(tree[2])})
    assert_refused(result, "UNAUTHENTICATED")
    assert await snapshot() == before


async def test_a_department_that_is_a_custom_scope_s_only_one_cannot_be_deleted(
    gql, org, admin, tree
):
    support = tree[3]
    await org.role("Support watcher", DataScope.CUSTOM, departments=[support])
    before = await snapshot()

    result = await gql(DELETE, {"id": gid(support)}, as_user=admin)

    assert_refused(result, "CONFLICT")
    assert "Support watcher" in result.error["message"]
    assert await snapshot() == before

"""Team members (spec §2): create, edit, hand over, deactivate, and the directory."""

import asyncio

import pytest

from meihua.models import Customer, User
from meihua.resolvers.auth import verify_password
from meihua.resolvers.permissions import ALL_PERMISSIONS
from meihua.schema.relay import to_global_id
from tests.conftest import PASSWORD

USER_FIELDS = """
id username name isActive isSuperAdmin version
department { id name } manager { id username } roles { id name } permissions
"""
CREATE = f"mutation($input: CreateUserInput!) {{ createUser(input: $input) {{ {USER_FIELDS} }} }}"
UPDATE = f"""
mutation($id: ID!, $input: UpdateUserInput!, $expectedVersion: Int) {{
  updateUser(id: $id, input: $input, expectedVersion: $expectedVersion) {{ {USER_FIELDS} }}
}}
"""
DEACTIVATE = "mutation($id: ID!) { deactivateUser(id: $id) { id isActive } }"
REACTIVATE = "mutation($id: ID!) { reactivateUser(id: $id) { id isActive } }"
LOGIN = """
mutation($username: String!, $password: String!) {
  login(username: $username, password: $password) { token user { id username name } }
}
"""
ME = f"{{ me {{ {USER_FIELDS} }} }}"
NEW_PASSWORD = "handed-over-passphrase"


def gid(obj) -> str:
    return to_global_id(type(obj).__name__, obj.id)


async def snapshot() -> list[tuple]:
    """Every user as stored, roles included, to prove a refusal wrote nothing."""
    users = (
        await User.all()
        .order_by("id")
        .values_list(
            "id",
            "username",
            "name",
            "password_hash",
            "department_id",
            "manager_id",
            "is_super_admin",
            "is_active",
            "token_version",
            "version",
        )
    )
    roles = await User.all().order_by("id", "roles__id").values_list("id", "roles__id")
    return [*users, *roles]


def assert_refused(result, code: str, field: str | None = None) -> None:
    assert result.data is None
    assert result.codes == [code], result.errors
    if field is not None:
        assert result.error["extensions"]["field"] == field


async def login(gql, username: str, password: str = PASSWORD):
    return await gql(LOGIN, {"username": username, "password": password})


@pytest.fixture
async def admin(org):
    return await org.admin()


@pytest.fixture
async def sales(org):
    return await org.department("Sales")


def new_user(department, roles=(), **extra) -> dict:
    return {
        "input": {
            "username": "wang.fang",
            "password": "long-enough-pw",
            "name": "王芳",
            "departmentId": gid(department),
            "roleIds": [gid(r) for r in roles],
            **extra,
        }
    }


# --- create and me -------------------------------------------------------------------


async def test_create_user_with_all_fields(gql, org, admin, sales):
    rep, finance = await org.default_role("Sales Rep"), await org.default_role("Finance")
    boss = await org.user("boss", department=sales)

    created = (
        await gql.ok(
            CREATE,
            new_user(sales, [rep, finance], managerId=gid(boss), isSuperAdmin=False),
            as_user=admin,
        )
    )["createUser"]

    stored = await User.get(username="wang.fang")
    assert created["id"] == gid(stored)
    assert created["username"] == "wang.fang"
    assert created["name"] == "王芳"
    assert created["isActive"] is True
    assert created["isSuperAdmin"] is False
    assert created["department"] == {"id": gid(sales), "name": "Sales"}
    assert created["manager"] == {"id": gid(boss), "username": "boss"}
    assert [r["name"] for r in created["roles"]] == ["Sales Rep", "Finance"]
    assert stored.password_hash != "long-enough-pw"
    assert verify_password(stored.password_hash, "long-enough-pw")
    assert (await login(gql, "wang.fang", "long-enough-pw")).errors == []


async def test_create_user_minimal_has_no_manager_and_no_roles(gql, org, admin):
    created = (await gql.ok(CREATE, new_user(await org.office()), as_user=admin))["createUser"]
    assert created["manager"] is None
    assert created["roles"] == []
    assert created["permissions"] == []
    assert created["isSuperAdmin"] is False


async def test_super_admin_can_create_another_super_admin(gql, org, admin):
    created = (
        await gql.ok(CREATE, new_user(await org.office(), isSuperAdmin=True), as_user=admin)
    )["createUser"]
    assert created["isSuperAdmin"] is True
    assert created["permissions"] == list(ALL_PERMISSIONS)


async def test_me_shows_department_roles_and_the_union_of_permissions(gql, org, sales):
    rep, finance = await org.default_role("Sales Rep"), await org.default_role("Finance")
    boss = await org.user("boss", department=sales)
    alice = await org.user("alice", department=sales, roles=[rep, finance], manager=boss)

    me = (await gql.ok(ME, as_user=alice))["me"]

    assert me["id"] == gid(alice)
    assert me["department"] == {"id": gid(sales), "name": "Sales"}
    assert me["manager"]["username"] == "boss"
    assert {r["name"] for r in me["roles"]} == {"Sales Rep", "Finance"}
    union = set(rep.permissions) | set(finance.permissions)
    assert set(me["permissions"]) == union
    assert len(me["permissions"]) == len(union)
    assert "contract:void" in me["permissions"]  # from Finance only
    assert "pool:claim" in me["permissions"]  # from Sales Rep only
    assert "org:manage" not in me["permissions"]


async def test_me_of_a_super_admin_has_every_permission_without_roles(gql, admin):
    me = (await gql.ok(ME, as_user=admin))["me"]
    assert me["isSuperAdmin"] is True
    assert me["roles"] == []
    assert me["permissions"] == list(ALL_PERMISSIONS)


# --- create: refused input -------------------------------------------------------------


@pytest.mark.parametrize("username", ["alice", "  alice "])
async def test_taken_username_is_a_duplicate(gql, org, admin, username):
    await org.user("alice")
    before = await snapshot()
    result = await gql(CREATE, new_user(await org.office(), username=username), as_user=admin)
    assert_refused(result, "DUPLICATE", "username")
    assert await snapshot() == before


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"username": "ab"}, "username"),
        ({"username": "has space"}, "username"),
        ({"username": "x" * 65}, "username"),
        ({"username": "semi;colon"}, "username"),
        ({"password": "short"}, "password"),
        ({"name": "   "}, "name"),
        ({"departmentId": to_global_id("Department", 999)}, "departmentId"),
        ({"departmentId": to_global_id("Role", 1)}, "departmentId"),
        ({"roleIds": [to_global_id("Role", 999)]}, "roleIds"),
        ({"roleIds": [to_global_id("Department", 1)]}, "roleIds"),
        ({"managerId": to_global_id("User", 999)}, "managerId"),
    ],
)
async def test_bad_input_names_the_field_and_creates_nobody(gql, org, admin, change, field):
    before = await snapshot()
    variables = new_user(await org.office(), [await org.default_role("Sales Rep")])
    variables["input"].update(change)

    result = await gql(CREATE, variables, as_user=admin)

    assert_refused(result, "BAD_USER_INPUT", field)
    assert await snapshot() == before


async def test_unknown_role_among_known_ones_is_refused(gql, org, admin):
    before = await snapshot()
    variables = new_user(await org.office(), [await org.default_role("Sales Rep")])
    variables["input"]["roleIds"].append(to_global_id("Role", 999))
    assert_refused(await gql(CREATE, variables, as_user=admin), "BAD_USER_INPUT", "roleIds")
    assert await snapshot() == before


# --- update and hand-over ------------------------------------------------------------


async def test_hand_over_an_account_to_someone_else(gql, org, admin):
    rep = await org.default_role("Sales Rep")
    alice = await org.user("alice", roles=[rep], name="Alice")
    old_token = (await gql.ok(LOGIN, {"username": "alice", "password": PASSWORD}))["login"]["token"]
    await gql.ok('mutation { createCustomer(input: {name: "Acme Ltd"}) { id } }', token=old_token)

    updated = (
        await gql.ok(
            UPDATE,
            {
                "id": gid(alice),
                "input": {
                    "username": "bob",
                    "name": "Bob",
                    "password": NEW_PASSWORD,
                },
            },
            as_user=admin,
        )
    )["updateUser"]

    assert (updated["id"], updated["username"], updated["name"]) == (gid(alice), "bob", "Bob")
    # The old holder is locked out: token, old username, old password.
    assert (await gql(ME, token=old_token)).codes == ["UNAUTHENTICATED"]
    assert (await login(gql, "alice", PASSWORD)).codes == ["UNAUTHENTICATED"]
    assert (await login(gql, "bob", PASSWORD)).codes == ["UNAUTHENTICATED"]
    assert (await login(gql, "alice", NEW_PASSWORD)).codes == ["UNAUTHENTICATED"]
    # The new holder gets the same account, its roles and its records.
    new = await login(gql, "bob", NEW_PASSWORD)
    assert new.errors == []
    assert new.data["login"]["user"] == {"id": gid(alice), "username": "bob", "name": "Bob"}
    token = new.data["login"]["token"]
    me = (await gql.ok(ME, token=token))["me"]
    assert [r["name"] for r in me["roles"]] == ["Sales Rep"]
    customers = await gql.ok("{ customers { edges { node { name owner { id } } } } }", token=token)
    assert customers["customers"]["edges"] == [
        {"node": {"name": "Acme Ltd", "owner": {"id": gid(alice)}}}
    ]
    assert await Customer.filter(owner_id=alice.id).count() == 1
    assert await User.filter(id=alice.id).count() == 1


async def test_update_department_roles_and_name(gql, org, admin, sales):
    alice = await org.user("alice", roles=[await org.default_role("Sales Rep")])
    finance = await org.default_role("Finance")

    updated = (
        await gql.ok(
            UPDATE,
            {
                "id": gid(alice),
                "input": {
                    "departmentId": gid(sales),
                    "roleIds": [gid(finance)],
                    "name": "Alice Zhang",
                },
                "expectedVersion": alice.version,
            },
            as_user=admin,
        )
    )["updateUser"]

    assert updated["department"]["name"] == "Sales"
    assert [r["name"] for r in updated["roles"]] == ["Finance"]
    assert updated["name"] == "Alice Zhang"
    assert updated["username"] == "alice"
    assert updated["version"] == alice.version + 1
    assert [r.name for r in await (await User.get(id=alice.id)).roles.all()] == ["Finance"]


async def test_update_refuses_taken_username_and_writes_nothing(gql, org, admin):
    await org.user("bob")
    alice = await org.user("alice")
    before = await snapshot()
    result = await gql(
        UPDATE, {"id": gid(alice), "input": {"username": "bob", "name": "B"}}, as_user=admin
    )
    assert_refused(result, "DUPLICATE", "username")
    assert await snapshot() == before
    # Keeping one's own username is not a clash.
    await gql.ok(UPDATE, {"id": gid(alice), "input": {"username": "alice"}}, as_user=admin)


async def test_simultaneous_renames_to_one_username_are_a_duplicate(gql, org, admin):
    for round_ in range(3):
        a, b = await org.user(f"a{round_}x"), await org.user(f"b{round_}x")
        wanted = {"input": {"username": f"same{round_}"}}
        results = await asyncio.gather(
            gql(UPDATE, {"id": gid(a), **wanted}, as_user=admin),
            gql(UPDATE, {"id": gid(b), **wanted}, as_user=admin),
        )
        assert sorted(r.codes for r in results) == [[], ["DUPLICATE"]]
        assert await User.filter(username=f"same{round_}").count() == 1


async def test_update_with_bad_input_writes_nothing(gql, org, admin):
    alice = await org.user("alice", roles=[await org.default_role("Sales Rep")])
    before = await snapshot()
    cases = [
        ({"password": "short", "name": "Changed"}, "password"),
        ({"departmentId": to_global_id("Department", 999), "name": "Changed"}, "departmentId"),
        ({"roleIds": [to_global_id("Role", 999)], "name": "Changed"}, "roleIds"),
        ({"username": "no", "roleIds": []}, "username"),
    ]
    for changes, field in cases:
        result = await gql(UPDATE, {"id": gid(alice), "input": changes}, as_user=admin)
        assert_refused(result, "BAD_USER_INPUT", field)
    assert await snapshot() == before


async def test_stale_expected_version_is_a_conflict(gql, org, admin):
    alice = await org.user("alice", roles=[await org.default_role("Sales Rep")])
    await gql.ok(
        UPDATE,
        {"id": gid(alice), "input": {"name": "A1"}, "expectedVersion": alice.version},
        as_user=admin,
    )
    before = await snapshot()

    result = await gql(
        UPDATE,
        {
            "id": gid(alice),
            "input": {
                "name": "A2",
                "roleIds": [],
                "password": NEW_PASSWORD,
            },
            "expectedVersion": alice.version,
        },
        as_user=admin,
    )

    assert_refused(result, "CONFLICT")
    assert await snapshot() == before


async def test_update_unknown_user_is_not_found(gql, admin):
    result = await gql(
        UPDATE, {"id": to_global_id("User", 999), "input": {"name": "X"}}, as_user=admin
    )
    assert_refused(result, "NOT_FOUND")


# --- managers ------------------------------------------------------------------------


@pytest.fixture
async def chain(org):
    """ceo <- vp <- rep (rep reports to vp, vp to ceo)."""
    ceo = await org.user("ceo")
    vp = await org.user("vp", manager=ceo)
    rep = await org.user("rep", manager=vp)
    return ceo, vp, rep


@pytest.mark.parametrize("new_manager", ["self", "direct report", "indirect report"])
async def test_manager_cycles_are_refused(gql, admin, chain, new_manager):
    ceo, vp, rep = chain
    manager = {"self": ceo, "direct report": vp, "indirect report": rep}[new_manager]
    before = await snapshot()

    result = await gql(
        UPDATE, {"id": gid(ceo), "input": {"managerId": gid(manager)}}, as_user=admin
    )

    assert_refused(result, "BAD_USER_INPUT", "managerId")
    assert await snapshot() == before


async def test_manager_can_be_changed_and_cleared(gql, admin, chain):
    ceo, _, rep = chain
    moved = (
        await gql.ok(UPDATE, {"id": gid(rep), "input": {"managerId": gid(ceo)}}, as_user=admin)
    )["updateUser"]
    assert moved["manager"]["username"] == "ceo"

    # Leaving managerId out keeps the manager...
    renamed = (await gql.ok(UPDATE, {"id": gid(rep), "input": {"name": "Rep"}}, as_user=admin))[
        "updateUser"
    ]
    assert renamed["manager"]["username"] == "ceo"
    # ...an explicit null clears it.
    cleared = await gql.ok(
        "mutation($id: ID!) { updateUser(id: $id, input: {managerId: null}) { manager { id } } }",
        {"id": gid(rep)},
        as_user=admin,
    )
    assert cleared["updateUser"]["manager"] is None
    assert (await User.get(id=rep.id)).manager_id is None


async def test_manager_cleared_through_a_variable(gql, admin, chain):
    vp = chain[1]
    data = await gql.ok(UPDATE, {"id": gid(vp), "input": {"managerId": None}}, as_user=admin)
    assert data["updateUser"]["manager"] is None
    assert (await User.get(id=vp.id)).manager_id is None


# --- deactivate and reactivate ---------------------------------------------------------


async def test_deactivate_and_reactivate(gql, org, admin):
    alice = await org.user("alice")

    data = await gql.ok(DEACTIVATE, {"id": gid(alice)}, as_user=admin)
    assert data["deactivateUser"] == {"id": gid(alice), "isActive": False}
    assert (await User.get(id=alice.id)).is_active is False
    assert (await login(gql, "alice")).codes == ["UNAUTHENTICATED"]
    # Deactivating again is harmless.
    await gql.ok(DEACTIVATE, {"id": gid(alice)}, as_user=admin)

    data = await gql.ok(REACTIVATE, {"id": gid(alice)}, as_user=admin)
    assert data["reactivateUser"] == {"id": gid(alice), "isActive": True}
    assert (await login(gql, "alice")).errors == []


async def test_deactivated_user_keeps_their_records(gql, org, admin):
    alice = await org.user("alice", roles=[await org.default_role("Sales Rep")])
    await gql.ok('mutation { createCustomer(input: {name: "Acme"}) { id } }', as_user=alice)
    await gql.ok(DEACTIVATE, {"id": gid(alice)}, as_user=admin)

    data = await gql.ok(
        "{ customers { edges { node { name owner { id isActive } } } } }", as_user=admin
    )
    assert data["customers"]["edges"] == [
        {"node": {"name": "Acme", "owner": {"id": gid(alice), "isActive": False}}}
    ]


async def test_users_are_never_deleted(gql, admin):
    data = await gql.ok("{ __schema { mutationType { fields { name } } } }")
    names = {f["name"] for f in data["__schema"]["mutationType"]["fields"]}
    assert {"createUser", "updateUser", "deactivateUser", "reactivateUser"} <= names
    assert not [
        n for n in names if "user" in n.lower() and n.lower().startswith(("delete", "remove"))
    ]
    result = await gql(
        f'mutation {{ deleteUser(id: "{gid(admin)}") {{ deletedId }} }}', as_user=admin
    )
    assert result.codes == ["BAD_USER_INPUT"]
    assert await User.exists(id=admin.id)


# --- the last super admin ----------------------------------------------------------------


async def test_last_super_admin_cannot_be_deactivated_or_demoted(gql, org, admin):
    before = await snapshot()
    assert_refused(await gql(DEACTIVATE, {"id": gid(admin)}, as_user=admin), "CONFLICT")
    demote = {"id": gid(admin), "input": {"isSuperAdmin": False}}
    assert_refused(await gql(UPDATE, demote, as_user=admin), "CONFLICT")
    # Demotion bundled with other edits does not sneak the other edits through.
    demote["input"]["name"] = "Ex Root"
    assert_refused(await gql(UPDATE, demote, as_user=admin), "CONFLICT")
    assert await snapshot() == before


async def test_an_inactive_super_admin_does_not_count(gql, org, admin):
    other = await org.user("root2", super_admin=True)
    await gql.ok(DEACTIVATE, {"id": gid(other)}, as_user=admin)
    before = await snapshot()

    assert_refused(await gql(DEACTIVATE, {"id": gid(admin)}, as_user=admin), "CONFLICT")
    assert_refused(
        await gql(UPDATE, {"id": gid(admin), "input": {"isSuperAdmin": False}}, as_user=admin),
        "CONFLICT",
    )
    assert await snapshot() == before


async def test_super_admin_can_step_down_once_another_exists(gql, org, admin):
    data = await gql.ok(CREATE, new_user(await org.office(), isSuperAdmin=True), as_user=admin)
    other_id = data["createUser"]["id"]

    demoted = (
        await gql.ok(UPDATE, {"id": gid(admin), "input": {"isSuperAdmin": False}}, as_user=admin)
    )["updateUser"]
    assert demoted["isSuperAdmin"] is False
    assert (await User.get(id=admin.id)).is_super_admin is False

    # Now the other one is the last, and is protected in turn.
    other = await User.get(username="wang.fang")
    assert_refused(await gql(DEACTIVATE, {"id": other_id}, as_user=other), "CONFLICT")
    assert (await User.get(id=other.id)).is_active is True


async def test_super_admin_can_be_deactivated_once_another_exists(gql, org, admin):
    other = await org.user("root2", super_admin=True)
    data = await gql.ok(DEACTIVATE, {"id": gid(admin)}, as_user=other)
    assert data["deactivateUser"]["isActive"] is False


@pytest.mark.parametrize("removal", ["deactivate", "demote"])
async def test_two_super_admins_cannot_remove_each_other_at_once(gql, org, removal):
    def remove(target):
        if removal == "deactivate":
            return DEACTIVATE, {"id": gid(target)}
        return UPDATE, {"id": gid(target), "input": {"isSuperAdmin": False}}

    for round_ in range(4):
        # Exactly two super admins, each removing the other at the same moment.
        await User.filter(is_super_admin=True).update(is_super_admin=False)
        a = await org.user(f"a{round_}", super_admin=True)
        b = await org.user(f"b{round_}", super_admin=True)
        results = await asyncio.gather(
            gql(*remove(b), as_user=a),
            gql(*remove(a), as_user=b),
        )
        assert sorted(r.codes for r in results) == [[], ["CONFLICT"]]
        assert await User.filter(is_super_admin=True, is_active=True).count() == 1


# --- super admin accounts are for super admins -----------------------------------------


@pytest.fixture
async def org_manager(org):
    """Has org:manage through the Administrator role, but is no super admin."""
    return await org.user("ops", roles=[await org.default_role("Administrator")])


async def test_org_manager_can_manage_ordinary_users(gql, org, org_manager):
    created = await gql.ok(CREATE, new_user(await org.office()), as_user=org_manager)
    user_id = created["createUser"]["id"]
    await gql.ok(UPDATE, {"id": user_id, "input": {"name": "Fang"}}, as_user=org_manager)
    await gql.ok(DEACTIVATE, {"id": user_id}, as_user=org_manager)
    assert (await User.get(username="wang.fang")).is_active is False


async def test_org_manager_cannot_create_a_super_admin(gql, org, admin, org_manager):
    before = await snapshot()
    result = await gql(CREATE, new_user(await org.office(), isSuperAdmin=True), as_user=org_manager)
    assert_refused(result, "FORBIDDEN")
    assert await snapshot() == before


async def test_org_manager_cannot_touch_a_super_admin_or_grant_super_admin(
    gql, org, admin, org_manager
):
    alice = await org.user("alice")
    before = await snapshot()
    attempts = [
        (UPDATE, {"id": gid(admin), "input": {"name": "Hijacked"}}),
        (UPDATE, {"id": gid(admin), "input": {"password": NEW_PASSWORD}}),
        (UPDATE, {"id": gid(admin), "input": {"isSuperAdmin": False}}),
        (DEACTIVATE, {"id": gid(admin)}),
        (UPDATE, {"id": gid(alice), "input": {"isSuperAdmin": True}}),
        (UPDATE, {"id": gid(org_manager), "input": {"isSuperAdmin": True}}),
    ]
    for query, variables in attempts:
        assert_refused(await gql(query, variables, as_user=org_manager), "FORBIDDEN")
    assert await snapshot() == before


async def test_without_org_manage_user_mutations_are_forbidden(gql, org):
    manager = await org.user("boss", roles=[await org.default_role("Sales Manager")])
    alice = await org.user("alice", manager=manager)
    before = await snapshot()
    attempts = [
        (CREATE, new_user(await org.office())),
        (UPDATE, {"id": gid(alice), "input": {"name": "Renamed"}}),
        (
            UPDATE,
            {
                "id": gid(manager),
                "input": {"roleIds": [gid(await org.default_role("Administrator"))]},
            },
        ),
        (DEACTIVATE, {"id": gid(alice)}),
        (REACTIVATE, {"id": gid(alice)}),
    ]
    for query, variables in attempts:
        assert_refused(await gql(query, variables, as_user=manager), "FORBIDDEN")
    assert await snapshot() == before


# --- the directory --------------------------------------------------------------------------


USERS = """
query($filter: UserFilter, $orderBy: UserOrder, $first: Int, $after: String,
      $last: Int, $before: String) {
  users(filter: $filter, orderBy: $orderBy, first: $first, after: $after,
        last: $last, before: $before) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { username } }
  }
}
"""


async def list_users(gql, viewer, **variables) -> dict:
    return (await gql.ok(USERS, variables, as_user=viewer))["users"]


def usernames(connection: dict) -> list[str]:
    return [edge["node"]["username"] for edge in connection["edges"]]


@pytest.fixture
async def directory(org):
    """Office: root, erin; Sales: alice; Sales > East: bob, dave (inactive); Finance: carol."""
    sales = await org.department("Sales")
    east = await org.department("East", sales)
    finance = await org.department("Finance")
    root = await org.admin()
    alice = await org.user("alice", department=sales, name="Zhao Min")
    await org.user("bob", department=east, name="Qian Lei")
    await org.user("carol", department=finance, name="Sun Li")
    dave = await org.user("dave", department=east, name="Wu Gang")
    await org.user("erin", name="Han Xue")
    dave.is_active = False
    await dave.save()
    return {"root": root, "alice": alice, "sales": sales, "east": east}


async def test_every_signed_in_user_can_read_the_directory(gql, org, directory):
    page = await list_users(gql, directory["alice"])
    assert usernames(page) == ["alice", "bob", "carol", "dave", "erin", "root"]
    assert page["totalCount"] == 6
    assert (await gql(USERS)).codes == ["UNAUTHENTICATED"]


async def test_filter_by_department_with_and_without_sub_departments(gql, directory):
    viewer, sales = directory["root"], directory["sales"]
    only = await list_users(gql, viewer, filter={"departmentId": gid(sales)})
    assert usernames(only) == ["alice"]
    tree = await list_users(
        gql, viewer, filter={"departmentId": gid(sales), "includeSubDepartments": True}
    )
    assert usernames(tree) == ["alice", "bob", "dave"]
    assert tree["totalCount"] == 3


async def test_filter_by_unknown_or_foreign_department(gql, directory):
    viewer = directory["root"]
    empty = await list_users(gql, viewer, filter={"departmentId": to_global_id("Department", 99)})
    assert usernames(empty) == []
    result = await gql(USERS, {"filter": {"departmentId": gid(viewer)}}, as_user=viewer)
    assert_refused(result, "BAD_USER_INPUT", "departmentId")


async def test_filter_by_active_state(gql, directory):
    viewer = directory["root"]
    inactive = await list_users(gql, viewer, filter={"isActive": False})
    assert usernames(inactive) == ["dave"]
    active = await list_users(gql, viewer, filter={"isActive": True})
    assert usernames(active) == ["alice", "bob", "carol", "erin", "root"]


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("car", ["carol"]),  # username
        ("ZHAO", ["alice"]),  # name, any case
        ("li", ["alice", "carol"]),  # username "alice", name "Sun Li"
        ("  erin  ", ["erin"]),
        ("nobody", []),
    ],
)
async def test_search_matches_username_or_name(gql, directory, term, expected):
    page = await list_users(gql, directory["root"], filter={"search": term})
    assert usernames(page) == expected


async def test_filters_combine(gql, directory):
    page = await list_users(
        gql,
        directory["root"],
        filter={
            "departmentId": gid(directory["sales"]),
            "includeSubDepartments": True,
            "isActive": True,
            "search": "b",
        },
    )
    assert usernames(page) == ["bob"]


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        (None, ["alice", "bob", "carol", "dave", "erin", "root"]),
        (
            {"field": "USERNAME", "descending": True},
            ["root", "erin", "dave", "carol", "bob", "alice"],
        ),
        ({"field": "NAME"}, ["erin", "bob", "root", "carol", "dave", "alice"]),
        (
            {"field": "CREATED_AT", "descending": True},
            ["erin", "dave", "carol", "bob", "alice", "root"],
        ),
    ],
)
async def test_ordering(gql, directory, order, expected):
    page = await list_users(gql, directory["root"], orderBy=order)
    assert usernames(page) == expected


@pytest.mark.parametrize(
    "order",
    [None, {"field": "NAME", "descending": True}, {"field": "CREATED_AT"}],
)
async def test_paginate_forward_and_backward(gql, directory, order):
    viewer = directory["root"]
    everyone = usernames(await list_users(gql, viewer, orderBy=order))
    assert len(everyone) == 6

    # Forward in pages of 4: 4 + 2.
    first = await list_users(gql, viewer, orderBy=order, first=4)
    assert usernames(first) == everyone[:4]
    assert first["pageInfo"]["hasNextPage"] is True
    assert first["pageInfo"]["hasPreviousPage"] is False
    assert first["pageInfo"]["endCursor"] == first["edges"][-1]["cursor"]
    second = await list_users(
        gql, viewer, orderBy=order, first=4, after=first["pageInfo"]["endCursor"]
    )
    assert usernames(second) == everyone[4:]
    assert second["pageInfo"]["hasNextPage"] is False
    assert second["pageInfo"]["hasPreviousPage"] is True
    assert second["totalCount"] == 6

    # Backward from the end: the last 4, then the 2 before them.
    last = await list_users(gql, viewer, orderBy=order, last=4)
    assert usernames(last) == everyone[2:]
    assert last["pageInfo"]["hasPreviousPage"] is True
    earlier = await list_users(
        gql, viewer, orderBy=order, last=4, before=last["pageInfo"]["startCursor"]
    )
    assert usernames(earlier) == everyone[:2]
    assert earlier["pageInfo"]["hasPreviousPage"] is False
    assert earlier["pageInfo"]["hasNextPage"] is True

    # A window between two cursors.
    window = await list_users(
        gql,
        viewer,
        orderBy=order,
        first=10,
        after=first["edges"][0]["cursor"],
        before=first["edges"][3]["cursor"],
    )
    assert usernames(window) == everyone[1:3]


async def test_pagination_respects_filters(gql, directory):
    viewer = directory["root"]
    where = {"isActive": True}
    first = await list_users(gql, viewer, filter=where, first=2)
    assert usernames(first) == ["alice", "bob"]
    rest = await list_users(
        gql, viewer, filter=where, first=10, after=first["pageInfo"]["endCursor"]
    )
    assert usernames(rest) == ["carol", "erin", "root"]
    assert rest["totalCount"] == 5


async def test_empty_page(gql, directory):
    page = await list_users(gql, directory["root"], filter={"search": "nobody"}, first=5)
    assert page["edges"] == []
    assert page["pageInfo"] == {
        "hasNextPage": False,
        "hasPreviousPage": False,
        "startCursor": None,
        "endCursor": None,
    }
    assert page["totalCount"] == 0


async def test_page_size_is_capped_at_100(gql, directory):
    viewer = directory["root"]
    assert usernames(await list_users(gql, viewer, first=100))[:1] == ["alice"]
    for variables, field in (
        ({"first": 101}, "first"),
        ({"last": 101}, "last"),
        ({"first": -1}, "first"),
    ):
        result = await gql(USERS, variables, as_user=viewer)
        assert_refused(result, "BAD_USER_INPUT", field)


async def test_garbage_cursor_is_bad_input(gql, directory):
    result = await gql(USERS, {"first": 2, "after": "not-a-cursor"}, as_user=directory["root"])
    assert_refused(result, "BAD_USER_INPUT", "after")


# --- usernames are case-insensitive, and a new username ends sessions ---------


async def test_usernames_are_case_insensitive(gql, org, admin, sales):
    created = await gql.ok(CREATE, new_user(sales, username="Li.Lei"), as_user=admin)
    assert created["createUser"]["username"] == "li.lei"

    clash = await gql(CREATE, new_user(sales, username="LI.LEI"), as_user=admin)
    assert_refused(clash, "DUPLICATE", "username")
    assert await User.filter(username="li.lei").count() == 1
    assert (await login(gql, "LI.Lei", "long-enough-pw")).errors == []


async def test_a_new_username_alone_ends_the_old_holders_sessions(gql, org, admin):
    alice = await org.user("alice")
    old_token = (await login(gql, "alice")).data["login"]["token"]

    await gql.ok(UPDATE, {"id": gid(alice), "input": {"username": "carol"}}, as_user=admin)

    assert (await gql(ME, token=old_token)).codes == ["UNAUTHENTICATED"]
    assert (await login(gql, "carol")).errors == []

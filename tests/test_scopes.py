"""The data-scope matrix (数据权限): whose customers each scope lets a user see.

One fixture company is built for every test:

    Office ──────────── boss, root (super admin)
    ├── Sales ───────── director
    │   ├── East ────── manager, peer
    │   │   └── East-1  lead, rep, loner
    │   └── West ────── westy, intern
    └── Support ─────── helper

Manager chain (上级):  boss → director → manager → lead → rep
                                        director → peer → intern
loner, westy and helper have no manager.

Every user except root owns one customer, named "Cust <username>". What a
viewer sees is therefore described as a set of owner usernames.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import pytest

from meihua.models import Customer, DataScope, Department, Role, User
from meihua.resolvers import access
from meihua.resolvers.access import Viewer
from meihua.resolvers.customers import normalize_name, normalize_phone
from meihua.schema.relay import to_global_id

OWNERS = [
    "boss", "director", "manager", "peer", "lead", "rep", "loner", "westy", "intern", "helper",
]  # fmt: skip
EVERYONE = frozenset(OWNERS)

CUSTOMERS = """
query($filter: CustomerFilter, $first: Int) {
  customers(filter: $filter, first: $first) { totalCount edges { node { id name } } }
}
"""
NODE = "query($id: ID!) { node(id: $id) { id ... on Customer { name owner { username } } } }"
UPDATE = """
mutation($id: ID!, $input: UpdateCustomerInput!) {
  updateCustomer(id: $id, input: $input) { id name region version }
}
"""
CREATE = "mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id name } }"
UPDATE_USER = """
mutation($id: ID!, $input: UpdateUserInput!) { updateUser(id: $id, input: $input) { id } }
"""
UPDATE_DEPARTMENT = """
mutation($id: ID!, $input: UpdateDepartmentInput!) {
  updateDepartment(id: $id, input: $input) { id }
}
"""
UPDATE_ROLE = """
mutation($id: ID!, $input: UpdateRoleInput!) { updateRole(id: $id, input: $input) { id } }
"""

ALL_CUSTOMER_RIGHTS = ["customer:create", "customer:update"]
_role_numbers = itertools.count(1)


def customer_name(username: str) -> str:
    return f"Cust {username}"


@dataclass
class Company:
    departments: dict[str, Department] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)
    customers: dict[str, Customer] = field(default_factory=dict)  # by owner username

    def gid(self, owner: str) -> str:
        return to_global_id("Customer", self.customers[owner].id)

    def owner_ids(self, names) -> list[str]:
        return [to_global_id("User", self.users[n].id) for n in names]


async def build_company(org) -> Company:
    c = Company()
    d = c.departments
    d["Office"] = await org.office()
    d["Sales"] = await org.department("Sales", d["Office"])
    d["East"] = await org.department("East", d["Sales"])
    d["East-1"] = await org.department("East-1", d["East"])
    d["West"] = await org.department("West", d["Sales"])
    d["Support"] = await org.department("Support", d["Office"])

    u = c.users
    # (username, department, manager); managers come before their reports.
    for username, department, manager in [
        ("boss", "Office", None),
        ("director", "Sales", "boss"),
        ("manager", "East", "director"),
        ("peer", "East", "director"),
        ("lead", "East-1", "manager"),
        ("rep", "East-1", "lead"),
        ("loner", "East-1", None),
        ("westy", "West", None),
        ("intern", "West", "peer"),
        ("helper", "Support", None),
    ]:
        u[username] = await org.user(
            username, department=d[department], manager=u[manager] if manager else None
        )
    u["root"] = await org.admin("root")

    for number, username in enumerate(OWNERS):
        name = customer_name(username)
        phone = f"1390000{number:04d}"
        c.customers[username] = await Customer.create(
            name=name,
            name_key=normalize_name(name),
            phone=phone,
            phone_key=normalize_phone(phone),
            owner_id=u[username].id,
            created_by_id=u[username].id,
        )
    return c


@pytest.fixture
async def company(org) -> Company:
    return await build_company(org)


async def give_role(
    org, company: Company, username: str, scope: DataScope, departments=(), permissions=None
) -> Role:
    role = await org.role(
        f"{scope.value} role #{next(_role_numbers)} of {username}",
        scope,
        ALL_CUSTOMER_RIGHTS if permissions is None else permissions,
        [company.departments[name] for name in departments],
    )
    await company.users[username].roles.add(role)
    return role


async def visible_owners(gql, company: Company, viewer: str, filter=None) -> set[str]:
    """The owners (usernames) of the customers `viewer` gets from the list."""
    data = await gql.ok(CUSTOMERS, {"filter": filter, "first": 100}, as_user=company.users[viewer])
    conn = data["customers"]
    names = {edge["node"]["name"] for edge in conn["edges"]}
    assert conn["totalCount"] == len(names)
    by_name = {customer_name(owner): owner for owner in OWNERS}
    assert names <= by_name.keys(), names
    return {by_name[name] for name in names}


async def snapshot(customer: Customer) -> tuple:
    row = await Customer.get(id=customer.id)
    return (row.name, row.name_key, row.region, row.phone, row.owner_id, row.version)


# ---------------------------------------------------------------------------
# the matrix

# (case id, viewer, scope, CUSTOM departments, owners the viewer must see)
MATRIX = [
    ("self", "lead", DataScope.SELF, (), {"lead"}),
    ("self-at-the-top", "boss", DataScope.SELF, (), {"boss"}),
    # down the manager chain, any depth, across departments
    (
        "subordinates-four-levels",
        "boss",
        DataScope.SELF_AND_SUBORDINATES,
        (),
        {"boss", "director", "manager", "peer", "lead", "rep", "intern"},
    ),
    (
        "subordinates-three-levels",
        "director",
        DataScope.SELF_AND_SUBORDINATES,
        (),
        {"director", "manager", "peer", "lead", "rep", "intern"},
    ),
    (
        "subordinates-not-peers",
        "manager",
        DataScope.SELF_AND_SUBORDINATES,
        (),
        {"manager", "lead", "rep"},
    ),
    ("subordinates-one-level", "lead", DataScope.SELF_AND_SUBORDINATES, (), {"lead", "rep"}),
    ("subordinates-none", "loner", DataScope.SELF_AND_SUBORDINATES, (), {"loner"}),
    # own department only, never its sub-departments
    ("department-east", "manager", DataScope.DEPARTMENT, (), {"manager", "peer"}),
    ("department-sales", "director", DataScope.DEPARTMENT, (), {"director"}),
    ("department-leaf", "rep", DataScope.DEPARTMENT, (), {"lead", "rep", "loner"}),
    ("department-office", "boss", DataScope.DEPARTMENT, (), {"boss"}),
    # own department and every level below
    (
        "tree-east",
        "peer",
        DataScope.DEPARTMENT_TREE,
        (),
        {"manager", "peer", "lead", "rep", "loner"},
    ),
    (
        "tree-sales",
        "director",
        DataScope.DEPARTMENT_TREE,
        (),
        {"director", "manager", "peer", "lead", "rep", "loner", "westy", "intern"},
    ),
    ("tree-office", "boss", DataScope.DEPARTMENT_TREE, (), EVERYONE),
    ("tree-leaf", "loner", DataScope.DEPARTMENT_TREE, (), {"lead", "rep", "loner"}),
    # exactly the chosen departments: not their children, not their parents
    (
        "custom-east-west",
        "westy",
        DataScope.CUSTOM,
        ("East", "West"),
        {"manager", "peer", "westy", "intern"},
    ),
    (
        "custom-leaf-and-support",
        "helper",
        DataScope.CUSTOM,
        ("East-1", "Support"),
        {"lead", "rep", "loner", "helper"},
    ),
    ("custom-office-only", "boss", DataScope.CUSTOM, ("Office",), {"boss"}),
    ("all", "helper", DataScope.ALL, (), EVERYONE),
]


@pytest.mark.parametrize(
    ("viewer", "scope", "departments", "expected"),
    [pytest.param(*case[1:], id=case[0]) for case in MATRIX],
)
async def test_scope_decides_which_customers_a_user_sees(
    gql, org, company, viewer, scope, departments, expected
):
    await give_role(org, company, viewer, scope, departments)
    user = company.users[viewer]

    assert await visible_owners(gql, company, viewer) == expected

    for owner in OWNERS:
        result = await gql(NODE, {"id": company.gid(owner)}, as_user=user)
        if owner in expected:
            assert not result.errors, result.errors
            assert result.data["node"] == {
                "id": company.gid(owner),
                "name": customer_name(owner),
                "owner": {"username": owner},
            }
        else:
            assert result.codes == ["NOT_FOUND"], (owner, result.errors)
            assert result.data is None or result.data["node"] is None
            assert customer_name(owner) not in result.error["message"]


@pytest.mark.parametrize(
    ("viewer", "scope", "departments", "expected"),
    [pytest.param(*case[1:], id=case[0]) for case in MATRIX if case[4] != EVERYONE],
)
async def test_updating_a_customer_outside_the_scope_is_not_found(
    gql, org, company, viewer, scope, departments, expected
):
    await give_role(org, company, viewer, scope, departments)
    user = company.users[viewer]

    for owner in sorted(EVERYONE - expected):
        before = await snapshot(company.customers[owner])
        result = await gql(
            UPDATE,
            {"id": company.gid(owner), "input": {"region": "Hacked", "name": "Hacked"}},
            as_user=user,
        )
        assert result.codes == ["NOT_FOUND"], (owner, result.errors)
        assert await snapshot(company.customers[owner]) == before

    # ... while every customer inside the scope can be edited.
    for owner in sorted(expected):
        data = await gql.ok(
            UPDATE, {"id": company.gid(owner), "input": {"region": f"by {viewer}"}}, as_user=user
        )
        assert data["updateCustomer"]["region"] == f"by {viewer}"
        assert (await Customer.get(id=company.customers[owner].id)).region == f"by {viewer}"


async def test_super_admin_sees_and_edits_everything_without_roles(gql, company):
    root = company.users["root"]
    assert await visible_owners(gql, company, "root") == EVERYONE
    for owner in OWNERS:
        data = await gql.ok(NODE, {"id": company.gid(owner)}, as_user=root)
        assert data["node"]["name"] == customer_name(owner)
    data = await gql.ok(
        UPDATE, {"id": company.gid("rep"), "input": {"region": "North"}}, as_user=root
    )
    assert data["updateCustomer"]["region"] == "North"
    assert (await Customer.get(id=company.customers["rep"].id)).region == "North"


async def test_a_user_without_roles_sees_only_their_own_customers(gql, company):
    assert await visible_owners(gql, company, "manager") == {"manager"}
    result = await gql(NODE, {"id": company.gid("lead")}, as_user=company.users["manager"])
    assert result.codes == ["NOT_FOUND"]


async def test_ownerless_customers_are_visible_to_all_scope_and_super_admin_only(gql, org, company):
    stray = await Customer.create(
        name="Stray", name_key="stray", owner_id=None, created_by_id=company.users["boss"].id
    )
    gid = to_global_id("Customer", stray.id)
    await give_role(org, company, "boss", DataScope.DEPARTMENT_TREE)
    await give_role(org, company, "helper", DataScope.ALL)

    assert (await gql(NODE, {"id": gid}, as_user=company.users["boss"])).codes == ["NOT_FOUND"]
    for viewer in ("helper", "root"):
        data = await gql.ok(NODE, {"id": gid}, as_user=company.users[viewer])
        assert data["node"] == {"id": gid, "name": "Stray", "owner": None}


# ---------------------------------------------------------------------------
# several roles


async def test_two_roles_give_the_union_of_their_scopes(gql, org, company):
    await give_role(org, company, "manager", DataScope.DEPARTMENT)  # manager, peer
    await give_role(org, company, "manager", DataScope.SELF_AND_SUBORDINATES)  # lead, rep
    assert await visible_owners(gql, company, "manager") == {"manager", "peer", "lead", "rep"}

    await give_role(org, company, "lead", DataScope.SELF)
    await give_role(org, company, "lead", DataScope.CUSTOM, ["Support"])
    assert await visible_owners(gql, company, "lead") == {"lead", "helper"}
    data = await gql.ok(NODE, {"id": company.gid("helper")}, as_user=company.users["lead"])
    assert data["node"]["name"] == customer_name("helper")


async def test_two_custom_roles_give_the_union_of_their_departments(gql, org, company):
    await give_role(org, company, "westy", DataScope.CUSTOM, ["Support"])
    await give_role(org, company, "westy", DataScope.CUSTOM, ["Sales"])
    assert await visible_owners(gql, company, "westy") == {"westy", "helper", "director"}


async def test_the_widest_role_wins(gql, org, company):
    await give_role(org, company, "rep", DataScope.SELF)
    await give_role(org, company, "rep", DataScope.ALL, permissions=[])
    assert await visible_owners(gql, company, "rep") == EVERYONE


async def test_permissions_of_one_role_apply_to_the_scope_of_another(gql, org, company):
    # Permissions are the union of the roles, the scope is the union of the
    # scopes: a read-only DEPARTMENT role plus an editing SELF role edits the
    # department.
    await give_role(org, company, "manager", DataScope.DEPARTMENT, permissions=[])
    await give_role(org, company, "manager", DataScope.SELF, permissions=["customer:update"])
    data = await gql.ok(
        UPDATE,
        {"id": company.gid("peer"), "input": {"region": "East"}},
        as_user=company.users["manager"],
    )
    assert data["updateCustomer"]["region"] == "East"


# ---------------------------------------------------------------------------
# operation permissions on top of the scope


async def test_visible_customer_without_update_permission_is_forbidden(gql, org, company):
    await give_role(org, company, "director", DataScope.DEPARTMENT_TREE, permissions=[])
    user = company.users["director"]
    for owner in ("director", "rep"):  # own customer and a visible one
        before = await snapshot(company.customers[owner])
        result = await gql(
            UPDATE, {"id": company.gid(owner), "input": {"name": "Renamed"}}, as_user=user
        )
        assert result.codes == ["FORBIDDEN"], result.errors
        assert await snapshot(company.customers[owner]) == before


async def test_invisible_customer_without_update_permission_is_still_not_found(gql, org, company):
    # Not FORBIDDEN: that would tell the caller the id exists.
    await give_role(org, company, "manager", DataScope.DEPARTMENT, permissions=[])
    before = await snapshot(company.customers["helper"])
    result = await gql(
        UPDATE,
        {"id": company.gid("helper"), "input": {"name": "Renamed"}},
        as_user=company.users["manager"],
    )
    assert result.codes == ["NOT_FOUND"]
    assert await snapshot(company.customers["helper"]) == before


async def test_create_without_permission_is_forbidden_and_writes_nothing(gql, org, company):
    await give_role(org, company, "rep", DataScope.ALL, permissions=["customer:update"])
    count = await Customer.all().count()
    result = await gql(
        CREATE,
        {"input": {"name": "Brand New", "phone": "13712345678"}},
        as_user=company.users["rep"],
    )
    assert result.codes == ["FORBIDDEN"]
    assert await Customer.all().count() == count
    assert not await Customer.filter(name_key="brand new").exists()
    assert not await Customer.filter(phone_key="13712345678").exists()


async def test_create_with_permission_owns_the_new_customer(gql, org, company):
    await give_role(org, company, "rep", DataScope.SELF, permissions=["customer:create"])
    data = await gql.ok(CREATE, {"input": {"name": "Brand New"}}, as_user=company.users["rep"])
    row = await Customer.get(name_key="brand new")
    assert row.owner_id == company.users["rep"].id
    assert data["createCustomer"]["id"] == to_global_id("Customer", row.id)
    # the rep's manager chain sees it at once
    await give_role(org, company, "director", DataScope.SELF_AND_SUBORDINATES)
    data = await gql.ok(
        NODE, {"id": data["createCustomer"]["id"]}, as_user=company.users["director"]
    )
    assert data["node"]["name"] == "Brand New"


# ---------------------------------------------------------------------------
# the scope follows the organization


async def test_moving_a_user_to_another_department_changes_visibility(gql, org, company):
    await give_role(org, company, "manager", DataScope.DEPARTMENT)
    await give_role(org, company, "westy", DataScope.DEPARTMENT)
    assert await visible_owners(gql, company, "manager") == {"manager", "peer"}
    assert await visible_owners(gql, company, "westy") == {"westy", "intern"}

    # peer moves from East to West
    await gql.ok(
        UPDATE_USER,
        {
            "id": to_global_id("User", company.users["peer"].id),
            "input": {"departmentId": to_global_id("Department", company.departments["West"].id)},
        },
        as_user=company.users["root"],
    )
    assert await visible_owners(gql, company, "manager") == {"manager"}
    assert await visible_owners(gql, company, "westy") == {"westy", "intern", "peer"}
    result = await gql(NODE, {"id": company.gid("peer")}, as_user=company.users["manager"])
    assert result.codes == ["NOT_FOUND"]

    # the viewer themselves moves: manager goes to Support
    await User.filter(id=company.users["manager"].id).update(
        department_id=company.departments["Support"].id
    )
    assert await visible_owners(gql, company, "manager") == {"manager", "helper"}


async def test_changing_a_manager_changes_visibility(gql, org, company):
    await give_role(org, company, "lead", DataScope.SELF_AND_SUBORDINATES)
    await give_role(org, company, "loner", DataScope.SELF_AND_SUBORDINATES)
    await give_role(org, company, "director", DataScope.SELF_AND_SUBORDINATES)
    assert await visible_owners(gql, company, "lead") == {"lead", "rep"}
    assert await visible_owners(gql, company, "loner") == {"loner"}

    # rep now reports to loner
    await gql.ok(
        UPDATE_USER,
        {
            "id": to_global_id("User", company.users["rep"].id),
            "input": {"managerId": to_global_id("User", company.users["loner"].id)},
        },
        as_user=company.users["root"],
    )
    assert await visible_owners(gql, company, "lead") == {"lead"}
    assert await visible_owners(gql, company, "loner") == {"loner", "rep"}
    result = await gql(
        UPDATE,
        {"id": company.gid("rep"), "input": {"region": "x"}},
        as_user=company.users["lead"],
    )
    assert result.codes == ["NOT_FOUND"]
    # the director lost rep (loner's chain does not lead to the director)
    assert "rep" not in await visible_owners(gql, company, "director")

    # manager loses its manager: director loses manager, lead (and nobody else)
    await gql.ok(
        UPDATE_USER,
        {"id": to_global_id("User", company.users["manager"].id), "input": {"managerId": None}},
        as_user=company.users["root"],
    )
    assert await visible_owners(gql, company, "director") == {"director", "peer", "intern"}


async def test_moving_a_department_changes_tree_visibility(gql, org, company):
    await give_role(org, company, "manager", DataScope.DEPARTMENT_TREE)
    await give_role(org, company, "westy", DataScope.DEPARTMENT_TREE)
    assert await visible_owners(gql, company, "westy") == {"westy", "intern"}

    # East-1 moves under West
    await gql.ok(
        UPDATE_DEPARTMENT,
        {
            "id": to_global_id("Department", company.departments["East-1"].id),
            "input": {"parentId": to_global_id("Department", company.departments["West"].id)},
        },
        as_user=company.users["root"],
    )
    assert await visible_owners(gql, company, "manager") == {"manager", "peer"}
    assert await visible_owners(gql, company, "westy") == {
        "westy", "intern", "lead", "rep", "loner",
    }  # fmt: skip


async def test_changing_a_role_changes_visibility_on_the_next_request(gql, org, company):
    role = await give_role(org, company, "westy", DataScope.SELF)
    assert await visible_owners(gql, company, "westy") == {"westy"}

    await gql.ok(
        UPDATE_ROLE,
        {
            "id": to_global_id("Role", role.id),
            "input": {
                "dataScope": "CUSTOM",
                "departmentIds": [to_global_id("Department", company.departments["Support"].id)],
            },
        },
        as_user=company.users["root"],
    )
    assert await visible_owners(gql, company, "westy") == {"westy", "helper"}

    await company.users["westy"].roles.remove(role)
    assert await visible_owners(gql, company, "westy") == {"westy"}


# ---------------------------------------------------------------------------
# filters narrow, never widen


async def test_owner_filter_cannot_widen_the_scope(gql, org, company):
    await give_role(org, company, "lead", DataScope.SELF_AND_SUBORDINATES)

    for outsider in ("manager", "helper", "loner", "boss"):
        [owner_id] = company.owner_ids([outsider])
        assert await visible_owners(gql, company, "lead", {"ownerId": owner_id}) == set()

    [rep_id] = company.owner_ids(["rep"])
    assert await visible_owners(gql, company, "lead", {"ownerId": rep_id}) == {"rep"}


async def test_search_cannot_widen_the_scope(gql, org, company):
    await give_role(org, company, "lead", DataScope.SELF)
    # every customer is "Cust …", every phone starts with 1390000
    assert await visible_owners(gql, company, "lead", {"search": "cust"}) == {"lead"}
    assert await visible_owners(gql, company, "lead", {"search": "1390000"}) == {"lead"}
    assert await visible_owners(gql, company, "lead", {"search": "helper"}) == set()


async def test_owner_filter_with_a_foreign_id_is_bad_input(gql, org, company):
    result = await gql(
        CUSTOMERS,
        {"filter": {"ownerId": company.gid("lead")}},
        as_user=company.users["root"],
    )
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.error["extensions"]["field"] == "ownerId"


async def test_a_failed_load_of_the_callers_scope_is_tried_again(org, monkeypatch):
    """The hub keeps a subscriber's viewer for hours: one failed query must not stick."""
    team = await org.sales_team()
    calls = []

    async def flaky(user):
        calls.append(user.id)
        if len(calls) == 1:
            raise ConnectionError("database restarting")
        return {7}

    monkeypatch.setattr(access, "member_pool_ids", flaky)
    viewer = await Viewer.load(team.an)
    with pytest.raises(ConnectionError):
        await viewer.pool_ids()
    assert await viewer.pool_ids() == {7}
    assert await viewer.pool_ids() == {7}
    assert len(calls) == 2

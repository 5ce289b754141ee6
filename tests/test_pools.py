"""The public pools (公海): managing pools, who sees into which pool, release
(放入公海), assign (分配), and the pool history that transfers and every
movement leave on the customer and its timeline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from meihua.models import (
    Contact,
    Customer,
    CustomerTeamMember,
    Event,
    OperationLog,
    Pool,
    PoolMovement,
    PoolMovementKind,
    TeamAccess,
    User,
)
from meihua.resolvers.customers import normalize_name
from meihua.schema.relay import to_global_id

RELEASE = """
mutation($ids: [ID!]!, $reason: String, $pool: ID) {
  releaseCustomers(ids: $ids, reason: $reason, poolId: $pool) {
    id inPool poolEnteredAt takenAt version owner { username } previousOwner { username }
    pool { name }
  }
}
"""
ASSIGN = """
mutation($ids: [ID!]!, $owner: ID!) {
  assignCustomers(ids: $ids, ownerId: $owner) { id inPool owner { username } }
}
"""
CLAIM = "mutation($id: ID!) { claimCustomer(id: $id) { id owner { username } } }"
NODE = "query($id: ID!) { node(id: $id) { id } }"
CUSTOMER = """
query($id: ID!) {
  node(id: $id) {
    ... on Customer {
      name inPool takenAt pool { name } contacts { name }
      poolHistory {
        kind reason rule at actor { username } previousOwner { username }
        newOwner { username } pool { name } customer { name }
      }
    }
  }
}
"""
LIST = """
query($filter: CustomerFilter) {
  customers(filter: $filter, first: 100) { edges { node { name } } }
}
"""
TIMELINE = """
query($id: ID!) {
  timeline(recordId: $id, first: 50) {
    totalCount
    edges { node {
      kind summary actor { username }
      operation { action }
      poolMovement { kind reason previousOwner { username } newOwner { username } }
    } }
  }
}
"""
POOLS = "{ pools { name companyWide customerCount departments { name } } }"
CREATE_POOL = """
mutation($input: CreatePoolInput!) {
  createPool(input: $input) {
    id name companyWide maxOwned maxClaimsPerDay reclaimCooldownDays warningDays version
    departments { name }
  }
}
"""
UPDATE_POOL = """
mutation($id: ID!, $input: UpdatePoolInput!, $version: Int) {
  updatePool(id: $id, input: $input, expectedVersion: $version) {
    name maxOwned recycleNoDealAfterDays warningDays version departments { name }
  }
}
"""
DELETE_POOL = "mutation($id: ID!) { deletePool(id: $id) { deletedId } }"
UPDATE_CUSTOMER = """
mutation($id: ID!, $input: UpdateCustomerInput!) { updateCustomer(id: $id, input: $input) { id } }
"""
CREATE_CONTACT = "mutation($input: CreateContactInput!) { createContact(input: $input) { id } }"
CREATE_CUSTOMER = """
mutation($input: CreateCustomerInput!) {
  createCustomer(input: $input) { id inPool takenAt pool { name } }
}
"""
TRANSFER = """
mutation($ids: [ID!]!, $owner: ID!) { transferCustomers(ids: $ids, ownerId: $owner) { id } }
"""


@dataclass
class Floor:
    company: Pool  # the company-wide pool
    east: Pool  # serves the East department (under Sales)
    alice: User  # Sales Rep in Sales
    bob: User  # Sales Rep in Sales
    erin: User  # Sales Rep in East
    carol: User  # Sales Rep in Support
    boss: User  # Sales Manager (DEPARTMENT_TREE) in Sales: may assign
    finance: User  # ALL scope, no pool permissions
    admin: User  # Administrator: manages pools
    acme: Customer  # Alice's


@pytest.fixture
async def floor(org) -> Floor:
    sales = await org.department("Sales")
    east = await org.department("East", parent=sales)
    support = await org.department("Support")
    rep = await org.default_role("Sales Rep")
    east_pool = await Pool.create(name="East pool")
    await east_pool.departments.add(east)
    company = await Pool.get(company_wide=True)
    alice = await org.user("alice", department=sales, roles=[rep])
    return Floor(
        company=company,
        east=east_pool,
        alice=alice,
        bob=await org.user("bob", department=sales, roles=[rep]),
        erin=await org.user("erin", department=east, roles=[rep]),
        carol=await org.user("carol", department=support, roles=[rep]),
        boss=await org.user(
            "boss", department=sales, roles=[await org.default_role("Sales Manager")]
        ),
        finance=await org.user("finance", roles=[await org.default_role("Finance")]),
        admin=await org.user("admin", roles=[await org.default_role("Administrator")]),
        acme=await owned(company, "Acme", alice),
    )


def gid(row) -> str:
    return to_global_id(type(row).__name__, row.id)


async def owned(pool: Pool, name: str, owner: User) -> Customer:
    return await Customer.create(
        name=name,
        name_key=normalize_name(name),
        owner_id=owner.id,
        created_by_id=owner.id,
        pool_id=pool.id,
        taken_at=datetime.now(UTC),
    )


async def pooled(pool: Pool, name: str, creator: User) -> Customer:
    return await Customer.create(
        name=name,
        name_key=normalize_name(name),
        created_by_id=creator.id,
        pool_id=pool.id,
        pool_entered_at=datetime.now(UTC),
    )


async def state(customer: Customer) -> tuple:
    row = await Customer.get(id=customer.id)
    return (row.owner_id, row.pool_id, row.version, row.taken_at, row.pool_entered_at)


async def names(gql, user: User, where: dict | None = None) -> list[str]:
    data = await gql.ok(LIST, {"filter": where}, as_user=user)
    return sorted(edge["node"]["name"] for edge in data["customers"]["edges"])


async def sees(gql, user: User, record) -> bool:
    result = await gql(NODE, {"id": gid(record)}, as_user=user)
    return not result.errors


# ---------------------------------------------------------------------------
# new customers belong to a pool


async def test_a_new_customer_belongs_to_its_owners_home_pool(gql, floor):
    mine = await gql.ok(CREATE_CUSTOMER, {"input": {"name": "Erin Co"}}, as_user=floor.erin)
    theirs = await gql.ok(CREATE_CUSTOMER, {"input": {"name": "Alice Co"}}, as_user=floor.alice)
    assert mine["createCustomer"]["pool"] == {"name": "East pool"}
    assert theirs["createCustomer"]["pool"] == {"name": floor.company.name}
    assert mine["createCustomer"]["inPool"] is False
    assert mine["createCustomer"]["takenAt"] is not None


# ---------------------------------------------------------------------------
# release


async def test_release_puts_the_customer_into_its_pool(gql, floor):
    data = await gql.ok(
        RELEASE, {"ids": [gid(floor.acme)], "reason": "  no budget this year "}, as_user=floor.alice
    )
    [released] = data["releaseCustomers"]
    assert released["inPool"] is True
    assert released["owner"] is None
    assert released["previousOwner"] == {"username": "alice"}
    assert released["pool"] == {"name": floor.company.name}
    assert released["takenAt"] is None and released["poolEnteredAt"] is not None
    assert released["version"] == floor.acme.version + 1

    movement = await PoolMovement.get(customer_id=floor.acme.id)
    assert (movement.kind, movement.actor_id, movement.previous_owner_id) == (
        PoolMovementKind.RELEASED,
        floor.alice.id,
        floor.alice.id,
    )
    assert movement.reason == "no budget this year"
    event = await Event.get(kind="pool.released")
    assert event.payload["reason"] == "no budget this year"
    entry = await OperationLog.get(action="RELEASE")
    assert entry.changes == {"owner_id": [floor.alice.id, None]}
    # Alice no longer owns it, but as a member of the pool she still sees it.
    assert await names(gql, floor.alice, {"inPool": True}) == ["Acme"]
    assert await names(gql, floor.alice, {"inPool": False}) == []


async def test_release_clears_the_team(gql, floor):
    acme = await owned(floor.east, "East Acme", floor.erin)
    await CustomerTeamMember.create(
        customer_id=acme.id, user_id=floor.carol.id, access=TeamAccess.WRITE
    )
    assert await sees(gql, floor.carol, acme)
    await gql.ok(RELEASE, {"ids": [gid(acme)]}, as_user=floor.erin)

    assert not await CustomerTeamMember.filter(customer_id=acme.id).exists()
    entry = await OperationLog.get(action="RELEASE")
    assert entry.changes["team"] == [[{"userId": floor.carol.id, "access": "WRITE"}], []]
    # Carol is not a member of the East pool: the customer is gone for her.
    assert not await sees(gql, floor.carol, acme)


async def test_a_manager_releases_a_customer_of_someone_in_scope(gql, floor):
    await gql.ok(RELEASE, {"ids": [gid(floor.acme)]}, as_user=floor.boss)
    assert (await Customer.get(id=floor.acme.id)).owner_id is None


async def test_release_into_a_named_pool_needs_its_membership(gql, floor):
    erins = await owned(floor.company, "Erin Co", floor.erin)
    variables = {"ids": [gid(floor.acme)], "pool": gid(floor.east)}
    # Alice is not a member of the East pool: it does not exist for her.
    assert (await gql(RELEASE, variables, as_user=floor.alice)).codes == ["NOT_FOUND"]
    data = await gql.ok(RELEASE, {"ids": [gid(erins)], "pool": gid(floor.east)}, as_user=floor.erin)
    assert data["releaseCustomers"][0]["pool"] == {"name": "East pool"}
    entry = await OperationLog.get(action="RELEASE", record_id=erins.id)
    assert entry.changes["pool_id"] == [floor.company.id, floor.east.id]


async def test_release_is_refused_to_anyone_but_the_owner_and_managers(gql, floor):
    before = await state(floor.acme)
    # Bob shares the customer with WRITE access, but it is not his to give up.
    await CustomerTeamMember.create(
        customer_id=floor.acme.id, user_id=floor.bob.id, access=TeamAccess.WRITE
    )
    assert (await gql(RELEASE, {"ids": [gid(floor.acme)]}, as_user=floor.bob)).codes == [
        "FORBIDDEN"
    ]
    # Carol cannot see it at all.
    assert (await gql(RELEASE, {"ids": [gid(floor.acme)]}, as_user=floor.carol)).codes == [
        "NOT_FOUND"
    ]
    # Finance sees everything but holds no pool:release.
    assert (await gql(RELEASE, {"ids": [gid(floor.acme)]}, as_user=floor.finance)).codes == [
        "FORBIDDEN"
    ]
    assert await state(floor.acme) == before
    assert not await PoolMovement.exists()
    assert not await Event.filter(kind__startswith="pool.").exists()


async def test_release_is_all_or_nothing(gql, floor):
    other = await owned(floor.company, "Beta", floor.alice)
    already = await pooled(floor.company, "Gamma", floor.bob)
    before = [await state(c) for c in (floor.acme, other, already)]

    result = await gql(
        RELEASE, {"ids": [gid(floor.acme), gid(other), gid(already)]}, as_user=floor.alice
    )
    assert result.codes == ["CONFLICT"]
    too_long = await gql(
        RELEASE, {"ids": [gid(floor.acme)], "reason": "x" * 2001}, as_user=floor.alice
    )
    assert too_long.codes == ["BAD_USER_INPUT"]
    assert too_long.error["extensions"]["field"] == "reason"
    ids = [gid(floor.acme)] + [to_global_id("Customer", pk) for pk in range(1000, 1200)]
    too_many = await gql(RELEASE, {"ids": ids}, as_user=floor.alice)
    assert too_many.codes == ["BAD_USER_INPUT"]
    assert [await state(c) for c in (floor.acme, other, already)] == before
    assert not await PoolMovement.exists()
    assert not await OperationLog.filter(action="RELEASE").exists()


# ---------------------------------------------------------------------------
# who sees into a pool


async def test_only_members_see_and_claim_a_department_pools_customers(gql, floor):
    lead = await pooled(floor.east, "East Lead", floor.erin)
    await Contact.create(customer_id=lead.id, name="Li Lei", created_by_id=floor.erin.id)
    contact = await Contact.get(customer_id=lead.id)

    data = await gql.ok(CUSTOMER, {"id": gid(lead)}, as_user=floor.erin)
    assert data["node"]["inPool"] is True
    assert data["node"]["pool"] == {"name": "East pool"}
    assert data["node"]["contacts"] == [{"name": "Li Lei"}]
    assert await sees(gql, floor.erin, contact)
    assert await names(gql, floor.erin, {"inPool": True, "poolId": gid(floor.east)}) == [
        "East Lead"
    ]
    # Carol (Support) and Alice (Sales, the department above East) are not members.
    for outsider in (floor.carol, floor.alice):
        assert not await sees(gql, outsider, lead)
        assert not await sees(gql, outsider, contact)
        assert await names(gql, outsider, {"inPool": True}) == []
        result = await gql(CLAIM, {"id": gid(lead)}, as_user=outsider)
        assert result.codes == ["NOT_FOUND"]
    assert (await Customer.get(id=lead.id)).owner_id is None

    data = await gql.ok(CLAIM, {"id": gid(lead)}, as_user=floor.erin)
    assert data["claimCustomer"]["owner"] == {"username": "erin"}


async def test_pool_members_read_but_do_not_change_a_pool_customer(gql, floor):
    lead = await pooled(floor.company, "Pooled", floor.bob)
    result = await gql(
        UPDATE_CUSTOMER, {"id": gid(lead), "input": {"region": "East"}}, as_user=floor.alice
    )
    assert result.codes == ["FORBIDDEN"]
    assert "claim" in result.error["message"]
    result = await gql(
        CREATE_CONTACT, {"input": {"customerId": gid(lead), "name": "Han Meimei"}},
        as_user=floor.alice,
    )  # fmt: skip
    assert result.codes == ["FORBIDDEN"]
    assert (await Customer.get(id=lead.id)).region is None
    assert not await Contact.exists()


async def test_creating_a_duplicate_of_a_pool_customer_points_to_the_pool(gql, floor):
    await pooled(floor.company, "Pooled Co", floor.bob)
    result = await gql(CREATE_CUSTOMER, {"input": {"name": "pooled co"}}, as_user=floor.alice)
    assert result.codes == ["DUPLICATE"]
    assert "public pool" in result.error["message"]


# ---------------------------------------------------------------------------
# assign


async def test_assign_hands_pool_customers_to_a_user_and_tells_them(gql, floor):
    first = await pooled(floor.company, "First", floor.bob)
    second = await pooled(floor.company, "Second", floor.bob)
    data = await gql.ok(
        ASSIGN, {"ids": [gid(second), gid(first)], "owner": gid(floor.alice)}, as_user=floor.boss
    )
    assert [c["id"] for c in data["assignCustomers"]] == [gid(second), gid(first)]
    assert all(c["owner"] == {"username": "alice"} for c in data["assignCustomers"])
    movements = await PoolMovement.filter(kind=PoolMovementKind.ASSIGNED).order_by("id")
    assert [(m.actor_id, m.new_owner_id) for m in movements] == [
        (floor.boss.id, floor.alice.id)
    ] * 2
    events = await Event.filter(kind="pool.assigned")
    assert {e.recipient_id for e in events} == {floor.alice.id}
    assert await OperationLog.filter(action="ASSIGN").count() == 2


async def test_assign_refusals_change_nothing(gql, org, floor):
    lead = await pooled(floor.company, "Pooled", floor.bob)
    before = [await state(c) for c in (lead, floor.acme)]
    gone = await org.user("gone")
    await User.filter(id=gone.id).update(is_active=False)

    result = await gql(ASSIGN, {"ids": [gid(lead)], "owner": gid(gone)}, as_user=floor.boss)
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.error["extensions"]["field"] == "ownerId"
    # An owned customer in the batch spoils it all.
    result = await gql(
        ASSIGN, {"ids": [gid(lead), gid(floor.acme)], "owner": gid(floor.bob)}, as_user=floor.boss
    )
    assert result.codes == ["CONFLICT"]
    # Reps do not assign.
    result = await gql(ASSIGN, {"ids": [gid(lead)], "owner": gid(floor.bob)}, as_user=floor.alice)
    assert result.codes == ["FORBIDDEN"]
    assert [await state(c) for c in (lead, floor.acme)] == before
    assert not await PoolMovement.exists()


async def test_assign_counts_the_whole_batch_against_the_cap(gql, floor):
    await Pool.filter(id=floor.company.id).update(max_owned=2)
    batch = [await pooled(floor.company, f"Lead {i}", floor.bob) for i in range(2)]
    before = [await state(c) for c in batch]
    # Alice already owns Acme: two more would make three.
    result = await gql(
        ASSIGN, {"ids": [gid(c) for c in batch], "owner": gid(floor.alice)}, as_user=floor.boss
    )
    assert result.codes == ["LIMIT_EXCEEDED"]
    assert result.error["extensions"]["limit"] == 2
    assert "Alice" in result.error["message"]
    assert [await state(c) for c in batch] == before

    await gql.ok(ASSIGN, {"ids": [gid(batch[0])], "owner": gid(floor.alice)}, as_user=floor.boss)
    assert await Customer.filter(owner_id=floor.alice.id).count() == 2


# ---------------------------------------------------------------------------
# history and timeline


async def test_transfers_are_kept_in_the_pool_history(gql, floor):
    await gql.ok(TRANSFER, {"ids": [gid(floor.acme)], "owner": gid(floor.bob)}, as_user=floor.boss)
    row = await Customer.get(id=floor.acme.id)
    assert row.taken_at > floor.acme.taken_at

    data = await gql.ok(CUSTOMER, {"id": gid(floor.acme)}, as_user=floor.boss)
    [movement] = data["node"]["poolHistory"]
    assert movement["kind"] == "TRANSFERRED"
    assert movement["actor"] == {"username": "boss"}
    assert movement["previousOwner"] == {"username": "alice"}
    assert movement["newOwner"] == {"username": "bob"}
    assert movement["customer"] == {"name": "Acme"}
    # A transfer is not a pool event.
    assert not await Event.filter(kind__startswith="pool.").exists()


async def test_a_pool_customer_is_assigned_not_transferred(gql, floor):
    lead = await pooled(floor.company, "Pooled", floor.bob)
    result = await gql(TRANSFER, {"ids": [gid(lead)], "owner": gid(floor.bob)}, as_user=floor.admin)
    assert result.codes == ["CONFLICT"]
    assert (await Customer.get(id=lead.id)).owner_id is None


async def test_history_and_timeline_hold_every_movement_newest_first(gql, floor):
    await gql.ok(RELEASE, {"ids": [gid(floor.acme)], "reason": "moved away"}, as_user=floor.alice)
    await gql.ok(CLAIM, {"id": gid(floor.acme)}, as_user=floor.bob)

    data = await gql.ok(CUSTOMER, {"id": gid(floor.acme)}, as_user=floor.bob)
    history = data["node"]["poolHistory"]
    assert [m["kind"] for m in history] == ["CLAIMED", "RELEASED"]
    assert history[1]["reason"] == "moved away"
    assert history[1]["pool"] == {"name": floor.company.name}
    assert history[0]["newOwner"] == {"username": "bob"}

    page = (await gql.ok(TIMELINE, {"id": gid(floor.acme)}, as_user=floor.bob))["timeline"]
    entries = [edge["node"] for edge in page["edges"]]
    moves = [e for e in entries if e["kind"] == "POOL_MOVEMENT"]
    assert [e["summary"] for e in moves] == [
        f"Claimed from {floor.company.name} by Bob",
        f"Released to {floor.company.name}: moved away",
    ]
    assert moves[0]["actor"] == {"username": "bob"}
    assert moves[1]["poolMovement"] == {
        "kind": "RELEASED",
        "reason": "moved away",
        "previousOwner": {"username": "alice"},
        "newOwner": None,
    }
    # The log entries of the moves are not repeated on the timeline.
    assert not [e for e in entries if e["operation"] and e["operation"]["action"] != "CREATE"]
    assert page["totalCount"] == len(entries)


# ---------------------------------------------------------------------------
# managing pools


async def test_pools_lists_member_pools_and_every_pool_for_managers(gql, floor):
    await pooled(floor.east, "East Lead", floor.erin)
    erin = (await gql.ok(POOLS, as_user=floor.erin))["pools"]
    assert [(p["name"], p["companyWide"]) for p in erin] == [
        (floor.company.name, True),
        ("East pool", False),
    ]
    assert erin[1] == {
        "name": "East pool",
        "companyWide": False,
        "customerCount": 1,
        "departments": [{"name": "East"}],
    }
    assert [p["name"] for p in (await gql.ok(POOLS, as_user=floor.carol))["pools"]] == [
        floor.company.name
    ]
    assert len((await gql.ok(POOLS, as_user=floor.admin))["pools"]) == 2
    # A pool is a node, for its members and managers.
    assert await sees(gql, floor.erin, floor.east)
    assert await sees(gql, floor.admin, floor.east)
    assert not await sees(gql, floor.carol, floor.east)


async def test_pool_management_needs_the_permission(gql, org, floor):
    support = await org.department("Support 2")
    new = {"name": "Support pool", "departmentIds": [gid(support)]}
    assert (await gql(CREATE_POOL, {"input": new}, as_user=floor.boss)).codes == ["FORBIDDEN"]
    result = await gql(UPDATE_POOL, {"id": gid(floor.east), "input": {"maxOwned": 5}},
                       as_user=floor.erin)  # fmt: skip
    assert result.codes == ["FORBIDDEN"]
    assert (await gql(DELETE_POOL, {"id": gid(floor.east)}, as_user=floor.erin)).codes == [
        "FORBIDDEN"
    ]
    assert await Pool.all().count() == 2
    assert (await Pool.get(id=floor.east.id)).max_owned is None


async def test_create_update_and_delete_a_pool(gql, org, floor):
    support = await org.department("Field Sales")
    created = (
        await gql.ok(
            CREATE_POOL,
            {
                "input": {
                    "name": " Field pool ",
                    "departmentIds": [gid(support)],
                    "maxOwned": 50,
                    "reclaimCooldownDays": 7,
                }
            },
            as_user=floor.admin,
        )  # fmt: skip
    )["createPool"]
    assert created["name"] == "Field pool"
    assert (created["maxOwned"], created["reclaimCooldownDays"]) == (50, 7)
    assert (created["companyWide"], created["warningDays"], created["version"]) == (False, 3, 1)
    assert created["departments"] == [{"name": "Field Sales"}]

    updated = (
        await gql.ok(
            UPDATE_POOL,
            {
                "id": created["id"],
                "version": 1,
                "input": {"maxOwned": None, "recycleNoDealAfterDays": 30, "warningDays": 0},
            },
            as_user=floor.admin,
        )  # fmt: skip
    )["updatePool"]
    assert (updated["maxOwned"], updated["recycleNoDealAfterDays"]) == (None, 30)
    assert (updated["warningDays"], updated["version"]) == (0, 2)
    stale = await gql(UPDATE_POOL, {"id": created["id"], "version": 1, "input": {"name": "X"}},
                      as_user=floor.admin)  # fmt: skip
    assert stale.codes == ["CONFLICT"]
    changes = await Event.filter(kind="pool.changed").order_by("id")
    assert len(changes) == 2
    assert changes[1].payload["fields"] == ["maxOwned", "recycleNoDealAfterDays", "warningDays"]

    await gql.ok(DELETE_POOL, {"id": created["id"]}, as_user=floor.admin)
    assert await Pool.all().count() == 2
    assert await Event.filter(kind="pool.changed").count() == 3


async def test_pool_input_is_validated(gql, org, floor):
    spare = await org.department("Spare")
    base = {"name": "Spare pool", "departmentIds": [gid(spare)]}
    cases = [
        ({**base, "name": "  "}, "BAD_USER_INPUT", "name"),
        ({**base, "name": "East pool"}, "DUPLICATE", "name"),
        ({**base, "departmentIds": []}, "BAD_USER_INPUT", "departmentIds"),
        ({**base, "departmentIds": [to_global_id("Department", 999)]}, "BAD_USER_INPUT",
         "departmentIds"),
        ({**base, "departmentIds": [gid(await floor.east.departments.all().first())]},
         "DUPLICATE", "departmentIds"),
        ({**base, "maxOwned": 0}, "BAD_USER_INPUT", "maxOwned"),
        ({**base, "maxClaimsPerDay": -3}, "BAD_USER_INPUT", "maxClaimsPerDay"),
        ({**base, "reclaimCooldownDays": 100_000}, "BAD_USER_INPUT", "reclaimCooldownDays"),
        ({**base, "warningDays": 366}, "BAD_USER_INPUT", "warningDays"),
    ]  # fmt: skip
    for data, code, field in cases:
        result = await gql(CREATE_POOL, {"input": data}, as_user=floor.admin)
        assert result.codes == [code], (data, result.errors)
        assert result.error["extensions"]["field"] == field
    assert await Pool.all().count() == 2

    # The company-wide pool stays open to everybody; a department pool keeps a department.
    result = await gql(UPDATE_POOL, {"id": gid(floor.company),
                                     "input": {"departmentIds": [gid(spare)]}},
                       as_user=floor.admin)  # fmt: skip
    assert result.codes == ["BAD_USER_INPUT"]
    result = await gql(UPDATE_POOL, {"id": gid(floor.east), "input": {"departmentIds": []}},
                       as_user=floor.admin)  # fmt: skip
    assert result.codes == ["BAD_USER_INPUT"]
    assert await floor.east.departments.all().count() == 1
    assert not await Event.filter(kind="pool.changed").exists()


async def test_a_pool_in_use_and_the_company_pool_are_not_deleted(gql, floor):
    await owned(floor.east, "East Co", floor.erin)
    for pool in (floor.company, floor.east):
        result = await gql(DELETE_POOL, {"id": gid(pool)}, as_user=floor.admin)
        assert result.codes == ["CONFLICT"]
    assert await Pool.all().count() == 2

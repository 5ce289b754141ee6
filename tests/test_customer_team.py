"""Customer teams (团队成员): who may share a customer, what READ and WRITE
members may do with it and its contacts, expiry, and the log of team changes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from meihua.models import (
    Contact,
    Customer,
    CustomerTeamMember,
    Event,
    OperationLog,
    RecordType,
    TeamAccess,
    User,
)
from meihua.resolvers.customers import normalize_name
from meihua.schema.relay import to_global_id

ADD = """
mutation($c: ID!, $u: ID!, $access: TeamAccess!, $expiresAt: DateTime) {
  addCustomerTeamMember(customerId: $c, userId: $u, access: $access, expiresAt: $expiresAt) {
    id team { access expiresAt active user { username } addedBy { username } }
  }
}
"""
UPDATE_MEMBER = """
mutation($c: ID!, $u: ID!, $access: TeamAccess, $expiresAt: DateTime) {
  updateCustomerTeamMember(customerId: $c, userId: $u, access: $access, expiresAt: $expiresAt) {
    team { access expiresAt user { username } }
  }
}
"""
CLEAR_EXPIRY = """
mutation($c: ID!, $u: ID!) {
  updateCustomerTeamMember(customerId: $c, userId: $u, expiresAt: null) {
    team { access expiresAt }
  }
}
"""
REMOVE = """
mutation($c: ID!, $u: ID!) {
  removeCustomerTeamMember(customerId: $c, userId: $u) { team { user { username } } }
}
"""
UPDATE_CUSTOMER = """
mutation($id: ID!, $input: UpdateCustomerInput!) {
  updateCustomer(id: $id, input: $input) { id region version }
}
"""
NODE = "query($id: ID!) { node(id: $id) { id ... on Customer { name team { access } } } }"
LIST = "{ customers(first: 100) { totalCount edges { node { name } } } }"
CREATE_CONTACT = """
mutation($input: CreateContactInput!) { createContact(input: $input) { id } }
"""
UPDATE_CONTACT = """
mutation($id: ID!, $input: UpdateContactInput!) { updateContact(id: $id, input: $input) { name } }
"""


@dataclass
class Team:
    alice: User  # Sales Rep (SELF) in Sales, owns Acme
    bob: User  # Sales Rep (SELF) in Sales
    carol: User  # Sales Rep (SELF) in Support
    dave: User  # Sales Rep (SELF) in Support
    boss: User  # Sales Manager (DEPARTMENT_TREE) in Sales
    auditor: User  # sees everything, holds no permission
    acme: Customer


@pytest.fixture
async def team(org) -> Team:
    sales = await org.department("Sales")
    support = await org.department("Support")
    rep = await org.default_role("Sales Rep")
    alice = await org.user("alice", department=sales, roles=[rep])
    return Team(
        alice=alice,
        bob=await org.user("bob", department=sales, roles=[rep]),
        carol=await org.user("carol", department=support, roles=[rep]),
        dave=await org.user("dave", department=support, roles=[rep]),
        boss=await org.user(
            "boss", department=sales, roles=[await org.default_role("Sales Manager")]
        ),
        auditor=await org.user("auditor", roles=[await org.role("Auditor", "ALL", [])]),
        acme=await Customer.create(
            name="Acme", name_key="acme", owner_id=alice.id, created_by_id=alice.id
        ),
    )


def gid(row) -> str:
    return to_global_id(type(row).__name__, row.id)


def member_vars(team: Team, user: User, access: str = "READ", expires_at=None) -> dict:
    return {"c": gid(team.acme), "u": gid(user), "access": access, "expiresAt": expires_at}


async def seats(customer: Customer) -> dict[str, str]:
    rows = await CustomerTeamMember.filter(customer_id=customer.id).prefetch_related("user")
    return {row.user.username: row.access.value for row in rows}


async def sees(gql, user: User, customer: Customer) -> bool:
    result = await gql(NODE, {"id": gid(customer)}, as_user=user)
    return not result.errors


# ---------------------------------------------------------------------------
# managing the team


async def test_owner_shares_a_customer_and_the_team_lists_it(gql, team):
    data = await gql.ok(ADD, member_vars(team, team.carol, "WRITE"), as_user=team.alice)
    members = data["addCustomerTeamMember"]["team"]
    assert members == [
        {
            "access": "WRITE",
            "expiresAt": None,
            "active": True,
            "user": {"username": "carol"},
            "addedBy": {"username": "alice"},
        }
    ]
    entry = await OperationLog.get(action="TEAM_ADD")
    assert (entry.record_type, entry.record_id, entry.customer_id, entry.actor_id) == (
        RecordType.CUSTOMER,
        team.acme.id,
        team.acme.id,
        team.alice.id,
    )
    assert entry.changes == {
        "team": [None, {"userId": team.carol.id, "access": "WRITE", "expiresAt": None}]
    }
    event = await Event.get(kind="customer.team_changed")
    assert (event.recipient_id, event.customer_id) == (team.carol.id, team.acme.id)


async def test_a_manager_in_scope_with_update_rights_manages_the_team(gql, team):
    await gql.ok(ADD, member_vars(team, team.carol), as_user=team.boss)
    assert await seats(team.acme) == {"carol": "READ"}


async def test_others_cannot_manage_the_team(gql, team):
    # invisible: NOT_FOUND
    result = await gql(ADD, member_vars(team, team.dave), as_user=team.carol)
    assert result.codes == ["NOT_FOUND"]
    # visible to everyone, but no customer:update and not the owner
    result = await gql(ADD, member_vars(team, team.dave), as_user=team.auditor)
    assert result.codes == ["FORBIDDEN"]
    # a WRITE member may edit the customer but not share it further
    await CustomerTeamMember.create(
        customer_id=team.acme.id, user_id=team.bob.id, access=TeamAccess.WRITE
    )
    result = await gql(ADD, member_vars(team, team.dave), as_user=team.bob)
    assert result.codes == ["FORBIDDEN"]
    for mutation in (UPDATE_MEMBER, REMOVE):
        variables = {"c": gid(team.acme), "u": gid(team.bob)}
        if mutation is UPDATE_MEMBER:
            variables["access"] = "READ"
        result = await gql(mutation, variables, as_user=team.carol)
        assert result.codes == ["NOT_FOUND"]
        result = await gql(mutation, variables, as_user=team.auditor)
        assert result.codes == ["FORBIDDEN"]
    assert await seats(team.acme) == {"bob": "WRITE"}
    assert await OperationLog.all().count() == 0
    assert await Event.all().count() == 0


@pytest.mark.parametrize(
    ("who", "field"),
    [("alice", "userId"), ("ghost", "userId"), ("inactive", "userId")],
)
async def test_owner_missing_or_inactive_users_cannot_join(gql, team, org, who, field):
    inactive = await org.user("inactive")
    await User.filter(id=inactive.id).update(is_active=False)
    target = {
        "alice": gid(team.alice),
        "ghost": to_global_id("User", 99_999),
        "inactive": gid(inactive),
    }[who]
    variables = {**member_vars(team, team.bob), "u": target}
    result = await gql(ADD, variables, as_user=team.alice)
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.error["extensions"]["field"] == field
    assert await CustomerTeamMember.all().count() == 0


async def test_an_expiry_in_the_past_is_refused(gql, team):
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    result = await gql(ADD, member_vars(team, team.bob, expires_at=past), as_user=team.alice)
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.error["extensions"]["field"] == "expiresAt"
    assert await CustomerTeamMember.all().count() == 0


async def test_adding_a_member_twice_is_duplicate(gql, team):
    await gql.ok(ADD, member_vars(team, team.bob), as_user=team.alice)
    result = await gql(ADD, member_vars(team, team.bob, "WRITE"), as_user=team.alice)
    assert result.codes == ["DUPLICATE"]
    assert await seats(team.acme) == {"bob": "READ"}


async def test_concurrent_adds_of_the_same_member_have_one_winner(gql, team):
    results = await asyncio.gather(
        *(
            gql(ADD, member_vars(team, team.bob, access), as_user=user)
            for user in (team.alice, team.boss)
            for access in ("READ", "WRITE")
        )
    )
    assert sorted(r.codes for r in results) == [[], ["DUPLICATE"], ["DUPLICATE"], ["DUPLICATE"]]
    assert await CustomerTeamMember.filter(user_id=team.bob.id).count() == 1
    assert await OperationLog.filter(action="TEAM_ADD").count() == 1


async def test_update_changes_access_and_expiry_and_logs_both(gql, team):
    await gql.ok(ADD, member_vars(team, team.bob), as_user=team.alice)
    soon = datetime.now(UTC) + timedelta(days=7)
    data = await gql.ok(
        UPDATE_MEMBER, member_vars(team, team.bob, "WRITE", soon.isoformat()), as_user=team.alice
    )
    [member] = data["updateCustomerTeamMember"]["team"]
    assert member["access"] == "WRITE"
    assert datetime.fromisoformat(member["expiresAt"]) == soon
    entry = await OperationLog.get(action="TEAM_UPDATE")
    before, after = entry.changes["team"]
    assert (before["access"], after["access"]) == ("READ", "WRITE")
    assert (before["expiresAt"], after["expiresAt"] is not None) == (None, True)

    # leaving out expiresAt keeps it; null makes the membership permanent
    data = await gql.ok(
        UPDATE_MEMBER,
        {"c": gid(team.acme), "u": gid(team.bob), "access": "READ"},
        as_user=team.alice,
    )
    assert data["updateCustomerTeamMember"]["team"][0]["expiresAt"] is not None
    data = await gql.ok(CLEAR_EXPIRY, {"c": gid(team.acme), "u": gid(team.bob)}, as_user=team.alice)
    assert data["updateCustomerTeamMember"]["team"] == [{"access": "READ", "expiresAt": None}]


async def test_updating_someone_not_on_the_team_is_not_found(gql, team):
    result = await gql(UPDATE_MEMBER, member_vars(team, team.bob, "WRITE"), as_user=team.alice)
    assert result.codes == ["NOT_FOUND"]
    result = await gql(REMOVE, {"c": gid(team.acme), "u": gid(team.bob)}, as_user=team.alice)
    assert result.codes == ["NOT_FOUND"]


async def test_remove_takes_access_away(gql, team):
    await gql.ok(ADD, member_vars(team, team.carol), as_user=team.alice)
    assert await sees(gql, team.carol, team.acme)
    data = await gql.ok(REMOVE, {"c": gid(team.acme), "u": gid(team.carol)}, as_user=team.alice)
    assert data["removeCustomerTeamMember"]["team"] == []
    assert not await sees(gql, team.carol, team.acme)
    entry = await OperationLog.get(action="TEAM_REMOVE")
    assert entry.changes["team"][1] is None
    event = await Event.filter(kind="customer.team_changed").order_by("-id").first()
    assert (event.recipient_id, event.payload["change"]) == (team.carol.id, "TEAM_REMOVE")


async def test_a_member_may_leave_a_team(gql, team):
    await gql.ok(ADD, member_vars(team, team.carol), as_user=team.alice)
    await gql.ok(REMOVE, {"c": gid(team.acme), "u": gid(team.carol)}, as_user=team.carol)
    assert await seats(team.acme) == {}


# ---------------------------------------------------------------------------
# what membership grants


async def test_members_see_the_customer_in_lists_and_by_id(gql, team):
    assert (await gql.ok(LIST, as_user=team.carol))["customers"]["totalCount"] == 0
    await gql.ok(ADD, member_vars(team, team.carol), as_user=team.alice)
    data = await gql.ok(LIST, as_user=team.carol)
    assert [e["node"]["name"] for e in data["customers"]["edges"]] == ["Acme"]
    assert await sees(gql, team.carol, team.acme)


async def test_read_members_cannot_change_the_customer_write_members_can(gql, team):
    await gql.ok(ADD, member_vars(team, team.carol, "READ"), as_user=team.alice)
    variables = {"id": gid(team.acme), "input": {"region": "North"}}
    result = await gql(UPDATE_CUSTOMER, variables, as_user=team.carol)
    assert result.codes == ["FORBIDDEN"]
    row = await Customer.get(id=team.acme.id)
    assert (row.region, row.version) == (None, 1)

    await gql.ok(UPDATE_MEMBER, member_vars(team, team.carol, "WRITE"), as_user=team.alice)
    data = await gql.ok(UPDATE_CUSTOMER, variables, as_user=team.carol)
    assert data["updateCustomer"]["region"] == "North"


async def test_read_members_cannot_touch_contacts_write_members_can(gql, team):
    contact = await Contact.create(
        customer_id=team.acme.id, name="Li Lei", created_by_id=team.alice.id
    )
    await gql.ok(ADD, member_vars(team, team.carol, "READ"), as_user=team.alice)
    new = {"input": {"customerId": gid(team.acme), "name": "Extra"}}
    assert (await gql(CREATE_CONTACT, new, as_user=team.carol)).codes == ["FORBIDDEN"]
    edit = {"id": gid(contact), "input": {"name": "Changed"}}
    assert (await gql(UPDATE_CONTACT, edit, as_user=team.carol)).codes == ["FORBIDDEN"]
    assert await Contact.all().count() == 1

    await gql.ok(UPDATE_MEMBER, member_vars(team, team.carol, "WRITE"), as_user=team.alice)
    await gql.ok(CREATE_CONTACT, new, as_user=team.carol)
    await gql.ok(UPDATE_CONTACT, edit, as_user=team.carol)
    assert sorted(await Contact.all().values_list("name", flat=True)) == ["Changed", "Extra"]


async def test_an_expired_membership_grants_nothing(gql, team):
    await gql.ok(ADD, member_vars(team, team.carol, "WRITE"), as_user=team.alice)
    assert await sees(gql, team.carol, team.acme)
    await CustomerTeamMember.filter(user_id=team.carol.id).update(
        expires_at=datetime.now(UTC) - timedelta(seconds=1)
    )
    assert not await sees(gql, team.carol, team.acme)
    assert (await gql.ok(LIST, as_user=team.carol))["customers"]["totalCount"] == 0
    variables = {"id": gid(team.acme), "input": {"region": "North"}}
    assert (await gql(UPDATE_CUSTOMER, variables, as_user=team.carol)).codes == ["NOT_FOUND"]
    # the owner still sees the expired seat, marked inactive
    data = await gql.ok(ADD, member_vars(team, team.dave), as_user=team.alice)
    assert [
        (m["user"]["username"], m["active"]) for m in data["addCustomerTeamMember"]["team"]
    ] == [("carol", False), ("dave", True)]


async def test_a_membership_expiring_later_still_works(gql, team):
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    await gql.ok(ADD, member_vars(team, team.carol, "WRITE", later), as_user=team.alice)
    variables = {"id": gid(team.acme), "input": {"region": "North"}}
    await gql.ok(UPDATE_CUSTOMER, variables, as_user=team.carol)


async def test_team_field_lists_members_of_many_customers(gql, team):
    other = await Customer.create(
        name="Other",
        name_key=normalize_name("Other"),
        owner_id=team.alice.id,
        created_by_id=team.alice.id,
    )
    await CustomerTeamMember.create(customer_id=team.acme.id, user_id=team.bob.id)
    await CustomerTeamMember.create(
        customer_id=other.id, user_id=team.carol.id, access=TeamAccess.WRITE
    )
    data = await gql.ok(
        "{ customers(orderBy: {field: NAME, descending: false}) { edges { node {"
        " name team { access user { username } } } } } }",
        as_user=team.alice,
    )
    assert [(e["node"]["name"], e["node"]["team"]) for e in data["customers"]["edges"]] == [
        ("Acme", [{"access": "READ", "user": {"username": "bob"}}]),
        ("Other", [{"access": "WRITE", "user": {"username": "carol"}}]),
    ]

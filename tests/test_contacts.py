"""Contacts (联系人): creating, editing and deleting them through the customer's
access, the single primary contact, the contacts list, and the decision circle
(梅花分配理论) computed without a query per customer."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from meihua.models import (
    Contact,
    Contract,
    Customer,
    CustomerTeamMember,
    Event,
    FollowUp,
    FollowUpMethod,
    OperationLog,
    RecordType,
    Task,
    TeamAccess,
    User,
)
from meihua.resolvers.customers import normalize_name
from meihua.schema.relay import from_global_id, to_global_id

ROLES = ["INITIATOR", "TECHNICAL_GATEKEEPER", "KEY_USER", "INFLUENCER", "INSIDE_SUPPORTER"]

CREATE = """
mutation($input: CreateContactInput!) {
  createContact(input: $input) {
    id name decisionRole phone email title mobile isPrimary remarks version
    customer { id name }
  }
}
"""
UPDATE = """
mutation($id: ID!, $input: UpdateContactInput!, $v: Int) {
  updateContact(id: $id, input: $input, expectedVersion: $v) {
    id name decisionRole phone email title isPrimary version
  }
}
"""
DELETE = "mutation($id: ID!) { deleteContact(id: $id) { deletedId } }"
LIST = """
query($filter: ContactFilter, $orderBy: ContactOrder, $first: Int, $after: String) {
  contacts(filter: $filter, orderBy: $orderBy, first: $first, after: $after) {
    totalCount
    edges { node { id name customer { name } } }
    pageInfo { hasNextPage endCursor }
  }
}
"""
NODE = "query($id: ID!) { node(id: $id) { id ... on Contact { name customer { name } } } }"
CIRCLE = """
query($id: ID!) {
  node(id: $id) {
    ... on Customer {
      contacts { name isPrimary }
      decisionCircle {
        petals { role filled contacts { name } }
        missingRoles coverage complete
      }
    }
  }
}
"""


@dataclass
class Team:
    alice: User  # Sales Rep (SELF) in Sales
    bob: User  # Sales Rep (SELF) in Sales
    carol: User  # Sales Rep (SELF) in Support
    boss: User  # Sales Manager (DEPARTMENT_TREE) in Sales, may delete contacts
    viewer: User  # sees everything, may change nothing
    acme: Customer  # Alice's


@pytest.fixture
async def team(org) -> Team:
    sales = await org.department("Sales")
    support = await org.department("Support")
    rep = await org.default_role("Sales Rep")
    auditor = await org.role("Auditor", "ALL", [])
    alice = await org.user("alice", department=sales, roles=[rep])
    return Team(
        alice=alice,
        bob=await org.user("bob", department=sales, roles=[rep]),
        carol=await org.user("carol", department=support, roles=[rep]),
        boss=await org.user(
            "boss", department=sales, roles=[await org.default_role("Sales Manager")]
        ),
        viewer=await org.user("viewer", roles=[auditor]),
        acme=await customer(alice, "Acme Trading"),
    )


async def customer(owner: User, name: str) -> Customer:
    return await Customer.create(
        name=name, name_key=normalize_name(name), owner_id=owner.id, created_by_id=owner.id
    )


def gid(row) -> str:
    return to_global_id(type(row).__name__, row.id)


def pk(global_id: str) -> int:
    return from_global_id(global_id)[1]


async def add(gql, user: User, target: Customer, name: str, **fields) -> dict:
    variables = {"input": {"customerId": gid(target), "name": name, **fields}}
    return (await gql.ok(CREATE, variables, as_user=user))["createContact"]


async def share(target: Customer, user: User, access: TeamAccess, expires_at=None) -> None:
    await CustomerTeamMember.create(
        customer_id=target.id, user_id=user.id, access=access, expires_at=expires_at
    )


async def contact_state(contact_id: int) -> tuple:
    row = await Contact.get(id=contact_id)
    return (row.name, row.title, row.email, row.decision_role, row.is_primary, row.version)


# ---------------------------------------------------------------------------
# creating


async def test_create_contact_with_the_core_input(gql, team):
    made = await add(
        gql,
        team.alice,
        team.acme,
        "  Li Lei ",
        decisionRole="TECHNICAL_GATEKEEPER",
        phone="010-6666 8888",
        email="li@acme.cn",
        title="CTO",
    )
    assert made["name"] == "Li Lei"
    assert made["decisionRole"] == "TECHNICAL_GATEKEEPER"
    assert (made["phone"], made["email"], made["title"]) == ("010-6666 8888", "li@acme.cn", "CTO")
    assert made["customer"] == {"id": gid(team.acme), "name": "Acme Trading"}
    assert made["version"] == 1
    row = await Contact.get(id=pk(made["id"]))
    assert (row.customer_id, row.created_by_id) == (team.acme.id, team.alice.id)


async def test_creating_a_contact_is_logged_on_the_customers_timeline(gql, team):
    made = await add(gql, team.alice, team.acme, "Li Lei", decisionRole="KEY_USER")
    entry = await OperationLog.get(record_type=RecordType.CONTACT, record_id=pk(made["id"]))
    assert (entry.action, entry.actor_id, entry.customer_id) == (
        "CREATE",
        team.alice.id,
        team.acme.id,
    )
    assert entry.changes["name"] == [None, "Li Lei"]
    assert entry.changes["decision_role"] == [None, "KEY_USER"]
    event = await Event.get(kind="contact.changed", record_id=pk(made["id"]))
    assert (event.customer_id, event.owner_id, event.actor_id) == (
        team.acme.id,
        team.alice.id,
        team.alice.id,
    )
    assert event.payload["version"] == 1


async def test_mobile_primary_flag_and_remarks_are_kept(gql, team):
    made = await add(
        gql,
        team.alice,
        team.acme,
        "Han Meimei",
        mobile="139 0000 0000",
        isPrimary=True,
        remarks="Prefers WeChat",
    )
    assert made["mobile"] == "139 0000 0000"
    assert made["isPrimary"] is True
    assert made["remarks"] == "Prefers WeChat"
    assert made["decisionRole"] is None


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "n" * 101}, "name"),
        ({"name": "Ok", "title": "t" * 101}, "title"),
        ({"name": "Ok", "phone": "1" * 41}, "phone"),
        ({"name": "Ok", "email": "not an email"}, "email"),
        ({"name": "Ok", "email": "a@b"}, "email"),
        ({"name": "Ok", "remarks": "r" * 10_001}, "remarks"),
    ],
)
async def test_create_with_bad_input_writes_nothing(gql, team, fields, field):
    result = await gql(
        CREATE, {"input": {"customerId": gid(team.acme), **fields}}, as_user=team.alice
    )
    assert result.codes == ["BAD_USER_INPUT"], result.errors
    assert result.error["extensions"]["field"] == field
    assert await Contact.all().count() == 0
    assert await OperationLog.all().count() == 0
    assert await Event.all().count() == 0


async def test_unknown_decision_role_is_refused(gql, team):
    variables = {"input": {"customerId": gid(team.acme), "name": "X", "decisionRole": "CEO"}}
    result = await gql(CREATE, variables, as_user=team.alice)
    assert result.codes == ["BAD_USER_INPUT"]
    assert await Contact.all().count() == 0


async def test_a_customer_id_of_another_type_is_bad_input(gql, team):
    variables = {"input": {"customerId": gid(team.alice), "name": "X"}}
    result = await gql(CREATE, variables, as_user=team.alice)
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.error["extensions"]["field"] == "customerId"


# ---------------------------------------------------------------------------
# who may create, change and delete


async def test_contacts_of_an_invisible_customer_cannot_be_created(gql, team):
    # Carol (Support, SELF) cannot see Alice's customer: it does not exist for her.
    result = await gql(
        CREATE, {"input": {"customerId": gid(team.acme), "name": "Spy"}}, as_user=team.carol
    )
    assert result.codes == ["NOT_FOUND"]
    assert await Contact.all().count() == 0


async def test_seeing_the_customer_without_the_permission_is_forbidden(gql, team):
    result = await gql(
        CREATE, {"input": {"customerId": gid(team.acme), "name": "X"}}, as_user=team.viewer
    )
    assert result.codes == ["FORBIDDEN"]
    assert await Contact.all().count() == 0


async def test_team_read_members_cannot_add_contacts_write_members_can(gql, team):
    await share(team.acme, team.bob, TeamAccess.READ)
    result = await gql(
        CREATE, {"input": {"customerId": gid(team.acme), "name": "X"}}, as_user=team.bob
    )
    assert result.codes == ["FORBIDDEN"]
    assert await Contact.all().count() == 0

    await CustomerTeamMember.filter(user_id=team.bob.id).update(access=TeamAccess.WRITE)
    made = await add(gql, team.bob, team.acme, "Added By Bob")
    assert made["customer"]["id"] == gid(team.acme)


async def test_an_expired_write_membership_grants_nothing(gql, team):
    past = datetime.now(UTC) - timedelta(minutes=1)
    await share(team.acme, team.bob, TeamAccess.WRITE, expires_at=past)
    result = await gql(
        CREATE, {"input": {"customerId": gid(team.acme), "name": "X"}}, as_user=team.bob
    )
    assert result.codes == ["NOT_FOUND"]
    assert await Contact.all().count() == 0


async def test_updates_follow_the_customers_access(gql, team):
    made = await add(gql, team.alice, team.acme, "Li Lei")
    before = await contact_state(pk(made["id"]))
    variables = {"id": made["id"], "input": {"name": "Changed"}}

    assert (await gql(UPDATE, variables, as_user=team.carol)).codes == ["NOT_FOUND"]
    assert (await gql(UPDATE, variables, as_user=team.viewer)).codes == ["FORBIDDEN"]
    await share(team.acme, team.bob, TeamAccess.READ)
    assert (await gql(UPDATE, variables, as_user=team.bob)).codes == ["FORBIDDEN"]
    assert await contact_state(pk(made["id"])) == before

    await CustomerTeamMember.filter(user_id=team.bob.id).update(access=TeamAccess.WRITE)
    data = await gql.ok(UPDATE, variables, as_user=team.bob)
    assert data["updateContact"]["name"] == "Changed"
    # the manager of Alice's department may edit her customers' contacts too
    data = await gql.ok(UPDATE, {"id": made["id"], "input": {"title": "CEO"}}, as_user=team.boss)
    assert data["updateContact"]["version"] == 3


async def test_deletes_need_the_permission_and_the_customers_access(gql, team):
    made = await add(gql, team.alice, team.acme, "Li Lei")
    # Sales reps hold no contact:delete
    assert (await gql(DELETE, {"id": made["id"]}, as_user=team.alice)).codes == ["FORBIDDEN"]
    assert (await gql(DELETE, {"id": made["id"]}, as_user=team.carol)).codes == ["NOT_FOUND"]
    assert await Contact.exists(id=pk(made["id"]))

    data = await gql.ok(DELETE, {"id": made["id"]}, as_user=team.boss)
    assert data["deleteContact"]["deletedId"] == made["id"]
    assert not await Contact.exists(id=pk(made["id"]))
    entry = await OperationLog.get(action="DELETE", record_type=RecordType.CONTACT)
    assert (entry.customer_id, entry.actor_id) == (team.acme.id, team.boss.id)
    assert entry.changes["name"] == ["Li Lei", None]
    assert await Event.exists(kind="contact.deleted", record_id=pk(made["id"]))


async def test_deleting_a_contact_keeps_its_history_on_the_customer(gql, team):
    made = await add(gql, team.alice, team.acme, "Li Lei")
    contact_id = pk(made["id"])
    followup = await FollowUp.create(
        target_type=RecordType.CONTACT,
        target_id=contact_id,
        customer_id=team.acme.id,
        method=FollowUpMethod.PHONE,
        content="Called",
        occurred_at=datetime.now(UTC),
        author_id=team.alice.id,
    )
    task = await Task.create(
        title="Call back",
        assignee_id=team.alice.id,
        creator_id=team.alice.id,
        related_type=RecordType.CONTACT,
        related_id=contact_id,
        customer_id=team.acme.id,
    )

    await gql.ok(DELETE, {"id": made["id"]}, as_user=team.boss)
    await followup.refresh_from_db()
    await task.refresh_from_db()
    assert (followup.target_type, followup.target_id) == (RecordType.CUSTOMER, team.acme.id)
    assert (task.related_type, task.related_id) == (RecordType.CUSTOMER, team.acme.id)


async def test_a_contact_who_signed_a_contract_cannot_be_deleted(gql, team):
    made = await add(gql, team.alice, team.acme, "Signatory")
    await Contract.create(
        number="HT-2024-0001",
        title="Supply",
        customer_id=team.acme.id,
        owner_id=team.alice.id,
        created_by_id=team.alice.id,
        signing_contact_id=pk(made["id"]),
    )
    result = await gql(DELETE, {"id": made["id"]}, as_user=team.boss)
    assert result.codes == ["CONFLICT"]
    assert "HT-2024-0001" in result.error["message"]
    assert await Contact.exists(id=pk(made["id"]))
    assert not await OperationLog.exists(action="DELETE")


# ---------------------------------------------------------------------------
# editing


async def test_update_changes_only_what_is_sent_and_logs_the_diff(gql, team):
    made = await add(gql, team.alice, team.acme, "Li Lei", title="CTO", decisionRole="KEY_USER")
    data = await gql.ok(
        UPDATE,
        {"id": made["id"], "input": {"title": "CEO", "email": ""}, "v": 1},
        as_user=team.alice,
    )
    updated = data["updateContact"]
    assert (updated["name"], updated["title"], updated["decisionRole"]) == (
        "Li Lei",
        "CEO",
        "KEY_USER",
    )
    assert updated["version"] == 2
    entry = await OperationLog.get(action="UPDATE", record_type=RecordType.CONTACT)
    assert entry.changes == {"title": ["CTO", "CEO"]}
    assert entry.customer_id == team.acme.id
    event = await Event.filter(kind="contact.changed").order_by("-id").first()
    assert event.payload == {"fields": ["title"], "version": 2}


async def test_null_clears_the_decision_role_and_omitting_it_keeps_it(gql, team):
    made = await add(gql, team.alice, team.acme, "Li Lei", decisionRole="INFLUENCER")
    data = await gql.ok(UPDATE, {"id": made["id"], "input": {"name": "Li"}}, as_user=team.alice)
    assert data["updateContact"]["decisionRole"] == "INFLUENCER"
    data = await gql.ok(
        UPDATE, {"id": made["id"], "input": {"decisionRole": None}}, as_user=team.alice
    )
    assert data["updateContact"]["decisionRole"] is None
    assert (await Contact.get(id=pk(made["id"]))).decision_role is None


async def test_update_with_a_stale_version_is_conflict(gql, team):
    made = await add(gql, team.alice, team.acme, "Li Lei")
    await gql.ok(UPDATE, {"id": made["id"], "input": {"title": "A"}, "v": 1}, as_user=team.alice)
    before = await contact_state(pk(made["id"]))
    result = await gql(
        UPDATE,
        {"id": made["id"], "input": {"title": "B", "isPrimary": False}, "v": 1},
        as_user=team.boss,
    )
    assert result.codes == ["CONFLICT"]
    assert await contact_state(pk(made["id"])) == before


@pytest.mark.parametrize(
    ("fields", "field"),
    [({"name": " "}, "name"), ({"email": "nope"}, "email"), ({"mobile": "9" * 41}, "mobile")],
)
async def test_update_with_bad_input_changes_nothing(gql, team, fields, field):
    made = await add(gql, team.alice, team.acme, "Li Lei", email="li@acme.cn")
    before = await contact_state(pk(made["id"]))
    result = await gql(UPDATE, {"id": made["id"], "input": fields}, as_user=team.alice)
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.error["extensions"]["field"] == field
    assert await contact_state(pk(made["id"])) == before


# ---------------------------------------------------------------------------
# the primary contact


async def primaries(target: Customer) -> list[str]:
    return sorted(
        await Contact.filter(customer_id=target.id, is_primary=True).values_list("name", flat=True)
    )


async def test_the_first_contact_is_primary_unless_told_otherwise(gql, team):
    first = await add(gql, team.alice, team.acme, "First")
    second = await add(gql, team.alice, team.acme, "Second")
    assert (first["isPrimary"], second["isPrimary"]) == (True, False)

    other = await customer(team.alice, "Other Co")
    assert (await add(gql, team.alice, other, "Not Primary", isPrimary=False))["isPrimary"] is False


async def test_a_new_primary_contact_replaces_the_old_one(gql, team):
    first = await add(gql, team.alice, team.acme, "First")
    second = await add(gql, team.alice, team.acme, "Second", isPrimary=True)
    assert second["isPrimary"] is True
    assert await primaries(team.acme) == ["Second"]
    demoted = await Contact.get(id=pk(first["id"]))
    assert demoted.version == 2  # a teammate editing the old primary sees the change
    entry = await OperationLog.get(
        record_type=RecordType.CONTACT, record_id=demoted.id, action="UPDATE"
    )
    assert entry.changes == {"is_primary": [True, False]}

    await gql.ok(UPDATE, {"id": first["id"], "input": {"isPrimary": True}}, as_user=team.alice)
    assert await primaries(team.acme) == ["First"]


async def test_primary_contacts_are_per_customer(gql, team):
    other = await customer(team.alice, "Other Co")
    await add(gql, team.alice, team.acme, "Acme Primary")
    await add(gql, team.alice, other, "Other Primary")
    assert await primaries(team.acme) == ["Acme Primary"]
    assert await primaries(other) == ["Other Primary"]


async def test_a_failed_update_does_not_demote_the_primary(gql, team):
    first = await add(gql, team.alice, team.acme, "First")
    second = await add(gql, team.alice, team.acme, "Second")
    result = await gql(
        UPDATE, {"id": second["id"], "input": {"isPrimary": True}, "v": 99}, as_user=team.alice
    )
    assert result.codes == ["CONFLICT"]
    assert await primaries(team.acme) == ["First"]
    assert (await Contact.get(id=pk(first["id"]))).version == 1


async def test_concurrent_primary_contacts_leave_exactly_one(gql, team):
    await add(gql, team.alice, team.acme, "Original")
    results = await asyncio.gather(
        *(
            gql(
                CREATE,
                {"input": {"customerId": gid(team.acme), "name": f"New {i}", "isPrimary": True}},
                as_user=team.alice,
            )
            for i in range(6)
        )
    )
    assert all(not r.errors for r in results), [r.errors for r in results]
    assert await Contact.filter(customer_id=team.acme.id).count() == 7
    assert len(await primaries(team.acme)) == 1


# ---------------------------------------------------------------------------
# reading


async def test_contacts_list_shows_only_visible_customers_contacts(gql, team):
    bobs = await customer(team.bob, "Bob Co")
    await add(gql, team.alice, team.acme, "Alice Contact")
    await add(gql, team.bob, bobs, "Bob Contact")

    async def names(user, **filter) -> set[str]:
        conn = (await gql.ok(LIST, {"filter": filter or None, "first": 100}, as_user=user))[
            "contacts"
        ]
        assert conn["totalCount"] == len(conn["edges"])
        return {e["node"]["name"] for e in conn["edges"]}

    assert await names(team.alice) == {"Alice Contact"}
    assert await names(team.bob) == {"Bob Contact"}
    assert await names(team.carol) == set()
    assert await names(team.boss) == {"Alice Contact", "Bob Contact"}
    # filtering by a customer the caller cannot see yields nothing, not an error
    assert await names(team.alice, customerId=gid(bobs)) == set()
    await share(bobs, team.alice, TeamAccess.READ)
    assert await names(team.alice, customerId=gid(bobs)) == {"Bob Contact"}


async def test_contacts_filters_and_paging(gql, team):
    other = await customer(team.alice, "Other Co")
    await add(gql, team.alice, team.acme, "Li Lei", decisionRole="KEY_USER", phone="13800001111")
    await add(
        gql, team.alice, team.acme, "Han Meimei", decisionRole="INITIATOR", email="han@acme.cn"
    )
    await add(gql, team.alice, other, "Wang Wu", decisionRole="KEY_USER")

    async def names(**filter) -> list[str]:
        conn = (
            await gql.ok(
                LIST,
                {"filter": filter, "orderBy": {"field": "NAME", "descending": False}},
                as_user=team.alice,
            )
        )["contacts"]
        return [e["node"]["name"] for e in conn["edges"]]

    assert await names(customerId=gid(team.acme)) == ["Han Meimei", "Li Lei"]
    assert await names(decisionRole="KEY_USER") == ["Li Lei", "Wang Wu"]
    assert await names(customerId=gid(other), decisionRole="KEY_USER") == ["Wang Wu"]
    assert await names(search="han") == ["Han Meimei"]
    assert await names(search="ACME.CN") == ["Han Meimei"]
    assert await names(search="0001111") == ["Li Lei"]

    page = (
        await gql.ok(
            LIST,
            {"first": 2, "orderBy": {"field": "NAME", "descending": False}},
            as_user=team.alice,
        )
    )["contacts"]
    assert page["pageInfo"]["hasNextPage"] is True
    rest = (
        await gql.ok(
            LIST,
            {
                "first": 2,
                "after": page["pageInfo"]["endCursor"],
                "orderBy": {"field": "NAME", "descending": False},
            },
            as_user=team.alice,
        )
    )["contacts"]
    assert [e["node"]["name"] for e in page["edges"] + rest["edges"]] == [
        "Han Meimei",
        "Li Lei",
        "Wang Wu",
    ]


async def test_node_finds_visible_contacts_only(gql, team):
    made = await add(gql, team.alice, team.acme, "Li Lei")
    data = await gql.ok(NODE, {"id": made["id"]}, as_user=team.boss)
    assert data["node"] == {
        "id": made["id"],
        "name": "Li Lei",
        "customer": {"name": "Acme Trading"},
    }
    result = await gql(NODE, {"id": made["id"]}, as_user=team.carol)
    assert result.codes == ["NOT_FOUND"]


async def test_customer_contacts_primary_first(gql, team):
    await add(gql, team.alice, team.acme, "Zhang San", isPrimary=False)
    await add(gql, team.alice, team.acme, "Li Si", isPrimary=False)
    await add(gql, team.alice, team.acme, "Wang Wu", isPrimary=True)
    data = await gql.ok(CIRCLE, {"id": gid(team.acme)}, as_user=team.alice)
    assert data["node"]["contacts"] == [
        {"name": "Wang Wu", "isPrimary": True},
        {"name": "Zhang San", "isPrimary": False},
        {"name": "Li Si", "isPrimary": False},
    ]


# ---------------------------------------------------------------------------
# the decision circle


async def test_an_empty_circle_misses_every_petal(gql, team):
    circle = (await gql.ok(CIRCLE, {"id": gid(team.acme)}, as_user=team.alice))["node"]
    circle = circle["decisionCircle"]
    assert [p["role"] for p in circle["petals"]] == ROLES
    assert all(p == {"role": p["role"], "filled": False, "contacts": []} for p in circle["petals"])
    assert circle["missingRoles"] == ROLES
    assert (circle["coverage"], circle["complete"]) == (0, False)


async def test_the_circle_names_who_fills_each_petal_and_what_is_missing(gql, team):
    await add(gql, team.alice, team.acme, "Li Lei", decisionRole="KEY_USER")
    await add(gql, team.alice, team.acme, "Han Meimei", decisionRole="KEY_USER")
    await add(gql, team.alice, team.acme, "Wang Wu", decisionRole="INITIATOR")
    await add(gql, team.alice, team.acme, "No Role")
    circle = (await gql.ok(CIRCLE, {"id": gid(team.acme)}, as_user=team.alice))["node"]
    circle = circle["decisionCircle"]
    petals = {p["role"]: p for p in circle["petals"]}
    assert petals["KEY_USER"]["filled"] is True
    assert [c["name"] for c in petals["KEY_USER"]["contacts"]] == ["Li Lei", "Han Meimei"]
    assert [c["name"] for c in petals["INITIATOR"]["contacts"]] == ["Wang Wu"]
    assert circle["missingRoles"] == ["TECHNICAL_GATEKEEPER", "INFLUENCER", "INSIDE_SUPPORTER"]
    assert (circle["coverage"], circle["complete"]) == (2, False)


async def test_all_five_petals_complete_the_circle(gql, team):
    for i, role in enumerate(ROLES):
        await add(gql, team.alice, team.acme, f"Contact {i}", decisionRole=role)
    circle = (await gql.ok(CIRCLE, {"id": gid(team.acme)}, as_user=team.alice))["node"]
    circle = circle["decisionCircle"]
    assert circle["missingRoles"] == []
    assert (circle["coverage"], circle["complete"]) == (5, True)
    # losing a petal leaves the circle again
    contact = await Contact.get(name="Contact 4")
    await gql.ok(
        UPDATE, {"id": gid(contact), "input": {"decisionRole": "KEY_USER"}}, as_user=team.alice
    )
    circle = (await gql.ok(CIRCLE, {"id": gid(team.acme)}, as_user=team.alice))["node"]
    assert circle["decisionCircle"]["missingRoles"] == ["INSIDE_SUPPORTER"]
    assert circle["decisionCircle"]["complete"] is False


NESTED = """
query($first: Int) {
  customers(first: $first) {
    edges { node {
      name
      contacts { name customer { name owner { username } } }
      decisionCircle { coverage petals { role contacts { name } } }
      team { access user { username } }
    } }
  }
}
"""


async def test_nested_contacts_and_circles_cost_the_same_for_ten_or_forty(gql, team, statements):
    async def build(n: int, prefix: str) -> None:
        for i in range(n):
            row = await customer(team.alice, f"{prefix} {i}")
            for j, role in enumerate(ROLES[: i % 4 + 1]):
                await Contact.create(
                    customer_id=row.id,
                    name=f"{prefix} {i}.{j}",
                    decision_role=role,
                    created_by_id=team.alice.id,
                )
            await share(row, team.bob, TeamAccess.READ)

    await build(10, "Small")
    statements.count = 0
    small = await gql.ok(NESTED, {"first": 100}, as_user=team.alice)
    ten = statements.count

    await build(30, "Large")
    statements.count = 0
    large = await gql.ok(NESTED, {"first": 100}, as_user=team.alice)
    assert len(small["customers"]["edges"]) == 11 and len(large["customers"]["edges"]) == 41
    assert statements.count == ten, (ten, statements.count)


async def test_an_outsider_reaches_no_contact_by_any_path(gql, team):
    made = await add(gql, team.alice, team.acme, "Li Lei", decisionRole="INITIATOR")
    variables = {"customer": gid(team.acme), "contact": made["id"]}
    for query in (
        "query($customer: ID!) { node(id: $customer) { ... on Customer { contacts { name } } } }",
        "query($customer: ID!) { node(id: $customer) { ... on Customer {"
        " decisionCircle { coverage petals { contacts { name } } } } } }",
        "query($contact: ID!) { node(id: $contact) { ... on Contact { name } } }",
    ):
        used = {k: v for k, v in variables.items() if f"${k}" in query}
        result = await gql(query, used, as_user=team.carol)
        assert result.codes == ["NOT_FOUND"], query
        assert "Li Lei" not in str(result.data)
    data = await gql.ok(
        "{ customers { edges { node { contacts { name } } } } contacts { totalCount } }",
        as_user=team.carol,
    )
    assert data == {"customers": {"edges": []}, "contacts": {"totalCount": 0}}

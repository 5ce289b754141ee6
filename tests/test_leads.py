"""Leads (线索): entering, editing, scopes, invalid and reopened leads, deletion,
transfer, the lead pool with manual distribution, filters and pagination."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from meihua.models import (
    Customer,
    Event,
    FollowUp,
    FollowUpMethod,
    Lead,
    LeadStatus,
    OperationLog,
    RecordType,
    Task,
    User,
)
from meihua.resolvers.customers import normalize_phone
from meihua.schema.relay import from_global_id, to_global_id

FIELDS = """
  id companyName contactName phone email source industry region remarks status
  invalidReason inPool version owner { username } createdBy { username }
"""
CREATE = f"mutation($input: CreateLeadInput!) {{ createLead(input: $input) {{ {FIELDS} }} }}"
UPDATE = f"""
mutation($id: ID!, $input: UpdateLeadInput!, $v: Int) {{
  updateLead(id: $id, input: $input, expectedVersion: $v) {{ {FIELDS} }}
}}
"""
DELETE = "mutation($id: ID!) { deleteLead(id: $id) { deletedId } }"
INVALID = f"""
mutation($id: ID!, $reason: String!) {{ markLeadInvalid(id: $id, reason: $reason) {{ {FIELDS} }} }}
"""
REOPEN = f"mutation($id: ID!) {{ reopenLead(id: $id) {{ {FIELDS} }} }}"
TRANSFER = f"""
mutation($ids: [ID!]!, $owner: ID!) {{ transferLeads(ids: $ids, ownerId: $owner) {{ {FIELDS} }} }}
"""
ASSIGN = f"""
mutation($ids: [ID!]!, $owner: ID!) {{ assignLeads(ids: $ids, ownerId: $owner) {{ {FIELDS} }} }}
"""
RELEASE = f"""
mutation($ids: [ID!]!, $reason: String) {{
  releaseLeads(ids: $ids, reason: $reason) {{ {FIELDS} }}
}}
"""
NODE = "query($id: ID!) { node(id: $id) { id ... on Lead { companyName owner { username } } } }"
LIST = """
query($filter: LeadFilter, $orderBy: LeadOrder,
      $first: Int, $after: String, $last: Int, $before: String) {
  leads(filter: $filter, orderBy: $orderBy,
        first: $first, after: $after, last: $last, before: $before) {
    totalCount
    edges { cursor node { id companyName } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}
"""


@dataclass
class Team:
    alice: User  # Sales Rep (SELF) in Sales: create, update, convert
    bob: User  # Sales Rep (SELF) in Sales
    carol: User  # Sales Rep (SELF) in Support
    boss: User  # Sales Manager (DEPARTMENT_TREE) in Sales: also delete, transfer, distribute
    finance: User  # Finance (ALL): sees every lead, may change none
    dispatcher: User  # SELF with lead:distribute only: sees the lead pool
    root: User  # super admin
    gone: User  # deactivated


@pytest.fixture
async def team(org) -> Team:
    sales = await org.department("Sales")
    support = await org.department("Support")
    rep = await org.default_role("Sales Rep")
    manager = await org.default_role("Sales Manager")
    distributor = await org.role("Distributor", "SELF", ["lead:distribute"])
    gone = await org.user("gone", department=sales, roles=[rep])
    gone.is_active = False
    await gone.save()
    return Team(
        alice=await org.user("alice", department=sales, roles=[rep], name="Alice Wang"),
        bob=await org.user("bob", department=sales, roles=[rep], name="Bob Li"),
        carol=await org.user("carol", department=support, roles=[rep], name="Carol Zhao"),
        boss=await org.user("boss", department=sales, roles=[manager], name="Boss Chen"),
        finance=await org.user("fin", roles=[await org.default_role("Finance")]),
        dispatcher=await org.user("dispatcher", department=support, roles=[distributor]),
        root=await org.admin(),
        gone=gone,
    )


async def lead(owner: User | None, company: str, **fields) -> Lead:
    """A lead straight through the model (fast set-up)."""
    creator = fields.pop("created_by", owner)
    return await Lead.create(
        company_name=company,
        owner_id=owner.id if owner else None,
        created_by_id=creator.id,
        phone_key=normalize_phone(fields.get("phone")),
        **fields,
    )


def gid(row: Lead) -> str:
    return to_global_id("Lead", row.id)


def uid(user: User) -> str:
    return to_global_id("User", user.id)


def pk(global_id: str) -> int:
    kind, value = from_global_id(global_id)
    assert kind == "Lead"
    return value


async def state(*rows: Lead) -> list[tuple]:
    """What a user would notice changing on these leads."""
    found = {r.id: r for r in await Lead.filter(id__in=[r.id for r in rows])}
    return [
        (r.id in found) and (
            found[r.id].company_name, found[r.id].phone, found[r.id].owner_id,
            found[r.id].status, found[r.id].invalid_reason, found[r.id].version,
        )
        for r in rows
    ]  # fmt: skip


async def history() -> tuple[int, int]:
    return await OperationLog.all().count(), await Event.all().count()


async def names(gql, user: User, **variables) -> list[str]:
    data = await gql.ok(LIST, variables, as_user=user)
    return [edge["node"]["companyName"] for edge in data["leads"]["edges"]]


# ---------------------------------------------------------------------------
# entering leads


async def test_a_new_lead_belongs_to_its_creator(gql, team):
    data = await gql.ok(
        CREATE,
        {
            "input": {
                "companyName": "  Acme Trading ",
                "contactName": "Zhang San",
                "phone": "+86 138-0013-8000",
                "email": "zhang@acme.cn",
                "source": "展会",
                "industry": "Retail",
                "region": "East",
                "remarks": "Met at the Canton fair",
            }
        },
        as_user=team.alice,
    )
    made = data["createLead"]
    assert made["companyName"] == "Acme Trading"
    assert (made["status"], made["version"], made["inPool"]) == ("NEW", 1, False)
    assert made["owner"] == {"username": "alice"}
    assert made["createdBy"] == {"username": "alice"}
    row = await Lead.get(id=pk(made["id"]))
    assert (row.phone, row.phone_key, row.source) == ("+86 138-0013-8000", "13800138000", "展会")
    log = await OperationLog.get(record_type=RecordType.LEAD, record_id=row.id)
    assert (log.action, log.actor_id) == ("CREATE", team.alice.id)
    assert log.changes["company_name"] == [None, "Acme Trading"]
    assert "phone_key" not in log.changes
    event = await Event.get(kind="lead.changed", record_id=row.id)
    assert (event.owner_id, event.actor_id) == (team.alice.id, team.alice.id)


async def test_entering_a_lead_needs_the_permission(gql, team):
    result = await gql(CREATE, {"input": {"companyName": "Acme"}}, as_user=team.finance)
    assert result.codes == ["FORBIDDEN"]
    assert await Lead.all().count() == 0
    assert await history() == (0, 0)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"companyName": ""}, "companyName"),
        ({"companyName": "   "}, "companyName"),
        ({"companyName": "x" * 201}, "companyName"),
        ({"companyName": "Ok", "contactName": "c" * 101}, "contactName"),
        ({"companyName": "Ok", "phone": "1" * 41}, "phone"),
        ({"companyName": "Ok", "phone": "⑩" * 30}, "phone"),  # grows when normalized
        ({"companyName": "Ok", "email": "not an email"}, "email"),
        ({"companyName": "Ok", "region": "r" * 101}, "region"),
        ({"companyName": "Ok", "remarks": "r" * 10_001}, "remarks"),
    ],
)
async def test_a_lead_with_bad_input_is_not_entered(gql, team, fields, field):
    result = await gql(CREATE, {"input": fields}, as_user=team.alice)
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.error["extensions"]["field"] == field
    assert await Lead.all().count() == 0
    assert await history() == (0, 0)


async def test_entering_a_lead_into_the_pool_needs_distribution_rights(gql, team):
    pooled = {"input": {"companyName": "Pool Co", "ownerId": None}}
    result = await gql(CREATE, pooled, as_user=team.alice)
    assert result.codes == ["FORBIDDEN"]
    assert await Lead.all().count() == 0

    made = (await gql.ok(CREATE, pooled, as_user=team.boss))["createLead"]
    assert (made["owner"], made["inPool"]) == (None, True)
    assert (await Lead.get(id=pk(made["id"]))).owner_id is None


async def test_entering_a_lead_for_a_colleague_hands_it_to_them(gql, team):
    for_bob = {"input": {"companyName": "Bob's Co", "ownerId": uid(team.bob)}}
    result = await gql(CREATE, for_bob, as_user=team.alice)
    assert result.codes == ["FORBIDDEN"]

    made = (await gql.ok(CREATE, for_bob, as_user=team.boss))["createLead"]
    assert made["owner"] == {"username": "bob"}
    assert made["createdBy"] == {"username": "boss"}
    event = await Event.get(kind="lead.assigned", record_id=pk(made["id"]))
    assert (event.recipient_id, event.actor_id) == (team.bob.id, team.boss.id)
    # naming yourself is just the default
    mine = {"input": {"companyName": "Mine", "ownerId": uid(team.alice)}}
    assert (await gql.ok(CREATE, mine, as_user=team.alice))["createLead"]["owner"] == {
        "username": "alice"
    }


@pytest.mark.parametrize("owner", ["gone", "not-a-user"])
async def test_a_lead_cannot_go_to_an_inactive_or_unknown_user(gql, team, owner):
    owner_id = uid(team.gone) if owner == "gone" else to_global_id("Customer", 1)
    result = await gql(
        CREATE, {"input": {"companyName": "Acme", "ownerId": owner_id}}, as_user=team.boss
    )
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.error["extensions"]["field"] == "ownerId"
    assert await Lead.all().count() == 0


# ---------------------------------------------------------------------------
# who sees which lead


async def _company_of_leads(team: Team) -> None:
    await lead(team.alice, "Alice Co")
    await lead(team.bob, "Bob Co")
    await lead(team.carol, "Carol Co")
    await lead(team.boss, "Boss Co")
    await lead(None, "Pool Co", created_by=team.boss)


@pytest.mark.parametrize(
    ("who", "seen"),
    [
        ("alice", {"Alice Co"}),
        ("carol", {"Carol Co"}),
        # the manager's department tree, and the pool he distributes
        ("boss", {"Alice Co", "Bob Co", "Boss Co", "Pool Co"}),
        # SELF scope with lead:distribute: own leads (none) and the pool
        ("dispatcher", {"Pool Co"}),
        ("finance", {"Alice Co", "Bob Co", "Carol Co", "Boss Co", "Pool Co"}),
        ("root", {"Alice Co", "Bob Co", "Carol Co", "Boss Co", "Pool Co"}),
    ],
)
async def test_each_user_sees_the_leads_of_their_scope(gql, team, who, seen):
    await _company_of_leads(team)
    user = getattr(team, who)
    data = await gql.ok(LIST, {"first": 50}, as_user=user)
    assert {e["node"]["companyName"] for e in data["leads"]["edges"]} == seen
    assert data["leads"]["totalCount"] == len(seen)
    for row in await Lead.all():
        result = await gql(NODE, {"id": gid(row)}, as_user=user)
        if row.company_name in seen:
            assert result.data["node"]["companyName"] == row.company_name
        else:
            assert result.codes == ["NOT_FOUND"]


NESTED = """
query($first: Int) {
  leads(first: $first) {
    edges { node { owner { username department { name } } createdBy { username }
                   convertedCustomer { id owner { username } } } }
  }
}
"""


async def test_nested_owners_and_customers_cost_the_same_for_five_or_forty(gql, team, statements):
    async def build(n: int, prefix: str) -> None:
        for i in range(n):
            owner = (team.alice, team.bob, team.boss)[i % 3]
            converted = await Customer.create(
                name=f"{prefix} {i}", name_key=f"{prefix} {i}".lower(),
                owner_id=owner.id, created_by_id=owner.id,
            )  # fmt: skip
            await lead(
                owner, f"{prefix} {i}", status=LeadStatus.CONVERTED,
                converted_customer_id=converted.id,
            )  # fmt: skip

    await build(5, "Small")
    statements.count = 0
    small = await gql.ok(NESTED, {"first": 100}, as_user=team.boss)
    five = statements.count

    await build(35, "Large")
    statements.count = 0
    large = await gql.ok(NESTED, {"first": 100}, as_user=team.boss)
    assert len(small["leads"]["edges"]) == 5 and len(large["leads"]["edges"]) == 40
    assert five > 0 and statements.count == five, (five, statements.count)
    assert all(e["node"]["convertedCustomer"] for e in large["leads"]["edges"])


# ---------------------------------------------------------------------------
# editing


async def test_update_with_versions(gql, team):
    row = await lead(team.alice, "Acme", phone="13800000001", region="East")
    data = await gql.ok(
        UPDATE,
        {
            "id": gid(row),
            "input": {"phone": "139 1234 5678", "region": "", "source": "web"},
            "v": 1,
        },
        as_user=team.alice,
    )
    updated = data["updateLead"]
    assert [updated[k] for k in ("phone", "region", "source")] == ["139 1234 5678", None, "web"]
    assert updated["version"] == 2
    assert (await Lead.get(id=row.id)).phone_key == "13912345678"
    log = await OperationLog.get(record_type=RecordType.LEAD, record_id=row.id, action="UPDATE")
    assert log.changes == {
        "phone": ["13800000001", "139 1234 5678"],
        "region": ["East", None],
        "source": [None, "web"],
    }

    before = await state(row)
    result = await gql(
        UPDATE, {"id": gid(row), "input": {"region": "West"}, "v": 1}, as_user=team.alice
    )
    assert result.codes == ["CONFLICT"]
    assert await state(row) == before


async def test_a_manager_edits_the_leads_of_their_scope(gql, team):
    row = await lead(team.alice, "Acme")
    data = await gql.ok(UPDATE, {"id": gid(row), "input": {"region": "North"}}, as_user=team.boss)
    assert data["updateLead"]["region"] == "North"


@pytest.mark.parametrize(
    ("fields", "field"),
    [({"companyName": " "}, "companyName"), ({"email": "@"}, "email")],
)
async def test_update_with_bad_input_changes_nothing(gql, team, fields, field):
    row = await lead(team.alice, "Acme")
    result = await gql(UPDATE, {"id": gid(row), "input": fields}, as_user=team.alice)
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.error["extensions"]["field"] == field
    assert await state(row) == [("Acme", None, team.alice.id, LeadStatus.NEW, None, 1)]


# ---------------------------------------------------------------------------
# every mutation, across scopes and without permission


def _mutations(team: Team, target: Lead) -> dict[str, tuple[str, dict]]:
    ids = [gid(target)]
    return {
        "update": (UPDATE, {"id": gid(target), "input": {"region": "X"}}),
        "delete": (DELETE, {"id": gid(target)}),
        "invalid": (INVALID, {"id": gid(target), "reason": "No budget"}),
        "reopen": (REOPEN, {"id": gid(target)}),
        "transfer": (TRANSFER, {"ids": ids, "owner": uid(team.bob)}),
        "assign": (ASSIGN, {"ids": ids, "owner": uid(team.bob)}),
        "release": (RELEASE, {"ids": ids}),
    }


@pytest.mark.parametrize(
    "mutation", ["update", "delete", "invalid", "reopen", "transfer", "assign", "release"]
)
async def test_a_lead_out_of_scope_does_not_exist(gql, team, mutation):
    target = await lead(team.alice, "Acme", status=LeadStatus.INVALID, invalid_reason="x")
    before, logged = await state(target), await history()
    query, variables = _mutations(team, target)[mutation]
    # Carol (another department) and the dispatcher (pool only) cannot see it,
    # even though the dispatcher could assign it if she could.
    for outsider in (team.carol, team.dispatcher):
        result = await gql(query, variables, as_user=outsider)
        assert result.codes == ["NOT_FOUND"], (outsider.username, result.errors)
    assert await state(target) == before
    assert await history() == logged


@pytest.mark.parametrize(
    ("mutation", "who"),
    [
        ("update", "finance"),
        ("invalid", "finance"),
        ("reopen", "finance"),
        ("release", "finance"),
        ("delete", "alice"),  # reps do not delete leads
        ("transfer", "alice"),  # nor transfer them
        ("assign", "alice"),  # nor distribute them
    ],
)
async def test_a_visible_lead_without_the_permission_is_forbidden(gql, team, mutation, who):
    target = await lead(team.alice, "Acme", status=LeadStatus.INVALID, invalid_reason="x")
    before, logged = await state(target), await history()
    query, variables = _mutations(team, target)[mutation]
    result = await gql(query, variables, as_user=getattr(team, who))
    assert result.codes == ["FORBIDDEN"], result.errors
    assert await state(target) == before
    assert await history() == logged


@pytest.mark.parametrize("mutation", ["update", "delete", "invalid", "assign", "release"])
async def test_a_converted_lead_is_history(gql, team, mutation):
    target = await lead(team.alice, "Acme", status=LeadStatus.CONVERTED)
    before, logged = await state(target), await history()
    query, variables = _mutations(team, target)[mutation]
    result = await gql(query, variables, as_user=team.boss)
    assert result.codes == ["CONFLICT"], result.errors
    assert await state(target) == before
    assert await history() == logged


# ---------------------------------------------------------------------------
# invalid and reopened


async def test_mark_invalid_with_a_reason_and_reopen(gql, team):
    row = await lead(team.alice, "Acme")
    data = await gql.ok(INVALID, {"id": gid(row), "reason": " Wrong number "}, as_user=team.alice)
    assert (data["markLeadInvalid"]["status"], data["markLeadInvalid"]["invalidReason"]) == (
        "INVALID", "Wrong number",
    )  # fmt: skip
    log = await OperationLog.get(record_id=row.id, action="MARK_INVALID")
    assert log.changes["status"] == ["NEW", "INVALID"]

    data = await gql.ok(REOPEN, {"id": gid(row)}, as_user=team.alice)
    assert (data["reopenLead"]["status"], data["reopenLead"]["invalidReason"]) == ("NEW", None)
    assert await OperationLog.filter(record_id=row.id, action="REOPEN").count() == 1

    result = await gql(REOPEN, {"id": gid(row)}, as_user=team.alice)
    assert result.codes == ["CONFLICT"]  # it is not invalid any more


async def test_a_reopened_lead_that_was_followed_up_is_following_again(gql, team):
    row = await lead(
        team.alice, "Acme", status=LeadStatus.INVALID, invalid_reason="x",
        last_followup_at=datetime.now(UTC),
    )  # fmt: skip
    data = await gql.ok(REOPEN, {"id": gid(row)}, as_user=team.alice)
    assert data["reopenLead"]["status"] == "FOLLOWING"


@pytest.mark.parametrize("reason", ["", "   ", "r" * 2001])
async def test_invalid_needs_a_reason(gql, team, reason):
    row = await lead(team.alice, "Acme")
    result = await gql(INVALID, {"id": gid(row), "reason": reason}, as_user=team.alice)
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.error["extensions"]["field"] == "reason"
    assert await state(row) == [("Acme", None, team.alice.id, LeadStatus.NEW, None, 1)]


# ---------------------------------------------------------------------------
# deleting


async def test_deleting_a_lead_takes_its_follow_ups_and_tasks(gql, team):
    row = await lead(team.alice, "Acme")
    other = await lead(team.alice, "Other")
    for target in (row, other):
        note = await FollowUp.create(
            target_type=RecordType.LEAD, target_id=target.id, method=FollowUpMethod.PHONE,
            content="Called", occurred_at=datetime.now(UTC), author_id=team.alice.id,
        )  # fmt: skip
        await Task.create(
            title="Call back", assignee_id=team.alice.id, creator_id=team.alice.id,
            related_type=RecordType.LEAD, related_id=target.id, followup_id=note.id,
        )  # fmt: skip

    data = await gql.ok(DELETE, {"id": gid(row)}, as_user=team.boss)
    assert data["deleteLead"]["deletedId"] == gid(row)
    assert not await Lead.exists(id=row.id)
    assert await FollowUp.filter(target_id=row.id, target_type=RecordType.LEAD).count() == 0
    assert await Task.filter(related_id=row.id, related_type=RecordType.LEAD).count() == 0
    # the other lead keeps its own
    assert await FollowUp.filter(target_id=other.id).count() == 1
    assert await Task.filter(related_id=other.id).count() == 1
    log = await OperationLog.get(record_id=row.id, action="DELETE")
    assert log.changes["company_name"] == ["Acme", None]
    assert await Event.filter(kind="lead.deleted", record_id=row.id).count() == 1


# ---------------------------------------------------------------------------
# transfer


async def test_transfer_hands_leads_to_a_colleague_and_tells_them(gql, team):
    one, two = await lead(team.alice, "One"), await lead(team.alice, "Two")
    data = await gql.ok(
        TRANSFER, {"ids": [gid(two), gid(one)], "owner": uid(team.bob)}, as_user=team.boss
    )
    assert [(r["companyName"], r["owner"]["username"]) for r in data["transferLeads"]] == [
        ("Two", "bob"), ("One", "bob"),
    ]  # fmt: skip
    for row in (one, two):
        assert (await Lead.get(id=row.id)).owner_id == team.bob.id
        log = await OperationLog.get(record_id=row.id, action="TRANSFER")
        assert log.changes == {"owner_id": [team.alice.id, team.bob.id]}
        event = await Event.get(kind="lead.transferred", record_id=row.id)
        assert (event.recipient_id, event.owner_id) == (team.bob.id, team.bob.id)
    # Alice no longer sees them
    assert await names(gql, team.alice) == []
    assert sorted(await names(gql, team.bob)) == ["One", "Two"]


async def test_transfer_is_all_or_nothing(gql, team):
    mine = await lead(team.alice, "Mine")
    hidden = await lead(team.carol, "Carol's")  # outside the manager's tree
    pooled = await lead(None, "Pooled", created_by=team.boss)
    before, logged = await state(mine, hidden, pooled), await history()

    result = await gql(
        TRANSFER, {"ids": [gid(mine), gid(hidden)], "owner": uid(team.bob)}, as_user=team.boss
    )
    assert result.codes == ["NOT_FOUND"]
    result = await gql(
        TRANSFER, {"ids": [gid(mine), gid(pooled)], "owner": uid(team.bob)}, as_user=team.boss
    )
    assert result.codes == ["CONFLICT"]  # pooled leads are assigned, not transferred
    result = await gql(TRANSFER, {"ids": [gid(mine)], "owner": uid(team.gone)}, as_user=team.boss)
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.error["extensions"]["field"] == "ownerId"
    assert await state(mine, hidden, pooled) == before
    assert await history() == logged


async def test_a_converted_lead_can_still_change_hands(gql, team):
    row = await lead(team.alice, "Acme", status=LeadStatus.CONVERTED)
    data = await gql.ok(TRANSFER, {"ids": [gid(row)], "owner": uid(team.bob)}, as_user=team.boss)
    assert data["transferLeads"][0]["owner"] == {"username": "bob"}


async def test_transfer_to_the_current_owner_changes_nothing(gql, team):
    row = await lead(team.alice, "Acme")
    await gql.ok(TRANSFER, {"ids": [gid(row)], "owner": uid(team.alice)}, as_user=team.boss)
    assert await state(row) == [("Acme", None, team.alice.id, LeadStatus.NEW, None, 1)]
    assert await history() == (0, 0)


# ---------------------------------------------------------------------------
# the lead pool


async def test_a_distributor_assigns_pooled_leads(gql, team):
    pooled = await lead(None, "Pooled", created_by=team.boss)
    data = await gql.ok(
        ASSIGN, {"ids": [gid(pooled)], "owner": uid(team.alice)}, as_user=team.dispatcher
    )
    assert data["assignLeads"][0]["owner"] == {"username": "alice"}
    assert data["assignLeads"][0]["inPool"] is False
    event = await Event.get(kind="lead.assigned", record_id=pooled.id)
    assert (event.recipient_id, event.actor_id) == (team.alice.id, team.dispatcher.id)
    log = await OperationLog.get(record_id=pooled.id, action="ASSIGN")
    assert log.changes == {"owner_id": [None, team.alice.id]}
    assert await names(gql, team.alice) == ["Pooled"]
    # the dispatcher (SELF) no longer sees it once it has an owner
    assert await names(gql, team.dispatcher) == []


async def test_a_manager_reassigns_leads_of_their_scope(gql, team):
    row = await lead(team.alice, "Acme")
    data = await gql.ok(ASSIGN, {"ids": [gid(row)], "owner": uid(team.carol)}, as_user=team.boss)
    assert data["assignLeads"][0]["owner"] == {"username": "carol"}


async def test_reps_do_not_see_the_pool(gql, team):
    pooled = await lead(None, "Pooled", created_by=team.boss)
    assert await names(gql, team.alice) == []
    result = await gql(ASSIGN, {"ids": [gid(pooled)], "owner": uid(team.alice)}, as_user=team.alice)
    assert result.codes == ["NOT_FOUND"]
    assert (await Lead.get(id=pooled.id)).owner_id is None


async def test_assign_to_an_inactive_user_is_refused(gql, team):
    pooled = await lead(None, "Pooled", created_by=team.boss)
    result = await gql(ASSIGN, {"ids": [gid(pooled)], "owner": uid(team.gone)}, as_user=team.boss)
    assert result.codes == ["BAD_USER_INPUT"]
    assert (await Lead.get(id=pooled.id)).owner_id is None


async def test_an_owner_releases_leads_to_the_pool(gql, team):
    row = await lead(team.alice, "Acme")
    data = await gql.ok(RELEASE, {"ids": [gid(row)], "reason": "No time"}, as_user=team.alice)
    assert (data["releaseLeads"][0]["owner"], data["releaseLeads"][0]["inPool"]) == (None, True)
    assert (await Lead.get(id=row.id)).owner_id is None
    log = await OperationLog.get(record_id=row.id, action="RELEASE")
    assert log.changes == {"owner_id": [team.alice.id, None]}
    assert "No time" in log.summary
    event = await Event.get(kind="lead.released", record_id=row.id)
    assert event.payload["fromOwnerId"] == team.alice.id
    # gone from Alice's list, waiting in the pool for distributors
    assert await names(gql, team.alice) == []
    assert await names(gql, team.dispatcher) == ["Acme"]


async def test_a_manager_releases_a_reps_lead_and_pooled_ones_stay(gql, team):
    row = await lead(team.bob, "Bob's")
    pooled = await lead(None, "Pooled", created_by=team.boss)
    await gql.ok(RELEASE, {"ids": [gid(row), gid(pooled)]}, as_user=team.boss)
    assert await Lead.filter(owner_id=None).count() == 2
    assert (await Lead.get(id=pooled.id)).version == 1  # untouched
    assert await OperationLog.filter(action="RELEASE").count() == 1


async def test_batches_are_capped(gql, team):
    ids = [to_global_id("Lead", i) for i in range(1, 202)]
    result = await gql(RELEASE, {"ids": ids}, as_user=team.root)
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.error["extensions"]["field"] == "ids"


async def test_two_distributors_assigning_one_pooled_lead_at_once_leave_one_owner(gql, org, team):
    pooled = await lead(None, "Pooled", created_by=team.boss)
    other = await org.user("dispatcher2", roles=await team.dispatcher.roles.all())
    results = await asyncio.gather(
        gql(ASSIGN, {"ids": [gid(pooled)], "owner": uid(team.alice)}, as_user=team.dispatcher),
        gql(ASSIGN, {"ids": [gid(pooled)], "owner": uid(team.bob)}, as_user=other),
    )
    # Both see only the pool: once one has handed the lead out, it is gone
    # from the other's sight, and a late assignment cannot take it over.
    assert sorted(r.codes for r in results) == [[], ["NOT_FOUND"]], [r.errors for r in results]
    winner = team.alice if not results[0].errors else team.bob
    row = await Lead.get(id=pooled.id)
    assert (row.owner_id, row.version) == (winner.id, 2)
    assert await OperationLog.filter(action="ASSIGN").count() == 1
    assert await Event.filter(kind="lead.assigned").count() == 1


# ---------------------------------------------------------------------------
# filters


async def test_filters(gql, team):
    now = datetime.now(UTC)
    a = await lead(
        team.alice, "Acme Trading", contact_name="Zhang San", phone="+86 138-0013-8000",
        source="展会", industry="Retail", region="East", last_followup_at=now - timedelta(days=3),
        status=LeadStatus.FOLLOWING,
    )  # fmt: skip
    await lead(
        team.bob, "Beta Foods", contact_name="Li Si", phone="13912345678", source="web",
        industry="Food", region="West",
    )  # fmt: skip
    await lead(None, "Gamma Pool", created_by=team.boss, source="web", region="East")
    await Lead.filter(id=a.id).update(created_at=now - timedelta(days=10))

    async def found(**where) -> set[str]:
        return set(await names(gql, team.boss, filter=where, first=50))

    assert await found() == {"Acme Trading", "Beta Foods", "Gamma Pool"}
    assert await found(status="FOLLOWING") == {"Acme Trading"}
    assert await found(status="NEW") == {"Beta Foods", "Gamma Pool"}
    assert await found(ownerId=uid(team.bob)) == {"Beta Foods"}
    assert await found(inPool=True) == {"Gamma Pool"}
    assert await found(inPool=False) == {"Acme Trading", "Beta Foods"}
    assert await found(source="web") == {"Beta Foods", "Gamma Pool"}
    assert await found(industry="Retail") == {"Acme Trading"}
    assert await found(region=" East ") == {"Acme Trading", "Gamma Pool"}
    assert await found(source="web", region="East") == {"Gamma Pool"}
    recent = (now - timedelta(days=1)).isoformat()
    assert await found(createdFrom=recent) == {"Beta Foods", "Gamma Pool"}
    assert await found(createdTo=recent) == {"Acme Trading"}
    assert await found(followedUpFrom=(now - timedelta(days=4)).isoformat()) == {"Acme Trading"}
    assert await found(followedUpTo=(now - timedelta(days=4)).isoformat()) == set()
    assert await found(followedUpFrom=recent) == set()
    # search: company or contact name, or phone digits in any spelling
    assert await found(search="trading") == {"Acme Trading"}
    assert await found(search="li si") == {"Beta Foods"}
    assert await found(search="138 0013") == {"Acme Trading"}
    assert await found(search="+86 13912345678") == {"Beta Foods"}
    assert await found(search="１３９") == {"Beta Foods"}  # full-width digits
    assert await found(search="nothing") == set()
    # a filter never widens the scope
    assert set(await names(gql, team.alice, filter={"ownerId": uid(team.bob)})) == set()
    assert set(await names(gql, team.alice, filter={"inPool": True})) == set()


async def test_bad_filter_ids_are_bad_input(gql, team):
    result = await gql(LIST, {"filter": {"ownerId": "garbage"}}, as_user=team.alice)
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.error["extensions"]["field"] == "ownerId"


# ---------------------------------------------------------------------------
# ordering and pagination


async def _walk(gql, user: User, order: dict, page: int) -> list[str]:
    """Every lead, page by page forwards; checks the backward walk agrees."""
    seen, after = [], None
    while True:
        data = await gql.ok(LIST, {"orderBy": order, "first": page, "after": after}, as_user=user)
        conn = data["leads"]
        seen += [e["node"]["companyName"] for e in conn["edges"]]
        if not conn["pageInfo"]["hasNextPage"]:
            break
        after = conn["pageInfo"]["endCursor"]
    backwards, before = [], None
    while True:
        data = await gql.ok(LIST, {"orderBy": order, "last": page, "before": before}, as_user=user)
        conn = data["leads"]
        backwards = [e["node"]["companyName"] for e in conn["edges"]] + backwards
        if not conn["pageInfo"]["hasPreviousPage"]:
            break
        before = conn["pageInfo"]["startCursor"]
    assert backwards == seen
    return seen


async def test_ordering_and_pagination(gql, team):
    now = datetime.now(UTC)
    followed = {"Delta": 1, "Alpha": 5, "Echo": 5, "Charlie": 9}  # days ago
    for i, company in enumerate(["Charlie", "Alpha", "Foxtrot", "Echo", "Bravo", "Delta"]):
        row = await lead(team.alice, company)
        days = followed.get(company)
        await Lead.filter(id=row.id).update(
            created_at=now - timedelta(hours=10 - i),
            last_followup_at=now - timedelta(days=days) if days else None,
        )

    by_name = await _walk(gql, team.alice, {"field": "COMPANY_NAME", "descending": False}, 4)
    assert by_name == ["Alpha", "Bravo", "Charlie", "Delta", "Echo", "Foxtrot"]
    newest = await _walk(gql, team.alice, {}, 4)  # CREATED_AT, newest first
    assert newest == ["Delta", "Bravo", "Echo", "Foxtrot", "Alpha", "Charlie"]
    # most recently followed up first; never followed up last, newest id first
    recent = await _walk(gql, team.alice, {"field": "LAST_FOLLOW_UP_AT"}, 2)
    assert recent == ["Delta", "Echo", "Alpha", "Charlie", "Bravo", "Foxtrot"]
    # the most neglected first: never followed up, then the longest ago
    neglected = await _walk(gql, team.alice, {"field": "LAST_FOLLOW_UP_AT", "descending": False}, 2)
    assert neglected == list(reversed(recent))


async def test_page_size_is_capped_and_cursors_checked(gql, team):
    result = await gql(LIST, {"first": 101}, as_user=team.alice)
    assert result.codes == ["BAD_USER_INPUT"]
    result = await gql(LIST, {"after": "nonsense"}, as_user=team.alice)
    assert result.codes == ["BAD_USER_INPUT"]

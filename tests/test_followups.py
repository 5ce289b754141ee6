"""Follow-ups (跟进记录): the clocks recycling measures, the lead status, the author's
schedule, who may enter, correct and delete them, and who sees them."""

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
    Lead,
    LeadStatus,
    OperationLog,
    Opportunity,
    OpportunityStage,
    RecordType,
    Task,
    TeamAccess,
    User,
)
from meihua.resolvers.customers import normalize_name
from meihua.schema.activity import record_global_id
from meihua.schema.relay import from_global_id, to_global_id

CREATE = """
mutation($input: CreateFollowUpInput!) {
  createFollowUp(input: $input) {
    id method content occurredAt nextContactAt targetId targetType createdAt editableUntil
    author { id } customer { id }
  }
}
"""
UPDATE = """
mutation($id: ID!, $input: UpdateFollowUpInput!) {
  updateFollowUp(id: $id, input: $input) { id method content occurredAt }
}
"""
DELETE = "mutation($id: ID!) { deleteFollowUp(id: $id) { deletedId } }"
NODE = """
query($id: ID!) {
  node(id: $id) { id ... on FollowUp { content customer { id name } author { username } } }
}
"""
LIST = """
query($filter: FollowUpFilter, $first: Int, $after: String) {
  followUps(filter: $filter, first: $first, after: $after) {
    totalCount edges { node { content targetId } } pageInfo { hasNextPage endCursor }
  }
}
"""


@dataclass
class Team:
    alice: User  # Sales Rep (SELF) in Sales
    bob: User  # Sales Rep (SELF) in Sales
    carol: User  # Sales Rep (SELF) in Support
    boss: User  # Sales Manager (DEPARTMENT_TREE) in Sales
    root: User  # super admin


@pytest.fixture
async def team(org) -> Team:
    sales = await org.department("Sales")
    support = await org.department("Support")
    rep = await org.default_role("Sales Rep")
    manager = await org.default_role("Sales Manager")
    return Team(
        alice=await org.user("alice", department=sales, roles=[rep]),
        bob=await org.user("bob", department=sales, roles=[rep]),
        carol=await org.user("carol", department=support, roles=[rep]),
        boss=await org.user("boss", department=sales, roles=[manager]),
        root=await org.admin(),
    )


async def make_customer(owner: User, name: str = "Acme Trading") -> Customer:
    return await Customer.create(
        name=name, name_key=normalize_name(name), owner_id=owner.id, created_by_id=owner.id
    )


async def make_lead(owner: User | None, name: str = "Plum Blossom Ltd", **fields) -> Lead:
    creator = owner.id if owner else (await User.first()).id
    return await Lead.create(
        company_name=name, owner_id=owner.id if owner else None, created_by_id=creator, **fields
    )


async def make_contact(customer: Customer, name: str = "Wang Wei") -> Contact:
    return await Contact.create(customer=customer, name=name, created_by_id=customer.owner_id)


async def make_opportunity(customer: Customer, owner: User) -> Opportunity:
    stage = await OpportunityStage.all().order_by("order").first()
    return await Opportunity.create(
        customer=customer, name="ERP rollout", amount="12500.00", stage=stage,
        owner_id=owner.id, created_by_id=owner.id,
    )  # fmt: skip


async def make_contract(customer: Customer, owner: User) -> Contract:
    return await Contract.create(
        number=f"HT-{customer.id}-{owner.id}", title="Annual licence", customer=customer,
        owner_id=owner.id, created_by_id=owner.id,
    )  # fmt: skip


def gid(record) -> str:
    kind = {
        Lead: RecordType.LEAD, Customer: RecordType.CUSTOMER, Contact: RecordType.CONTACT,
        Opportunity: RecordType.OPPORTUNITY, Contract: RecordType.CONTRACT,
    }[type(record)]  # fmt: skip
    return record_global_id(kind, record.id)


def at(moment: datetime) -> str:
    return moment.isoformat()


async def follow_up(gql, user: User, target, content: str = "Called about the quote", **fields):
    variables = {
        "input": {"targetId": gid(target), "method": "PHONE", "content": content, **fields}
    }
    return (await gql.ok(CREATE, variables, as_user=user))["createFollowUp"]


async def fresh(record):
    return await type(record).get(id=record.id)


async def nothing_written(before: dict[str, int]) -> None:
    assert await counts() == before


async def counts() -> dict[str, int]:
    return {
        "followups": await FollowUp.all().count(),
        "tasks": await Task.all().count(),
        "log": await OperationLog.all().count(),
        "events": await Event.all().count(),
    }


# ---------------------------------------------------------------------------
# entering a follow-up


async def test_follow_up_moves_the_customer_clocks_and_is_logged(gql, team):
    customer = await make_customer(team.alice)
    when = datetime.now(UTC) - timedelta(hours=2)
    nxt = datetime.now(UTC) + timedelta(days=3)
    made = await follow_up(
        gql, team.alice, customer, "Discussed pricing\nThey want a demo",
        occurredAt=at(when), nextContactAt=at(nxt), method="VISIT",
    )  # fmt: skip

    assert made["method"] == "VISIT"
    assert made["content"] == "Discussed pricing\nThey want a demo"
    assert made["targetId"] == gid(customer)
    assert made["targetType"] == "CUSTOMER"
    assert made["author"] == {"id": to_global_id("User", team.alice.id)}
    assert made["customer"] == {"id": gid(customer)}
    assert datetime.fromisoformat(made["occurredAt"]) == when
    row = await fresh(customer)
    assert row.last_followup_at == when
    assert row.next_contact_at == nxt
    assert row.version == customer.version  # a follow-up is no edit of the customer

    entry = await OperationLog.get(action="FOLLOW_UP")
    assert (entry.record_type, entry.record_id, entry.customer_id, entry.actor_id) == (
        RecordType.CUSTOMER, customer.id, customer.id, team.alice.id,
    )  # fmt: skip
    assert entry.changes["last_followup_at"] == [None, when.isoformat()]
    assert entry.changes["followup.method"] == [None, "VISIT"]
    assert entry.summary == "Visit: Discussed pricing"
    event = await Event.get(kind="followup.created")
    assert (event.record_type, event.record_id, event.owner_id) == (
        "CUSTOMER", customer.id, team.alice.id,
    )  # fmt: skip


@pytest.mark.parametrize("kind", ["contact", "opportunity", "contract"])
async def test_follow_up_under_a_customer_moves_both_clocks(gql, team, kind):
    customer = await make_customer(team.alice)
    make = {"contact": lambda: make_contact(customer),
            "opportunity": lambda: make_opportunity(customer, team.alice),
            "contract": lambda: make_contract(customer, team.alice)}[kind]  # fmt: skip
    target = await make()
    when = datetime.now(UTC) - timedelta(minutes=5)
    made = await follow_up(gql, team.alice, target, occurredAt=at(when))

    assert made["customer"] == {"id": gid(customer)}
    assert (await fresh(target)).last_followup_at == when
    assert (await fresh(customer)).last_followup_at == when
    assert (await FollowUp.get()).customer_id == customer.id


async def test_first_follow_up_makes_a_new_lead_following(gql, team):
    lead = await make_lead(team.alice)
    made = await follow_up(gql, team.alice, lead)

    assert made["customer"] is None
    row = await fresh(lead)
    assert row.status == LeadStatus.FOLLOWING
    assert row.last_followup_at is not None
    entry = await OperationLog.get(action="FOLLOW_UP")
    assert entry.changes["status"] == ["NEW", "FOLLOWING"]
    assert entry.customer_id is None

    await follow_up(gql, team.alice, lead, "Second call")
    assert (
        "status"
        not in (await OperationLog.filter(action="FOLLOW_UP").order_by("-id").first()).changes
    )


async def test_an_invalid_lead_stays_invalid(gql, team):
    lead = await make_lead(team.alice, status=LeadStatus.INVALID)
    await follow_up(gql, team.alice, lead)
    assert (await fresh(lead)).status == LeadStatus.INVALID


async def test_a_converted_lead_takes_no_follow_ups(gql, team):
    lead = await make_lead(team.alice, status=LeadStatus.CONVERTED)
    before = await counts()
    result = await gql(
        CREATE, {"input": {"targetId": gid(lead), "method": "PHONE", "content": "Hi"}},
        as_user=team.alice,
    )  # fmt: skip
    assert result.codes == ["CONFLICT"]
    await nothing_written(before)
    assert (await fresh(lead)).last_followup_at is None


async def test_a_late_entered_older_follow_up_never_winds_the_clock_back(gql, team):
    customer = await make_customer(team.alice)
    contact = await make_contact(customer)
    recent = datetime.now(UTC) - timedelta(hours=1)
    plan = datetime.now(UTC) + timedelta(days=2)
    await follow_up(gql, team.alice, contact, occurredAt=at(recent), nextContactAt=at(plan))
    # last week's visit, typed in only now, with an old plan of its own
    old = datetime.now(UTC) - timedelta(days=7)
    await follow_up(
        gql, team.alice, contact, "Visit last week",
        occurredAt=at(old), nextContactAt=at(old + timedelta(days=1)),
    )  # fmt: skip

    for record in (contact, customer):
        row = await fresh(record)
        assert row.last_followup_at == recent
        assert row.next_contact_at == plan
    late = await OperationLog.filter(action="FOLLOW_UP").order_by("-id").first()
    assert "last_followup_at" not in late.changes


async def test_concurrent_follow_ups_leave_the_latest_time(gql, team):
    customer = await make_customer(team.alice)
    contacts = [await make_contact(customer, f"Contact {n}") for n in range(3)]
    now = datetime.now(UTC)
    times = [now - timedelta(minutes=m) for m in (50, 10, 40, 30, 20, 60)]
    await asyncio.gather(
        *(
            follow_up(gql, team.alice, contacts[n % 3], f"Call {n}", occurredAt=at(moment))
            for n, moment in enumerate(times)
        )
    )
    assert await FollowUp.all().count() == 6
    assert (await fresh(customer)).last_followup_at == max(times)
    for n, contact in enumerate(contacts):
        assert (await fresh(contact)).last_followup_at == max(times[n::3])


async def test_time_without_offset_is_company_time(gql, team):
    customer = await make_customer(team.alice)
    made = await follow_up(gql, team.alice, customer, occurredAt="2024-03-10T09:30:00")
    # the company works in Asia/Shanghai (UTC+8)
    assert datetime.fromisoformat(made["occurredAt"]) == datetime(2024, 3, 10, 1, 30, tzinfo=UTC)


# ---------------------------------------------------------------------------
# bad input writes nothing


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"occurredAt": "FUTURE"}, "occurredAt"),
        ({"content": "   "}, "content"),
        ({"content": "x" * 10_001}, "content"),
        ({"nextContactAt": "PAST"}, "nextContactAt"),
        ({"targetId": "USER"}, "targetId"),
        ({"targetId": "not-an-id"}, "targetId"),
    ],
)
async def test_bad_input_is_refused_and_writes_nothing(gql, team, change, field):
    customer = await make_customer(team.alice)
    values = {
        "FUTURE": at(datetime.now(UTC) + timedelta(hours=1)),
        "PAST": at(datetime.now(UTC) - timedelta(hours=1)),
        "USER": to_global_id("User", team.alice.id),
    }
    data = {"targetId": gid(customer), "method": "PHONE", "content": "Hello"}
    data |= {key: values.get(value, value) for key, value in change.items()}
    before = await counts()

    result = await gql(CREATE, {"input": data}, as_user=team.alice)
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.error["extensions"]["field"] == field
    await nothing_written(before)
    assert (await fresh(customer)).last_followup_at is None


async def test_unknown_method_is_refused(gql, team):
    customer = await make_customer(team.alice)
    result = await gql(
        CREATE, {"input": {"targetId": gid(customer), "method": "FAX", "content": "Hello"}},
        as_user=team.alice,
    )  # fmt: skip
    assert result.errors
    assert await FollowUp.all().count() == 0


# ---------------------------------------------------------------------------
# the author's schedule


async def test_next_contact_time_puts_a_task_in_the_authors_schedule(gql, team):
    customer = await make_customer(team.alice)
    contact = await make_contact(customer)
    due = datetime.now(UTC) + timedelta(days=2)
    made = await follow_up(
        gql, team.alice, contact, "Send the revised quote\nwith the discount we discussed",
        nextContactAt=at(due),
    )  # fmt: skip

    task = await Task.get()
    assert task.title == "Send the revised quote"
    assert task.description == "Send the revised quote\nwith the discount we discussed"
    assert (task.assignee_id, task.creator_id) == (team.alice.id, team.alice.id)
    assert task.due_at == due
    assert (task.related_type, task.related_id) == (RecordType.CONTACT, contact.id)
    assert task.customer_id == customer.id
    assert task.followup_id == from_global_id(made["id"])[1]
    # the author's own reminder: nobody is notified
    assert not await Event.filter(kind="task.assigned").exists()


async def test_no_next_contact_time_no_task(gql, team):
    await follow_up(gql, team.alice, await make_customer(team.alice))
    assert await Task.all().count() == 0


async def test_long_first_line_makes_a_shortened_title(gql, team):
    due = at(datetime.now(UTC) + timedelta(days=1))
    await follow_up(gql, team.alice, await make_customer(team.alice), "长" * 300, nextContactAt=due)
    task = await Task.get()
    assert len(task.title) == 200
    assert task.title.endswith("…")


# ---------------------------------------------------------------------------
# who may enter a follow-up


async def test_someone_who_cannot_see_the_record_gets_not_found(gql, team):
    customer = await make_customer(team.alice)
    lead = await make_lead(team.alice)
    pooled = await make_lead(None, "Pool Lead")
    for target in (customer, lead, pooled, await make_contact(customer)):
        before = await counts()
        result = await gql(
            CREATE, {"input": {"targetId": gid(target), "method": "PHONE", "content": "Hi"}},
            as_user=team.carol,
        )  # fmt: skip
        assert result.codes == ["NOT_FOUND"]
        await nothing_written(before)
    assert (await fresh(customer)).last_followup_at is None


async def test_a_missing_record_is_not_found(gql, team):
    result = await gql(
        CREATE,
        {"input": {"targetId": to_global_id("Customer", 999), "method": "SMS", "content": "Hi"}},
        as_user=team.root,
    )
    assert result.codes == ["NOT_FOUND"]


async def test_team_read_member_may_not_follow_up_but_write_member_may(gql, team):
    customer = await make_customer(team.alice)
    await CustomerTeamMember.create(customer=customer, user=team.carol, access=TeamAccess.READ)
    before = await counts()
    result = await gql(
        CREATE, {"input": {"targetId": gid(customer), "method": "PHONE", "content": "Hi"}},
        as_user=team.carol,
    )  # fmt: skip
    assert result.codes == ["FORBIDDEN"]
    await nothing_written(before)
    assert (await fresh(customer)).last_followup_at is None

    await CustomerTeamMember.filter(user=team.carol).update(access=TeamAccess.WRITE)
    await follow_up(gql, team.carol, customer)
    assert (await fresh(customer)).last_followup_at is not None


async def test_a_manager_may_follow_up_the_records_of_their_reps(gql, team):
    customer = await make_customer(team.alice)
    made = await follow_up(gql, team.boss, customer)
    assert made["author"] == {"id": to_global_id("User", team.boss.id)}


# ---------------------------------------------------------------------------
# who sees a follow-up


async def test_follow_up_is_seen_with_its_record(gql, team):
    customer = await make_customer(team.alice)
    made = await follow_up(gql, team.alice, customer)

    seen = await gql.ok(NODE, {"id": made["id"]}, as_user=team.boss)
    assert seen["node"]["author"] == {"username": "alice"}
    for outsider in (team.bob, team.carol):
        result = await gql(NODE, {"id": made["id"]}, as_user=outsider)
        assert result.codes == ["NOT_FOUND"]


async def test_customer_of_a_follow_up_is_hidden_from_those_who_cannot_see_it(gql, team):
    # Bob owns an opportunity of Alice's customer: he sees the opportunity only.
    customer = await make_customer(team.alice)
    opportunity = await make_opportunity(customer, team.bob)
    made = await follow_up(gql, team.bob, opportunity)

    assert made["customer"] is None
    assert (await fresh(customer)).last_followup_at is not None  # recycling still counts it
    seen = await gql.ok(NODE, {"id": made["id"]}, as_user=team.boss)  # sees both
    assert seen["node"]["customer"]["name"] == "Acme Trading"


async def test_follow_ups_list_shows_only_visible_records(gql, team):
    mine = await make_customer(team.alice)
    theirs = await make_customer(team.carol, "Carol Co")
    await follow_up(gql, team.alice, mine, "Alice's call")
    await follow_up(gql, team.alice, await make_contact(mine), "Alice's contact call")
    await follow_up(gql, team.carol, theirs, "Carol's call")

    alice = (await gql.ok(LIST, {}, as_user=team.alice))["followUps"]
    assert alice["totalCount"] == 2
    carol = (await gql.ok(LIST, {}, as_user=team.carol))["followUps"]
    assert [e["node"]["content"] for e in carol["edges"]] == ["Carol's call"]
    root = (await gql.ok(LIST, {}, as_user=team.root))["followUps"]
    assert root["totalCount"] == 3

    exact = await gql.ok(LIST, {"filter": {"targetId": gid(mine)}}, as_user=team.alice)
    assert [e["node"]["content"] for e in exact["followUps"]["edges"]] == ["Alice's call"]
    under = await gql.ok(LIST, {"filter": {"customerId": gid(mine)}}, as_user=team.alice)
    assert under["followUps"]["totalCount"] == 2
    peeking = await gql.ok(LIST, {"filter": {"customerId": gid(mine)}}, as_user=team.carol)
    assert peeking["followUps"]["totalCount"] == 0


async def test_follow_ups_list_filters_by_author_method_and_time(gql, team):
    customer = await make_customer(team.alice)
    now = datetime.now(UTC)
    await follow_up(gql, team.alice, customer, "old", occurredAt=at(now - timedelta(days=3)))
    await follow_up(gql, team.boss, customer, "by boss", method="EMAIL")
    await follow_up(gql, team.alice, customer, "new")

    def contents(data):
        return sorted(e["node"]["content"] for e in data["followUps"]["edges"])

    by_boss = {"authorId": to_global_id("User", team.boss.id)}
    assert contents(await gql.ok(LIST, {"filter": by_boss}, as_user=team.boss)) == ["by boss"]
    emails = {"method": "EMAIL"}
    assert contents(await gql.ok(LIST, {"filter": emails}, as_user=team.boss)) == ["by boss"]
    recent = {"occurredFrom": at(now - timedelta(days=1))}
    assert contents(await gql.ok(LIST, {"filter": recent}, as_user=team.boss)) == [
        "by boss", "new",
    ]  # fmt: skip


# ---------------------------------------------------------------------------
# correcting and deleting


async def test_author_may_correct_a_follow_up_within_a_day(gql, team):
    customer = await make_customer(team.alice)
    made = await follow_up(gql, team.alice, customer, "Caled them")
    fixed = await gql.ok(
        UPDATE, {"id": made["id"], "input": {"content": "Called them", "method": "WECHAT"}},
        as_user=team.alice,
    )  # fmt: skip
    assert fixed["updateFollowUp"]["content"] == "Called them"
    assert fixed["updateFollowUp"]["method"] == "WECHAT"
    assert fixed["updateFollowUp"]["occurredAt"] == made["occurredAt"]
    entry = await OperationLog.get(action="FOLLOW_UP_UPDATE")
    assert entry.changes == {
        "followup.content": ["Caled them", "Called them"],
        "followup.method": ["PHONE", "WECHAT"],
    }


async def test_only_the_author_may_correct_or_delete(gql, team):
    customer = await make_customer(team.alice)
    made = await follow_up(gql, team.alice, customer, "Original")
    before = await counts()
    for other in (team.boss,):  # sees it, may write the customer, is not the author
        result = await gql(UPDATE, {"id": made["id"], "input": {"content": "x"}}, as_user=other)
        assert result.codes == ["FORBIDDEN"]
        result = await gql(DELETE, {"id": made["id"]}, as_user=other)
        assert result.codes == ["FORBIDDEN"]
    for outsider in (team.bob, team.carol):
        result = await gql(UPDATE, {"id": made["id"], "input": {"content": "x"}}, as_user=outsider)
        assert result.codes == ["NOT_FOUND"]
        result = await gql(DELETE, {"id": made["id"]}, as_user=outsider)
        assert result.codes == ["NOT_FOUND"]
    await nothing_written(before)
    assert (await FollowUp.get()).content == "Original"


async def test_after_a_day_a_follow_up_is_history(gql, team):
    customer = await make_customer(team.alice)
    made = await follow_up(gql, team.alice, customer, "Original")
    pk = from_global_id(made["id"])[1]
    await FollowUp.filter(id=pk).update(created_at=datetime.now(UTC) - timedelta(hours=25))
    before = await counts()

    result = await gql(UPDATE, {"id": made["id"], "input": {"content": "x"}}, as_user=team.alice)
    assert result.codes == ["FORBIDDEN"]
    result = await gql(DELETE, {"id": made["id"]}, as_user=team.alice)
    assert result.codes == ["FORBIDDEN"]
    await nothing_written(before)

    # a super admin can still clean up
    fixed = await gql.ok(UPDATE, {"id": made["id"], "input": {"content": "y"}}, as_user=team.root)
    assert fixed["updateFollowUp"]["content"] == "y"


async def test_author_who_lost_write_access_may_not_correct(gql, team):
    customer = await make_customer(team.alice)
    await CustomerTeamMember.create(customer=customer, user=team.carol, access=TeamAccess.WRITE)
    made = await follow_up(gql, team.carol, customer, "Original")
    await CustomerTeamMember.filter(user=team.carol).update(access=TeamAccess.READ)
    result = await gql(UPDATE, {"id": made["id"], "input": {"content": "x"}}, as_user=team.carol)
    assert result.codes == ["FORBIDDEN"]
    assert (await FollowUp.get()).content == "Original"


async def test_blank_correction_is_refused(gql, team):
    made = await follow_up(gql, team.alice, await make_customer(team.alice), "Original")
    result = await gql(UPDATE, {"id": made["id"], "input": {"content": " "}}, as_user=team.alice)
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.error["extensions"]["field"] == "content"
    assert (await FollowUp.get()).content == "Original"


async def test_deleting_the_latest_follow_up_sets_the_clocks_back(gql, team):
    customer = await make_customer(team.alice)
    contact = await make_contact(customer)
    now = datetime.now(UTC)
    earlier, latest = now - timedelta(days=2), now - timedelta(hours=1)
    await follow_up(gql, team.alice, customer, "on the customer", occurredAt=at(earlier))
    due = at(now + timedelta(days=1))
    made = await follow_up(
        gql, team.alice, contact, "on the contact", occurredAt=at(latest), nextContactAt=due
    )

    done = await gql.ok(DELETE, {"id": made["id"]}, as_user=team.alice)
    assert done["deleteFollowUp"]["deletedId"] == made["id"]
    assert await FollowUp.all().count() == 1
    assert (await fresh(customer)).last_followup_at == earlier
    assert (await fresh(contact)).last_followup_at is None
    entry = await OperationLog.get(action="FOLLOW_UP_DELETE")
    assert entry.record_id == contact.id
    assert entry.changes["last_followup_at"] == [latest.isoformat(), None]
    assert entry.changes["followup.content"] == ["on the contact", None]
    # the reminder it scheduled stays, unlinked
    task = await Task.get()
    assert task.followup_id is None


async def test_deleting_an_older_follow_up_leaves_the_clock(gql, team):
    customer = await make_customer(team.alice)
    now = datetime.now(UTC)
    old = await follow_up(gql, team.alice, customer, "old", occurredAt=at(now - timedelta(days=2)))
    await follow_up(gql, team.alice, customer, "new", occurredAt=at(now - timedelta(hours=1)))
    await gql.ok(DELETE, {"id": old["id"]}, as_user=team.alice)
    assert (await fresh(customer)).last_followup_at == now - timedelta(hours=1)


async def test_deleting_the_only_follow_up_of_a_lead_makes_it_new_again(gql, team):
    lead = await make_lead(team.alice)
    made = await follow_up(gql, team.alice, lead)
    await gql.ok(DELETE, {"id": made["id"]}, as_user=team.alice)
    row = await fresh(lead)
    assert (row.status, row.last_followup_at) == (LeadStatus.NEW, None)

"""Timelines (one time-ordered history per record, a customer's with everything under
it) and the operation log (操作日志): merging, keyset paging, cost, and who sees what."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from meihua.models import (
    ApprovalDecision,
    ApprovalRecord,
    Contact,
    Contract,
    Customer,
    FollowUp,
    FollowUpMethod,
    Lead,
    OperationLog,
    Opportunity,
    OpportunityStage,
    RecordType,
    Task,
    User,
)
from meihua.resolvers.customers import normalize_name
from meihua.resolvers.oplog import log_operation
from meihua.schema.activity import record_global_id
from meihua.schema.relay import to_global_id

TIMELINE = """
query($id: ID!, $first: Int, $after: String, $last: Int, $before: String) {
  timeline(recordId: $id, first: $first, after: $after, last: $last, before: $before) {
    totalCount
    edges {
      cursor
      node {
        at kind summary recordType recordId actor { username }
        followUp { id content } task { id title } approval { decision step comment }
        operation { action }
      }
    }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}
"""
CUSTOMER_TIMELINE = """
query($id: ID!, $first: Int) {
  node(id: $id) { ... on Customer { timeline(first: $first) { edges { node { kind summary } } } } }
}
"""
LOG = """
query($filter: OperationLogFilter, $first: Int, $after: String) {
  operationLog(filter: $filter, first: $first, after: $after) {
    totalCount
    edges { node { id action recordType recordId summary at actor { username }
                   changes { field oldValue newValue } } }
    pageInfo { hasNextPage endCursor }
  }
}
"""
CREATE_FOLLOW_UP = """
mutation($input: CreateFollowUpInput!) { createFollowUp(input: $input) { id } }
"""


@dataclass
class Team:
    alice: User  # Sales Rep (SELF) in Sales
    bob: User  # Sales Rep (SELF) in Sales
    carol: User  # Sales Rep (SELF) in Support
    boss: User  # Sales Manager (DEPARTMENT_TREE) in Sales
    finance: User  # Finance (ALL scope, no settings:manage)
    admin: User  # Administrator (ALL scope, settings:manage)


@pytest.fixture
async def team(org) -> Team:
    sales = await org.department("Sales")
    support = await org.department("Support")
    rep = await org.default_role("Sales Rep")
    return Team(
        alice=await org.user("alice", department=sales, roles=[rep]),
        bob=await org.user("bob", department=sales, roles=[rep]),
        carol=await org.user("carol", department=support, roles=[rep]),
        boss=await org.user(
            "boss", department=sales, roles=[await org.default_role("Sales Manager")]
        ),
        finance=await org.user("fin", roles=[await org.default_role("Finance")]),
        admin=await org.user("admin", roles=[await org.default_role("Administrator")]),
    )


KINDS = {
    Customer: RecordType.CUSTOMER,
    Contact: RecordType.CONTACT,
    Lead: RecordType.LEAD,
    Opportunity: RecordType.OPPORTUNITY,
    Contract: RecordType.CONTRACT,
}
NOW = datetime.now(UTC).replace(microsecond=0)


def ago(minutes: int) -> datetime:
    return NOW - timedelta(minutes=minutes)


async def make_customer(owner: User, name: str = "Acme Trading") -> Customer:
    return await Customer.create(
        name=name, name_key=normalize_name(name), owner_id=owner.id, created_by_id=owner.id
    )


async def make_followup(target, author: User, content: str, when: datetime) -> FollowUp:
    kind = KINDS[type(target)]
    customer_id = (
        target.id if isinstance(target, Customer) else getattr(target, "customer_id", None)
    )
    return await FollowUp.create(
        target_type=kind, target_id=target.id, customer_id=customer_id, author=author,
        method=FollowUpMethod.PHONE, content=content, occurred_at=when,
    )  # fmt: skip


async def make_task(creator: User, title: str, when: datetime, kind: RecordType, pk: int,
                    customer_id: int | None) -> Task:  # fmt: skip
    task = await Task.create(
        title=title, assignee=creator, creator=creator, related_type=kind, related_id=pk,
        customer_id=customer_id,
    )  # fmt: skip
    await Task.filter(id=task.id).update(created_at=when)
    return task


async def make_log(actor: User, action: str, kind: RecordType, pk: int, customer_id: int | None,
                   when: datetime, summary: str = "", changes=None) -> OperationLog:  # fmt: skip
    entry = await log_operation(
        actor.id, action, kind, pk, customer_id=customer_id, summary=summary, changes=changes
    )
    await OperationLog.filter(id=entry.id).update(created_at=when)
    return entry


async def make_opportunity(customer: Customer, owner: User) -> Opportunity:
    stage = await OpportunityStage.all().order_by("order").first()
    return await Opportunity.create(
        customer=customer, name="ERP rollout", amount="12500.00", stage=stage,
        owner_id=owner.id, created_by_id=owner.id,
    )  # fmt: skip


async def make_contract(customer: Customer, owner: User, number: str = "HT-1") -> Contract:
    return await Contract.create(
        number=number, title="Annual licence", customer=customer, owner_id=owner.id,
        created_by_id=owner.id,
    )  # fmt: skip


def gid(kind: RecordType, pk: int) -> str:
    return record_global_id(kind, pk)


async def timeline(gql, user: User, record_id: str, **variables) -> dict:
    data = await gql.ok(TIMELINE, {"id": record_id, **variables}, as_user=user)
    return data["timeline"]


def summaries(connection: dict) -> list[str]:
    return [edge["node"]["summary"] for edge in connection["edges"]]


# ---------------------------------------------------------------------------
# what a timeline holds


async def test_customer_timeline_merges_everything_under_it_newest_first(gql, team):
    customer = await make_customer(team.alice)
    contact = await Contact.create(customer=customer, name="Wang Wei", created_by_id=team.alice.id)
    contract = await make_contract(customer, team.alice)
    other = await make_customer(team.alice, "Other Co")

    await make_log(team.alice, "CREATE", RecordType.CUSTOMER, customer.id, customer.id, ago(60),
                   "Created customer Acme Trading")  # fmt: skip
    await make_followup(customer, team.alice, "Intro call", ago(50))
    await make_task(team.alice, "Send brochure", ago(40), RecordType.CONTACT, contact.id,
                    customer.id)  # fmt: skip
    await make_followup(contact, team.boss, "Met Wang\nat the fair", ago(30))
    approval = await ApprovalRecord.create(
        contract=contract, step=1, decision=ApprovalDecision.APPROVED, actor=team.boss,
        comment="Fine",
    )  # fmt: skip
    await ApprovalRecord.filter(id=approval.id).update(at=ago(20))
    await make_log(team.alice, "UPDATE", RecordType.CONTACT, contact.id, customer.id, ago(10),
                   "Update contact Wang Wei")  # fmt: skip
    await make_followup(other, team.alice, "Not this customer", ago(5))

    page = await timeline(gql, team.alice, gid(RecordType.CUSTOMER, customer.id))
    assert summaries(page) == [
        "Update contact Wang Wei",
        "Approved (step 1): Fine",
        "Phone call: Met Wang",
        "Task: Send brochure",
        "Phone call: Intro call",
        "Created customer Acme Trading",
    ]
    assert page["totalCount"] == 6
    nodes = [edge["node"] for edge in page["edges"]]
    assert [n["kind"] for n in nodes] == [
        "OPERATION", "APPROVAL", "FOLLOW_UP", "TASK", "FOLLOW_UP", "OPERATION",
    ]  # fmt: skip
    assert nodes[1]["approval"] == {"decision": "APPROVED", "step": 1, "comment": "Fine"}
    assert nodes[1]["recordId"] == gid(RecordType.CONTRACT, contract.id)
    assert nodes[2]["followUp"]["content"] == "Met Wang\nat the fair"
    assert nodes[2]["actor"] == {"username": "boss"}
    assert nodes[2]["recordType"] == "CONTACT"
    assert nodes[3]["task"]["title"] == "Send brochure"
    assert nodes[0]["operation"] == {"action": "UPDATE"}
    assert datetime.fromisoformat(nodes[0]["at"]) == ago(10)

    # the contact's own timeline holds only its entries
    own = await timeline(gql, team.alice, gid(RecordType.CONTACT, contact.id))
    assert summaries(own) == [
        "Update contact Wang Wei", "Phone call: Met Wang", "Task: Send brochure",
    ]  # fmt: skip
    # and the contract's its approvals
    deal = await timeline(gql, team.alice, gid(RecordType.CONTRACT, contract.id))
    assert summaries(deal) == ["Approved (step 1): Fine"]


async def test_customer_type_has_its_timeline(gql, team):
    customer = await make_customer(team.alice)
    await make_followup(customer, team.alice, "Intro call", ago(5))
    data = await gql.ok(CUSTOMER_TIMELINE, {"id": gid(RecordType.CUSTOMER, customer.id)},
                        as_user=team.alice)  # fmt: skip
    assert data["node"]["timeline"]["edges"] == [
        {"node": {"kind": "FOLLOW_UP", "summary": "Phone call: Intro call"}}
    ]


@pytest.mark.parametrize("kind", ["Lead", "Contact", "Opportunity", "Contract"])
async def test_every_record_type_has_its_timeline(gql, team, kind):
    customer = await make_customer(team.alice)
    record = {
        "Lead": lambda: Lead.create(company_name="Plum", owner=team.alice, created_by=team.alice),
        "Contact": lambda: Contact.create(customer=customer, name="Wang", created_by=team.alice),
        "Opportunity": lambda: make_opportunity(customer, team.alice),
        "Contract": lambda: make_contract(customer, team.alice),
    }[kind]
    target = await record()
    await make_followup(target, team.alice, f"About the {kind.lower()}", ago(1))
    query = f"""query($id: ID!) {{ node(id: $id) {{ ... on {kind} {{
        timeline {{ edges {{ node {{ summary }} }} }} }} }} }}"""
    data = await gql.ok(query, {"id": gid(KINDS[type(target)], target.id)}, as_user=team.alice)
    assert summaries(data["node"]["timeline"]) == [f"Phone call: About the {kind.lower()}"]


async def test_a_follow_up_entered_shows_once(gql, team):
    customer = await make_customer(team.alice)
    await gql.ok(
        CREATE_FOLLOW_UP,
        {"input": {"targetId": gid(RecordType.CUSTOMER, customer.id), "method": "EMAIL",
                   "content": "Sent the offer",
                   "nextContactAt": (NOW + timedelta(days=2)).isoformat()}},
        as_user=team.alice,
    )  # fmt: skip
    page = await timeline(gql, team.alice, gid(RecordType.CUSTOMER, customer.id))
    # the follow-up and the task it scheduled; their log entries stay in the operation log
    assert sorted(edge["node"]["kind"] for edge in page["edges"]) == ["FOLLOW_UP", "TASK"]
    log = await gql.ok(LOG, {"filter": {"recordId": gid(RecordType.CUSTOMER, customer.id)}},
                       as_user=team.alice)  # fmt: skip
    assert sorted(e["node"]["action"] for e in log["operationLog"]["edges"]) == [
        "FOLLOW_UP", "TASK_CREATE",
    ]  # fmt: skip


async def test_lead_timeline(gql, team):
    lead = await Lead.create(company_name="Plum Ltd", owner=team.alice, created_by=team.alice)
    await make_followup(lead, team.alice, "Cold call", ago(3))
    await make_log(team.alice, "CREATE", RecordType.LEAD, lead.id, None, ago(9), "Created lead")
    page = await timeline(gql, team.alice, gid(RecordType.LEAD, lead.id))
    assert summaries(page) == ["Phone call: Cold call", "Created lead"]


# ---------------------------------------------------------------------------
# who sees a timeline


async def test_timeline_of_a_record_out_of_sight_is_not_found(gql, team):
    customer = await make_customer(team.alice)
    await make_followup(customer, team.alice, "Secret", ago(1))
    for record_id in (
        gid(RecordType.CUSTOMER, customer.id),
        gid(RecordType.CUSTOMER, 999),
        to_global_id("User", team.alice.id),
        "garbage",
    ):
        result = await gql(TIMELINE, {"id": record_id}, as_user=team.carol)
        assert result.codes == ["NOT_FOUND"], record_id


async def test_customer_timeline_leaves_out_what_sits_under_hidden_records(gql, team):
    # Bob owns an opportunity and a contract of Alice's customer; Alice cannot see them.
    customer = await make_customer(team.alice)
    opportunity = await make_opportunity(customer, team.bob)
    contract = await make_contract(customer, team.bob)
    await make_followup(customer, team.alice, "Alice's call", ago(9))
    await make_followup(opportunity, team.bob, "Bob's secret pricing", ago(8))
    await make_task(team.bob, "Bob's task", ago(7), RecordType.OPPORTUNITY, opportunity.id,
                    customer.id)  # fmt: skip
    await make_log(team.bob, "UPDATE", RecordType.CONTRACT, contract.id, customer.id, ago(6),
                   "Contract discount 40%")  # fmt: skip
    await ApprovalRecord.create(contract=contract, decision=ApprovalDecision.SUBMITTED,
                                actor=team.bob)  # fmt: skip

    alice = await timeline(gql, team.alice, gid(RecordType.CUSTOMER, customer.id))
    assert summaries(alice) == ["Phone call: Alice's call"]
    assert alice["totalCount"] == 1
    boss = await timeline(gql, team.boss, gid(RecordType.CUSTOMER, customer.id))
    assert len(boss["edges"]) == 5


# ---------------------------------------------------------------------------
# paging


async def test_keyset_paging_walks_every_entry_once_even_at_one_instant(gql, team):
    customer = await make_customer(team.alice)
    same = ago(30)
    for n in range(3):
        await make_followup(customer, team.alice, f"call {n}", same)
        await make_task(team.alice, f"task {n}", same, RecordType.CUSTOMER, customer.id,
                        customer.id)  # fmt: skip
        await make_log(team.alice, "UPDATE", RecordType.CUSTOMER, customer.id, customer.id, same,
                       f"edit {n}")  # fmt: skip
    for n in range(4):
        await make_followup(customer, team.alice, f"later {n}", ago(10 - n))
    record = gid(RecordType.CUSTOMER, customer.id)
    everything = summaries(await timeline(gql, team.alice, record, first=100))
    assert len(everything) == 13

    walked, after = [], None
    while True:
        page = await timeline(gql, team.alice, record, first=4, after=after)
        walked += summaries(page)
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert walked == everything
    # at the shared instant: operations, then tasks, then follow-ups, newest id first
    assert walked[4:] == [
        "edit 2", "edit 1", "edit 0", "Task: task 2", "Task: task 1", "Task: task 0",
        "Phone call: call 2", "Phone call: call 1", "Phone call: call 0",
    ]  # fmt: skip

    backwards, before = [], None
    while True:
        page = await timeline(gql, team.alice, record, last=5, before=before)
        backwards = summaries(page) + backwards
        if not page["pageInfo"]["hasPreviousPage"]:
            break
        before = page["pageInfo"]["startCursor"]
    assert backwards == everything


async def test_bad_paging_arguments(gql, team):
    customer = await make_customer(team.alice)
    record = gid(RecordType.CUSTOMER, customer.id)
    for variables, field in [
        ({"after": "not-a-cursor"}, "after"),
        ({"before": "W1siYSJdXQ=="}, "before"),
        ({"first": 101}, "first"),
        ({"first": 1, "last": 1}, "last"),
    ]:
        result = await gql(TIMELINE, {"id": record, **variables}, as_user=team.alice)
        assert result.codes == ["BAD_USER_INPUT"], variables
        assert result.error["extensions"]["field"] == field


async def test_a_page_costs_the_same_for_few_or_many_entries(gql, team, statements):
    async def fill(customer: Customer, n: int) -> None:
        contact = await Contact.create(customer=customer, name="C", created_by_id=team.alice.id)
        for i in range(n):
            author = (team.alice, team.bob, team.boss)[i % 3]
            await make_followup(contact if i % 2 else customer, author, f"call {i}", ago(i))
            await make_task(author, f"task {i}", ago(i), RecordType.CUSTOMER, customer.id,
                            customer.id)  # fmt: skip
            await make_log(author, "UPDATE", RecordType.CUSTOMER, customer.id, customer.id,
                           ago(i))  # fmt: skip

    small, large = (
        await make_customer(team.alice, "Small"),
        await make_customer(team.alice, "Large"),
    )
    await fill(small, 3)
    await fill(large, 40)

    async def cost(customer: Customer, first: int) -> int:
        statements.count = 0
        page = await timeline(gql, team.alice, gid(RecordType.CUSTOMER, customer.id), first=first)
        assert len(page["edges"]) == min(first, 9 if customer is small else 120)
        return statements.count

    assert await cost(small, 9) == await cost(large, 50)


# ---------------------------------------------------------------------------
# the operation log


async def test_operation_log_shows_entries_of_visible_records_only(gql, team):
    mine = await make_customer(team.alice)
    theirs = await make_customer(team.carol, "Carol Co")
    await make_log(team.alice, "CREATE", RecordType.CUSTOMER, mine.id, mine.id, ago(5), "mine")
    await make_log(team.carol, "CREATE", RecordType.CUSTOMER, theirs.id, theirs.id, ago(4),
                   "theirs")  # fmt: skip

    alice = (await gql.ok(LOG, {}, as_user=team.alice))["operationLog"]
    assert [e["node"]["summary"] for e in alice["edges"]] == ["mine"]
    boss = (await gql.ok(LOG, {}, as_user=team.boss))["operationLog"]
    assert [e["node"]["summary"] for e in boss["edges"]] == ["mine"]
    result = await gql(LOG, {"filter": {"recordId": gid(RecordType.CUSTOMER, theirs.id)}},
                       as_user=team.alice)  # fmt: skip
    assert result.codes == ["NOT_FOUND"]
    result = await gql(LOG, {"filter": {"recordId": to_global_id("User", 1)}}, as_user=team.alice)
    assert result.codes == ["BAD_USER_INPUT"]


async def test_the_whole_log_deleted_records_included_is_for_admins(gql, team):
    customer = await make_customer(team.alice)
    await make_log(team.alice, "CREATE", RecordType.CUSTOMER, customer.id, customer.id, ago(5),
                   "created")  # fmt: skip
    await make_log(team.alice, "DELETE", RecordType.LEAD, 4242, None, ago(4), "deleted a lead")

    admin = (await gql.ok(LOG, {}, as_user=team.admin))["operationLog"]
    assert [e["node"]["summary"] for e in admin["edges"]] == ["deleted a lead", "created"]
    by_record = await gql.ok(LOG, {"filter": {"recordId": gid(RecordType.LEAD, 4242)}},
                             as_user=team.admin)  # fmt: skip
    assert by_record["operationLog"]["totalCount"] == 1
    # seeing every record (ALL scope) is not the same as administering the log
    finance = (await gql.ok(LOG, {}, as_user=team.finance))["operationLog"]
    assert [e["node"]["summary"] for e in finance["edges"]] == ["created"]
    result = await gql(LOG, {"filter": {"recordId": gid(RecordType.LEAD, 4242)}},
                       as_user=team.finance)  # fmt: skip
    assert result.codes == ["NOT_FOUND"]


async def test_operation_log_entry_shape_and_filters(gql, team):
    customer = await make_customer(team.alice)
    await make_log(
        team.alice, "UPDATE", RecordType.CUSTOMER, customer.id, customer.id, ago(50),
        "Renamed", changes={"name": ["Acme", "Acme Trading"], "last_followup_at": [None, "x"],
                            "tags": [[], ["vip"]]},
    )  # fmt: skip
    await make_log(team.boss, "TRANSFER", RecordType.CUSTOMER, customer.id, customer.id, ago(20),
                   "Transferred")  # fmt: skip

    data = (await gql.ok(LOG, {}, as_user=team.boss))["operationLog"]
    renamed = data["edges"][1]["node"]  # newest first
    assert renamed["action"] == "UPDATE"
    assert renamed["recordType"] == "CUSTOMER"
    assert renamed["recordId"] == gid(RecordType.CUSTOMER, customer.id)
    assert renamed["actor"] == {"username": "alice"}
    assert renamed["changes"] == [
        {"field": "lastFollowUpAt", "oldValue": None, "newValue": "x"},
        {"field": "name", "oldValue": "Acme", "newValue": "Acme Trading"},
        {"field": "tags", "oldValue": [], "newValue": ["vip"]},
    ]

    async def find(**where) -> list[str]:
        found = await gql.ok(LOG, {"filter": where}, as_user=team.boss)
        return [e["node"]["summary"] for e in found["operationLog"]["edges"]]

    assert await find(actorId=to_global_id("User", team.boss.id)) == ["Transferred"]
    assert await find(action="transfer") == ["Transferred"]
    assert await find(**{"from": ago(30).isoformat()}) == ["Transferred"]
    assert await find(to=ago(30).isoformat()) == ["Renamed"]

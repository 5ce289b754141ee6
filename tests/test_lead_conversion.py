"""Converting a lead (线索转化): customer + contact (+ opportunity) in one transaction,
under the first-in-owns rule; all or nothing; exactly once under concurrency."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from meihua.models import (
    Contact,
    Customer,
    DecisionRole,
    Event,
    Lead,
    LeadStatus,
    OperationLog,
    Opportunity,
    OpportunityStage,
    OpportunityStageChange,
    OpportunityStatus,
    RecordType,
    User,
)
from meihua.resolvers.customers import normalize_name, normalize_phone
from meihua.schema.relay import from_global_id, to_global_id

CONVERT = """
mutation($id: ID!, $input: ConvertLeadInput) {
  convertLead(id: $id, input: $input) {
    id status version convertedAt convertedContactId convertedOpportunityId
    convertedCustomer { id name phone industry region source level owner { username } }
  }
}
"""
LEAD = """
query($id: ID!) {
  node(id: $id) { ... on Lead { status convertedCustomer { id name } convertedContactId } }
}
"""


@dataclass
class Team:
    alice: User  # Sales Rep (SELF) in Sales: may convert
    bob: User  # Sales Rep (SELF) in Sales
    carol: User  # Sales Rep (SELF) in Support
    boss: User  # Sales Manager (DEPARTMENT_TREE) in Sales
    finance: User  # Finance (ALL): sees every lead, converts none
    lead: Lead  # Alice's


@pytest.fixture
async def team(org) -> Team:
    sales = await org.department("Sales")
    support = await org.department("Support")
    rep = await org.default_role("Sales Rep")
    alice = await org.user("alice", department=sales, roles=[rep], name="Alice Wang")
    return Team(
        alice=alice,
        bob=await org.user("bob", department=sales, roles=[rep], name="Bob Li"),
        carol=await org.user("carol", department=support, roles=[rep], name="Carol Zhao"),
        boss=await org.user(
            "boss", department=sales, roles=[await org.default_role("Sales Manager")]
        ),
        finance=await org.user("fin", roles=[await org.default_role("Finance")]),
        lead=await lead(alice, "Acme Trading"),
    )


async def lead(owner: User, company: str, **fields) -> Lead:
    fields.setdefault("contact_name", "Zhang San")
    fields.setdefault("phone", "+86 138-0013-8000")
    return await Lead.create(
        company_name=company,
        email="zhang@acme.cn",
        source="展会",
        industry="Retail",
        region="East",
        owner_id=owner.id,
        created_by_id=owner.id,
        phone_key=normalize_phone(fields["phone"]),
        **fields,
    )


async def customer(owner: User, name: str, phone: str | None = None) -> Customer:
    return await Customer.create(
        name=name, name_key=normalize_name(name), phone=phone, phone_key=normalize_phone(phone),
        owner_id=owner.id, created_by_id=owner.id,
    )  # fmt: skip


def gid(row: Lead) -> str:
    return to_global_id("Lead", row.id)


def key(global_id: str, kind: str) -> int:
    found, value = from_global_id(global_id)
    assert found == kind
    return value


async def world() -> dict:
    """Everything a conversion writes."""
    leads = (
        await Lead.all()
        .order_by("id")
        .values_list("id", "status", "version", "converted_customer_id", "converted_at")
    )
    counts = {
        model.__name__: await model.all().count()
        for model in (Customer, Contact, Opportunity, OpportunityStageChange, OperationLog, Event)
    }
    return {"leads": leads, **counts}


async def convert(gql, user: User, target: Lead, **input) -> dict:
    data = await gql.ok(CONVERT, {"id": gid(target), "input": input}, as_user=user)
    return data["convertLead"]


# ---------------------------------------------------------------------------
# the happy path


async def test_conversion_fills_everything_from_the_lead(gql, team):
    converted = await convert(gql, team.alice, team.lead)

    assert (converted["status"], converted["version"]) == ("CONVERTED", 2)
    assert converted["convertedAt"] is not None
    assert converted["convertedOpportunityId"] is None
    made = converted["convertedCustomer"]
    assert {k: made[k] for k in ("name", "phone", "industry", "region", "source")} == {
        "name": "Acme Trading", "phone": "+86 138-0013-8000", "industry": "Retail",
        "region": "East", "source": "展会",
    }  # fmt: skip
    assert made["owner"] == {"username": "alice"}
    row = await Customer.get(id=key(made["id"], "Customer"))
    assert (row.name_key, row.phone_key) == ("acme trading", "13800138000")

    contact = await Contact.get(id=key(converted["convertedContactId"], "Contact"))
    assert (contact.customer_id, contact.name, contact.phone, contact.email) == (
        row.id, "Zhang San", "+86 138-0013-8000", "zhang@acme.cn",
    )  # fmt: skip
    assert contact.is_primary
    assert await Opportunity.all().count() == 0

    stored = await Lead.get(id=team.lead.id)
    assert (stored.converted_customer_id, stored.converted_contact_id) == (row.id, contact.id)
    assert stored.owner_id == team.alice.id  # the lead stays with its owner, as history


async def test_conversion_with_overrides_and_an_opportunity(gql, team):
    stage = await OpportunityStage.all().order_by("-order").first()
    converted = await convert(
        gql,
        team.alice,
        team.lead,
        customer={"name": "Acme Trading Group", "phone": "", "level": "A", "region": "North"},
        contact={
            "name": "Li Si", "title": "CTO", "decisionRole": "TECHNICAL_GATEKEEPER",
            "phone": "13900000000", "email": "",
        },
        opportunity={"name": "ERP rollout", "amount": "125000.50",
                     "stageId": to_global_id("OpportunityStage", stage.id)},
    )  # fmt: skip
    made = converted["convertedCustomer"]
    assert (made["name"], made["phone"], made["level"], made["region"], made["industry"]) == (
        "Acme Trading Group", None, "A", "North", "Retail",
    )  # fmt: skip
    contact = await Contact.get(id=key(converted["convertedContactId"], "Contact"))
    assert (contact.name, contact.title, contact.decision_role) == (
        "Li Si", "CTO", DecisionRole.TECHNICAL_GATEKEEPER,
    )  # fmt: skip
    assert (contact.phone, contact.email) == ("13900000000", None)
    opportunity = await Opportunity.get(id=key(converted["convertedOpportunityId"], "Opportunity"))
    assert str(opportunity.amount) == "125000.50"
    assert (opportunity.name, opportunity.stage_id, opportunity.status) == (
        "ERP rollout", stage.id, OpportunityStatus.OPEN,
    )  # fmt: skip
    assert (opportunity.customer_id, opportunity.owner_id) == (contact.customer_id, team.alice.id)


async def test_an_opportunity_starts_at_the_first_stage_with_its_history(gql, team):
    first = await OpportunityStage.all().order_by("order").first()
    converted = await convert(
        gql, team.alice, team.lead, opportunity={"name": "Pilot", "amount": "9800"}
    )
    opportunity = await Opportunity.get(id=key(converted["convertedOpportunityId"], "Opportunity"))
    assert opportunity.stage_id == first.id
    assert str(opportunity.amount) == "9800.00"
    change = await OpportunityStageChange.get(opportunity_id=opportunity.id)
    assert (change.from_stage_id, change.to_stage_id, change.actor_id) == (
        None, first.id, team.alice.id,
    )  # fmt: skip
    event = await Event.get(kind="opportunity.stage_changed", record_id=opportunity.id)
    assert event.payload["toStageId"] == first.id


async def test_the_conversion_is_in_the_history_of_the_lead_and_the_customer(gql, team):
    converted = await convert(gql, team.alice, team.lead)
    customer_id = key(converted["convertedCustomer"]["id"], "Customer")
    contact_id = key(converted["convertedContactId"], "Contact")

    on_lead = await OperationLog.get(record_type=RecordType.LEAD, record_id=team.lead.id)
    assert (on_lead.action, on_lead.actor_id) == ("CONVERT", team.alice.id)
    assert on_lead.changes == {
        "status": ["NEW", "CONVERTED"],
        "converted_customer_id": [None, customer_id],
        "converted_contact_id": [None, contact_id],
    }
    on_customer = await OperationLog.filter(
        record_type=RecordType.CUSTOMER, record_id=customer_id
    ).values_list("action", flat=True)
    assert sorted(on_customer) == ["CONVERT", "CREATE"]
    assert await OperationLog.filter(record_type=RecordType.CONTACT, action="CREATE").count() == 1
    event = await Event.get(kind="lead.converted")
    assert (event.record_id, event.customer_id) == (team.lead.id, customer_id)
    assert event.payload["contactId"] == contact_id


async def test_a_manager_converts_a_lead_of_their_scope(gql, team):
    converted = await convert(gql, team.boss, team.lead)
    # whoever enters the customer first owns it
    assert converted["convertedCustomer"]["owner"] == {"username": "boss"}


async def test_the_converted_customer_shows_only_while_the_caller_may_see_it(gql, team):
    converted = await convert(gql, team.alice, team.lead)
    customer_id = key(converted["convertedCustomer"]["id"], "Customer")
    await Customer.filter(id=customer_id).update(owner_id=team.carol.id)

    data = await gql.ok(LEAD, {"id": gid(team.lead)}, as_user=team.alice)
    assert data["node"]["status"] == "CONVERTED"
    assert data["node"]["convertedCustomer"] is None
    data = await gql.ok(LEAD, {"id": gid(team.lead)}, as_user=team.boss)
    assert data["node"]["convertedCustomer"] is None  # Carol is outside his tree too


# ---------------------------------------------------------------------------
# first in owns


@pytest.mark.parametrize("field", ["name", "phone"])
async def test_a_duplicate_customer_writes_nothing_at_all(gql, team, field):
    if field == "name":
        await customer(team.bob, " ACME  trading ")
    else:
        await customer(team.bob, "Someone Else", phone="13800138000")
    before = await world()

    result = await gql(
        CONVERT,
        {"id": gid(team.lead), "input": {"opportunity": {"name": "Deal", "amount": "1"}}},
        as_user=team.alice,
    )
    assert result.codes == ["DUPLICATE"]
    extensions = result.error["extensions"]
    assert extensions["field"] == f"customer.{field}"
    assert "ownerName" not in extensions  # Bob's customer; Alice only sees her own
    assert "Bob" not in result.error["message"]
    assert await world() == before


async def test_a_duplicate_names_the_owner_to_those_who_may_see_them(gql, team):
    await customer(team.bob, "Acme Trading")
    before = await world()
    result = await gql(CONVERT, {"id": gid(team.lead)}, as_user=team.boss)
    assert result.codes == ["DUPLICATE"]
    assert result.error["extensions"]["ownerName"] == "Bob Li"
    assert await world() == before


async def test_converting_under_another_name_avoids_the_duplicate(gql, team):
    await customer(team.bob, "Acme Trading")
    converted = await convert(
        gql, team.alice, team.lead, customer={"name": "Acme Trading Shanghai", "phone": ""}
    )
    assert converted["convertedCustomer"]["name"] == "Acme Trading Shanghai"


# ---------------------------------------------------------------------------
# only once


@pytest.mark.parametrize("status", [LeadStatus.CONVERTED, LeadStatus.INVALID])
async def test_a_converted_or_invalid_lead_cannot_be_converted(gql, team, status):
    await Lead.filter(id=team.lead.id).update(status=status)
    before = await world()
    result = await gql(CONVERT, {"id": gid(team.lead)}, as_user=team.alice)
    assert result.codes == ["CONFLICT"]
    assert await world() == before


async def test_converting_twice_is_a_conflict(gql, team):
    await convert(gql, team.alice, team.lead)
    before = await world()
    result = await gql(CONVERT, {"id": gid(team.lead), "input": {
        "customer": {"name": "Another Name", "phone": ""}}}, as_user=team.alice)  # fmt: skip
    assert result.codes == ["CONFLICT"]
    assert await world() == before


async def test_two_conversions_of_one_lead_at_once_create_one_customer(gql, team):
    results = await asyncio.gather(
        *(
            gql(
                CONVERT,
                # different names, so only the claim on the lead can stop the second
                {"id": gid(team.lead), "input": {"customer": {"name": f"Acme {i}", "phone": ""}}},
                as_user=user,
            )
            for i, user in enumerate((team.alice, team.boss, team.alice))
        )
    )
    assert sorted(r.codes for r in results) == [[], ["CONFLICT"], ["CONFLICT"]], [
        r.errors for r in results
    ]
    assert await Customer.all().count() == 1
    assert await Contact.all().count() == 1
    winner = next(r for r in results if not r.errors).data["convertLead"]
    stored = await Lead.get(id=team.lead.id)
    assert stored.converted_customer_id == key(winner["convertedCustomer"]["id"], "Customer")
    assert stored.version == 2
    assert await OperationLog.filter(action="CONVERT", record_type=RecordType.LEAD).count() == 1


async def test_two_leads_of_one_company_converted_at_once_make_one_customer(gql, team):
    twin = await lead(team.bob, "ACME TRADING", phone="13900000000")
    await Lead.filter(id=team.lead.id).update(phone="13800000000", phone_key="13800000000")
    results = await asyncio.gather(
        gql(CONVERT, {"id": gid(team.lead)}, as_user=team.alice),
        gql(CONVERT, {"id": gid(twin)}, as_user=team.bob),
    )
    assert sorted(r.codes for r in results) == [[], ["DUPLICATE"]], [r.errors for r in results]
    assert await Customer.all().count() == 1
    assert await Contact.all().count() == 1
    loser = team.lead if results[0].errors else twin
    assert next(r for r in results if r.errors).error["extensions"]["field"] == "customer.name"
    stored = await Lead.get(id=loser.id)
    assert (stored.status, stored.version, stored.converted_customer_id) == (
        LeadStatus.NEW, 1, None,
    )  # fmt: skip


# ---------------------------------------------------------------------------
# scope, permissions, input


async def test_a_lead_out_of_scope_cannot_be_converted(gql, team):
    before = await world()
    for outsider in (team.bob, team.carol):
        result = await gql(CONVERT, {"id": gid(team.lead)}, as_user=outsider)
        assert result.codes == ["NOT_FOUND"]
    assert await world() == before


@pytest.mark.parametrize(
    ("permissions", "with_opportunity"),
    [
        (["customer:create", "contact:create", "opportunity:create"], True),  # no lead:convert
        (["lead:convert", "contact:create"], False),  # no customer:create
        (["lead:convert", "customer:create"], False),  # no contact:create
        (["lead:convert", "customer:create", "contact:create"], True),  # no opportunity:create
    ],
)
async def test_converting_needs_the_rights_to_create_what_it_creates(
    gql, org, team, permissions, with_opportunity
):
    role = await org.role("Limited", "ALL", permissions)
    limited = await org.user("limited", roles=[role])
    before = await world()
    variables = {"id": gid(team.lead), "input": {}}
    if with_opportunity:
        variables["input"]["opportunity"] = {"name": "Deal", "amount": "10"}
    result = await gql(CONVERT, variables, as_user=limited)
    assert result.codes == ["FORBIDDEN"]
    result = await gql(CONVERT, {"id": gid(team.lead)}, as_user=team.finance)
    assert result.codes == ["FORBIDDEN"]
    assert await world() == before


@pytest.mark.parametrize(
    ("input", "field"),
    [
        ({"customer": {"name": "  "}}, "customer.name"),
        ({"customer": {"level": "A" * 21}}, "customer.level"),
        ({"contact": {"name": ""}}, "contact.name"),
        ({"contact": {"email": "nope"}}, "contact.email"),
        ({"contact": {"title": "t" * 101}}, "contact.title"),
        ({"opportunity": {"name": "Deal", "amount": "-1"}}, "opportunity.amount"),
        ({"opportunity": {"name": "Deal", "amount": "1.005"}}, "opportunity.amount"),
        ({"opportunity": {"name": "Deal", "amount": "NaN"}}, "opportunity.amount"),
        ({"opportunity": {"name": "Deal", "amount": "1e14"}}, "opportunity.amount"),
        ({"opportunity": {"name": " ", "amount": "1"}}, "opportunity.name"),
        (
            {"opportunity": {"name": "Deal", "amount": "1",
                             "stageId": to_global_id("OpportunityStage", 999)}},
            "opportunity.stageId",
        ),
        (
            {"opportunity": {"name": "Deal", "amount": "1",
                             "stageId": to_global_id("Customer", 1)}},
            "opportunity.stageId",
        ),
    ],
)  # fmt: skip
async def test_bad_input_writes_nothing(gql, team, input, field):
    before = await world()
    result = await gql(CONVERT, {"id": gid(team.lead), "input": input}, as_user=team.alice)
    assert result.codes == ["BAD_USER_INPUT"], result.errors
    assert result.error["extensions"]["field"] == field
    assert await world() == before


async def test_a_lead_without_a_contact_name_needs_one_given(gql, team):
    nameless = await lead(team.alice, "Nameless Co", contact_name=None, phone="13700000000")
    before = await world()
    result = await gql(CONVERT, {"id": gid(nameless)}, as_user=team.alice)
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.error["extensions"]["field"] == "contact.name"
    assert await world() == before
    converted = await convert(gql, team.alice, nameless, contact={"name": "Wang Wu"})
    contact = await Contact.get(id=key(converted["convertedContactId"], "Contact"))
    assert contact.name == "Wang Wu"

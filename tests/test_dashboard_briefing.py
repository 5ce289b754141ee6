"""销售简报: new records, contracts and payments in the period beside the period before.

The fixture company works in Asia/Shanghai (UTC+8): November 2026 runs from
2026-10-31T16:00Z to 2026-11-30T16:00Z and is compared with October. Rows sit
on both sides of those edges; the expected figures are counted by hand.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from meihua.models import (
    Contact,
    Contract,
    ContractStatus,
    Customer,
    FollowUp,
    FollowUpMethod,
    Lead,
    Opportunity,
    OpportunityStage,
    Payment,
    RecordType,
    User,
)
from meihua.schema.relay import to_global_id
from tests.conftest import SalesTeam

NOVEMBER = {"from": "2026-11-01", "to": "2026-11-30"}
BRIEFING = """
query($f: DashboardFilter) { dashboard(filter: $f) { briefing {
  newLeads { ...count } newCustomers { ...count } newContacts { ...count }
  newOpportunities { ...count } opportunityAmount { ...amount }
  newContracts { ...count } contractAmount { ...amount } paymentAmount { ...amount }
  followUps { ...count }
} } }
fragment count on BriefingCount { value previous change changeRate }
fragment amount on BriefingAmount { value previous change changeRate }
"""


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


async def build_company(org) -> SalesTeam:
    team = await org.sales_team()
    admin, mei, an, olga = team.admin, team.mei, team.an, team.olga

    async def created(model, at: datetime, **values):
        row = await model.create(created_by=admin, **values)
        await model.filter(id=row.id).update(created_at=at)
        return row

    for owner, at in [
        (an, utc(2026, 10, 31, 16, 30)),  # 11-01 00:30 local
        (an, utc(2026, 10, 31, 15, 59)),  # 10-31 23:59 local
        (mei, utc(2026, 11, 15, 2)),
        (olga, utc(2026, 11, 30, 15, 59)),  # 11-30 23:59 local
        (olga, utc(2026, 11, 30, 16)),  # 12-01 00:00 local
    ]:
        await created(Lead, at, company_name=f"Lead of {owner.username}", owner=owner)

    customers = {}
    for key, owner, at in [
        ("c1", an, utc(2026, 10, 31, 16, 30)),  # 11-01 local
        ("c2", an, utc(2026, 10, 15, 4)),  # 10-15 12:00 local
        ("c3", mei, utc(2026, 11, 16, 1)),
        ("c4", olga, utc(2026, 11, 29, 20)),  # 11-30 04:00 local
        ("c5", olga, utc(2026, 9, 30, 15)),  # 09-30 23:00 local
    ]:
        customers[key] = await created(Customer, at, name=key, name_key=key, owner=owner)
    c1, c2, c3, c4 = (customers[key] for key in ("c1", "c2", "c3", "c4"))

    for customer, at in [
        (c1, utc(2026, 11, 2)),
        (c4, utc(2026, 10, 31, 15)),  # 10-31 23:00 local
        (c3, utc(2026, 11, 20)),
    ]:
        await created(Contact, at, customer=customer, name=f"Contact at {customer.name}")

    stage = await OpportunityStage.first()
    for owner, customer, amount, at in [
        (an, c1, "1000.10", utc(2026, 11, 3)),
        (an, c2, "500.00", utc(2026, 10, 20)),
        (mei, c3, "2000.20", utc(2026, 11, 30, 15, 30)),  # 11-30 23:30 local
        (olga, c4, "300.30", utc(2026, 11, 5)),
    ]:
        await created(
            Opportunity,
            at,
            name="Deal",
            customer=customer,
            owner=owner,
            stage=stage,
            amount=Decimal(amount),
        )

    approved, draft, voided = (
        ContractStatus.APPROVED,
        ContractStatus.DRAFT,
        ContractStatus.VOIDED,
    )
    contracts = {}
    for number, owner, customer, total, status, signed_on in [
        ("K1", an, c1, "10000.00", approved, date(2026, 11, 1)),
        ("K2", an, c2, "3000.50", approved, date(2026, 10, 31)),
        ("K3", an, c1, "999.00", draft, date(2026, 11, 5)),
        ("K4", mei, c3, "5000.25", approved, date(2026, 11, 30)),
        ("K5", mei, c3, "700.00", approved, None),
        ("K6", olga, c4, "8000.00", approved, date(2026, 11, 10)),
        ("K7", olga, c4, "1200.00", voided, date(2026, 11, 11)),
        ("K8", an, c1, "100.00", approved, date(2026, 12, 1)),
    ]:
        contracts[number] = await Contract.create(
            number=number,
            title=number,
            customer=customer,
            owner=owner,
            created_by=admin,
            total=Decimal(total),
            status=status,
            signed_on=signed_on,
        )

    # Ten times 0.10 and ten times 0.20: 3.00 exactly, which binary floats miss.
    small = [("K1", "0.10", date(2026, 11, 2))] * 10 + [("K1", "0.20", date(2026, 11, 2))] * 10
    for number, amount, paid_on in small + [
        ("K1", "4000.00", date(2026, 11, 30)),
        ("K2", "1500.25", date(2026, 10, 31)),
        ("K2", "1000.00", date(2026, 11, 1)),
        ("K4", "2500.00", date(2026, 11, 16)),
        ("K6", "8000.00", date(2026, 12, 1)),
        ("K6", "600.00", date(2026, 11, 3)),
    ]:
        await Payment.create(
            contract=contracts[number], amount=Decimal(amount), paid_on=paid_on, created_by=admin
        )

    for author, at in [
        (an, utc(2026, 10, 31, 16)),  # 11-01 00:00 local
        (an, utc(2026, 10, 31, 15, 59, 59)),
        (mei, utc(2026, 11, 20, 6)),
        (olga, utc(2026, 11, 21)),
        (olga, utc(2026, 10, 10)),
    ]:
        await FollowUp.create(
            target_type=RecordType.CUSTOMER,
            target_id=c1.id,
            customer=c1,
            method=FollowUpMethod.PHONE,
            content="Called",
            occurred_at=at,
            author=author,
        )
    return team


def figure(value, previous, change, rate) -> dict:
    return {"value": value, "previous": previous, "change": change, "changeRate": rate}


async def briefing_of(gql, user: User, where: dict | None = None) -> dict:
    data = await gql.ok(BRIEFING, {"f": where or NOVEMBER}, as_user=user)
    return data["dashboard"]["briefing"]


async def test_an_admin_sees_everyone_with_the_month_before(gql, org):
    company = await build_company(org)
    assert await briefing_of(gql, company.admin) == {
        "newLeads": figure(3, 1, 2, 200.0),
        "newCustomers": figure(3, 1, 2, 200.0),
        "newContacts": figure(2, 1, 1, 100.0),
        "newOpportunities": figure(3, 1, 2, 200.0),
        "opportunityAmount": figure("3300.60", "500.00", "2800.60", 560.12),
        "newContracts": figure(3, 1, 2, 200.0),
        "contractAmount": figure("23000.25", "3000.50", "19999.75", 666.55),
        "paymentAmount": figure("8103.00", "1500.25", "6602.75", 440.11),
        "followUps": figure(3, 2, 1, 50.0),
    }


async def test_a_manager_sees_the_department_tree(gql, org):
    company = await build_company(org)
    assert await briefing_of(gql, company.mei) == {
        "newLeads": figure(2, 1, 1, 100.0),
        "newCustomers": figure(2, 1, 1, 100.0),
        "newContacts": figure(2, 0, 2, None),
        "newOpportunities": figure(2, 1, 1, 100.0),
        "opportunityAmount": figure("3000.30", "500.00", "2500.30", 500.06),
        "newContracts": figure(2, 1, 1, 100.0),
        "contractAmount": figure("15000.25", "3000.50", "11999.75", 399.93),
        "paymentAmount": figure("7503.00", "1500.25", "6002.75", 400.12),
        "followUps": figure(2, 1, 1, 100.0),
    }


async def test_a_rep_sees_only_their_own(gql, org):
    company = await build_company(org)
    assert await briefing_of(gql, company.an) == {
        "newLeads": figure(1, 1, 0, 0.0),
        "newCustomers": figure(1, 1, 0, 0.0),
        "newContacts": figure(1, 0, 1, None),
        "newOpportunities": figure(1, 1, 0, 0.0),
        "opportunityAmount": figure("1000.10", "500.00", "500.10", 100.02),
        "newContracts": figure(1, 1, 0, 0.0),
        "contractAmount": figure("10000.00", "3000.50", "6999.50", 233.28),
        "paymentAmount": figure("5003.00", "1500.25", "3502.75", 233.48),
        "followUps": figure(1, 1, 0, 0.0),
    }
    # Asking for someone else's figures narrows to nothing rather than showing them.
    others = await briefing_of(
        gql, company.an, {**NOVEMBER, "userIds": [to_global_id("User", company.olga.id)]}
    )
    assert others["contractAmount"] == figure("0.00", "0.00", "0.00", None)


async def test_a_custom_range_is_compared_with_as_many_days_before(gql, org):
    company = await build_company(org)
    # 11-01 .. 11-02 against 10-30 .. 10-31
    two_days = await briefing_of(gql, company.admin, {"from": "2026-11-01", "to": "2026-11-02"})
    assert two_days["contractAmount"] == figure("10000.00", "3000.50", "6999.50", 233.28)
    assert two_days["paymentAmount"] == figure("1003.00", "1500.25", "-497.25", -33.14)
    assert two_days["newLeads"] == figure(1, 1, 0, 0.0)
    assert two_days["followUps"] == figure(1, 1, 0, 0.0)


async def test_the_briefing_is_one_aggregate_per_table(gql, org, statements):
    company = await build_company(org)
    period_only = "query($f: DashboardFilter) { dashboard(filter: $f) { from } }"
    statements.count = 0
    await gql.ok(period_only, {"f": NOVEMBER}, as_user=company.mei)
    without = statements.count
    statements.count = 0
    await briefing_of(gql, company.mei)
    assert statements.count - without == 7

"""应收款 and the forecast's planned inflow, over a fixture company counted by hand.

Today is fixed at 2026-11-23 in company time (Asia/Shanghai). Only APPROVED
contracts owe; plans are judged by the payments booked against them, contracts
by all their payments.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from meihua.models import Contract, ContractStatus, Customer, Payment, PaymentPlan, User
from meihua.schema import dashboard_pipeline
from meihua.schema.relay import to_global_id
from tests.conftest import SalesTeam

NOVEMBER = {"from": "2026-11-01", "to": "2026-11-30"}
RECEIVABLES = """
query($f: DashboardFilter) { dashboard(filter: $f) { receivables {
  outstandingAmount contractCount
  customers { customer { name } contractCount outstandingAmount }
  contracts { contract { number } outstandingAmount }
  overdueAmount overdueCount
  overduePlans { plan { period contract { number } } daysOverdue outstandingAmount }
} } }
"""
PLANNED_INFLOW = """
query($f: DashboardFilter) { dashboard(filter: $f) {
  forecast(months: 3) { month plannedInflow }
} }
"""


@pytest.fixture(autouse=True)
def today(monkeypatch):
    monkeypatch.setattr(dashboard_pipeline, "company_today", lambda timezone: date(2026, 11, 23))


async def build_company(org) -> SalesTeam:
    team = await org.sales_team()
    admin, mei, an, olga = team.admin, team.mei, team.an, team.olga
    c1, c2, c3, c4 = [
        await Customer.create(name=name, name_key=name, owner=owner, created_by=admin)
        for name, owner in [("c1", an), ("c2", an), ("c3", mei), ("c4", olga)]
    ]

    approved = ContractStatus.APPROVED
    contracts = {}
    for number, owner, customer, total, status in [
        ("K1", an, c1, "10000.00", approved),
        ("K2", an, c2, "3000.50", approved),
        ("K3", an, c1, "999.00", ContractStatus.DRAFT),
        ("K4", mei, c3, "5000.25", approved),
        ("K5", olga, c4, "8000.00", approved),
        ("K6", olga, c4, "1200.00", ContractStatus.VOIDED),
        ("K7", olga, c4, "600.00", approved),
        ("K8", mei, c1, "100.00", approved),  # mei's contract with an's customer
    ]:
        contracts[number] = await Contract.create(
            number=number,
            title=number,
            customer=customer,
            owner=owner,
            created_by=admin,
            total=Decimal(total),
            status=status,
            signed_on=date(2026, 10, 1),
        )

    plans = {}
    for key, number, period, amount, planned_on in [
        ("P1", "K1", 1, "3000.00", date(2026, 11, 10)),  # paid in full
        ("P2", "K1", 2, "3000.00", date(2026, 11, 20)),  # 1000.00 paid: 2000.00 overdue
        ("P3", "K1", 3, "4000.00", date(2026, 12, 15)),
        ("P4", "K2", 1, "3000.50", date(2026, 10, 31)),  # overdue 23 days
        ("P5", "K3", 1, "999.00", date(2026, 11, 5)),  # draft contract: owes nothing
        ("P6", "K4", 1, "5000.25", date(2026, 11, 30)),  # not yet due
        ("P7", "K5", 1, "8000.00", date(2026, 11, 1)),  # paid in full
        ("P8", "K6", 1, "1200.00", date(2026, 11, 2)),  # voided contract: owes nothing
        ("P9", "K7", 1, "600.00", date(2026, 11, 22)),  # overdue since yesterday
        ("P10", "K8", 1, "100.00", date(2027, 1, 31)),
    ]:
        plans[key] = await PaymentPlan.create(
            contract=contracts[number],
            period=period,
            planned_amount=Decimal(amount),
            planned_on=planned_on,
        )

    # Ten times 0.10 and ten times 0.20 on K4: 3.00 exactly, which binary floats miss.
    small = [("K4", None, "0.10")] * 10 + [("K4", None, "0.20")] * 10
    for number, plan, amount in small + [
        ("K1", "P1", "3000.00"),
        ("K1", "P2", "1000.00"),
        ("K1", None, "500.00"),
        ("K5", "P7", "8000.00"),
    ]:
        await Payment.create(
            contract=contracts[number],
            plan=plans[plan] if plan else None,
            amount=Decimal(amount),
            paid_on=date(2026, 11, 10),
            created_by=admin,
        )
    return team


async def receivables_of(gql, user: User, where: dict | None = None) -> dict:
    data = await gql.ok(RECEIVABLES, {"f": where or NOVEMBER}, as_user=user)
    return data["dashboard"]["receivables"]


def customer(name, contracts, amount) -> dict:
    return {"customer": {"name": name}, "contractCount": contracts, "outstandingAmount": amount}


def contract(number, amount) -> dict:
    return {"contract": {"number": number}, "outstandingAmount": amount}


def overdue(number, period, days, amount) -> dict:
    return {
        "plan": {"period": period, "contract": {"number": number}},
        "daysOverdue": days,
        "outstandingAmount": amount,
    }


async def test_an_admin_sees_what_everyone_is_owed(gql, org):
    company = await build_company(org)
    assert await receivables_of(gql, company.admin) == {
        "outstandingAmount": "14197.75",
        "contractCount": 5,
        "customers": [
            customer("c1", 2, "5600.00"),
            customer("c3", 1, "4997.25"),
            customer("c2", 1, "3000.50"),
            customer("c4", 1, "600.00"),
        ],
        "contracts": [
            contract("K1", "5500.00"),
            contract("K4", "4997.25"),
            contract("K2", "3000.50"),
            contract("K7", "600.00"),
            contract("K8", "100.00"),
        ],
        "overdueAmount": "5600.50",
        "overdueCount": 3,
        "overduePlans": [
            overdue("K2", 1, 23, "3000.50"),
            overdue("K1", 2, 3, "2000.00"),
            overdue("K7", 1, 1, "600.00"),
        ],
    }


async def test_a_manager_sees_the_contracts_of_the_department_tree(gql, org):
    company = await build_company(org)
    assert await receivables_of(gql, company.mei) == {
        "outstandingAmount": "13597.75",
        "contractCount": 4,
        "customers": [
            customer("c1", 2, "5600.00"),
            customer("c3", 1, "4997.25"),
            customer("c2", 1, "3000.50"),
        ],
        "contracts": [
            contract("K1", "5500.00"),
            contract("K4", "4997.25"),
            contract("K2", "3000.50"),
            contract("K8", "100.00"),
        ],
        "overdueAmount": "5000.50",
        "overdueCount": 2,
        "overduePlans": [overdue("K2", 1, 23, "3000.50"), overdue("K1", 2, 3, "2000.00")],
    }


async def test_a_rep_sees_only_their_own_contracts(gql, org):
    company = await build_company(org)
    assert await receivables_of(gql, company.an) == {
        "outstandingAmount": "8500.50",
        "contractCount": 2,
        "customers": [customer("c1", 1, "5500.00"), customer("c2", 1, "3000.50")],
        "contracts": [contract("K1", "5500.00"), contract("K2", "3000.50")],
        "overdueAmount": "5000.50",
        "overdueCount": 2,
        "overduePlans": [overdue("K2", 1, 23, "3000.50"), overdue("K1", 2, 3, "2000.00")],
    }
    others = await receivables_of(
        gql, company.an, {**NOVEMBER, "userIds": [to_global_id("User", company.olga.id)]}
    )
    assert (others["outstandingAmount"], others["contracts"], others["overduePlans"]) == (
        "0.00",
        [],
        [],
    )


async def test_lists_are_capped(gql, org):
    company = await build_company(org)
    capped = """
    query($f: DashboardFilter, $n: Int!) { dashboard(filter: $f) { receivables {
      customers(first: $n) { outstandingAmount }
      contracts(first: $n) { contract { number } }
      overduePlans(first: $n) { daysOverdue }
    } } }
    """
    data = await gql.ok(capped, {"f": NOVEMBER, "n": 2}, as_user=company.admin)
    figures = data["dashboard"]["receivables"]
    assert figures["customers"] == [
        {"outstandingAmount": "5600.00"},
        {"outstandingAmount": "4997.25"},
    ]
    assert figures["contracts"] == [{"contract": {"number": "K1"}}, {"contract": {"number": "K4"}}]
    assert figures["overduePlans"] == [{"daysOverdue": 23}, {"daysOverdue": 3}]
    for n in (0, 101):
        result = await gql(capped, {"f": NOVEMBER, "n": n}, as_user=company.admin)
        assert {e["extensions"]["field"] for e in result.errors} == {"first"}
        assert set(result.codes) == {"BAD_USER_INPUT"}


async def planned_inflow(gql, user: User) -> list:
    data = await gql.ok(PLANNED_INFLOW, {"f": NOVEMBER}, as_user=user)
    return [(row["month"], row["plannedInflow"]) for row in data["dashboard"]["forecast"]]


async def test_planned_inflow_is_what_plans_still_await_by_month(gql, org):
    company = await build_company(org)
    # November: P2 2000.00 + P6 5000.25 + P9 600.00; P1 and P7 are covered, P4 is October's.
    assert await planned_inflow(gql, company.admin) == [
        ("2026-11-01", "7600.25"),
        ("2026-12-01", "4000.00"),
        ("2027-01-01", "100.00"),
    ]
    assert await planned_inflow(gql, company.an) == [
        ("2026-11-01", "2000.00"),
        ("2026-12-01", "4000.00"),
        ("2027-01-01", "0.00"),
    ]


async def test_each_balance_is_one_aggregate(gql, org, statements):
    company = await build_company(org)
    period_only = "query($f: DashboardFilter) { dashboard(filter: $f) { from } }"
    balances = """query($f: DashboardFilter) { dashboard(filter: $f) { receivables {
      outstandingAmount contractCount overdueAmount overdueCount
    } } }"""
    statements.count = 0
    await gql.ok(period_only, {"f": NOVEMBER}, as_user=company.mei)
    without = statements.count
    statements.count = 0
    figures = (await gql.ok(balances, {"f": NOVEMBER}, as_user=company.mei))["dashboard"]
    assert figures["receivables"]["contractCount"] > 0
    assert statements.count - without == 2

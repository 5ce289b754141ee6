"""销售排行: people ranked by a figure over the period, within what the viewer sees.

November 2026 in Asia/Shanghai (UTC+8) runs from 2026-10-31T16:00Z to
2026-11-30T16:00Z; rows sit on both sides of those edges. The expected
rankings are worked out by hand.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from meihua.models import (
    Contract,
    ContractStatus,
    Customer,
    FollowUp,
    FollowUpMethod,
    Payment,
    RecordType,
    User,
)
from tests.conftest import SalesTeam

NOVEMBER = {"from": "2026-11-01", "to": "2026-11-30"}
RANKING = """
query($f: DashboardFilter, $by: RankingMetric, $first: Int) {
  dashboard(filter: $f) { ranking(by: $by, first: $first) { rank value user { username } } }
}
"""
DEFAULT_RANKING = """
query($f: DashboardFilter) { dashboard(filter: $f) { ranking { rank value user { username } } } }
"""


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


async def build_company(org) -> SalesTeam:
    team = await org.sales_team()
    admin, mei, an, bo, olga = team.admin, team.mei, team.an, team.bo, team.olga

    customers = []
    for owner, at in [
        (an, utc(2026, 9, 1)),
        (an, utc(2026, 10, 31, 16, 30)),  # 11-01 00:30 local
        (an, utc(2026, 10, 31, 15, 59)),  # 10-31 23:59 local
        (olga, utc(2026, 11, 5)),
        (olga, utc(2026, 11, 29, 20)),  # 11-30 04:00 local
        (mei, utc(2026, 11, 30, 16)),  # 12-01 00:00 local
        (None, utc(2026, 11, 10)),  # in the pool: nobody's
    ]:
        customer = await Customer.create(
            name="C", name_key=f"c{len(customers)}", owner=owner, created_by=admin
        )
        await Customer.filter(id=customer.id).update(created_at=at)
        customers.append(customer)
    customer = customers[0]

    approved, draft = ContractStatus.APPROVED, ContractStatus.DRAFT
    contracts = {}
    for number, owner, total, status, signed_on in [
        ("K1", an, "10000.00", approved, date(2026, 11, 1)),
        ("K2", an, "3000.50", approved, date(2026, 10, 31)),
        ("K3", an, "999.00", draft, date(2026, 11, 5)),
        ("K4", bo, "6000.00", approved, date(2026, 11, 30)),
        ("K5", bo, "4000.00", approved, date(2026, 11, 15)),
        ("K6", mei, "5000.25", approved, date(2026, 11, 20)),
        ("K7", mei, "700.00", approved, None),
        ("K8", olga, "8000.00", approved, date(2026, 11, 10)),
        ("K9", olga, "500.00", approved, date(2026, 12, 1)),
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

    # Ten times 0.10 and ten times 0.20: 3.00 exactly.
    small = [("K1", "0.10", date(2026, 11, 2))] * 10 + [("K1", "0.20", date(2026, 11, 2))] * 10
    for number, amount, paid_on in small + [
        ("K4", "1500.00", date(2026, 11, 30)),
        ("K8", "2000.00", date(2026, 11, 1)),
        ("K8", "700.00", date(2026, 10, 31)),
    ]:
        await Payment.create(
            contract=contracts[number], amount=Decimal(amount), paid_on=paid_on, created_by=admin
        )

    for author, at in [
        (an, utc(2026, 10, 31, 16)),  # 11-01 00:00 local
        (an, utc(2026, 11, 15)),
        (bo, utc(2026, 11, 20)),
        (bo, utc(2026, 11, 21)),
        (mei, utc(2026, 11, 30, 16)),  # 12-01 00:00 local
        (olga, utc(2026, 11, 1)),
    ]:
        await FollowUp.create(
            target_type=RecordType.CUSTOMER,
            target_id=customer.id,
            customer=customer,
            method=FollowUpMethod.PHONE,
            content="Called",
            occurred_at=at,
            author=author,
        )
    return team


async def ranking_of(gql, user: User, by: str | None = None, first: int | None = None) -> list:
    if by is None and first is None:
        data = await gql.ok(DEFAULT_RANKING, {"f": NOVEMBER}, as_user=user)
    else:
        given = {"by": by, "first": first}
        variables = {"f": NOVEMBER} | {k: v for k, v in given.items() if v is not None}
        data = await gql.ok(RANKING, variables, as_user=user)
    return [
        (entry["rank"], entry["user"]["username"], entry["value"])
        for entry in data["dashboard"]["ranking"]
    ]


async def test_an_admin_ranks_everyone_by_contract_amount(gql, org):
    company = await build_company(org)
    # an and bo tie on 10000.00 and share first place, an (the lower id) listed first.
    assert await ranking_of(gql, company.admin) == [
        (1, "an", "10000.00"),
        (1, "bo", "10000.00"),
        (3, "olga", "8000.00"),
        (4, "mei", "5000.25"),
    ]
    assert await ranking_of(gql, company.admin, "CONTRACT_AMOUNT", first=2) == [
        (1, "an", "10000.00"),
        (1, "bo", "10000.00"),
    ]


async def test_the_other_figures(gql, org):
    company = await build_company(org)
    # mei received nothing in November and is left out.
    assert await ranking_of(gql, company.admin, "PAYMENT_AMOUNT") == [
        (1, "olga", "2000.00"),
        (2, "bo", "1500.00"),
        (3, "an", "3.00"),
    ]
    assert await ranking_of(gql, company.admin, "NEW_CUSTOMERS") == [
        (1, "olga", "2"),
        (2, "an", "1"),
    ]
    assert await ranking_of(gql, company.admin, "FOLLOW_UPS") == [
        (1, "an", "2"),
        (1, "bo", "2"),
        (3, "olga", "1"),
    ]


async def test_a_manager_ranks_their_tree_and_a_rep_only_themselves(gql, org):
    company = await build_company(org)
    assert await ranking_of(gql, company.mei) == [
        (1, "an", "10000.00"),
        (1, "bo", "10000.00"),
        (3, "mei", "5000.25"),
    ]
    assert await ranking_of(gql, company.bo, "PAYMENT_AMOUNT") == [(1, "bo", "1500.00")]
    assert await ranking_of(gql, company.mei, "NEW_CUSTOMERS") == [(1, "an", "1")]


async def test_first_is_bounded(gql, org):
    company = await build_company(org)
    for first in (0, 101):
        result = await gql(RANKING, {"f": NOVEMBER, "first": first}, as_user=company.admin)
        assert result.codes == ["BAD_USER_INPUT"]
        assert result.error["extensions"]["field"] == "first"


async def test_the_ranking_is_one_aggregate(gql, org, statements):
    company = await build_company(org)
    period_only = "query($f: DashboardFilter) { dashboard(filter: $f) { from } }"
    values_only = "query($f: DashboardFilter) { dashboard(filter: $f) { ranking { value } } }"
    statements.count = 0
    await gql.ok(period_only, {"f": NOVEMBER}, as_user=company.mei)
    without = statements.count
    statements.count = 0
    await gql.ok(values_only, {"f": NOVEMBER}, as_user=company.mei)
    assert statements.count - without == 1

"""销售漏斗 and the forecast's expected revenue, over a fixture company counted by hand.

The company works in Asia/Shanghai (UTC+8): November 2026 runs from
2026-10-31T16:00Z to 2026-11-30T16:00Z. Stages are the defaults: S1 10 %,
S2 30 %, S3 60 %, S4 80 %. Stage-history rows, closings and leads sit on both
sides of the period's edges.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from meihua.models import (
    Customer,
    Lead,
    LeadStatus,
    Opportunity,
    OpportunityStage,
    OpportunityStageChange,
    OpportunityStatus,
    User,
)
from meihua.schema.relay import to_global_id
from tests.conftest import SalesTeam

NOVEMBER = {"from": "2026-11-01", "to": "2026-11-30"}
FUNNEL = """
query($f: DashboardFilter) { dashboard(filter: $f) { funnel {
  stages { stage { order } openCount openAmount weightedAmount
           enteredCount advancedCount conversionRate }
  wonCount lostCount winRate averageDaysToWin leadsCreated leadsConverted leadConversionRate
} } }
"""
EXPECTED_REVENUE = """
query($f: DashboardFilter, $m: Int!) { dashboard(filter: $f) {
  forecast(months: $m) { month expectedRevenue }
} }
"""
OPEN, WON, LOST = OpportunityStatus.OPEN, OpportunityStatus.WON, OpportunityStatus.LOST


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


async def build_company(org) -> SalesTeam:
    team = await org.sales_team()
    admin, mei, an, olga = team.admin, team.mei, team.an, team.olga
    customer = await Customer.create(name="Acme", name_key="acme", owner=an, created_by=admin)
    s1, s2, s3, s4 = await OpportunityStage.all().order_by("order")

    async def opportunity(owner, amount, created, history, closed=None, expected=None):
        """An opportunity whose stage history is `history`: (at, stage, status) from creation on."""
        _, stage, status = history[-1]
        row = await Opportunity.create(
            name="Deal",
            customer=customer,
            owner=owner,
            created_by=admin,
            amount=Decimal(amount),
            stage=stage,
            status=status,
            closed_at=closed,
            expected_close_date=expected,
        )
        await Opportunity.filter(id=row.id).update(created_at=created)
        before = (None, None)
        for at, to_stage, to_status in history:
            change = await OpportunityStageChange.create(
                opportunity=row,
                from_stage=before[0],
                from_status=before[1],
                to_stage=to_stage,
                to_status=to_status,
            )
            await OpportunityStageChange.filter(id=change.id).update(at=at)
            before = (to_stage, to_status)

    # an: entered S1 just inside November (11-01 00:30 local), never moved.
    start = utc(2026, 10, 31, 16, 30)
    await opportunity(an, "1000.10", start, [(start, s1, OPEN)], expected=date(2026, 11, 15))
    # an: was at S3 in October, came back to S2 in November: that is no advance from S2.
    await opportunity(
        an,
        "500.05",
        utc(2026, 10, 20),
        [
            (utc(2026, 10, 20), s1, OPEN),
            (utc(2026, 10, 25), s3, OPEN),
            (utc(2026, 11, 3), s2, OPEN),
        ],
        expected=date(2027, 1, 1),
    )
    # an: S1 → S3 (skipping S2) → won after 10.5 days.
    await opportunity(
        an,
        "2000.00",
        utc(2026, 11, 2),
        [
            (utc(2026, 11, 2), s1, OPEN),
            (utc(2026, 11, 5), s3, OPEN),
            (utc(2026, 11, 12, 12), s3, WON),
        ],
        closed=utc(2026, 11, 12, 12),
        expected=date(2026, 11, 20),
    )
    # mei: lost at 11-01 00:10 local, so in November; all its moves were in October.
    await opportunity(
        mei,
        "800.00",
        utc(2026, 10, 1),
        [
            (utc(2026, 10, 1), s1, OPEN),
            (utc(2026, 10, 10), s2, OPEN),
            (utc(2026, 10, 31, 16, 10), s2, LOST),
        ],
        closed=utc(2026, 10, 31, 16, 10),
    )
    # mei: created at S2, moved on to S4.
    await opportunity(
        mei,
        "3333.33",
        utc(2026, 11, 5),
        [(utc(2026, 11, 5), s2, OPEN), (utc(2026, 11, 20), s4, OPEN)],
        expected=date(2026, 12, 1),
    )
    # mei: S1 → S2 → back to S1 → S3, won at 11-30 23:59 local.
    await opportunity(
        mei,
        "1000.00",
        utc(2026, 11, 10),
        [
            (utc(2026, 11, 10), s1, OPEN),
            (utc(2026, 11, 11), s2, OPEN),
            (utc(2026, 11, 12), s1, OPEN),
            (utc(2026, 11, 13), s3, OPEN),
            (utc(2026, 11, 30, 15, 59), s3, WON),
        ],
        closed=utc(2026, 11, 30, 15, 59),
    )
    # olga: created at 10-31 23:59 local (October); 0.05 × 10 % = 0.005 rounds up to 0.01.
    late = utc(2026, 10, 31, 15, 59)
    await opportunity(olga, "0.05", late, [(late, s1, OPEN)], expected=date(2026, 11, 30))
    # olga: entered S3 in November, won at 12-01 00:00 local: advanced, but not won in November.
    await opportunity(
        olga,
        "100.00",
        utc(2026, 11, 1),
        [(utc(2026, 11, 1), s3, OPEN), (utc(2026, 11, 30, 16), s3, WON)],
        closed=utc(2026, 11, 30, 16),
    )
    # olga: entered S1 in November and was lost there.
    await opportunity(
        olga,
        "50.00",
        utc(2026, 11, 3),
        [(utc(2026, 11, 3), s1, OPEN), (utc(2026, 11, 20), s1, LOST)],
        closed=utc(2026, 11, 20),
    )
    # olga: open at S2 since September, expected to close before the forecast starts.
    await opportunity(
        olga, "200.00", utc(2026, 9, 1), [(utc(2026, 9, 1), s2, OPEN)], expected=date(2026, 10, 31)
    )

    converted, new = LeadStatus.CONVERTED, LeadStatus.NEW
    for owner, at, status in [
        (an, utc(2026, 10, 31, 16, 30), converted),  # 11-01 00:30 local
        (an, utc(2026, 10, 31, 15, 59), converted),  # 10-31 23:59 local
        (an, utc(2026, 11, 10), new),
        (mei, utc(2026, 11, 15), converted),
        (olga, utc(2026, 11, 30, 15, 59), LeadStatus.FOLLOWING),  # 11-30 23:59 local
        (olga, utc(2026, 11, 30, 16), converted),  # 12-01 00:00 local
        (None, utc(2026, 11, 5), new),  # in the lead pool: nobody's
    ]:
        lead = await Lead.create(company_name="Lead", owner=owner, status=status, created_by=admin)
        await Lead.filter(id=lead.id).update(created_at=at)
    return team


def stage(order, count, amount, weighted, entered, advanced, rate) -> dict:
    return {
        "stage": {"order": order},
        "openCount": count,
        "openAmount": amount,
        "weightedAmount": weighted,
        "enteredCount": entered,
        "advancedCount": advanced,
        "conversionRate": rate,
    }


async def funnel_of(gql, user: User, where: dict | None = None) -> dict:
    data = await gql.ok(FUNNEL, {"f": where or NOVEMBER}, as_user=user)
    return data["dashboard"]["funnel"]


async def test_an_admin_sees_every_stage_of_everyone(gql, org):
    company = await build_company(org)
    assert await funnel_of(gql, company.admin) == {
        "stages": [
            stage(1, 2, "1000.15", "100.02", 4, 2, 50.0),
            stage(2, 2, "700.05", "210.02", 3, 2, 66.67),
            stage(3, 0, "0.00", "0.00", 3, 3, 100.0),
            stage(4, 1, "3333.33", "2666.66", 1, 0, 0.0),
        ],
        "wonCount": 2,
        "lostCount": 2,
        "winRate": 50.0,
        "averageDaysToWin": 15.6,  # (10.5 d + 20 d 15 h 59 min) / 2
        "leadsCreated": 5,  # the pool's lead too: an admin's unfiltered view is everyone's
        "leadsConverted": 2,
        "leadConversionRate": 40.0,
    }


async def test_a_manager_sees_the_department_tree(gql, org):
    company = await build_company(org)
    assert await funnel_of(gql, company.mei) == {
        "stages": [
            stage(1, 1, "1000.10", "100.01", 3, 2, 66.67),
            stage(2, 1, "500.05", "150.02", 3, 2, 66.67),
            stage(3, 0, "0.00", "0.00", 2, 2, 100.0),
            stage(4, 1, "3333.33", "2666.66", 1, 0, 0.0),
        ],
        "wonCount": 2,
        "lostCount": 1,
        "winRate": 66.67,
        "averageDaysToWin": 15.6,
        "leadsCreated": 3,
        "leadsConverted": 2,
        "leadConversionRate": 66.67,
    }


async def test_a_rep_sees_only_their_own(gql, org):
    company = await build_company(org)
    assert await funnel_of(gql, company.an) == {
        "stages": [
            stage(1, 1, "1000.10", "100.01", 2, 1, 50.0),
            stage(2, 1, "500.05", "150.02", 1, 0, 0.0),
            stage(3, 0, "0.00", "0.00", 1, 1, 100.0),
            stage(4, 0, "0.00", "0.00", 0, 0, None),
        ],
        "wonCount": 1,
        "lostCount": 0,
        "winRate": 100.0,
        "averageDaysToWin": 10.5,
        "leadsCreated": 2,
        "leadsConverted": 1,
        "leadConversionRate": 50.0,
    }
    # Asking for someone else's figures narrows to nothing rather than showing them.
    others = await funnel_of(
        gql, company.an, {**NOVEMBER, "userIds": [to_global_id("User", company.olga.id)]}
    )
    assert [s["openCount"] for s in others["stages"]] == [0, 0, 0, 0]
    assert (others["wonCount"], others["winRate"], others["averageDaysToWin"]) == (0, None, None)
    assert (others["leadsCreated"], others["leadConversionRate"]) == (0, None)


async def expected_revenue(gql, user: User, months: int, where: dict | None = None) -> list:
    data = await gql.ok(EXPECTED_REVENUE, {"f": where or NOVEMBER, "m": months}, as_user=user)
    return [(row["month"], row["expectedRevenue"]) for row in data["dashboard"]["forecast"]]


async def test_expected_revenue_by_month_of_expected_close(gql, org):
    company = await build_company(org)
    assert await expected_revenue(gql, company.admin, 3) == [
        ("2026-11-01", "100.02"),
        ("2026-12-01", "2666.66"),
        ("2027-01-01", "150.02"),
    ]
    assert await expected_revenue(gql, company.mei, 3) == [
        ("2026-11-01", "100.01"),
        ("2026-12-01", "2666.66"),
        ("2027-01-01", "150.02"),
    ]
    assert await expected_revenue(gql, company.an, 2) == [
        ("2026-11-01", "100.01"),
        ("2026-12-01", "0.00"),
    ]
    # The forecast starts at the month holding the period's first day.
    mid_month = {"from": "2026-11-15", "to": "2026-12-20"}
    assert await expected_revenue(gql, company.admin, 1, mid_month) == [("2026-11-01", "100.02")]


async def test_the_forecast_covers_one_to_24_months(gql, org):
    company = await build_company(org)
    for months in (0, 25):
        result = await gql(EXPECTED_REVENUE, {"f": NOVEMBER, "m": months}, as_user=company.admin)
        assert result.error["extensions"] == {"code": "BAD_USER_INPUT", "field": "months"}
    assert len(await expected_revenue(gql, company.admin, 24)) == 24

"""销售漏斗 per pipeline, counted by hand over two pipelines; the forecast spans them all.

November 2026 in the company's time zone (Asia/Shanghai). Every instant below
is noon UTC, well inside its day. Pipelines: the default 销售 Sales (S1 10 %,
S2 30 %, S3 60 %, S4 80 %) and Projects (P1 20 %, P2 50 %, P3 90 %), all
opportunities An's:

- A  Sales:    S1 11-02 → S2 11-05, open, 1000.00, expected 11-20
- B  Sales:    S1 11-03, won there 11-10 (7 days), 500.00
- C  Projects: P1 11-02 → P2 11-04, open, 2000.00, expected 11-25
- D  Projects: P1 11-03, lost there 11-08, 300.00
- E  Sales S1 11-02, changed to Projects P1 11-06 → P3 11-07, open, 400.00, expected 12-10
- F  Projects: P2 11-05, won there 11-25 (20 days), 100.00
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from meihua.models import (
    Customer,
    Opportunity,
    OpportunityStage,
    OpportunityStageChange,
    OpportunityStatus,
    Pipeline,
)
from meihua.schema.relay import to_global_id
from tests.conftest import SalesTeam

NOVEMBER = {"from": "2026-11-01", "to": "2026-11-30"}
FUNNEL = """
query($f: DashboardFilter, $p: ID) { dashboard(filter: $f) { funnel(pipelineId: $p) {
  pipeline { name }
  stages { stage { name } openCount openAmount weightedAmount
           enteredCount advancedCount conversionRate }
  wonCount lostCount winRate averageDaysToWin
} } }
"""
FORECAST = """
query($f: DashboardFilter) {
  dashboard(filter: $f) { forecast(months: 2) { month expectedRevenue } }
}
"""
OPEN, WON, LOST = OpportunityStatus.OPEN, OpportunityStatus.WON, OpportunityStatus.LOST


def noon(month: int, day: int) -> datetime:
    return datetime(2026, month, day, 12, tzinfo=UTC)


async def build_company(org) -> tuple[SalesTeam, Pipeline]:
    team = await org.sales_team()
    an = team.an
    customer = await Customer.create(name="Acme", name_key="acme", owner=an, created_by=an)
    projects = await Pipeline.create(name="Projects", order=2)
    s1, s2, _, _ = await OpportunityStage.filter(pipeline__order=1).order_by("order")
    p1, p2, p3 = [
        await OpportunityStage.create(pipeline=projects, name=name, win_rate=rate, order=order)
        for order, (name, rate) in enumerate([("P1", 20), ("P2", 50), ("P3", 90)], start=1)
    ]

    async def opportunity(amount, history, expected=None):
        """An opportunity whose stage history is `history`: (day, stage, status) from creation."""
        _, stage, status = history[-1]
        closed = noon(11, history[-1][0]) if status != OPEN else None
        row = await Opportunity.create(
            name="Deal",
            customer=customer,
            owner=team.an,
            created_by=team.an,
            amount=Decimal(amount),
            stage=stage,
            status=status,
            closed_at=closed,
            expected_close_date=expected,
        )
        await Opportunity.filter(id=row.id).update(created_at=noon(11, history[0][0]))
        before = (None, None)
        for day, to_stage, to_status in history:
            change = await OpportunityStageChange.create(
                opportunity=row,
                from_stage=before[0],
                from_status=before[1],
                to_stage=to_stage,
                to_status=to_status,
            )
            await OpportunityStageChange.filter(id=change.id).update(at=noon(11, day))
            before = (to_stage, to_status)

    await opportunity("1000.00", [(2, s1, OPEN), (5, s2, OPEN)], date(2026, 11, 20))
    await opportunity("500.00", [(3, s1, OPEN), (10, s1, WON)])
    await opportunity("2000.00", [(2, p1, OPEN), (4, p2, OPEN)], date(2026, 11, 25))
    await opportunity("300.00", [(3, p1, OPEN), (8, p1, LOST)])
    await opportunity("400.00", [(2, s1, OPEN), (6, p1, OPEN), (7, p3, OPEN)], date(2026, 12, 10))
    await opportunity("100.00", [(5, p2, OPEN), (25, p2, WON)])
    return team, projects


def stage(name, count, amount, weighted, entered, advanced, rate) -> dict:
    return {
        "stage": {"name": name},
        "openCount": count,
        "openAmount": amount,
        "weightedAmount": weighted,
        "enteredCount": entered,
        "advancedCount": advanced,
        "conversionRate": rate,
    }


async def funnel_of(gql, user, pipeline: str | None = None, where: dict | None = None) -> dict:
    variables = {"f": where or NOVEMBER, "p": pipeline}
    return (await gql.ok(FUNNEL, variables, as_user=user))["dashboard"]["funnel"]


async def test_the_default_pipelines_funnel_counts_only_its_own(gql, org):
    team, _ = await build_company(org)
    names = [s.name for s in await OpportunityStage.filter(pipeline__order=1).order_by("order")]
    assert await funnel_of(gql, team.admin) == {
        "pipeline": {"name": "销售 Sales"},
        "stages": [
            # A and B advanced from S1 (B by winning there); E left for Projects: no advance.
            stage(names[0], 0, "0.00", "0.00", 3, 2, 66.67),
            stage(names[1], 1, "1000.00", "300.00", 1, 0, 0.0),
            stage(names[2], 0, "0.00", "0.00", 0, 0, None),
            stage(names[3], 0, "0.00", "0.00", 0, 0, None),
        ],
        "wonCount": 1,
        "lostCount": 0,
        "winRate": 100.0,
        "averageDaysToWin": 7.0,
    }


async def test_another_pipelines_funnel_is_asked_for_by_id(gql, org):
    team, projects = await build_company(org)
    assert await funnel_of(gql, team.admin, to_global_id("Pipeline", projects.id)) == {
        "pipeline": {"name": "Projects"},
        "stages": [
            # C and E (arrived from Sales) went on; D was lost at P1.
            stage("P1", 0, "0.00", "0.00", 3, 2, 66.67),
            # C stays; F was won at P2.
            stage("P2", 1, "2000.00", "1000.00", 2, 1, 50.0),
            stage("P3", 1, "400.00", "360.00", 1, 0, 0.0),
        ],
        "wonCount": 1,
        "lostCount": 1,
        "winRate": 50.0,
        "averageDaysToWin": 20.0,
    }


async def test_a_pipeline_funnel_stays_within_scope(gql, org):
    team, projects = await build_company(org)
    theirs = await funnel_of(gql, team.bo, to_global_id("Pipeline", projects.id))
    assert [s["openCount"] for s in theirs["stages"]] == [0, 0, 0]
    assert [s["enteredCount"] for s in theirs["stages"]] == [0, 0, 0]
    assert (theirs["wonCount"], theirs["lostCount"]) == (0, 0)


async def test_an_unknown_pipeline_is_bad_input(gql, org):
    team, _ = await build_company(org)
    result = await gql(
        FUNNEL, {"f": NOVEMBER, "p": to_global_id("Pipeline", 999)}, as_user=team.admin
    )
    assert result.codes == ["BAD_USER_INPUT"]


async def test_the_forecast_spans_every_pipeline(gql, org):
    team, _ = await build_company(org)
    # November A 1000 × 30 % + C 2000 × 50 %, December E 400 × 90 %.
    data = await gql.ok(FORECAST, {"f": NOVEMBER}, as_user=team.admin)
    assert data["dashboard"]["forecast"] == [
        {"month": "2026-11-01", "expectedRevenue": "1300.00"},
        {"month": "2026-12-01", "expectedRevenue": "360.00"},
    ]

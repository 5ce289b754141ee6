"""销售趋势: contract amount, payments and new customers per day, week or month.

Uses the briefing's fixture company (Asia/Shanghai); expected points are counted by hand.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from meihua.resolvers.dashboard_filter import Period
from meihua.resolvers.dashboard_trend import TrendInterval, buckets
from tests.test_dashboard_briefing import NOVEMBER, build_company

TREND = """
query($f: DashboardFilter, $i: TrendInterval) { dashboard(filter: $f) {
  trend(interval: $i) { interval points { from to contractAmount paymentAmount newCustomers } }
} }
"""


def point(first: str, last: str, contracts: str, payments: str, customers: int) -> dict:
    return {
        "from": first,
        "to": last,
        "contractAmount": contracts,
        "paymentAmount": payments,
        "newCustomers": customers,
    }


async def points_of(gql, user, interval: str | None, where: dict = NOVEMBER) -> list[dict]:
    variables = {"f": where} | ({"i": interval} if interval else {})
    trend = (await gql.ok(TREND, variables, as_user=user))["dashboard"]["trend"]
    assert trend["interval"] == (interval or "DAY")
    return trend["points"]


async def test_weeks_start_on_monday_and_are_clipped_to_the_period(gql, org):
    company = await build_company(org)
    # 2026-11-01 is a Sunday and 2026-11-30 a Monday.
    assert await points_of(gql, company.admin, "WEEK") == [
        point("2026-11-01", "2026-11-01", "10000.00", "1000.00", 1),
        point("2026-11-02", "2026-11-08", "0.00", "603.00", 0),
        point("2026-11-09", "2026-11-15", "8000.00", "0.00", 0),
        point("2026-11-16", "2026-11-22", "0.00", "2500.00", 1),
        point("2026-11-23", "2026-11-29", "0.00", "0.00", 0),
        point("2026-11-30", "2026-11-30", "5000.25", "4000.00", 1),
    ]


async def test_every_day_is_present(gql, org):
    company = await build_company(org)
    days = await points_of(gql, company.admin, None)
    assert len(days) == 30
    assert days[0] == point("2026-11-01", "2026-11-01", "10000.00", "1000.00", 1)
    assert days[1] == point("2026-11-02", "2026-11-02", "0.00", "3.00", 0)
    assert days[2] == point("2026-11-03", "2026-11-03", "0.00", "600.00", 0)
    assert days[29] == point("2026-11-30", "2026-11-30", "5000.25", "4000.00", 1)
    quiet = [day for index, day in enumerate(days) if index not in (0, 1, 2, 9, 15, 29)]
    assert {(d["contractAmount"], d["paymentAmount"], d["newCustomers"]) for d in quiet} == {
        ("0.00", "0.00", 0)
    }


async def test_months_are_calendar_months_clipped_to_the_period(gql, org):
    company = await build_company(org)
    where = {"from": "2026-10-15", "to": "2026-12-10"}
    assert await points_of(gql, company.admin, "MONTH", where) == [
        point("2026-10-15", "2026-10-31", "3000.50", "1500.25", 1),
        point("2026-11-01", "2026-11-30", "23000.25", "8103.00", 3),
        point("2026-12-01", "2026-12-10", "100.00", "8000.00", 0),
    ]


async def test_the_trend_keeps_to_the_viewer_scope(gql, org):
    company = await build_company(org)
    assert await points_of(gql, company.an, "MONTH") == [
        point("2026-11-01", "2026-11-30", "10000.00", "5003.00", 1)
    ]
    assert await points_of(gql, company.mei, "MONTH") == [
        point("2026-11-01", "2026-11-30", "15000.25", "7503.00", 2)
    ]


async def test_too_many_points_are_refused(gql, org):
    company = await build_company(org)
    two_years = {"from": "2025-01-01", "to": "2026-12-31"}
    reply = await gql(TREND, {"f": two_years, "i": "DAY"}, as_user=company.admin)
    assert reply.error["extensions"] == {"code": "BAD_USER_INPUT", "field": "interval"}
    assert len(await points_of(gql, company.admin, "WEEK", two_years)) == 105


async def test_the_trend_is_one_aggregate_per_table(gql, org, statements):
    company = await build_company(org)
    period_only = "query($f: DashboardFilter) { dashboard(filter: $f) { from } }"
    statements.count = 0
    await gql.ok(period_only, {"f": NOVEMBER}, as_user=company.admin)
    without = statements.count
    statements.count = 0
    await points_of(gql, company.admin, "DAY")
    assert statements.count - without == 3


def test_day_buckets_follow_daylight_saving_time():
    berlin = ZoneInfo("Europe/Berlin")
    # Clocks went forward on 2026-03-29: that day has 23 hours.
    days = buckets(Period(date(2026, 3, 28), date(2026, 3, 30), berlin), TrendInterval.DAY)
    assert [(day.start, day.end) for day in days] == [
        (datetime(2026, 3, 27, 23, tzinfo=UTC), datetime(2026, 3, 28, 23, tzinfo=UTC)),
        (datetime(2026, 3, 28, 23, tzinfo=UTC), datetime(2026, 3, 29, 22, tzinfo=UTC)),
        (datetime(2026, 3, 29, 22, tzinfo=UTC), datetime(2026, 3, 30, 22, tzinfo=UTC)),
    ]

"""Whose records and which days a dashboard covers (resolvers.dashboard_filter)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from meihua.models import DataScope
from meihua.resolvers.dashboard_filter import Period, PresetPeriod, preset_period
from meihua.schema.relay import to_global_id

SHANGHAI = ZoneInfo("Asia/Shanghai")
RANGE = "query($f: DashboardFilter) { dashboard(filter: $f) { from to previousFrom previousTo } }"


@pytest.mark.parametrize(
    ("preset", "first", "last", "previous_first", "previous_last"),
    [
        (PresetPeriod.TODAY, "2026-11-23", "2026-11-23", "2026-11-22", "2026-11-22"),
        (PresetPeriod.YESTERDAY, "2026-11-22", "2026-11-22", "2026-11-21", "2026-11-21"),
        (PresetPeriod.THIS_WEEK, "2026-11-23", "2026-11-29", "2026-11-16", "2026-11-22"),
        (PresetPeriod.LAST_WEEK, "2026-11-16", "2026-11-22", "2026-11-09", "2026-11-15"),
        (PresetPeriod.THIS_MONTH, "2026-11-01", "2026-11-30", "2026-10-01", "2026-10-31"),
        (PresetPeriod.LAST_MONTH, "2026-10-01", "2026-10-31", "2026-09-01", "2026-09-30"),
        (PresetPeriod.THIS_QUARTER, "2026-10-01", "2026-12-31", "2026-07-01", "2026-09-30"),
        (PresetPeriod.LAST_QUARTER, "2026-07-01", "2026-09-30", "2026-04-01", "2026-06-30"),
        (PresetPeriod.THIS_YEAR, "2026-01-01", "2026-12-31", "2025-01-01", "2025-12-31"),
        (PresetPeriod.LAST_YEAR, "2025-01-01", "2025-12-31", "2024-01-01", "2024-12-31"),
    ],
)
def test_presets_and_the_periods_they_are_compared_with(
    preset, first, last, previous_first, previous_last
):
    period = preset_period(preset, date(2026, 11, 23), SHANGHAI)
    assert (str(period.first), str(period.last)) == (first, last)
    before = period.previous()
    assert (str(before.first), str(before.last)) == (previous_first, previous_last)


def test_a_period_is_cut_at_midnight_company_time():
    november = Period(date(2026, 11, 1), date(2026, 11, 30), SHANGHAI)
    assert november.start == datetime(2026, 10, 31, 16, 0, tzinfo=UTC)
    assert november.end == datetime(2026, 11, 30, 16, 0, tzinfo=UTC)


def test_a_custom_range_is_compared_with_as_many_days_before():
    ten_days = Period(date(2026, 11, 5), date(2026, 11, 14), SHANGHAI)
    before = ten_days.previous()
    assert (before.first, before.last) == (date(2026, 10, 26), date(2026, 11, 4))


async def test_the_dashboard_needs_its_permission(gql, org):
    clerk = await org.role("Clerk", DataScope.SELF, ["customer:create"])
    rep = await org.user("rep", roles=[clerk])
    assert (await gql(RANGE, as_user=rep)).codes == ["FORBIDDEN"]


async def test_dates_are_checked(gql, org):
    admin = await org.admin()
    only_from = await gql(RANGE, {"f": {"from": "2026-11-01"}}, as_user=admin)
    assert only_from.error["extensions"] == {"code": "BAD_USER_INPUT", "field": "from"}
    backwards = await gql(RANGE, {"f": {"from": "2026-11-09", "to": "2026-11-01"}}, as_user=admin)
    assert backwards.error["extensions"] == {"code": "BAD_USER_INPUT", "field": "to"}
    both = {"from": "2026-11-01", "to": "2026-11-30", "period": "THIS_MONTH"}
    assert (await gql(RANGE, {"f": both}, as_user=admin)).codes == ["BAD_USER_INPUT"]


async def test_a_filter_narrows_to_the_viewer_scope_and_never_widens(org):
    from meihua.resolvers.access import Viewer
    from meihua.resolvers.dashboard_filter import dashboard_scope

    sales, north = await org.department("Sales"), await org.department("North")
    east = await org.department("East", parent=sales)
    manager_role = await org.role("Manager", DataScope.DEPARTMENT_TREE, ["dashboard:view"])
    mei = await org.user("mei", department=sales, roles=[manager_role])
    an = await org.user("an", department=east)
    olga = await org.user("olga", department=north)
    viewer = await Viewer.load(mei)

    everyone_i_see = await dashboard_scope(viewer, timezone="Asia/Shanghai")
    assert everyone_i_see.owner_ids == {mei.id, an.id}
    named = await dashboard_scope(viewer, timezone="Asia/Shanghai", user_ids=[an.id, olga.id])
    assert named.owner_ids == {an.id}
    elsewhere = await dashboard_scope(viewer, timezone="Asia/Shanghai", department_id=north.id)
    assert elsewhere.owner_ids == set()
    only_sales = await dashboard_scope(
        viewer, timezone="Asia/Shanghai", department_id=sales.id, include_sub_departments=False
    )
    assert only_sales.owner_ids == {mei.id}


async def test_an_unknown_department_is_not_found(gql, org):
    admin = await org.admin()
    missing = {"departmentId": to_global_id("Department", 999)}
    assert (await gql(RANGE, {"f": missing}, as_user=admin)).codes == ["NOT_FOUND"]

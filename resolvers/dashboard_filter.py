"""What a dashboard figure covers: whose records, and which period.

Every section of the dashboard (briefing, targets, funnel, trend, forecast,
ranking, receivables) starts from a `DashboardScope`:

- `owner_ids`: the users whose records count. A filter naming people or a
  department is intersected with the viewer's data scope, so it can narrow
  what the viewer sees but never widen it. None means everyone (a viewer who
  sees everything and filtered on nobody).
- `period`: a half-open range of instants [start, end) in UTC, cut at
  midnights in the company's time zone, and the period just before it of the
  same kind (last month for this month), for the briefing's comparison.

Figures count records by their owner; sharing a customer's team does not put
its figures on a teammate's dashboard.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from meihua.models import Department, User
from meihua.resolvers.access import Viewer
from meihua.resolvers.errors import BadUserInput, NotFound
from meihua.resolvers.hierarchy import department_subtree

DASHBOARD_VIEW = "dashboard:view"
MAX_DAYS = 366 * 5


class PresetPeriod(StrEnum):
    TODAY = "TODAY"
    YESTERDAY = "YESTERDAY"
    THIS_WEEK = "THIS_WEEK"
    LAST_WEEK = "LAST_WEEK"
    THIS_MONTH = "THIS_MONTH"
    LAST_MONTH = "LAST_MONTH"
    THIS_QUARTER = "THIS_QUARTER"
    LAST_QUARTER = "LAST_QUARTER"
    THIS_YEAR = "THIS_YEAR"
    LAST_YEAR = "LAST_YEAR"


@dataclass(frozen=True)
class Period:
    """Local calendar days [first, last] in a time zone; `start`/`end` are their UTC instants."""

    first: date
    last: date
    timezone: ZoneInfo

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time(), self.timezone).astimezone(UTC)

    @property
    def end(self) -> datetime:
        """Exclusive: midnight after the last day."""
        return datetime.combine(self.last + timedelta(days=1), time(), self.timezone).astimezone(
            UTC
        )

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    def previous(self) -> Period:
        """The period before, of the same kind: a calendar month before a month, and so on."""
        first, last = self.first, self.last
        if first.day == 1 and last == _month_end(last):
            months = (last.year - first.year) * 12 + last.month - first.month + 1
            before = _add_months(first, -months)
            return Period(before, first - timedelta(days=1), self.timezone)
        return Period(first - timedelta(days=self.days), first - timedelta(days=1), self.timezone)


def _month_end(day: date) -> date:
    return _add_months(day.replace(day=1), 1) - timedelta(days=1)


def _add_months(day: date, months: int) -> date:
    """The first of the month `months` after `day`'s month."""
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def preset_period(preset: PresetPeriod, today: date, timezone: ZoneInfo) -> Period:
    """A preset around `today` (a local date). Weeks start on Monday."""
    monday = today - timedelta(days=today.weekday())
    month = today.replace(day=1)
    quarter = date(today.year, (today.month - 1) // 3 * 3 + 1, 1)
    year = date(today.year, 1, 1)
    spans = {
        PresetPeriod.TODAY: (today, today),
        PresetPeriod.YESTERDAY: (today - timedelta(days=1), today - timedelta(days=1)),
        PresetPeriod.THIS_WEEK: (monday, monday + timedelta(days=6)),
        PresetPeriod.LAST_WEEK: (monday - timedelta(days=7), monday - timedelta(days=1)),
        PresetPeriod.THIS_MONTH: (month, _month_end(month)),
        PresetPeriod.LAST_MONTH: (_add_months(month, -1), month - timedelta(days=1)),
        PresetPeriod.THIS_QUARTER: (quarter, _add_months(quarter, 3) - timedelta(days=1)),
        PresetPeriod.LAST_QUARTER: (_add_months(quarter, -3), quarter - timedelta(days=1)),
        PresetPeriod.THIS_YEAR: (year, date(today.year, 12, 31)),
        PresetPeriod.LAST_YEAR: (date(today.year - 1, 1, 1), date(today.year - 1, 12, 31)),
    }
    first, last = spans[preset]
    return Period(first, last, timezone)


@dataclass(frozen=True)
class DashboardScope:
    owner_ids: frozenset[int] | None
    period: Period

    def owner_filter(self, field: str = "owner_id") -> dict[str, list[int]]:
        """Keyword filter for querysets: `Model.filter(**scope.owner_filter())`."""
        if self.owner_ids is None:
            return {}
        return {f"{field}__in": sorted(self.owner_ids)}


async def dashboard_scope(
    viewer: Viewer,
    *,
    timezone: str,
    user_ids: list[int] | None = None,
    department_id: int | None = None,
    include_sub_departments: bool = True,
    preset: PresetPeriod | None = None,
    first: date | None = None,
    last: date | None = None,
    now: datetime | None = None,
) -> DashboardScope:
    """Whose records and which days a dashboard covers; THIS_MONTH when no period is given."""
    viewer.require(DASHBOARD_VIEW)
    zone = ZoneInfo(timezone)
    if (first is None) != (last is None):
        raise BadUserInput("Give both `from` and `to`, or neither.", field="from")
    if first is not None and preset is not None:
        raise BadUserInput("Give a preset period or dates, not both.", field="period")
    if first is not None and last is not None:
        if last < first:
            raise BadUserInput("`to` is before `from`.", field="to")
        if (last - first).days >= MAX_DAYS:
            raise BadUserInput(f"A period is at most {MAX_DAYS} days.", field="to")
        period = Period(first, last, zone)
    else:
        today = (now or datetime.now(UTC)).astimezone(zone).date()
        period = preset_period(preset or PresetPeriod.THIS_MONTH, today, zone)
    return DashboardScope(
        await _owners(viewer, user_ids, department_id, include_sub_departments), period
    )


async def _owners(
    viewer: Viewer,
    user_ids: list[int] | None,
    department_id: int | None,
    include_sub_departments: bool,
) -> frozenset[int] | None:
    visible = await viewer.visible_owner_ids()
    chosen: set[int] | None = None
    if user_ids:
        chosen = set(user_ids)
    if department_id is not None:
        if not await Department.exists(id=department_id):
            raise NotFound("No such department.")
        departments = (
            await department_subtree(department_id) if include_sub_departments else {department_id}
        )
        members = set(await User.filter(department_id__in=departments).values_list("id", flat=True))
        chosen = members if chosen is None else chosen & members
    if chosen is None:
        return None if visible is None else frozenset(visible)
    return frozenset(chosen if visible is None else chosen & visible)

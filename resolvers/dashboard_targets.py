"""绩效指标: each target of a year beside what was achieved, month by month.

Shown are the targets of the people in the dashboard's scope, and of the
departments whose people (sub-departments included) are all in it; a
department's achievement is the sum of its people's. What was achieved is
one GROUP BY (month, owner) per metric over the year, months cut at
midnights in company time.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal
from itertools import pairwise

from tortoise.expressions import Q

from meihua.models import Department, SalesTarget, TargetMetric, User
from meihua.resolvers.dashboard_filter import DashboardScope, Period
from meihua.resolvers.dashboard_measures import DEFINITIONS, Measure
from meihua.resolvers.dashboard_sql import owned_by, ranges
from meihua.resolvers.hierarchy import descendants
from meihua.resolvers.products import CENT
from meihua.resolvers.raw_sql import fetch
from meihua.resolvers.sales_targets import check_year

ZERO = Decimal(0)


@dataclass(frozen=True)
class Progress:
    target: Decimal
    achieved: Decimal

    @property
    def completion_rate(self) -> float | None:
        """Percent of the target achieved; None when the target is 0."""
        if not self.target:
            return None
        return float((self.achieved * 100 / self.target).quantize(CENT))

    def __add__(self, other: Progress) -> Progress:
        return Progress(self.target + other.target, self.achieved + other.achieved)


@dataclass(frozen=True)
class TargetProgress:
    metric: TargetMetric
    year: int
    user_id: int | None
    department_id: int | None
    months: list[Progress]

    @property
    def quarters(self) -> list[Progress]:
        return [sum(self.months[q * 3 + 1 : q * 3 + 3], self.months[q * 3]) for q in range(4)]

    @property
    def total(self) -> Progress:
        return sum(self.months[1:], self.months[0])


def months_of(year: int, scope: DashboardScope) -> list[Period]:
    firsts = [date(year, month, 1) for month in range(1, 13)] + [date(year + 1, 1, 1)]
    return [
        Period(first, after - timedelta(days=1), scope.period.timezone)
        for first, after in pairwise(firsts)
    ]


async def targets(
    scope: DashboardScope, year: int, metric: TargetMetric | None = None
) -> list[TargetProgress]:
    """Progress on the year's targets in scope: departments, then people, by name."""
    check_year(year)
    metrics = [metric] if metric is not None else list(TargetMetric)
    rows = SalesTarget.filter(year=year, metric__in=metrics)
    if scope.owner_ids is not None:
        rows = rows.filter(Q(user_id__in=sorted(scope.owner_ids)) | Q(department_id__isnull=False))
    found = await rows.values("user_id", "department_id", "metric", "month", "value")
    members = await _members(scope, {row["department_id"] for row in found} - {None})
    found = [row for row in found if row["user_id"] is not None or row["department_id"] in members]
    if not found:
        return []
    goals: dict[tuple[TargetMetric, int | None, int | None], dict[int, Decimal]] = defaultdict(dict)
    for row in found:
        key = (TargetMetric(row["metric"]), row["user_id"], row["department_id"])
        goals[key][row["month"]] = row["value"]
    people = {user for _, user, _ in goals if user is not None} | {
        user for group in members.values() for user in group
    }
    achieved = {
        measured: await achieved_by_month(
            replace(scope, owner_ids=frozenset(people)), measured, year
        )
        for measured in {key[0] for key in goals}
    }
    progress = []
    for (measured, user_id, department_id), values in goals.items():
        owners = {user_id} if user_id is not None else members[department_id]
        unit = DEFINITIONS[Measure(measured)].unit
        done = achieved[measured]
        months = [
            Progress(
                values.get(month, ZERO).quantize(unit),
                sum((done.get((owner, month), ZERO) for owner in owners), ZERO).quantize(unit),
            )
            for month in range(1, 13)
        ]
        progress.append(TargetProgress(measured, year, user_id, department_id, months))
    names = await _names(progress)
    return sorted(
        progress,
        key=lambda p: (
            list(TargetMetric).index(p.metric),
            p.user_id is not None,
            names[(p.user_id, p.department_id)],
            p.user_id or p.department_id,
        ),
    )


async def _members(scope: DashboardScope, department_ids: set[int]) -> dict[int, set[int]]:
    """The people of each department (sub-departments included) wholly within the scope."""
    if not department_ids:
        return {}
    below: dict[int | None, list[int]] = defaultdict(list)
    for pk, parent_id in await Department.all().values_list("id", "parent_id"):
        below[parent_id].append(pk)
    staff: dict[int, set[int]] = defaultdict(set)
    for pk, department_id in await User.all().values_list("id", "department_id"):
        staff[department_id].add(pk)
    members = {}
    for department_id in department_ids:
        people = {pk for sub in descendants(below, [department_id]) for pk in staff[sub]}
        if scope.owner_ids is None or (people and people <= scope.owner_ids):
            members[department_id] = people
    return members


async def _names(progress: list[TargetProgress]) -> dict[tuple[int | None, int | None], str]:
    users = {p.user_id for p in progress} - {None}
    departments = {p.department_id for p in progress} - {None}
    names = {}
    for pk, name in await User.filter(id__in=users).values_list("id", "name"):
        names[(pk, None)] = name
    for pk, name in await Department.filter(id__in=departments).values_list("id", "name"):
        names[(None, pk)] = name
    return names


async def achieved_by_month(
    scope: DashboardScope, metric: TargetMetric, year: int
) -> dict[tuple[int, int], Decimal]:
    """{(owner, month): achieved} over the year, for owners with anything achieved."""
    definition = DEFINITIONS[Measure(metric)]
    source = definition.source
    bounds = definition.bounds(months_of(year, scope))
    with_months, month_params = ranges("bucket", bounds)
    owners, owner_ids = owned_by(scope, source.owner)
    sql = (
        f"{with_months} SELECT bucket.idx AS idx, {source.owner} AS owner_id,"
        f" {definition.figure} AS figure"
        f" FROM {source.tables} JOIN bucket ON {source.at} >= bucket.lo AND {source.at} < bucket.hi"
        f" WHERE {source.at} >= ? AND {source.at} < ? AND {owners} AND {source.where}"
        f" GROUP BY bucket.idx, {source.owner}"
    )
    params = [*month_params, bounds[0][0], bounds[-1][1], *owner_ids]
    return {
        (row["owner_id"], row["idx"] + 1): definition.value(row["figure"])
        for row in await fetch(sql, params)
    }

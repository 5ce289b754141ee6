"""Sales targets (销售目标): what a person or a department should reach each month.

Anyone with settings:manage sets any target. A manager sets the targets of
the people in their data scope (not their own: that is for someone above
them) and of the departments whose people all sit in their scope. Setting a
month that already has a target replaces its value.

The table's unique key includes a NULL column (user or department), which
SQL does not enforce, so the upsert runs with the owner's user or department
row locked: two requests setting the same owner's targets take turns.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from meihua.models import Department, SalesTarget, TargetMetric, User
from meihua.resolvers.access import Viewer
from meihua.resolvers.errors import BadUserInput, Forbidden, NotFound
from meihua.resolvers.hierarchy import department_subtree
from meihua.resolvers.products import clean_money
from meihua.subscriptions.events import transaction

SETTINGS_MANAGE = "settings:manage"
FIRST_YEAR = 2000
LAST_YEAR = 2100


@dataclass
class MonthValue:
    month: int
    value: Decimal


@dataclass
class TargetsInput:
    metric: TargetMetric
    year: int
    months: list[MonthValue]
    user_id: int | None = None
    department_id: int | None = None


def check_year(year: int, field: str = "year") -> int:
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise BadUserInput(f"`{field}` runs from {FIRST_YEAR} to {LAST_YEAR}.", field=field)
    return year


def _clean_months(metric: TargetMetric, months: list[MonthValue]) -> dict[int, Decimal]:
    if not months:
        raise BadUserInput("Give at least one month.", field="months")
    values: dict[int, Decimal] = {}
    for entry in months:
        if not 1 <= entry.month <= 12:
            raise BadUserInput("`month` runs from 1 to 12.", field="months")
        if entry.month in values:
            raise BadUserInput(f"Month {entry.month} is given twice.", field="months")
        value = clean_money(entry.value, "value")
        if metric == TargetMetric.NEW_CUSTOMERS and value != value.to_integral_value():
            raise BadUserInput("A number of customers is a whole number.", field="value")
        values[entry.month] = value
    return values


async def _require_user_target(viewer: Viewer, user_id: int) -> None:
    if not await User.exists(id=user_id):
        raise NotFound("No such user.")
    if viewer.can(SETTINGS_MANAGE):
        return
    if user_id == viewer.id or not await viewer.in_scope(user_id):
        raise Forbidden("You set targets for the people in your data scope, not for yourself.")


async def _require_department_target(viewer: Viewer, department_id: int) -> None:
    if not await Department.exists(id=department_id):
        raise NotFound("No such department.")
    if viewer.can(SETTINGS_MANAGE):
        return
    visible = await viewer.visible_owner_ids()
    members = set(
        await User.filter(department_id__in=await department_subtree(department_id)).values_list(
            "id", flat=True
        )
    )
    manages = visible is None or bool(members - {viewer.id} and members <= visible)
    if not manages:
        raise Forbidden("You set targets for the departments whose people are all in your scope.")


async def set_sales_targets(viewer: Viewer, data: TargetsInput) -> list[SalesTarget]:
    """Set some months of one metric for a user or a department; all its months of that year."""
    if (data.user_id is None) == (data.department_id is None):
        raise BadUserInput("Give a user or a department, not both.", field="userId")
    check_year(data.year)
    values = _clean_months(data.metric, data.months)
    if data.user_id is not None:
        await _require_user_target(viewer, data.user_id)
    else:
        await _require_department_target(viewer, data.department_id)
    owner = {"user_id": data.user_id, "department_id": data.department_id}
    async with transaction():
        if data.user_id is not None:
            await User.filter(id=data.user_id).select_for_update()
        else:
            await Department.filter(id=data.department_id).select_for_update()
        rows = SalesTarget.filter(**owner, metric=data.metric, year=data.year)
        existing = {row.month: row for row in await rows}
        for month, value in sorted(values.items()):
            row = existing.get(month)
            if row is None:
                existing[month] = await SalesTarget.create(
                    **owner, metric=data.metric, year=data.year, month=month, value=value
                )
            elif row.value != value:
                row.value = value
                row.version += 1
                await row.save(update_fields=["value", "version", "updated_at"])
    return [existing[month] for month in sorted(existing)]

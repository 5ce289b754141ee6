"""The dashboard (销售简报 / 绩效指标 / 销售漏斗 / 销售趋势): one query, one section per field.

`dashboard(filter:)` works out whose records and which period count (see
resolvers.dashboard_filter); each section field computes its figures with SQL
aggregates over that scope only when it is asked for.
"""

from __future__ import annotations

from datetime import date

import strawberry

from meihua.resolvers.dashboard_filter import DashboardScope, PresetPeriod, dashboard_scope
from meihua.schema.context import Info
from meihua.schema.dashboard_briefing import resolve_briefing, resolve_trend
from meihua.schema.dashboard_pipeline import (
    resolve_forecast,
    resolve_funnel,
    resolve_receivables,
)
from meihua.schema.dashboard_targets import resolve_ranking, resolve_targets
from meihua.schema.relay import reference_id

PresetPeriodEnum = strawberry.enum(
    PresetPeriod, name="PresetPeriod", description="A period around today, in company time."
)


@strawberry.input(description="Whose figures, over which days. THIS_MONTH when no period is set.")
class DashboardFilter:
    user_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Only these people (within what you may see)."
    )
    department_id: strawberry.ID | None = strawberry.field(
        default=None, description="Only the people of this department."
    )
    include_sub_departments: bool = strawberry.field(
        default=True, description="With the department's sub-departments (本级和子级)."
    )
    period: PresetPeriodEnum | None = None
    from_: date | None = strawberry.field(
        default=None, name="from", description="First day, with `to`."
    )
    to: date | None = strawberry.field(default=None, description="Last day, included.")


@strawberry.type(description="Figures over the filter's people and period, within your scope.")
class Dashboard:
    scope: strawberry.Private[DashboardScope]

    @strawberry.field(name="from", description="The period's first day.")
    def from_(self) -> date:
        return self.scope.period.first

    @strawberry.field(description="The period's last day.")
    def to(self) -> date:
        return self.scope.period.last

    @strawberry.field(description="The period compared against: its first day.")
    def previous_from(self) -> date:
        return self.scope.period.previous().first

    @strawberry.field(description="The period compared against: its last day.")
    def previous_to(self) -> date:
        return self.scope.period.previous().last

    briefing = strawberry.field(
        resolver=resolve_briefing,
        description="销售简报: what is new in the period, beside the period before.",
    )
    trend = strawberry.field(
        resolver=resolve_trend,
        description="销售趋势: contract amount, payments and new customers per bucket.",
    )
    funnel = strawberry.field(
        resolver=resolve_funnel,
        description="销售漏斗: one pipeline's open opportunities per stage now, and conversion "
        "over the period; the default pipeline unless `pipelineId` names another.",
    )
    forecast = strawberry.field(
        resolver=resolve_forecast,
        description="Expected revenue and planned inflow per month, from the period's first "
        "month on (months: 1–24).",
    )
    receivables = strawberry.field(
        resolver=resolve_receivables,
        description="应收款: what approved contracts still owe, today.",
    )
    targets = strawberry.field(
        resolver=resolve_targets,
        description="绩效指标: targets of the year in scope, month by month, beside what was"
        " achieved.",
    )
    ranking = strawberry.field(
        resolver=resolve_ranking,
        description="销售排行: the people in scope with the highest figure in the period"
        " (people with nothing are left out).",
    )


@strawberry.type
class DashboardQuery:
    @strawberry.field(description="Needs dashboard:view.")
    async def dashboard(self, info: Info, filter: DashboardFilter | None = None) -> Dashboard:
        where = filter or DashboardFilter()
        scope = await dashboard_scope(
            info.context.viewer,
            timezone=info.context.settings.timezone,
            user_ids=[reference_id(pk, "User", "userIds") for pk in where.user_ids or []] or None,
            department_id=(
                reference_id(where.department_id, "Department", "departmentId")
                if where.department_id
                else None
            ),
            include_sub_departments=where.include_sub_departments,
            preset=where.period,
            first=where.from_,
            last=where.to,
        )
        return Dashboard(scope=scope)

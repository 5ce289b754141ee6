"""Sales targets (销售目标), the dashboard's 绩效指标 (targets) and 销售排行 (ranking)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated

import strawberry

from meihua import models
from meihua.resolvers import dashboard_ranking, dashboard_targets, sales_targets
from meihua.resolvers.dashboard_measures import Measure
from meihua.resolvers.dashboard_targets import Progress
from meihua.schema.context import Info
from meihua.schema.org import Department, User
from meihua.schema.relay import reference_id

if TYPE_CHECKING:
    from meihua.schema.dashboard import Dashboard

TargetMetric = strawberry.enum(
    models.TargetMetric,
    name="TargetMetric",
    description="What a target measures: contract amount (approved, by signing date),"
    " payments received, or new customers.",
)
RankingMetric = strawberry.enum(
    Measure, name="RankingMetric", description="What the ranking ranks people by."
)

COMPLETION_RATE = "Percent of the target achieved; null when the target is 0."


async def _user(info: Info, pk: int | None) -> User | None:
    return None if pk is None else User.of(await info.context.loaders.user.load(pk))


async def _department(info: Info, pk: int | None) -> Department | None:
    return None if pk is None else Department.of(await info.context.loaders.department.load(pk))


@strawberry.type(description="One month's target of one metric, for a person or a department.")
class SalesTarget:
    metric: TargetMetric
    year: int
    month: int
    value: Decimal
    version: int
    updated_at: datetime
    user_pk: strawberry.Private[int | None]
    department_pk: strawberry.Private[int | None]

    @classmethod
    def of(cls, row: models.SalesTarget) -> SalesTarget:
        return cls(
            metric=row.metric,
            year=row.year,
            month=row.month,
            value=row.value,
            version=row.version,
            updated_at=row.updated_at,
            user_pk=row.user_id,
            department_pk=row.department_id,
        )

    @strawberry.field
    async def user(self, info: Info) -> User | None:
        return await _user(info, self.user_pk)

    @strawberry.field
    async def department(self, info: Info) -> Department | None:
        return await _department(info, self.department_pk)


@strawberry.input
class MonthTargetInput:
    month: int = strawberry.field(description="1–12.")
    value: Decimal = strawberry.field(
        description="At least 0, two decimals; a whole number for NEW_CUSTOMERS."
    )


@strawberry.input(description="Give `userId` or `departmentId`.")
class SetSalesTargetsInput:
    year: int
    metric: TargetMetric
    months: list[MonthTargetInput] = strawberry.field(
        description="The months to set; other months keep their targets."
    )
    user_id: strawberry.ID | None = None
    department_id: strawberry.ID | None = None


@strawberry.type(description="A target beside what was achieved.")
class TargetFigure:
    target: Decimal
    achieved: Decimal
    completion_rate: float | None = strawberry.field(description=COMPLETION_RATE)

    @classmethod
    def of(cls, figure: Progress, **where: int):
        return cls(
            target=figure.target,
            achieved=figure.achieved,
            completion_rate=figure.completion_rate,
            **where,
        )


@strawberry.type
class MonthTargetFigure(TargetFigure):
    month: int


@strawberry.type
class QuarterTargetFigure(TargetFigure):
    quarter: int


@strawberry.type(
    description="A person's or a department's target for a year and what they achieved;"
    " a department's achievement is the sum of its people's, sub-departments included."
)
class TargetProgress:
    metric: TargetMetric
    year: int
    months: list[MonthTargetFigure] = strawberry.field(description="January to December.")
    quarters: list[QuarterTargetFigure]
    total: TargetFigure = strawberry.field(description="The whole year.")
    user_pk: strawberry.Private[int | None]
    department_pk: strawberry.Private[int | None]

    @classmethod
    def of(cls, row: dashboard_targets.TargetProgress) -> TargetProgress:
        return cls(
            metric=row.metric,
            year=row.year,
            months=[
                MonthTargetFigure.of(figure, month=month)
                for month, figure in enumerate(row.months, 1)
            ],
            quarters=[
                QuarterTargetFigure.of(figure, quarter=quarter)
                for quarter, figure in enumerate(row.quarters, 1)
            ],
            total=TargetFigure.of(row.total),
            user_pk=row.user_id,
            department_pk=row.department_id,
        )

    @strawberry.field(description="Set for a person's target.")
    async def user(self, info: Info) -> User | None:
        return await _user(info, self.user_pk)

    @strawberry.field(description="Set for a department's target.")
    async def department(self, info: Info) -> Department | None:
        return await _department(info, self.department_pk)


@strawberry.type(description="A place in the ranking.")
class RankingEntry:
    rank: int = strawberry.field(description="1 for the highest; equal values share a rank.")
    value: Decimal = strawberry.field(description="Money, or a whole number for counts.")
    user_pk: strawberry.Private[int]

    @strawberry.field
    async def user(self, info: Info) -> User:
        return User.of(await info.context.loaders.user.load(self.user_pk))


async def resolve_targets(
    root: Dashboard,
    year: Annotated[
        int | None, strawberry.argument(description="Defaults to the year the period starts in.")
    ] = None,
    metric: Annotated[
        TargetMetric | None, strawberry.argument(description="All metrics when not given.")
    ] = None,
) -> list[TargetProgress]:
    rows = await dashboard_targets.targets(
        root.scope, year if year is not None else root.scope.period.first.year, metric
    )
    return [TargetProgress.of(row) for row in rows]


async def resolve_ranking(
    root: Dashboard,
    by: RankingMetric = Measure.CONTRACT_AMOUNT,
    first: Annotated[int, strawberry.argument(description="At most 100.")] = 10,
) -> list[RankingEntry]:
    rows = await dashboard_ranking.ranking(root.scope, by, first)
    return [RankingEntry(rank=row.rank, value=row.value, user_pk=row.user_id) for row in rows]


@strawberry.type
class SalesTargetMutation:
    @strawberry.mutation(
        description="Set monthly targets of a person or a department; returns all its months"
        " of that year and metric. Needs settings:manage, or the person (not yourself) or"
        " the department's people all in your data scope."
    )
    async def set_sales_targets(self, info: Info, input: SetSalesTargetsInput) -> list[SalesTarget]:
        rows = await sales_targets.set_sales_targets(
            info.context.viewer,
            sales_targets.TargetsInput(
                metric=input.metric,
                year=input.year,
                months=[sales_targets.MonthValue(m.month, m.value) for m in input.months],
                user_id=(reference_id(input.user_id, "User", "userId") if input.user_id else None),
                department_id=(
                    reference_id(input.department_id, "Department", "departmentId")
                    if input.department_id
                    else None
                ),
            ),
        )
        return [SalesTarget.of(row) for row in rows]

"""GraphQL types of the dashboard's funnel (销售漏斗), forecast (销售预测) and receivables (应收款).

The definitions behind each figure are in resolvers.dashboard_funnel,
resolvers.dashboard_forecast and resolvers.dashboard_receivables.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING

import strawberry

from meihua import models
from meihua.resolvers import dashboard_receivables as receivables
from meihua.resolvers import pipelines
from meihua.resolvers.contracts import company_today
from meihua.resolvers.dashboard_filter import DashboardScope
from meihua.resolvers.dashboard_forecast import MonthForecast, forecast
from meihua.resolvers.dashboard_funnel import FunnelFigures, StageFigures, funnel
from meihua.resolvers.once import Once
from meihua.schema.context import Info
from meihua.schema.contracts import Contract, PaymentPlan
from meihua.schema.customers import Customer
from meihua.schema.opportunities import OpportunityStage
from meihua.schema.pipelines import Pipeline
from meihua.schema.relay import reference_id, to_global_id

if TYPE_CHECKING:
    from meihua.schema.dashboard import Dashboard

RATE = "Percent, to two decimals; null when there is nothing to divide by."


@strawberry.type(description="One stage of the funnel: its open pipeline now, and its conversion.")
class FunnelStage:
    open_count: int = strawberry.field(description="OPEN opportunities at this stage now.")
    open_amount: Decimal = strawberry.field(description="Their amount.")
    weighted_amount: Decimal = strawberry.field(
        description="Their amount × the stage's win rate / 100, each rounded half-up to the cent."
    )
    entered_count: int = strawberry.field(
        description="Opportunities that entered this stage (created, moved or reopened at it, "
        "per the stage history) during the period."
    )
    advanced_count: int = strawberry.field(
        description="Of those, the ones that have since reached a later stage or been won."
    )
    conversion_rate: float | None = strawberry.field(
        description=f"advancedCount / enteredCount. {RATE}"
    )
    stage_pk: strawberry.Private[int]

    @classmethod
    def of(cls, figures: StageFigures) -> FunnelStage:
        return cls(
            open_count=figures.open_count,
            open_amount=figures.open_amount,
            weighted_amount=figures.weighted_amount,
            entered_count=figures.entered,
            advanced_count=figures.advanced,
            conversion_rate=figures.conversion_rate,
            stage_pk=figures.stage_id,
        )

    @strawberry.field
    async def stage(self, info: Info) -> OpportunityStage:
        return OpportunityStage.of(await info.context.loaders.opportunity_stage.load(self.stage_pk))


@strawberry.type(description="The sales funnel (销售漏斗) of one pipeline and the filter's people.")
class Funnel:
    stages: list[FunnelStage] = strawberry.field(
        description="Every stage of the pipeline in order, those holding nothing included."
    )
    won_count: int = strawberry.field(description="The pipeline's opportunities won in the period.")
    lost_count: int = strawberry.field(
        description="The pipeline's opportunities lost in the period."
    )
    win_rate: float | None = strawberry.field(
        description=f"wonCount / (wonCount + lostCount), by when they closed. {RATE}"
    )
    average_days_to_win: float | None = strawberry.field(
        description="Days from creation to winning, averaged over those won in the period, "
        "to one decimal; null when none were won."
    )
    leads_created: int = strawberry.field(description="Leads created in the period.")
    leads_converted: int = strawberry.field(description="Of those, the ones converted by now.")
    lead_conversion_rate: float | None = strawberry.field(
        description=f"leadsConverted / leadsCreated. {RATE}"
    )
    pipeline_pk: strawberry.Private[int]

    @strawberry.field(description="The pipeline counted.")
    async def pipeline(self, info: Info) -> Pipeline:
        return Pipeline.of(await info.context.loaders.pipeline.load(self.pipeline_pk))

    @classmethod
    def of(cls, figures: FunnelFigures, pipeline_pk: int) -> Funnel:
        return cls(
            pipeline_pk=pipeline_pk,
            stages=[FunnelStage.of(stage) for stage in figures.stages],
            won_count=figures.won,
            lost_count=figures.lost,
            win_rate=figures.win_rate,
            average_days_to_win=figures.average_days_to_win,
            leads_created=figures.leads_created,
            leads_converted=figures.leads_converted,
            lead_conversion_rate=figures.lead_conversion_rate,
        )


@strawberry.type(description="A month of the forecast (销售预测).")
class ForecastMonth:
    month: date = strawberry.field(description="The month's first day.")
    expected_revenue: Decimal = strawberry.field(
        description="Weighted amount of the OPEN opportunities expected to close in the month."
    )
    planned_inflow: Decimal = strawberry.field(
        description="What the payment plans of approved contracts due in the month still await."
    )

    @classmethod
    def of(cls, row: MonthForecast) -> ForecastMonth:
        return cls(
            month=row.month,
            expected_revenue=row.expected_revenue,
            planned_inflow=row.planned_inflow,
        )


@strawberry.type(description="A customer and what its approved contracts in scope still owe.")
class CustomerReceivable:
    customer_id: strawberry.ID
    outstanding_amount: Decimal
    contract_count: int = strawberry.field(description="Its contracts still owing.")
    customer_pk: strawberry.Private[int]

    @strawberry.field(description="Null when the customer is outside your sight.")
    async def customer(self, info: Info) -> Customer | None:
        viewer = info.context.viewer
        row = await info.context.loaders.visible_customer.load((viewer, self.customer_pk))
        return Customer.of(row) if row is not None else None


@strawberry.type(description="An approved contract and what it still owes (total − payments).")
class ContractReceivable:
    outstanding_amount: Decimal
    contract_pk: strawberry.Private[int]

    @strawberry.field
    async def contract(self, info: Info) -> Contract:
        return Contract.of(await info.context.loaders.contract.load(self.contract_pk))


@strawberry.type(description="A payment plan past its date and not yet covered.")
class OverduePlan:
    plan: PaymentPlan
    days_overdue: int = strawberry.field(description="Days since its planned date, today.")
    outstanding_amount: Decimal = strawberry.field(description="Planned − paid against it.")


@strawberry.type(
    description="Receivables (应收款) of approved contracts owned by the filter's people, today; "
    "not bound to the period."
)
class Receivables:
    scope: strawberry.Private[DashboardScope]
    today: strawberry.Private[date]
    outstanding: strawberry.Private[Once[receivables.Balance]]
    overdue: strawberry.Private[Once[receivables.Balance]]

    @classmethod
    def of(cls, scope: DashboardScope, today: date) -> Receivables:
        return cls(
            scope=scope,
            today=today,
            outstanding=Once(lambda: receivables.outstanding(scope)),
            overdue=Once(lambda: receivables.overdue(scope, today)),
        )

    @strawberry.field(description="What approved contracts still owe (total − payments).")
    async def outstanding_amount(self) -> Decimal:
        return (await self.outstanding).amount

    @strawberry.field(description="Approved contracts still owing.")
    async def contract_count(self) -> int:
        return (await self.outstanding).count

    @strawberry.field(description="Customers owing the most, biggest first (first: 1–100).")
    async def customers(self, first: int = 10) -> list[CustomerReceivable]:
        return [
            CustomerReceivable(
                customer_id=to_global_id("Customer", row.pk),
                outstanding_amount=row.amount,
                contract_count=row.contracts,
                customer_pk=row.pk,
            )
            for row in await receivables.top_customers(self.scope, first)
        ]

    @strawberry.field(description="Contracts owing the most, biggest first (first: 1–100).")
    async def contracts(self, first: int = 10) -> list[ContractReceivable]:
        return [
            ContractReceivable(outstanding_amount=row.amount, contract_pk=row.pk)
            for row in await receivables.top_contracts(self.scope, first)
        ]

    @strawberry.field(description="What overdue plans still await, together.")
    async def overdue_amount(self) -> Decimal:
        return (await self.overdue).amount

    @strawberry.field(description="How many plans are overdue.")
    async def overdue_count(self) -> int:
        return (await self.overdue).count

    @strawberry.field(
        description="Overdue plans (planned date before today in company time, not covered), "
        "longest overdue first (first: 1–100)."
    )
    async def overdue_plans(self, first: int = 100) -> list[OverduePlan]:
        owing = await receivables.overdue_plans(self.scope, self.today, first)
        plans = {
            row.id: row
            for row in await models.PaymentPlan.filter(id__in=[plan.pk for plan in owing])
        }
        return [
            OverduePlan(
                plan=PaymentPlan.of(plans[plan.pk]),
                days_overdue=(self.today - plans[plan.pk].planned_on).days,
                outstanding_amount=plan.amount,
            )
            for plan in owing
        ]


async def resolve_funnel(root: Dashboard, pipeline_id: strawberry.ID | None = None) -> Funnel:
    pipeline = await pipelines.funnel_pipeline(
        reference_id(pipeline_id, "Pipeline", "pipelineId") if pipeline_id is not None else None
    )
    return Funnel.of(await funnel(root.scope, pipeline.id), pipeline.id)


async def resolve_forecast(root: Dashboard, months: int = 6) -> list[ForecastMonth]:
    return [ForecastMonth.of(row) for row in await forecast(root.scope, months)]


def resolve_receivables(root: Dashboard, info: Info) -> Receivables:
    return Receivables.of(root.scope, company_today(info.context.settings.timezone))

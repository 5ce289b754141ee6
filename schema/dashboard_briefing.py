"""The dashboard's 销售简报 (briefing) and 销售趋势 (trend) sections."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING

import strawberry

from meihua.resolvers import dashboard_briefing, dashboard_trend
from meihua.resolvers.dashboard_briefing import Figure
from meihua.resolvers.dashboard_trend import TrendPoint as TrendPointRow

if TYPE_CHECKING:
    from meihua.schema.dashboard import Dashboard

TrendInterval = strawberry.enum(
    dashboard_trend.TrendInterval,
    name="TrendInterval",
    description="A trend's bucket: a day, a week from Monday or a calendar month, company time.",
)

CHANGE_RATE = "Percent change from `previous`; null when `previous` is 0."


@strawberry.type(description="A count in the period beside the same count in the period before.")
class BriefingCount:
    value: int
    previous: int
    change: int = strawberry.field(description="`value` - `previous`.")
    change_rate: float | None = strawberry.field(description=CHANGE_RATE)

    @classmethod
    def of(cls, figure: Figure) -> BriefingCount:
        return cls(
            value=figure.value,
            previous=figure.previous,
            change=figure.change,
            change_rate=figure.change_rate,
        )


@strawberry.type(description="An amount in the period beside the same amount in the period before.")
class BriefingAmount:
    value: Decimal
    previous: Decimal
    change: Decimal = strawberry.field(description="`value` - `previous`.")
    change_rate: float | None = strawberry.field(description=CHANGE_RATE)

    @classmethod
    def of(cls, figure: Figure) -> BriefingAmount:
        return cls(
            value=figure.value,
            previous=figure.previous,
            change=figure.change,
            change_rate=figure.change_rate,
        )


@strawberry.type(description="销售简报: what is new in the period, beside the period before.")
class Briefing:
    new_leads: BriefingCount = strawberry.field(description="Leads created.")
    new_customers: BriefingCount = strawberry.field(description="Customers created.")
    new_contacts: BriefingCount = strawberry.field(
        description="Contacts created, counted for their customer's owner."
    )
    new_opportunities: BriefingCount = strawberry.field(description="Opportunities created.")
    opportunity_amount: BriefingAmount = strawberry.field(
        description="The amount of the opportunities created."
    )
    new_contracts: BriefingCount = strawberry.field(
        description="Approved contracts signed in the period."
    )
    contract_amount: BriefingAmount = strawberry.field(
        description="The total of the approved contracts signed in the period."
    )
    payment_amount: BriefingAmount = strawberry.field(
        description="Payments received, counted for their contract's owner."
    )
    follow_ups: BriefingCount = strawberry.field(description="Follow-ups made, by their author.")

    @classmethod
    def of(cls, row: dashboard_briefing.Briefing) -> Briefing:
        return cls(
            new_leads=BriefingCount.of(row.new_leads),
            new_customers=BriefingCount.of(row.new_customers),
            new_contacts=BriefingCount.of(row.new_contacts),
            new_opportunities=BriefingCount.of(row.new_opportunities),
            opportunity_amount=BriefingAmount.of(row.opportunity_amount),
            new_contracts=BriefingCount.of(row.new_contracts),
            contract_amount=BriefingAmount.of(row.contract_amount),
            payment_amount=BriefingAmount.of(row.payment_amount),
            follow_ups=BriefingCount.of(row.follow_ups),
        )


@strawberry.type(description="One bucket of a trend.")
class TrendPoint:
    from_: date = strawberry.field(name="from", description="The bucket's first day.")
    to: date = strawberry.field(description="The bucket's last day, included.")
    contract_amount: Decimal = strawberry.field(
        description="The total of the approved contracts signed."
    )
    payment_amount: Decimal = strawberry.field(description="Payments received.")
    new_customers: int = strawberry.field(description="Customers created.")

    @classmethod
    def of(cls, row: TrendPointRow) -> TrendPoint:
        return cls(
            from_=row.first,
            to=row.last,
            contract_amount=row.contract_amount,
            payment_amount=row.payment_amount,
            new_customers=row.new_customers,
        )


@strawberry.type(description="销售趋势: the period bucket by bucket.")
class Trend:
    interval: TrendInterval
    points: list[TrendPoint] = strawberry.field(
        description="Every bucket, in order, empty ones too."
    )


async def resolve_briefing(root: Dashboard) -> Briefing:
    return Briefing.of(await dashboard_briefing.briefing(root.scope))


async def resolve_trend(
    root: Dashboard, interval: TrendInterval = dashboard_trend.TrendInterval.DAY
) -> Trend:
    points = await dashboard_trend.trend(root.scope, interval)
    return Trend(interval=interval, points=[TrendPoint.of(point) for point in points])

"""销售简报: what is new in the period, each figure beside the period before it.

A period and the one before it are adjacent, so each table is read once over
both: a row belongs to the period when it falls on or after the period's
start, else to the period before.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from meihua.models import ContractStatus
from meihua.resolvers.dashboard_filter import DashboardScope
from meihua.resolvers.dashboard_sql import cents_sum, count_if, money, owned_by
from meihua.resolvers.products import CENT
from meihua.resolvers.raw_sql import fetch


@dataclass(frozen=True)
class Figure:
    value: int | Decimal
    previous: int | Decimal

    @property
    def change(self) -> int | Decimal:
        return self.value - self.previous

    @property
    def change_rate(self) -> float | None:
        """Percent change from the period before; None when it had nothing to compare with."""
        if not self.previous:
            return None
        return float((Decimal(self.change) * 100 / Decimal(self.previous)).quantize(CENT))


@dataclass(frozen=True)
class Briefing:
    new_leads: Figure
    new_customers: Figure
    new_contacts: Figure
    new_opportunities: Figure
    opportunity_amount: Figure
    new_contracts: Figure
    contract_amount: Figure
    payment_amount: Figure
    follow_ups: Figure


@dataclass(frozen=True)
class Source:
    """Where a figure's rows are, what places them in time and who owns them."""

    tables: str
    at: str
    owner: str
    # `at` is a date in company time (signed_on, paid_on) rather than an instant
    local_date: bool = False
    amount: str | None = None
    where: str = "1 = 1"


LEADS = Source('"lead"', '"lead"."created_at"', '"lead"."owner_id"')
CUSTOMERS = Source('"customer"', '"customer"."created_at"', '"customer"."owner_id"')
CONTACTS = Source(
    '"contact" JOIN "customer" ON "customer"."id" = "contact"."customer_id"',
    '"contact"."created_at"',
    '"customer"."owner_id"',
)
OPPORTUNITIES = Source(
    '"opportunity"',
    '"opportunity"."created_at"',
    '"opportunity"."owner_id"',
    amount='"opportunity"."amount"',
)
CONTRACTS = Source(
    '"contract"',
    '"contract"."signed_on"',
    '"contract"."owner_id"',
    local_date=True,
    amount='"contract"."total"',
    where=f'"contract"."status" = \'{ContractStatus.APPROVED.value}\'',
)
PAYMENTS = Source(
    '"payment" JOIN "contract" ON "contract"."id" = "payment"."contract_id"',
    '"payment"."paid_on"',
    '"contract"."owner_id"',
    local_date=True,
    amount='"payment"."amount"',
)
FOLLOW_UPS = Source('"followup"', '"followup"."occurred_at"', '"followup"."author_id"')


async def briefing(scope: DashboardScope) -> Briefing:
    """The briefing's figures: one aggregate statement per table."""
    leads, _ = await tally(scope, LEADS)
    customers, _ = await tally(scope, CUSTOMERS)
    contacts, _ = await tally(scope, CONTACTS)
    opportunities, opportunity_amount = await tally(scope, OPPORTUNITIES)
    contracts, contract_amount = await tally(scope, CONTRACTS)
    _, payment_amount = await tally(scope, PAYMENTS)
    follow_ups, _ = await tally(scope, FOLLOW_UPS)
    return Briefing(
        new_leads=leads,
        new_customers=customers,
        new_contacts=contacts,
        new_opportunities=opportunities,
        opportunity_amount=opportunity_amount,
        new_contracts=contracts,
        contract_amount=contract_amount,
        payment_amount=payment_amount,
        follow_ups=follow_ups,
    )


async def tally(scope: DashboardScope, source: Source) -> tuple[Figure, Figure | None]:
    """How many rows (and, with an amount, how much) in the period and the one before."""
    period, before = scope.period, scope.period.previous()
    bounds: tuple[date, date, date] | tuple[datetime, datetime, datetime]
    if source.local_date:
        bounds = (before.first, period.first, period.last + timedelta(days=1))
    else:
        bounds = (before.start, period.start, period.end)
    since, start, end = bounds
    now, earlier = f"{source.at} >= ?", f"{source.at} < ?"
    columns = [f"{count_if(now)} AS n", f"{count_if(earlier)} AS n_before"]
    params: list = [start, start]
    if source.amount is not None:
        columns += [
            f"{cents_sum(source.amount, now)} AS cents",
            f"{cents_sum(source.amount, earlier)} AS cents_before",
        ]
        params += [start, start]
    owners, owner_ids = owned_by(scope, source.owner)
    sql = (
        f"SELECT {', '.join(columns)} FROM {source.tables}"
        f" WHERE {source.at} >= ? AND {source.at} < ? AND {owners} AND {source.where}"
    )
    [row] = await fetch(sql, [*params, since, end, *owner_ids])
    count = Figure(int(row["n"]), int(row["n_before"]))
    if source.amount is None:
        return count, None
    return count, Figure(money(row["cents"]), money(row["cents_before"]))

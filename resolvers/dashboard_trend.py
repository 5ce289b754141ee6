"""销售趋势: contract amount, payments and new customers per day, week or month.

The period is cut into buckets at midnights in company time (weeks start on
Monday, the first and last bucket clipped to the period). The buckets go to
the database as a VALUES list each table is joined against, so one GROUP BY
per table counts every bucket whatever the time zone or its DST rules; buckets
nothing fell into come back as zeros.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from meihua.resolvers.dashboard_briefing import CONTRACTS, CUSTOMERS, PAYMENTS, Source
from meihua.resolvers.dashboard_filter import DashboardScope, Period
from meihua.resolvers.dashboard_sql import cents_sum, money, owned_by, ranges
from meihua.resolvers.errors import BadUserInput
from meihua.resolvers.raw_sql import fetch

MAX_BUCKETS = 400


class TrendInterval(StrEnum):
    DAY = "DAY"
    WEEK = "WEEK"
    MONTH = "MONTH"


@dataclass(frozen=True)
class TrendPoint:
    first: date
    last: date
    contract_amount: Decimal
    payment_amount: Decimal
    new_customers: int


def buckets(period: Period, interval: TrendInterval) -> list[Period]:
    """The period cut into days, weeks or calendar months, the ends clipped to the period."""
    cut: list[Period] = []
    first = period.first
    while first <= period.last:
        if len(cut) == MAX_BUCKETS:
            raise BadUserInput(
                f"A trend has at most {MAX_BUCKETS} points: choose a longer interval.",
                field="interval",
            )
        if interval is TrendInterval.DAY:
            after = first + timedelta(days=1)
        elif interval is TrendInterval.WEEK:
            after = first + timedelta(days=7 - first.weekday())
        else:
            after = (first.replace(day=1) + timedelta(days=31)).replace(day=1)
        cut.append(Period(first, min(after - timedelta(days=1), period.last), period.timezone))
        first = after
    return cut


async def trend(scope: DashboardScope, interval: TrendInterval) -> list[TrendPoint]:
    """One point per bucket of the period, zeros included."""
    cut = buckets(scope.period, interval)
    days = [(span.first, span.last + timedelta(days=1)) for span in cut]
    instants = [(span.start, span.end) for span in cut]
    contracts = await per_bucket(scope, CONTRACTS, days, cents_sum(CONTRACTS.amount))
    payments = await per_bucket(scope, PAYMENTS, days, cents_sum(PAYMENTS.amount))
    customers = await per_bucket(scope, CUSTOMERS, instants, "COUNT(*)")
    return [
        TrendPoint(
            first=span.first,
            last=span.last,
            contract_amount=money(contracts.get(index, 0)),
            payment_amount=money(payments.get(index, 0)),
            new_customers=int(customers.get(index, 0)),
        )
        for index, span in enumerate(cut)
    ]


async def per_bucket(
    scope: DashboardScope,
    source: Source,
    bounds: list[tuple[date, date]] | list[tuple[datetime, datetime]],
    figure: str,
) -> dict[int, Any]:
    """`figure` (an aggregate over the source's rows) by bucket index, for non-empty buckets."""
    with_buckets, bucket_params = ranges("bucket", bounds)
    owners, owner_ids = owned_by(scope, source.owner)
    sql = (
        f"{with_buckets} SELECT bucket.idx AS idx, {figure} AS figure"
        f" FROM {source.tables} JOIN bucket ON {source.at} >= bucket.lo AND {source.at} < bucket.hi"
        # the whole period again, so the table's index on `at` narrows the rows first
        f" WHERE {source.at} >= ? AND {source.at} < ? AND {owners} AND {source.where}"
        " GROUP BY bucket.idx"
    )
    params = [*bucket_params, bounds[0][0], bounds[-1][1], *owner_ids]
    return {row["idx"]: row["figure"] for row in await fetch(sql, params)}

"""The forecast (销售预测): money to expect month by month, from the period's first month on.

It starts at the month holding the period's first day (not the current month),
so the same filter always gives the same months.

- Expected revenue: the weighted amount (amount × stage win rate / 100, each
  opportunity rounded half-up to the cent) of OPEN opportunities expected to
  close in the month. Open ones without an expected close date are left out.
- Planned inflow: what the payment plans due in the month still await
  (planned − paid against the plan, plans already covered adding nothing), over
  APPROVED contracts, as resolvers.dashboard_receivables counts it. A past
  month shows what is still missing from it.

Opportunities count for their owner, plans for their contract's owner.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from itertools import pairwise

from meihua.resolvers.dashboard_filter import DashboardScope
from meihua.resolvers.dashboard_funnel import weighted_cents
from meihua.resolvers.dashboard_receivables import plan_dues
from meihua.resolvers.dashboard_sql import money, owned_by, ranges
from meihua.resolvers.errors import BadUserInput
from meihua.resolvers.raw_sql import fetch

MAX_MONTHS = 24


@dataclass(frozen=True)
class MonthForecast:
    month: date  # its first day
    expected_revenue: Decimal
    planned_inflow: Decimal


def month_starts(day: date, count: int) -> list[date]:
    """The first days of `count` months from `day`'s month on, and of the month after them."""
    index = day.year * 12 + day.month - 1
    return [date((index + i) // 12, (index + i) % 12 + 1, 1) for i in range(count + 1)]


async def forecast(scope: DashboardScope, months: int) -> list[MonthForecast]:
    if not 1 <= months <= MAX_MONTHS:
        raise BadUserInput(f"`months` runs from 1 to {MAX_MONTHS}.", field="months")
    starts = month_starts(scope.period.first, months)
    bounds = list(pairwise(starts))
    expected = await _expected_revenue(scope, bounds)
    planned = await _planned_inflow(scope, bounds)
    return [
        MonthForecast(start, money(expected[index]), money(planned[index]))
        for index, (start, _) in enumerate(bounds)
    ]


# Both figures total their rows per day inside the months' whole range first,
# so the join to the months' ranges meets a few hundred days, not every open
# opportunity or plan (bench/README.md: about half the forecast's time).


async def _expected_revenue(scope: DashboardScope, bounds: list[tuple[date, date]]) -> list:
    months, month_params = ranges("m", bounds)
    owner, params = owned_by(scope, "o.owner_id")
    rows = await fetch(
        f"""
        {months}
        SELECT m.idx, COALESCE(SUM(w.weighted), 0) AS amount
        FROM m
        LEFT JOIN (
            SELECT o.expected_close_date AS day,
                   SUM({weighted_cents("o.amount", "s.win_rate")}) AS weighted
            FROM opportunity o JOIN opportunity_stage s ON s.id = o.stage_id
            WHERE o.status = 'OPEN' AND {owner}
              AND o.expected_close_date >= ? AND o.expected_close_date < ?
            GROUP BY o.expected_close_date
        ) w ON w.day >= m.lo AND w.day < m.hi
        GROUP BY m.idx ORDER BY m.idx
        """,
        [*month_params, *params, bounds[0][0], bounds[-1][1]],
    )
    return [row["amount"] for row in rows]


async def _planned_inflow(scope: DashboardScope, bounds: list[tuple[date, date]]) -> list:
    months, month_params = ranges("m", bounds)
    dues, params = plan_dues(scope)
    rows = await fetch(
        f"""
        {months}
        SELECT m.idx, COALESCE(SUM(d.due), 0) AS amount
        FROM m
        LEFT JOIN (
            SELECT p.planned_on AS day, SUM(p.due) AS due FROM ({dues}) p
            WHERE p.planned_on >= ? AND p.planned_on < ?
            GROUP BY p.planned_on
        ) d ON d.day >= m.lo AND d.day < m.hi
        GROUP BY m.idx ORDER BY m.idx
        """,
        [*month_params, *params, bounds[0][0], bounds[-1][1]],
    )
    return [row["amount"] for row in rows]

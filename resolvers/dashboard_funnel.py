"""The sales funnel (销售漏斗) of one pipeline: as it stands, and how deals moved in the period.

Every figure but lead conversion counts only the pipeline's stages and the
opportunities now in it (see resolvers.pipelines); leads belong to no pipeline.

- Open pipeline, per stage in pipeline order (stages holding nothing included):
  the OPEN opportunities there now, their amount, and their weighted amount
  (amount × the stage's win rate / 100, each opportunity rounded half-up to the
  cent as its own `weightedAmount` is). Not bound to the period.
- Stage conversion: an opportunity *enters* stage k with every stage-history row
  that leaves it OPEN at k (created there, moved there, or reopened there). Of
  the opportunities that entered k during the period, the ones that *advanced*
  reached a later stage in the pipeline order or were won there, at any time
  after that entry, up to now (a cohort: the period fixes who started, not when
  they got further). Moving to another pipeline is not advancing.
- Win rate: won / (won + lost) among the pipeline's opportunities closed in the
  period (by closed_at; a reopened opportunity is not closed).
- Average days to win: closed_at − created_at over the opportunities won in the
  period, in days to one decimal.
- Lead conversion: of the leads created in the period, the share converted by now.

Opportunities and leads count for their current owner. Rates are percentages
to two decimals, as elsewhere on the dashboard, None when there is nothing to
divide by.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from meihua.resolvers.dashboard_filter import DashboardScope
from meihua.resolvers.dashboard_sql import cents, count_if, money, owned_by, seconds_between
from meihua.resolvers.products import CENT
from meihua.resolvers.raw_sql import fetch

TENTH = Decimal("0.1")
SECONDS_PER_DAY = 86_400
# Winning counts as reaching past every stage.
WON_ORDER = 1_000_000


def percent(part: int, whole: int) -> float | None:
    """part / whole as a percentage to two decimals; None for a zero whole."""
    if not whole:
        return None
    return float((Decimal(part) * 100 / whole).quantize(CENT))


@dataclass(frozen=True)
class StageFigures:
    stage_id: int
    open_count: int
    open_amount: Decimal
    weighted_amount: Decimal
    entered: int
    advanced: int

    @property
    def conversion_rate(self) -> float | None:
        return percent(self.advanced, self.entered)


@dataclass(frozen=True)
class FunnelFigures:
    stages: list[StageFigures]
    won: int
    lost: int
    average_days_to_win: float | None  # to one decimal, half-up
    leads_created: int
    leads_converted: int

    @property
    def win_rate(self) -> float | None:
        return percent(self.won, self.won + self.lost)

    @property
    def lead_conversion_rate(self) -> float | None:
        return percent(self.leads_converted, self.leads_created)


def _days(seconds: Decimal) -> float:
    return float((seconds / SECONDS_PER_DAY).quantize(TENTH, rounding=ROUND_HALF_UP))


def weighted_cents(amount: str, win_rate: str) -> str:
    """SQL for amount × win rate / 100 in whole cents, rounded half-up.

    Integer division after adding half the divisor rounds half-up the same way on
    both backends (amounts are never negative).
    """
    return f"(({cents(amount)} * {win_rate} + 50) / 100)"


async def funnel(scope: DashboardScope, pipeline_id: int) -> FunnelFigures:
    pipeline = await _open_pipeline(scope, pipeline_id)
    moves = await _stage_conversion(scope, pipeline_id)
    closed = await _closed(scope, pipeline_id)
    leads = await _leads(scope)
    won = int(closed["won"])
    return FunnelFigures(
        stages=[
            StageFigures(
                stage_id=row["stage_id"],
                open_count=int(row["open_count"]),
                open_amount=money(row["amount"]),
                weighted_amount=money(row["weighted"]),
                entered=int(moves[row["stage_id"]]["entered"]),
                advanced=int(moves[row["stage_id"]]["advanced"]),
            )
            for row in pipeline
        ],
        won=won,
        lost=int(closed["lost"]),
        average_days_to_win=_days(Decimal(closed["won_seconds"]) / won) if won else None,
        leads_created=int(leads["created"]),
        leads_converted=int(leads["converted"]),
    )


async def _open_pipeline(scope: DashboardScope, pipeline_id: int) -> list[dict]:
    owner, params = owned_by(scope, "o.owner_id")
    return await fetch(
        f"""
        SELECT s.id AS stage_id, COUNT(o.id) AS open_count,
               COALESCE(SUM({cents("o.amount")}), 0) AS amount,
               COALESCE(SUM({weighted_cents("o.amount", "s.win_rate")}), 0) AS weighted
        FROM opportunity_stage s
        LEFT JOIN opportunity o ON o.stage_id = s.id AND o.status = 'OPEN' AND {owner}
        WHERE s.pipeline_id = ?
        GROUP BY s.id, s."order"
        ORDER BY s."order", s.id
        """,
        [*params, pipeline_id],
    )


async def _stage_conversion(scope: DashboardScope, pipeline_id: int) -> dict[int, dict]:
    # One pass over the pipeline's history from the period's start: `reach` is
    # the highest stage order (WON above all) among an opportunity's rows in
    # the pipeline at or after each row. With ORDER BY at DESC the default
    # frame ends at the current row's peers, so rows at the same instant count,
    # as "at or after" says.
    owner, params = owned_by(scope, "o.owner_id")
    rows = await fetch(
        f"""
        WITH history AS (
            SELECT c.opportunity_id, c.at, c.to_stage_id, c.to_status,
                   MAX(CASE WHEN c.to_status = 'WON' THEN {WON_ORDER} ELSE st."order" END)
                       OVER (PARTITION BY c.opportunity_id ORDER BY c.at DESC) AS reach
            FROM opportunity_stage_change c
            JOIN opportunity_stage st ON st.id = c.to_stage_id AND st.pipeline_id = ?
            WHERE c.at >= ? AND c.opportunity_id IN (SELECT o.id FROM opportunity o WHERE {owner})
        )
        SELECT s.id AS stage_id,
               COUNT(DISTINCT e.opportunity_id) AS entered,
               COUNT(DISTINCT CASE WHEN e.reach > s."order" THEN e.opportunity_id END) AS advanced
        FROM opportunity_stage s
        LEFT JOIN history e ON e.to_stage_id = s.id AND e.to_status = 'OPEN' AND e.at < ?
        WHERE s.pipeline_id = ?
        GROUP BY s.id, s."order"
        """,
        [pipeline_id, scope.period.start, *params, scope.period.end, pipeline_id],
    )
    return {row["stage_id"]: row for row in rows}


async def _closed(scope: DashboardScope, pipeline_id: int) -> dict:
    owner, params = owned_by(scope, "o.owner_id")
    won = "o.status = 'WON'"
    (row,) = await fetch(
        f"""
        SELECT {count_if(won)} AS won, {count_if("o.status = 'LOST'")} AS lost,
               COALESCE(SUM(CASE WHEN {won}
                   THEN {seconds_between("o.created_at", "o.closed_at")} END), 0) AS won_seconds
        FROM opportunity o
        WHERE o.status IN ('WON', 'LOST') AND o.closed_at >= ? AND o.closed_at < ? AND {owner}
          AND o.stage_id IN (SELECT id FROM opportunity_stage WHERE pipeline_id = ?)
        """,
        [scope.period.start, scope.period.end, *params, pipeline_id],
    )
    return row


async def _leads(scope: DashboardScope) -> dict:
    owner, params = owned_by(scope, "l.owner_id")
    (row,) = await fetch(
        f"""
        SELECT COUNT(*) AS created, {count_if("l.status = 'CONVERTED'")} AS converted
        FROM "lead" l
        WHERE l.created_at >= ? AND l.created_at < ? AND {owner}
        """,
        [scope.period.start, scope.period.end, *params],
    )
    return row

"""销售排行: the people in scope ranked by one figure over the period.

One GROUP BY owner, highest first, ties in user id order. Equal values share
a rank (1, 1, 3). People with nothing in the period are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from meihua.resolvers.dashboard_filter import DashboardScope
from meihua.resolvers.dashboard_measures import DEFINITIONS, Measure
from meihua.resolvers.dashboard_sql import owned_by
from meihua.resolvers.errors import BadUserInput
from meihua.resolvers.raw_sql import fetch

MAX_ENTRIES = 100


@dataclass(frozen=True)
class Ranked:
    rank: int
    user_id: int
    value: Decimal


async def ranking(scope: DashboardScope, by: Measure, first: int) -> list[Ranked]:
    """The `first` people with the highest figure in the period."""
    if not 1 <= first <= MAX_ENTRIES:
        raise BadUserInput(f"`first` runs from 1 to {MAX_ENTRIES}.", field="first")
    definition = DEFINITIONS[by]
    source = definition.source
    [(since, until)] = definition.bounds([scope.period])
    owners, owner_ids = owned_by(scope, source.owner)
    sql = (
        f"SELECT {source.owner} AS owner_id, {definition.figure} AS figure"
        f" FROM {source.tables}"
        f" WHERE {source.at} >= ? AND {source.at} < ? AND {source.owner} IS NOT NULL"
        f" AND {owners} AND {source.where}"
        f" GROUP BY {source.owner} ORDER BY figure DESC, owner_id LIMIT ?"
    )
    rows = await fetch(sql, [since, until, *owner_ids, first])
    entries: list[Ranked] = []
    for position, row in enumerate(rows, 1):
        value = definition.value(row["figure"])
        rank = entries[-1].rank if entries and entries[-1].value == value else position
        entries.append(Ranked(rank, row["owner_id"], value))
    return entries

"""Raw SQL for the dashboard's aggregates, the same text on SQLite and PostgreSQL.

Statements are written with `?` placeholders and run with `raw_sql.fetch`.

Money is summed in whole cents. SQLite keeps DECIMAL columns as text and its
SUM() adds them as binary floats (0.10 + 0.20 ≠ 0.30); rounding each value to
an integer number of cents before adding keeps the sum exact. PostgreSQL sums
NUMERIC exactly either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from meihua.resolvers.dashboard_filter import DashboardScope
from meihua.resolvers.products import CENT
from meihua.resolvers.raw_sql import is_postgres


def count_if(condition: str) -> str:
    """SQL counting the rows that meet `condition` (0 when there are none)."""
    return f"COALESCE(SUM(CASE WHEN {condition} THEN 1 ELSE 0 END), 0)"


def cents_sum(amount: str, condition: str | None = None) -> str:
    """SQL adding up a money column in whole cents, optionally only where `condition` holds."""
    if condition is not None:
        amount = f"CASE WHEN {condition} THEN {amount} ELSE 0 END"
    cents = f"ROUND({amount} * 100)"
    if not is_postgres():
        cents = f"CAST({cents} AS INTEGER)"
    return f"COALESCE(SUM({cents}), 0)"


def cents(amount: str) -> str:
    """SQL for one money value as a whole number of cents (an integer on both backends)."""
    return f"CAST(ROUND({amount} * 100) AS BIGINT)"


def seconds_between(start: str, end: str) -> str:
    """SQL for the whole seconds from one datetime column to another."""
    if is_postgres():
        return f"CAST(ROUND(EXTRACT(EPOCH FROM ({end} - {start}))) AS BIGINT)"
    return f"CAST(ROUND((julianday({end}) - julianday({start})) * 86400) AS INTEGER)"


def money(cents: int | Decimal) -> Decimal:
    """A `cents_sum` result as an amount of money."""
    return (Decimal(cents) / 100).quantize(CENT)


def owned_by(scope: DashboardScope, column: str) -> tuple[str, list[int]]:
    """SQL condition (and its parameters) keeping the rows of the scope's owners."""
    if scope.owner_ids is None:
        return "1 = 1", []
    if not scope.owner_ids:
        return "1 = 0", []
    owners = sorted(scope.owner_ids)
    return f"{column} IN ({', '.join(['?'] * len(owners))})", owners


def ranges(
    name: str, bounds: Sequence[tuple[date, date] | tuple[datetime, datetime]]
) -> tuple[str, list[Any]]:
    """A `WITH name(idx, lo, hi) AS (VALUES …)` clause listing numbered half-open ranges.

    Join a table to it with `col >= lo AND col < hi` and GROUP BY idx to bucket rows.
    """
    kind = "DATE" if type(bounds[0][0]) is date else "TIMESTAMPTZ"
    # PostgreSQL cannot tell a VALUES parameter's type from its use; SQLite must not be
    # told, as CAST(? AS DATE) would turn the text into a number there.
    slot = f"CAST(? AS {kind})" if is_postgres() else "?"
    rows = ", ".join(f"({index}, {slot}, {slot})" for index in range(len(bounds)))
    return f"WITH {name}(idx, lo, hi) AS (VALUES {rows})", [v for pair in bounds for v in pair]

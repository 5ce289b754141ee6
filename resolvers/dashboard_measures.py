"""Figures measured per person, for targets and the ranking.

Each measure is one of the briefing's sources (same tables, same owner, same
rules for what counts), added up per owner: an amount of money in exact
cents, or a number of rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from meihua.resolvers.dashboard_briefing import CONTRACTS, CUSTOMERS, FOLLOW_UPS, PAYMENTS, Source
from meihua.resolvers.dashboard_filter import Period
from meihua.resolvers.dashboard_sql import cents_sum, money
from meihua.resolvers.products import CENT


class Measure(StrEnum):
    CONTRACT_AMOUNT = "CONTRACT_AMOUNT"
    PAYMENT_AMOUNT = "PAYMENT_AMOUNT"
    NEW_CUSTOMERS = "NEW_CUSTOMERS"
    FOLLOW_UPS = "FOLLOW_UPS"


@dataclass(frozen=True)
class Definition:
    source: Source
    is_money: bool

    @property
    def unit(self) -> Decimal:
        """What values are counted in: cents or whole rows."""
        return CENT if self.is_money else Decimal(1)

    @property
    def figure(self) -> str:
        """The SQL aggregate over the source's rows."""
        return cents_sum(self.source.amount) if self.is_money else "COUNT(*)"

    def value(self, raw: Any) -> Decimal:
        """An aggregate's result: money to the cent, a count as a whole number."""
        return money(raw) if self.is_money else Decimal(int(raw))

    def bounds(
        self, spans: list[Period]
    ) -> list[tuple[date, date]] | list[tuple[datetime, datetime]]:
        """Half-open ranges of the source's time column covering each span."""
        if self.source.local_date:
            return [(span.first, span.last + timedelta(days=1)) for span in spans]
        return [(span.start, span.end) for span in spans]


DEFINITIONS = {
    Measure.CONTRACT_AMOUNT: Definition(CONTRACTS, is_money=True),
    Measure.PAYMENT_AMOUNT: Definition(PAYMENTS, is_money=True),
    Measure.NEW_CUSTOMERS: Definition(CUSTOMERS, is_money=False),
    Measure.FOLLOW_UPS: Definition(FOLLOW_UPS, is_money=False),
}

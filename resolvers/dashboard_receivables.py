"""Receivables (应收款): what approved contracts in scope still owe, as it stands today.

Follows resolvers.payments: a contract owes total − its payments; a payment plan
awaits planned − the payments booked against it, and is overdue once its
planned date is before today in the company's time zone and it is not covered.
Only APPROVED contracts owe (drafts may never be signed, voided ones never
will be). Contracts, and through them their plans and customers, count for the
contract's owner. Not bound to the period: receivables are a balance.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from meihua.resolvers.dashboard_filter import DashboardScope
from meihua.resolvers.dashboard_sql import cents, money, owned_by
from meihua.resolvers.errors import BadUserInput
from meihua.resolvers.raw_sql import fetch

MAX_ROWS = 100


def plan_dues(scope: DashboardScope) -> tuple[str, list[int]]:
    """SQL of a derived table (plan_id, planned_on, due) and its parameters.

    One row per payment plan of an approved contract in scope that is not yet
    covered; `due` is planned − paid against it, in cents.
    """
    owner, params = owned_by(scope, "c.owner_id")
    planned = cents("p.planned_amount")
    sql = f"""
        SELECT p.id AS plan_id, p.planned_on, {planned} - COALESCE(paid.paid_cents, 0) AS due
        FROM payment_plan p
        JOIN contract c ON c.id = p.contract_id
        LEFT JOIN (
            SELECT plan_id, SUM({cents("amount")}) AS paid_cents
            FROM payment WHERE plan_id IS NOT NULL GROUP BY plan_id
        ) paid ON paid.plan_id = p.id
        WHERE c.status = 'APPROVED' AND {owner} AND {planned} > COALESCE(paid.paid_cents, 0)
    """
    return sql, params


def _contract_dues(scope: DashboardScope) -> tuple[str, list[int]]:
    """SQL of a derived table (contract_id, customer_id, due): approved contracts still owing."""
    owner, params = owned_by(scope, "c.owner_id")
    total = cents("c.total")
    sql = f"""
        SELECT c.id AS contract_id, c.customer_id, {total} - COALESCE(paid.paid_cents, 0) AS due
        FROM contract c
        LEFT JOIN (
            SELECT contract_id, SUM({cents("amount")}) AS paid_cents
            FROM payment GROUP BY contract_id
        ) paid ON paid.contract_id = c.id
        WHERE c.status = 'APPROVED' AND {owner} AND {total} > COALESCE(paid.paid_cents, 0)
    """
    return sql, params


def check_first(first: int) -> None:
    if not 1 <= first <= MAX_ROWS:
        raise BadUserInput(f"`first` runs from 1 to {MAX_ROWS}.", field="first")


@dataclass(frozen=True)
class Balance:
    count: int
    amount: Decimal


async def outstanding(scope: DashboardScope) -> Balance:
    """Contracts still owing, and what they owe together."""
    dues, params = _contract_dues(scope)
    (row,) = await fetch(
        f"SELECT COUNT(*) AS n, COALESCE(SUM(d.due), 0) AS due FROM ({dues}) d", params
    )
    return Balance(int(row["n"]), money(row["due"]))


async def overdue(scope: DashboardScope, today: date) -> Balance:
    """Plans overdue today, and what they still await together."""
    dues, params = plan_dues(scope)
    (row,) = await fetch(
        f"SELECT COUNT(*) AS n, COALESCE(SUM(d.due), 0) AS due FROM ({dues}) d"
        " WHERE d.planned_on < ?",
        [*params, today],
    )
    return Balance(int(row["n"]), money(row["due"]))


@dataclass(frozen=True)
class Owing:
    """A contract or plan (by id) and what it still owes or awaits."""

    pk: int
    amount: Decimal


@dataclass(frozen=True)
class CustomerOwing:
    pk: int
    amount: Decimal
    contracts: int


async def top_customers(scope: DashboardScope, first: int) -> list[CustomerOwing]:
    """Customers owing the most, biggest first."""
    check_first(first)
    dues, params = _contract_dues(scope)
    rows = await fetch(
        f"""
        SELECT d.customer_id, COUNT(*) AS n, SUM(d.due) AS owed FROM ({dues}) d
        GROUP BY d.customer_id ORDER BY owed DESC, d.customer_id LIMIT ?
        """,
        [*params, first],
    )
    return [CustomerOwing(row["customer_id"], money(row["owed"]), int(row["n"])) for row in rows]


async def top_contracts(scope: DashboardScope, first: int) -> list[Owing]:
    """Contracts owing the most, biggest first."""
    check_first(first)
    dues, params = _contract_dues(scope)
    rows = await fetch(
        f"SELECT d.contract_id, d.due FROM ({dues}) d ORDER BY d.due DESC, d.contract_id LIMIT ?",
        [*params, first],
    )
    return [Owing(row["contract_id"], money(row["due"])) for row in rows]


async def overdue_plans(scope: DashboardScope, today: date, first: int) -> list[Owing]:
    """Overdue plans, longest overdue first."""
    check_first(first)
    dues, params = plan_dues(scope)
    rows = await fetch(
        f"""
        SELECT d.plan_id, d.due FROM ({dues}) d WHERE d.planned_on < ?
        ORDER BY d.planned_on, d.plan_id LIMIT ?
        """,
        [*params, today, first],
    )
    return [Owing(row["plan_id"], money(row["due"])) for row in rows]

"""Payment plans (回款计划), payments (回款), and what customers still owe.

A payment is received only on an APPROVED contract and never beyond its
outstanding amount (total − payments so far). The check and the insert run
with the contract row locked (PostgreSQL; SQLite has a single writer), so two
payments racing for the last 1 000 cannot both pass.

A plan's status is derived, never stored: PAID once its payments cover it,
else OVERDUE after its planned date (in the company's timezone), else
PARTIAL or PENDING.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F, Subquery
from tortoise.functions import Coalesce, Sum
from tortoise.queryset import QuerySet

from meihua.models import Contract, ContractStatus, Payment, PaymentPlan
from meihua.resolvers.access import Viewer
from meihua.resolvers.contracts import get_contract, record_contract_change, visible_contracts
from meihua.resolvers.errors import BadUserInput, Conflict, Duplicate, NotFound
from meihua.resolvers.oplog import diff, plain
from meihua.resolvers.products import CENT, clean_money
from meihua.resolvers.records import require_write
from meihua.resolvers.versioning import update_versioned
from meihua.subscriptions.events import transaction

PAYMENT_CREATE = "payment:create"
PAYMENT_UPDATE = "payment:update"
PAYMENT_DELETE = "payment:delete"

MAX_PERIOD = 999
MAX_REMINDER_DAYS = 365
_LIMITS = {"method": 40, "remarks": 10_000}
# SQLite keeps DECIMAL columns as binary floating point and sums them as such;
# half a cent is far above that error and far below any real difference.
_HALF_CENT = Decimal("0.005")


class PlanStatus(StrEnum):
    PENDING = "PENDING"
    PARTIAL = "PARTIAL"
    PAID = "PAID"
    OVERDUE = "OVERDUE"


def total_of(amounts: list[Decimal]) -> Decimal:
    """An exact sum in cents (0.00 for none)."""
    return sum(amounts, Decimal("0.00")).quantize(CENT)


def plan_status(planned: Decimal, planned_on: date, paid: Decimal, today: date) -> PlanStatus:
    if paid >= planned:
        return PlanStatus.PAID
    if planned_on < today:
        return PlanStatus.OVERDUE
    return PlanStatus.PARTIAL if paid > 0 else PlanStatus.PENDING


def _positive_money(value: Decimal, field: str) -> Decimal:
    amount = clean_money(value, field)
    if amount == 0:
        raise BadUserInput(f"`{field}` must be more than zero.", field=field)
    return amount


def _text(value: str | None, field: str) -> str | None:
    text = (value or "").strip()
    if len(text) > _LIMITS[field]:
        raise BadUserInput(f"`{field}` is longer than {_LIMITS[field]} characters.", field=field)
    return text or None


async def _writable(viewer: Viewer, contract_id: int, permission: str) -> Contract:
    """The contract, locked, if the caller sees it, holds `permission` and may write it."""
    contract = await get_contract(viewer, contract_id, lock=True)
    viewer.require(permission)
    await require_write(viewer, contract)
    return contract


async def _visible_child(viewer: Viewer, model, pk: int, what: str, permission: str):
    """A plan or payment with its contract; NOT_FOUND alike when either is out of sight."""
    row = await model.get_or_none(id=pk)
    if row is None:
        raise NotFound(f"No such {what}.")
    try:
        contract = await _writable(viewer, row.contract_id, permission)
    except NotFound:
        raise NotFound(f"No such {what}.") from None
    return row, contract


# --- payment plans ------------------------------------------------------------------


@dataclass
class PlanInput:
    period: int | None = None
    planned_amount: Decimal | None = None
    planned_on: date | None = None
    method: str | None = None
    reminder_days: int | None = None
    remarks: str | None = None


def _plan_changes(data: PlanInput) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if data.period is not None:
        if not 1 <= data.period <= MAX_PERIOD:
            raise BadUserInput(f"`period` runs from 1 to {MAX_PERIOD}.", field="period")
        changes["period"] = data.period
    if data.planned_amount is not None:
        changes["planned_amount"] = _positive_money(data.planned_amount, "plannedAmount")
    if data.planned_on is not None:
        changes["planned_on"] = data.planned_on
    if data.reminder_days is not None:
        if not 0 <= data.reminder_days <= MAX_REMINDER_DAYS:
            raise BadUserInput(
                f"`reminderDays` runs from 0 to {MAX_REMINDER_DAYS}.", field="reminderDays"
            )
        changes["reminder_days"] = data.reminder_days
    for field in ("method", "remarks"):
        if getattr(data, field) is not None:
            changes[field] = _text(getattr(data, field), field)
    return changes


async def _refuse_taken_period(contract_id: int, period: int, exclude: int | None) -> None:
    taken = PaymentPlan.filter(contract_id=contract_id, period=period)
    if exclude is not None:
        taken = taken.exclude(id=exclude)
    if await taken.exists():
        raise _taken(period)


def _taken(period: int) -> Duplicate:
    return Duplicate(f"This contract already has a plan for period {period}.", field="period")


def _described(plan: PaymentPlan) -> dict[str, Any]:
    return {
        k: plain(getattr(plan, k))
        for k in ("period", "planned_amount", "planned_on", "method", "reminder_days")
    }


async def create_payment_plan(viewer: Viewer, contract_id: int, data: PlanInput) -> PaymentPlan:
    changes = _plan_changes(data)
    for field, key in (("period", "period"), ("plannedAmount", "planned_amount")):
        if key not in changes:
            raise BadUserInput(f"`{field}` is required.", field=field)
    if "planned_on" not in changes:
        raise BadUserInput("`plannedOn` is required.", field="plannedOn")
    try:
        async with transaction():
            contract = await _writable(viewer, contract_id, PAYMENT_CREATE)
            if contract.status == ContractStatus.VOIDED:
                raise Conflict("A voided contract takes no payment plans.")
            await _refuse_taken_period(contract.id, changes["period"], exclude=None)
            plan = await PaymentPlan.create(contract_id=contract.id, **changes)
            await record_contract_change(
                viewer,
                "CREATE_PAYMENT_PLAN",
                contract,
                {"payment_plan": [None, _described(plan)]},
                summary=f"Payment plan {plan.period} of contract {contract.number} added",
            )
            return plan
    except IntegrityError:
        # Someone planned the same period between our check and insert.
        raise _taken(changes["period"]) from None


async def update_payment_plan(
    viewer: Viewer, pk: int, data: PlanInput, expected_version: int | None
) -> PaymentPlan:
    changes = _plan_changes(data)
    try:
        async with transaction():
            plan, contract = await _visible_child(
                viewer, PaymentPlan, pk, "payment plan", PAYMENT_UPDATE
            )
            if "period" in changes:
                await _refuse_taken_period(contract.id, changes["period"], exclude=pk)
            changed = diff(plan, changes)
            plan = await update_versioned(plan, expected_version, **changes)
            if changed:
                await record_contract_change(
                    viewer,
                    "UPDATE_PAYMENT_PLAN",
                    contract,
                    {f"payment_plan.{k}": v for k, v in changed.items()},
                    summary=f"Payment plan {plan.period} of contract {contract.number} changed",
                )
            return plan
    except IntegrityError:
        raise _taken(changes["period"]) from None


async def delete_payment_plan(viewer: Viewer, pk: int) -> int:
    """Delete a plan no payment was booked against."""
    async with transaction():
        plan, contract = await _visible_child(
            viewer, PaymentPlan, pk, "payment plan", PAYMENT_DELETE
        )
        if await Payment.filter(plan_id=pk).exists():
            raise Conflict("Payments were booked against this plan; delete them first.")
        await plan.delete()
        await record_contract_change(
            viewer,
            "DELETE_PAYMENT_PLAN",
            contract,
            {"payment_plan": [_described(plan), None]},
            summary=f"Payment plan {plan.period} of contract {contract.number} deleted",
        )
    return pk


# --- payments -----------------------------------------------------------------------


@dataclass
class PaymentInput:
    contract_id: int
    amount: Decimal
    paid_on: date
    method: str | None = None
    plan_id: int | None = None
    remarks: str | None = None


async def outstanding_of(contract: Contract) -> Decimal:
    """Total − payments so far, summed exactly (not by the database)."""
    amounts = await Payment.filter(contract_id=contract.id).values_list("amount", flat=True)
    return contract.total - total_of(list(amounts))


async def create_payment(viewer: Viewer, data: PaymentInput, today: date) -> Payment:
    amount = _positive_money(data.amount, "amount")
    if data.paid_on > today:
        raise BadUserInput("A payment cannot be received in the future.", field="paidOn")
    method = _text(data.method, "method")
    remarks = _text(data.remarks, "remarks")
    async with transaction():
        contract = await _writable(viewer, data.contract_id, PAYMENT_CREATE)
        if contract.status != ContractStatus.APPROVED:
            raise Conflict(
                f"Payments are received on approved contracts; this one is {contract.status.value}."
            )
        if (
            data.plan_id is not None
            and not await PaymentPlan.filter(id=data.plan_id, contract_id=contract.id).exists()
        ):
            raise BadUserInput("No such payment plan of this contract.", field="planId")
        outstanding = await outstanding_of(contract)
        if amount > outstanding:
            raise BadUserInput(
                f"Only {outstanding} is outstanding on this contract.",
                field="amount",
                outstandingAmount=str(outstanding),
            )
        payment = await Payment.create(
            contract_id=contract.id,
            plan_id=data.plan_id,
            amount=amount,
            paid_on=data.paid_on,
            method=method,
            remarks=remarks,
            created_by_id=viewer.id,
        )
        await record_contract_change(
            viewer,
            "CREATE_PAYMENT",
            contract,
            {"payment": [None, {"amount": plain(amount), "paid_on": plain(data.paid_on)}]},
            summary=f"Payment of {amount} received on contract {contract.number}",
        )
        return payment


async def delete_payment(viewer: Viewer, pk: int) -> int:
    """Take back a payment entered by mistake; the contract owes it again."""
    async with transaction():
        payment, contract = await _visible_child(viewer, Payment, pk, "payment", PAYMENT_DELETE)
        await payment.delete()
        await record_contract_change(
            viewer,
            "DELETE_PAYMENT",
            contract,
            {"payment": [{"amount": plain(payment.amount), "paid_on": plain(payment.paid_on)},
                         None]},
            summary=f"Payment of {payment.amount} on contract {contract.number} deleted",
        )  # fmt: skip
    return pk


# --- receivables ----------------------------------------------------------------------


@dataclass
class ReceivableFilter:
    customer_id: int | None = None
    owner_id: int | None = None
    overdue_only: bool = False


async def list_receivables(
    viewer: Viewer, where: ReceivableFilter, today: date
) -> QuerySet[Contract]:
    """Approved contracts in the caller's sight that still have money to come."""
    owing = (
        Contract.filter(status=ContractStatus.APPROVED)
        .annotate(paid=Coalesce(Sum("payments__amount"), 0))
        .group_by("id")
        .filter(paid__lt=F("total") - _HALF_CENT)
        .values("id")
    )
    query = (await visible_contracts(viewer)).filter(id__in=Subquery(owing))
    if where.customer_id is not None:
        query = query.filter(customer_id=where.customer_id)
    if where.owner_id is not None:
        query = query.filter(owner_id=where.owner_id)
    if where.overdue_only:
        overdue = (
            PaymentPlan.filter(planned_on__lt=today)
            .annotate(paid=Coalesce(Sum("payments__amount"), 0))
            .group_by("id")
            .filter(paid__lt=F("planned_amount") - _HALF_CENT)
            .values("contract_id")
        )
        query = query.filter(id__in=Subquery(overdue))
    return query

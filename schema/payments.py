"""GraphQL API of payment plans (回款计划), payments (回款) and receivables (应收)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date
from decimal import Decimal

import strawberry

from meihua.resolvers import payments
from meihua.resolvers.contracts import company_today
from meihua.schema.context import Info
from meihua.schema.contracts import (
    Contract,
    ContractOrder,
    Payment,
    PaymentPlan,
    contract_page,
)
from meihua.schema.org import DeletePayload
from meihua.schema.relay import Connection, record_id, reference_id


@strawberry.input
class CreatePaymentPlanInput:
    period: int = strawberry.field(description="Instalment number, unique per contract.")
    planned_amount: Decimal
    planned_on: date
    method: str | None = None
    reminder_days: int | None = strawberry.field(
        default=None, description="Remind this many days before; defaults to 3."
    )
    remarks: str | None = None


@strawberry.input(description="Send only what changes; an empty string clears a text.")
class UpdatePaymentPlanInput:
    period: int | None = None
    planned_amount: Decimal | None = None
    planned_on: date | None = None
    method: str | None = None
    reminder_days: int | None = None
    remarks: str | None = None


@strawberry.input
class CreatePaymentInput:
    contract_id: strawberry.ID = strawberry.field(description="An APPROVED contract.")
    amount: Decimal = strawberry.field(description="More than zero, at most what is outstanding.")
    paid_on: date
    method: str | None = None
    plan_id: strawberry.ID | None = strawberry.field(
        default=None, description="A payment plan of the same contract."
    )
    remarks: str | None = None


@strawberry.input
class ReceivableFilter:
    customer_id: strawberry.ID | None = None
    owner_id: strawberry.ID | None = None
    overdue_only: bool = strawberry.field(
        default=False, description="Only contracts with a plan overdue today."
    )


def _plan(data: CreatePaymentPlanInput | UpdatePaymentPlanInput) -> payments.PlanInput:
    return payments.PlanInput(**asdict(data))


@strawberry.type
class PaymentQuery:
    @strawberry.field(
        description="Approved contracts you may see that still have money to come (应收)."
    )
    async def receivables(
        self,
        info: Info,
        filter: ReceivableFilter | None = None,
        order_by: ContractOrder | None = None,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[Contract]:
        viewer = info.context.viewer
        where = filter or ReceivableFilter()
        query = await payments.list_receivables(
            viewer,
            payments.ReceivableFilter(
                customer_id=(
                    reference_id(where.customer_id, "Customer", "customerId")
                    if where.customer_id is not None
                    else None
                ),
                owner_id=(
                    reference_id(where.owner_id, "User", "ownerId")
                    if where.owner_id is not None
                    else None
                ),
                overdue_only=where.overdue_only,
            ),
            company_today(info.context.settings.timezone),
        )
        return await contract_page(info, query, order_by, first, after, last, before)


@strawberry.type
class PaymentMutation:
    @strawberry.mutation(description="Plan an instalment of a contract.")
    async def create_payment_plan(
        self, info: Info, contract_id: strawberry.ID, input: CreatePaymentPlanInput
    ) -> PaymentPlan:
        viewer = info.context.viewer
        row = await payments.create_payment_plan(
            viewer, record_id(contract_id, "Contract"), _plan(input)
        )
        return PaymentPlan.of(row)

    @strawberry.mutation(description="Fails with CONFLICT when `expectedVersion` is stale.")
    async def update_payment_plan(
        self,
        info: Info,
        id: strawberry.ID,
        input: UpdatePaymentPlanInput,
        expected_version: int | None = None,
    ) -> PaymentPlan:
        viewer = info.context.viewer
        row = await payments.update_payment_plan(
            viewer, record_id(id, "PaymentPlan"), _plan(input), expected_version
        )
        return PaymentPlan.of(row)

    @strawberry.mutation(description="Delete a plan no payment was booked against.")
    async def delete_payment_plan(self, info: Info, id: strawberry.ID) -> DeletePayload:
        viewer = info.context.viewer
        await payments.delete_payment_plan(viewer, record_id(id, "PaymentPlan"))
        return DeletePayload(deleted_id=id)

    @strawberry.mutation(
        description="Record money received on an approved contract, never more than it owes."
    )
    async def create_payment(self, info: Info, input: CreatePaymentInput) -> Payment:
        viewer = info.context.viewer
        row = await payments.create_payment(
            viewer,
            payments.PaymentInput(
                contract_id=record_id(input.contract_id, "Contract"),
                amount=input.amount,
                paid_on=input.paid_on,
                method=input.method,
                plan_id=(
                    reference_id(input.plan_id, "PaymentPlan", "planId")
                    if input.plan_id is not None
                    else None
                ),
                remarks=input.remarks,
            ),
            company_today(info.context.settings.timezone),
        )
        return Payment.of(row)

    @strawberry.mutation(description="Take back a payment entered by mistake.")
    async def delete_payment(self, info: Info, id: strawberry.ID) -> DeletePayload:
        viewer = info.context.viewer
        await payments.delete_payment(viewer, record_id(id, "Payment"))
        return DeletePayload(deleted_id=id)

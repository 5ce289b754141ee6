"""GraphQL API of contracts (合同), their approval flow, payment plans and payments."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import Enum

import strawberry

from meihua import models
from meihua.models import ApprovalDecision as ApprovalDecisionModel
from meihua.models import ApproverKind as ApproverKindModel
from meihua.models import ContractStatus as ContractStatusModel
from meihua.resolvers import approvals, contracts, org
from meihua.resolvers.contracts import company_today
from meihua.resolvers.pagination import Ordering
from meihua.resolvers.payments import PlanStatus, plan_status, total_of
from meihua.schema.context import Info
from meihua.schema.customers import Customer
from meihua.schema.org import DeletePayload, Role, User
from meihua.schema.permissions import SignedIn
from meihua.schema.relay import (
    Connection,
    Node,
    connection,
    record_id,
    reference_id,
    to_global_id,
)
from meihua.schema.timeline import timeline_field

ContractStatus = strawberry.enum(
    ContractStatusModel,
    description="DRAFT → PENDING_APPROVAL → APPROVED or REJECTED; VOIDED after approval.",
)
ApproverKind = strawberry.enum(
    ApproverKindModel,
    description="Who decides a step: a given user, the owner's manager, or a role's holders.",
)
ApprovalDecision = strawberry.enum(ApprovalDecisionModel, description="An approval history entry.")
PaymentPlanStatus = strawberry.enum(
    PlanStatus,
    name="PaymentPlanStatus",
    description="Derived: PAID once covered, else OVERDUE after the planned date, else "
    "PARTIAL or PENDING.",
)


def _gid(type_name: str, pk: int | None) -> strawberry.ID | None:
    return to_global_id(type_name, pk) if pk is not None else None


async def _paid(info: Info, contract_pk: int, plan_pk: int | None = None) -> Decimal:
    """Payments on a contract (or on one of its plans), summed exactly."""
    payments = await info.context.loaders.payments_of_contract.load(contract_pk)
    return total_of([p.amount for p in payments if plan_pk is None or p.plan_id == plan_pk])


async def receivable_of(info: Info, rows: list[models.Contract]) -> Decimal:
    """What approved contracts among `rows` still owe."""
    approved = [row for row in rows if row.status == ContractStatusModel.APPROVED]
    paid = [await _paid(info, row.id) for row in approved]
    return total_of([row.total - amount for row, amount in zip(approved, paid, strict=True)])


@strawberry.type(description="A line of a contract: a product, its quantity, price and discount.")
class ContractItem:
    product_id: strawberry.ID
    quantity: Decimal
    unit_price: Decimal
    discount: Decimal = strawberry.field(description="Percent, 0–100.")
    amount: Decimal = strawberry.field(
        description="quantity × unitPrice × (1 − discount %), rounded half-up to the cent."
    )

    @classmethod
    def of(cls, row: models.ContractItem) -> ContractItem:
        return cls(
            product_id=to_global_id("Product", row.product_id),
            quantity=row.quantity,
            unit_price=row.unit_price,
            discount=row.discount,
            amount=row.amount,
        )


@strawberry.type(description="One entry of a contract's approval history.")
class ContractApproval:
    decision: ApprovalDecision
    step: int | None = strawberry.field(
        description="The step decided; null for submissions, automatic approvals and voids."
    )
    comment: str | None
    at: datetime
    actor_pk: strawberry.Private[int]

    @classmethod
    def of(cls, row: models.ApprovalRecord) -> ContractApproval:
        return cls(
            decision=ApprovalDecisionModel(row.decision),
            step=row.step,
            comment=row.comment,
            at=row.at,
            actor_pk=row.actor_id,
        )

    @strawberry.field
    async def actor(self, info: Info) -> User:
        return User.of(await info.context.loaders.user.load(self.actor_pk))


@strawberry.type(description="One step of the contract approval flow (审批流程).")
class ApprovalStep:
    order: int = strawberry.field(description="Position in the flow, from 1.")
    kind: ApproverKind
    user_pk: strawberry.Private[int | None]
    role_pk: strawberry.Private[int | None]

    @classmethod
    def of(cls, row: models.ApprovalStep) -> ApprovalStep:
        return cls(
            order=row.order,
            kind=ApproverKindModel(row.kind),
            user_pk=row.user_id,
            role_pk=row.role_id,
        )

    @strawberry.field(description="The approver of a USER step.")
    async def user(self, info: Info) -> User | None:
        if self.user_pk is None:
            return None
        return User.of(await info.context.loaders.user.load(self.user_pk))

    @strawberry.field(description="The role whose holders decide a ROLE step.")
    async def role(self, info: Info) -> Role | None:
        if self.role_pk is None:
            return None
        return Role.of(await info.context.loaders.role.load(self.role_pk))


@strawberry.type(description="A planned instalment of a contract (回款计划).")
class PaymentPlan(Node):
    period: int = strawberry.field(description="Instalment number, from 1.")
    planned_amount: Decimal
    planned_on: date
    method: str | None
    reminder_days: int = strawberry.field(description="Remind this many days before.")
    remarks: str | None
    version: int
    created_at: datetime
    updated_at: datetime
    pk: strawberry.Private[int]
    contract_pk: strawberry.Private[int]

    @classmethod
    def of(cls, row: models.PaymentPlan) -> PaymentPlan:
        return cls(
            id=to_global_id("PaymentPlan", row.id),
            period=row.period,
            planned_amount=row.planned_amount,
            planned_on=row.planned_on,
            method=row.method,
            reminder_days=row.reminder_days,
            remarks=row.remarks,
            version=row.version,
            created_at=row.created_at,
            updated_at=row.updated_at,
            pk=row.id,
            contract_pk=row.contract_id,
        )

    @strawberry.field(description="Payments booked against this plan.")
    async def paid_amount(self, info: Info) -> Decimal:
        return await _paid(info, self.contract_pk, self.pk)

    @strawberry.field(description="Judged by today's date in the company's timezone.")
    async def status(self, info: Info) -> PaymentPlanStatus:
        paid = await _paid(info, self.contract_pk, self.pk)
        today = company_today(info.context.settings.timezone)
        return plan_status(self.planned_amount, self.planned_on, paid, today)

    @strawberry.field
    async def contract(self, info: Info) -> Contract:
        return Contract.of(await info.context.loaders.contract.load(self.contract_pk))


@strawberry.type(description="Money received on a contract (回款).")
class Payment(Node):
    amount: Decimal
    paid_on: date
    method: str | None
    remarks: str | None
    created_at: datetime
    plan_id: strawberry.ID | None = strawberry.field(description="The plan it pays, if any.")
    contract_pk: strawberry.Private[int]
    created_by_pk: strawberry.Private[int]

    @classmethod
    def of(cls, row: models.Payment) -> Payment:
        return cls(
            id=to_global_id("Payment", row.id),
            amount=row.amount,
            paid_on=row.paid_on,
            method=row.method,
            remarks=row.remarks,
            created_at=row.created_at,
            plan_id=_gid("PaymentPlan", row.plan_id),
            contract_pk=row.contract_id,
            created_by_pk=row.created_by_id,
        )

    @strawberry.field(description="Who entered it.")
    async def created_by(self, info: Info) -> User:
        return User.of(await info.context.loaders.user.load(self.created_by_pk))

    @strawberry.field
    async def contract(self, info: Info) -> Contract:
        return Contract.of(await info.context.loaders.contract.load(self.contract_pk))


@strawberry.type(description="A contract (合同), or order, with its lines, approvals and payments.")
class Contract(Node):
    number: str = strawberry.field(description="Generated and unique, e.g. HT-20261123-000042.")
    title: str
    status: ContractStatus
    current_step: int | None = strawberry.field(
        description="The approval step awaiting a decision, while PENDING_APPROVAL."
    )
    signed_on: date | None
    starts_on: date | None
    ends_on: date | None
    total: Decimal = strawberry.field(description="The sum of the line amounts.")
    remarks: str | None
    version: int
    created_at: datetime
    updated_at: datetime
    customer_id: strawberry.ID
    opportunity_id: strawberry.ID | None
    signing_contact_id: strawberry.ID | None
    pk: strawberry.Private[int]
    customer_pk: strawberry.Private[int]
    owner_pk: strawberry.Private[int]
    created_by_pk: strawberry.Private[int]

    @classmethod
    def of(cls, row: models.Contract) -> Contract:
        return cls(
            id=to_global_id("Contract", row.id),
            number=row.number,
            title=row.title,
            status=ContractStatusModel(row.status),
            current_step=row.current_step,
            signed_on=row.signed_on,
            starts_on=row.starts_on,
            ends_on=row.ends_on,
            total=row.total,
            remarks=row.remarks,
            version=row.version,
            created_at=row.created_at,
            updated_at=row.updated_at,
            customer_id=to_global_id("Customer", row.customer_id),
            opportunity_id=_gid("Opportunity", row.opportunity_id),
            signing_contact_id=_gid("Contact", row.signing_contact_id),
            pk=row.id,
            customer_pk=row.customer_id,
            owner_pk=row.owner_id,
            created_by_pk=row.created_by_id,
        )

    @strawberry.field(
        description="Null when the customer is outside your sight (e.g. you are its approver)."
    )
    async def customer(self, info: Info) -> Customer | None:
        viewer = info.context.viewer
        row = await info.context.loaders.visible_customer.load((viewer, self.customer_pk))
        return Customer.of(row) if row is not None else None

    @strawberry.field
    async def owner(self, info: Info) -> User:
        return User.of(await info.context.loaders.user.load(self.owner_pk))

    @strawberry.field
    async def created_by(self, info: Info) -> User:
        return User.of(await info.context.loaders.user.load(self.created_by_pk))

    @strawberry.field(description="The company's currency code (ISO 4217), e.g. CNY.")
    async def currency(self, info: Info) -> str:
        return await info.context.loaders.company_currency.load(None)

    @strawberry.field
    async def items(self, info: Info) -> list[ContractItem]:
        rows = await info.context.loaders.items_of_contract.load(self.pk)
        return [ContractItem.of(row) for row in rows]

    @strawberry.field(description="Approval history, oldest first.")
    async def approvals(self, info: Info) -> list[ContractApproval]:
        rows = await info.context.loaders.approvals_of_contract.load(self.pk)
        return [ContractApproval.of(row) for row in rows]

    @strawberry.field(description="Instalments by period.")
    async def payment_plans(self, info: Info) -> list[PaymentPlan]:
        rows = await info.context.loaders.payment_plans_of_contract.load(self.pk)
        return [PaymentPlan.of(row) for row in rows]

    @strawberry.field(description="Payments received, by date.")
    async def payments(self, info: Info) -> list[Payment]:
        rows = await info.context.loaders.payments_of_contract.load(self.pk)
        return [Payment.of(row) for row in rows]

    @strawberry.field
    async def paid_amount(self, info: Info) -> Decimal:
        return await _paid(info, self.pk)

    @strawberry.field(description="total − paidAmount.")
    async def outstanding_amount(self, info: Info) -> Decimal:
        return self.total - await _paid(info, self.pk)

    timeline = timeline_field(models.RecordType.CONTRACT)


# --- inputs -------------------------------------------------------------------------


@strawberry.input
class ContractItemInput:
    product_id: strawberry.ID = strawberry.field(description="An active product.")
    quantity: Decimal
    unit_price: Decimal | None = strawberry.field(
        default=None, description="Defaults to the product's unit price."
    )
    discount: Decimal | None = strawberry.field(
        default=None, description="Percent, 0–100; defaults to 0."
    )


@strawberry.input
class CreateContractInput:
    customer_id: strawberry.ID
    title: str
    opportunity_id: strawberry.ID | None = strawberry.field(
        default=None, description="An opportunity of the same customer."
    )
    signing_contact_id: strawberry.ID | None = strawberry.field(
        default=None, description="A contact of the same customer."
    )
    signed_on: date | None = None
    starts_on: date | None = None
    ends_on: date | None = None
    remarks: str | None = None
    items: list[ContractItemInput] | None = None


@strawberry.input(
    description="Send only what changes; null clears a reference or a date, an empty string "
    "clears the remarks, and `items` replaces every line."
)
class UpdateContractInput:
    title: str | None = None
    opportunity_id: strawberry.ID | None = strawberry.UNSET
    signing_contact_id: strawberry.ID | None = strawberry.UNSET
    signed_on: date | None = strawberry.UNSET
    starts_on: date | None = strawberry.UNSET
    ends_on: date | None = strawberry.UNSET
    remarks: str | None = None
    items: list[ContractItemInput] | None = None


@strawberry.input
class ContractFilter:
    customer_id: strawberry.ID | None = None
    owner_id: strawberry.ID | None = None
    status: ContractStatus | None = None
    signed_from: date | None = strawberry.field(default=None, description="Inclusive.")
    signed_to: date | None = strawberry.field(default=None, description="Inclusive.")
    search: str | None = strawberry.field(default=None, description="Matches number or title.")
    awaiting_my_approval: bool | None = strawberry.field(
        default=None, description="Contracts whose current approval step you may decide."
    )


@strawberry.enum
class ContractOrderField(Enum):
    CREATED_AT = "created_at"
    UPDATED_AT = "updated_at"
    NUMBER = "number"
    TITLE = "title"
    TOTAL = "total"
    SIGNED_ON = "signed_on"

    @property
    def if_null(self) -> date | None:
        """Unsigned contracts sort as signed longest ago."""
        return date.min if self is ContractOrderField.SIGNED_ON else None


@strawberry.input
class ContractOrder:
    field: ContractOrderField = ContractOrderField.CREATED_AT
    descending: bool = True


@strawberry.input
class ApprovalStepInput:
    kind: ApproverKind
    user_id: strawberry.ID | None = strawberry.field(
        default=None, description="The approver of a USER step: an active user."
    )
    role_id: strawberry.ID | None = strawberry.field(
        default=None, description="The role of a ROLE step."
    )


def _reference(value: strawberry.ID | None, type_name: str, field: str):
    """An id input: UNSET (not sent), None (cleared) or the key it names."""
    if value is strawberry.UNSET:
        return org.UNSET
    return reference_id(value, type_name, field) if value is not None else None


def _kept(value):
    return org.UNSET if value is strawberry.UNSET else value


def _lines(items: list[ContractItemInput] | None) -> list[contracts.LineInput] | None:
    if items is None:
        return None
    return [
        contracts.LineInput(
            product_id=reference_id(item.product_id, "Product", f"items.{i}.productId"),
            quantity=item.quantity,
            unit_price=item.unit_price,
            discount=item.discount,
        )
        for i, item in enumerate(items)
    ]


def _contract_input(data: CreateContractInput | UpdateContractInput) -> contracts.ContractInput:
    return contracts.ContractInput(
        customer_id=(
            reference_id(data.customer_id, "Customer", "customerId")
            if isinstance(data, CreateContractInput)
            else None
        ),
        title=data.title,
        opportunity_id=_reference(data.opportunity_id, "Opportunity", "opportunityId"),
        signing_contact_id=_reference(data.signing_contact_id, "Contact", "signingContactId"),
        signed_on=_kept(data.signed_on),
        starts_on=_kept(data.starts_on),
        ends_on=_kept(data.ends_on),
        remarks=data.remarks,
        items=_lines(data.items),
    )


def _filter(where: ContractFilter) -> contracts.ContractFilter:
    return contracts.ContractFilter(
        customer_id=(
            reference_id(where.customer_id, "Customer", "customerId")
            if where.customer_id is not None
            else None
        ),
        owner_id=(
            reference_id(where.owner_id, "User", "ownerId") if where.owner_id is not None else None
        ),
        status=ContractStatusModel(where.status.value) if where.status else None,
        signed_from=where.signed_from,
        signed_to=where.signed_to,
        search=where.search,
        awaiting_my_approval=where.awaiting_my_approval,
    )


def _step(index: int, step: ApprovalStepInput) -> approvals.StepInput:
    prefix = f"steps.{index}"
    return approvals.StepInput(
        kind=ApproverKindModel(step.kind.value),
        user_id=reference_id(step.user_id, "User", f"{prefix}.userId") if step.user_id else None,
        role_id=reference_id(step.role_id, "Role", f"{prefix}.roleId") if step.role_id else None,
    )


# --- root fields ---------------------------------------------------------------------


async def contract_page(
    info: Info,
    query,
    order_by: ContractOrder | None,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
) -> Connection[Contract]:
    order = order_by or ContractOrder()
    return await connection(
        info,
        query,
        Ordering(order.field.value, order.descending, if_null=order.field.if_null),
        Contract,
        first=first,
        after=after,
        last=last,
        before=before,
    )


@strawberry.type
class ContractQuery:
    @strawberry.field(
        description="Contracts you may see: in your scope, or waiting for your approval."
    )
    async def contracts(
        self,
        info: Info,
        filter: ContractFilter | None = None,
        order_by: ContractOrder | None = None,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[Contract]:
        viewer = info.context.viewer
        query = await contracts.list_contracts(viewer, _filter(filter or ContractFilter()))
        return await contract_page(info, query, order_by, first, after, last, before)

    @strawberry.field(
        description="The contract approval flow, in order.", permission_classes=[SignedIn]
    )
    async def approval_steps(self) -> list[ApprovalStep]:
        return [ApprovalStep.of(row) for row in await approvals.approval_steps()]


@strawberry.type
class ContractMutation:
    @strawberry.mutation(description="Draft a contract on a customer you may write to.")
    async def create_contract(self, info: Info, input: CreateContractInput) -> Contract:
        viewer = info.context.viewer
        today = company_today(info.context.settings.timezone)
        row = await contracts.create_contract(viewer, _contract_input(input), today)
        return Contract.of(row)

    @strawberry.mutation(
        description="Edit a DRAFT or REJECTED contract; CONFLICT when `expectedVersion` is "
        "stale or the contract is in approval or beyond."
    )
    async def update_contract(
        self,
        info: Info,
        id: strawberry.ID,
        input: UpdateContractInput,
        expected_version: int | None = None,
    ) -> Contract:
        viewer = info.context.viewer
        row = await contracts.update_contract(
            viewer, record_id(id, "Contract"), _contract_input(input), expected_version
        )
        return Contract.of(row)

    @strawberry.mutation(description="Delete a DRAFT or REJECTED contract.")
    async def delete_contract(self, info: Info, id: strawberry.ID) -> DeletePayload:
        viewer = info.context.viewer
        await contracts.delete_contract(viewer, record_id(id, "Contract"))
        return DeletePayload(deleted_id=id)

    @strawberry.mutation(description="Hand contracts to another user, all or none.")
    async def transfer_contracts(
        self, info: Info, ids: list[strawberry.ID], owner_id: strawberry.ID
    ) -> list[Contract]:
        viewer = info.context.viewer
        rows = await contracts.transfer_contracts(
            viewer,
            [record_id(gid, "Contract") for gid in ids],
            reference_id(owner_id, "User", "ownerId"),
        )
        return [Contract.of(row) for row in rows]

    @strawberry.mutation(
        description="Send a DRAFT or REJECTED contract for approval (approved at once when "
        "no approval steps are configured)."
    )
    async def submit_contract(self, info: Info, id: strawberry.ID) -> Contract:
        viewer = info.context.viewer
        return Contract.of(await approvals.submit_contract(viewer, record_id(id, "Contract")))

    @strawberry.mutation(
        description="Approve the current step, as one of its approvers. With "
        "`expectedVersion`, CONFLICT when the contract moved on since you looked at it."
    )
    async def approve_contract(
        self,
        info: Info,
        id: strawberry.ID,
        comment: str | None = None,
        expected_version: int | None = None,
    ) -> Contract:
        viewer = info.context.viewer
        row = await approvals.approve_contract(
            viewer, record_id(id, "Contract"), comment, expected_version
        )
        return Contract.of(row)

    @strawberry.mutation(description="Reject the contract back to its owner, saying why.")
    async def reject_contract(
        self,
        info: Info,
        id: strawberry.ID,
        comment: str,
        expected_version: int | None = None,
    ) -> Contract:
        viewer = info.context.viewer
        row = await approvals.reject_contract(
            viewer, record_id(id, "Contract"), comment, expected_version
        )
        return Contract.of(row)

    @strawberry.mutation(description="Void (作废) an approved contract without payments.")
    async def void_contract(self, info: Info, id: strawberry.ID, reason: str) -> Contract:
        viewer = info.context.viewer
        row = await approvals.void_contract(viewer, record_id(id, "Contract"), reason)
        return Contract.of(row)

    @strawberry.mutation(
        description="Replace the approval flow; an empty list approves contracts on submission."
    )
    async def set_approval_steps(
        self, info: Info, steps: list[ApprovalStepInput]
    ) -> list[ApprovalStep]:
        viewer = info.context.viewer
        wanted = [_step(i, step) for i, step in enumerate(steps)]
        return [ApprovalStep.of(row) for row in await approvals.set_approval_steps(viewer, wanted)]

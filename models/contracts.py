"""Contracts (合同) with approval flows, payment plans (回款计划) and payments (回款)."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from meihua.models.customers import Customer
from meihua.models.org import Role, User
from meihua.models.sales import MONEY


class ContractStatus(StrEnum):
    DRAFT = "DRAFT"
    PENDING_APPROVAL = "PENDING_APPROVAL"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    VOIDED = "VOIDED"


class ApproverKind(StrEnum):
    USER = "USER"  # a given user
    OWNER_MANAGER = "OWNER_MANAGER"  # the contract owner's manager (上级)
    ROLE = "ROLE"  # any holder of a role


class ApprovalDecision(StrEnum):
    SUBMITTED = "SUBMITTED"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    VOIDED = "VOIDED"


class Contract(Model):
    id = fields.IntField(primary_key=True)
    number = fields.CharField(max_length=40, unique=True)
    title = fields.CharField(max_length=200)
    customer: fields.ForeignKeyRelation[Customer] = fields.ForeignKeyField(
        "models.Customer", related_name="contracts", on_delete=fields.RESTRICT, db_index=True
    )
    opportunity: fields.ForeignKeyNullableRelation = fields.ForeignKeyField(
        "models.Opportunity", related_name="contracts", null=True, on_delete=fields.RESTRICT
    )
    signing_contact: fields.ForeignKeyNullableRelation = fields.ForeignKeyField(
        "models.Contact", related_name=False, null=True, on_delete=fields.RESTRICT
    )
    owner: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="contracts", on_delete=fields.RESTRICT, db_index=True
    )
    signed_on = fields.DateField(null=True)
    starts_on = fields.DateField(null=True)
    ends_on = fields.DateField(null=True)
    status = fields.CharEnumField(ContractStatus, max_length=20, default=ContractStatus.DRAFT)
    total = fields.DecimalField(**MONEY, default=0)
    # The approval step awaiting a decision (1-based), while PENDING_APPROVAL.
    current_step = fields.IntField(null=True)
    remarks = fields.TextField(null=True)
    last_followup_at = fields.DatetimeField(null=True)
    next_contact_at = fields.DatetimeField(null=True)
    created_by: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name=False, on_delete=fields.RESTRICT
    )
    version = fields.IntField(default=1)
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)
    updated_at = fields.DatetimeField(auto_now=True)

    customer_id: int
    owner_id: int

    class Meta:
        table = "contract"
        # The status filter (receivables: approved ones), the signed-on range
        # filter, ordering and trend, the UPDATED_AT ordering.
        indexes = (("status",), ("signed_on",), ("updated_at",))


class ContractItem(Model):
    id = fields.IntField(primary_key=True)
    contract: fields.ForeignKeyRelation[Contract] = fields.ForeignKeyField(
        "models.Contract", related_name="items", on_delete=fields.CASCADE
    )
    product: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Product", related_name=False, on_delete=fields.RESTRICT
    )
    quantity = fields.DecimalField(max_digits=12, decimal_places=2)
    unit_price = fields.DecimalField(**MONEY)
    discount = fields.DecimalField(max_digits=5, decimal_places=2, default=0)  # percent
    amount = fields.DecimalField(**MONEY)

    class Meta:
        table = "contract_item"
        indexes = (("contract_id",),)


class ApprovalStep(Model):
    """One ordered step of the contract approval flow, configured by admins."""

    id = fields.IntField(primary_key=True)
    order = fields.IntField(unique=True)
    kind = fields.CharEnumField(ApproverKind, max_length=16)
    user: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name=False, null=True, on_delete=fields.RESTRICT
    )
    role: fields.ForeignKeyNullableRelation[Role] = fields.ForeignKeyField(
        "models.Role", related_name=False, null=True, on_delete=fields.RESTRICT
    )

    class Meta:
        table = "approval_step"


class ApprovalRecord(Model):
    """Approval history of a contract: submissions, decisions with comments, voids."""

    id = fields.IntField(primary_key=True)
    contract: fields.ForeignKeyRelation[Contract] = fields.ForeignKeyField(
        "models.Contract", related_name="approvals", on_delete=fields.CASCADE
    )
    step = fields.IntField(null=True)
    decision = fields.CharEnumField(ApprovalDecision, max_length=16)
    actor: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name=False, on_delete=fields.RESTRICT
    )
    comment = fields.TextField(null=True)
    at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "approval_record"
        indexes = (("contract_id", "at"),)


class PaymentPlan(Model):
    """A planned instalment. Its status (PENDING, PARTIAL, PAID, OVERDUE) is derived."""

    id = fields.IntField(primary_key=True)
    contract: fields.ForeignKeyRelation[Contract] = fields.ForeignKeyField(
        "models.Contract", related_name="payment_plans", on_delete=fields.CASCADE
    )
    period = fields.IntField()
    planned_amount = fields.DecimalField(**MONEY)
    planned_on = fields.DateField()
    method = fields.CharField(max_length=40, null=True)
    reminder_days = fields.IntField(default=3)
    remarks = fields.TextField(null=True)
    version = fields.IntField(default=1)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "payment_plan"
        unique_together = (("contract", "period"),)


class Payment(Model):
    id = fields.IntField(primary_key=True)
    contract: fields.ForeignKeyRelation[Contract] = fields.ForeignKeyField(
        "models.Contract", related_name="payments", on_delete=fields.RESTRICT
    )
    plan: fields.ForeignKeyNullableRelation[PaymentPlan] = fields.ForeignKeyField(
        "models.PaymentPlan", related_name="payments", null=True, on_delete=fields.RESTRICT
    )
    amount = fields.DecimalField(**MONEY)
    paid_on = fields.DateField(db_index=True)
    method = fields.CharField(max_length=40, null=True)
    remarks = fields.TextField(null=True)
    created_by: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name=False, on_delete=fields.RESTRICT
    )
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "payment"
        indexes = (("contract_id",),)

"""Opportunities (商机) moving through stages, and the products they sell (产品)."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from meihua.models.customers import Customer
from meihua.models.org import User

MONEY = {"max_digits": 16, "decimal_places": 2}


class OpportunityStatus(StrEnum):
    OPEN = "OPEN"
    WON = "WON"
    LOST = "LOST"


class Pipeline(Model):
    """A group of ordered opportunity stages, e.g. one per business line."""

    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=100, unique=True)
    description = fields.TextField(null=True)
    # Position among the pipelines, from 1: the first active one is the default.
    order = fields.IntField()
    is_active = fields.BooleanField(default=True)
    version = fields.IntField(default=1)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "pipeline"


class OpportunityStage(Model):
    id = fields.IntField(primary_key=True)
    # Null only between creating a stage in the default sales setup and the
    # pipelines migration putting it in the default pipeline: every stage the
    # application creates names its pipeline.
    pipeline: fields.ForeignKeyNullableRelation[Pipeline] = fields.ForeignKeyField(
        "models.Pipeline", related_name="stages", null=True, on_delete=fields.RESTRICT
    )
    name = fields.CharField(max_length=100)
    win_rate = fields.IntField()  # percent, 0–100
    order = fields.IntField()  # within its pipeline, from 1
    version = fields.IntField(default=1)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    pipeline_id: int | None

    class Meta:
        table = "opportunity_stage"
        indexes = (("pipeline_id", "order"),)


class Product(Model):
    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=200)
    code = fields.CharField(max_length=64, unique=True)
    unit = fields.CharField(max_length=20, default="")
    unit_price = fields.DecimalField(**MONEY)
    category = fields.CharField(max_length=100, null=True)
    is_active = fields.BooleanField(default=True)
    description = fields.TextField(null=True)
    version = fields.IntField(default=1)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "product"


class Opportunity(Model):
    id = fields.IntField(primary_key=True)
    customer: fields.ForeignKeyRelation[Customer] = fields.ForeignKeyField(
        "models.Customer", related_name="opportunities", on_delete=fields.RESTRICT, db_index=True
    )
    name = fields.CharField(max_length=200)
    amount = fields.DecimalField(**MONEY)
    expected_close_date = fields.DateField(null=True)
    stage: fields.ForeignKeyRelation[OpportunityStage] = fields.ForeignKeyField(
        "models.OpportunityStage", related_name="opportunities", on_delete=fields.RESTRICT
    )
    status = fields.CharEnumField(OpportunityStatus, max_length=8, default=OpportunityStatus.OPEN)
    lost_reason = fields.TextField(null=True)
    closed_at = fields.DatetimeField(null=True)
    owner: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="opportunities", on_delete=fields.RESTRICT, db_index=True
    )
    created_by: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name=False, on_delete=fields.RESTRICT
    )
    remarks = fields.TextField(null=True)
    last_followup_at = fields.DatetimeField(null=True)
    next_contact_at = fields.DatetimeField(null=True)
    version = fields.IntField(default=1)
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)
    updated_at = fields.DatetimeField(auto_now=True)

    customer_id: int
    stage_id: int
    owner_id: int

    class Meta:
        table = "opportunity"
        # The stageId/status filters, the board and funnel by stage, the
        # expected-close range filter and forecast, the UPDATED_AT ordering.
        indexes = (("stage_id", "status"), ("status",), ("expected_close_date",), ("updated_at",))


class OpportunityStageChange(Model):
    """Stage history: every move (won and lost included), by whom and when."""

    id = fields.IntField(primary_key=True)
    opportunity: fields.ForeignKeyRelation[Opportunity] = fields.ForeignKeyField(
        "models.Opportunity", related_name="stage_changes", on_delete=fields.CASCADE
    )
    from_stage: fields.ForeignKeyNullableRelation[OpportunityStage] = fields.ForeignKeyField(
        "models.OpportunityStage", related_name=False, null=True, on_delete=fields.RESTRICT
    )
    to_stage: fields.ForeignKeyRelation[OpportunityStage] = fields.ForeignKeyField(
        "models.OpportunityStage", related_name=False, on_delete=fields.RESTRICT
    )
    from_status = fields.CharEnumField(OpportunityStatus, max_length=8, null=True)
    to_status = fields.CharEnumField(OpportunityStatus, max_length=8)
    actor: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name=False, null=True, on_delete=fields.RESTRICT
    )
    reason = fields.TextField(null=True)
    at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "opportunity_stage_change"
        # A stage history is read per opportunity, in time order.
        indexes = (("opportunity_id", "at"),)


class OpportunityProduct(Model):
    id = fields.IntField(primary_key=True)
    opportunity: fields.ForeignKeyRelation[Opportunity] = fields.ForeignKeyField(
        "models.Opportunity", related_name="products", on_delete=fields.CASCADE
    )
    product: fields.ForeignKeyRelation[Product] = fields.ForeignKeyField(
        "models.Product", related_name=False, on_delete=fields.RESTRICT
    )
    quantity = fields.DecimalField(max_digits=12, decimal_places=2)
    unit_price = fields.DecimalField(**MONEY)
    discount = fields.DecimalField(max_digits=5, decimal_places=2, default=0)  # percent

    class Meta:
        table = "opportunity_product"
        indexes = (("opportunity_id",),)

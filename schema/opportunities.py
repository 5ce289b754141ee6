"""GraphQL API of opportunities (商机), their stages, stage history and product lines."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Annotated

import strawberry

from meihua import models
from meihua.models import OpportunityStatus as OpportunityStatusModel
from meihua.resolvers import opportunities, org, stages
from meihua.resolvers.pagination import Ordering
from meihua.resolvers.products import line_amount
from meihua.schema.context import Info
from meihua.schema.customers import Customer
from meihua.schema.org import DeletePayload, User
from meihua.schema.permissions import SignedIn
from meihua.schema.products import Product
from meihua.schema.relay import (
    Connection,
    Node,
    connection,
    record_id,
    reference_id,
    reference_ids,
    to_global_id,
)
from meihua.schema.timeline import timeline_field

if TYPE_CHECKING:
    from meihua.schema.pipelines import Pipeline

LazyPipeline = Annotated["Pipeline", strawberry.lazy("meihua.schema.pipelines")]


async def _pipeline(info: Info, pk: int) -> Pipeline:
    from meihua.schema.pipelines import Pipeline

    return Pipeline.of(await info.context.loaders.pipeline.load(pk))


OpportunityStatus = strawberry.enum(
    OpportunityStatusModel, description="OPEN while worked on; WON or LOST once closed."
)


@strawberry.type(description="A step of a sales pipeline (商机阶段), with its win rate.")
class OpportunityStage(Node):
    name: str
    win_rate: int = strawberry.field(description="Percent, 0–100.")
    order: int = strawberry.field(description="Position in its pipeline, from 1.")
    version: int
    pipeline_pk: strawberry.Private[int]

    @classmethod
    def of(cls, row: models.OpportunityStage) -> OpportunityStage:
        return cls(
            id=to_global_id("OpportunityStage", row.id),
            name=row.name,
            win_rate=row.win_rate,
            order=row.order,
            version=row.version,
            pipeline_pk=row.pipeline_id,
        )

    @strawberry.field(description="The pipeline the stage belongs to.")
    async def pipeline(self, info: Info) -> LazyPipeline:
        return await _pipeline(info, self.pipeline_pk)


async def _stage(info: Info, pk: int | None) -> OpportunityStage | None:
    if pk is None:
        return None
    return OpportunityStage.of(await info.context.loaders.opportunity_stage.load(pk))


@strawberry.type(description="One move of an opportunity: stage and status before and after.")
class OpportunityStageChange:
    from_status: OpportunityStatus | None = strawberry.field(
        description="Null on the first row, when the opportunity was created."
    )
    to_status: OpportunityStatus
    reason: str | None = strawberry.field(description="Why it was lost.")
    at: datetime
    from_stage_pk: strawberry.Private[int | None]
    to_stage_pk: strawberry.Private[int]
    actor_pk: strawberry.Private[int | None]

    @classmethod
    def of(cls, row: models.OpportunityStageChange) -> OpportunityStageChange:
        return cls(
            from_status=OpportunityStatusModel(row.from_status) if row.from_status else None,
            to_status=OpportunityStatusModel(row.to_status),
            reason=row.reason,
            at=row.at,
            from_stage_pk=row.from_stage_id,
            to_stage_pk=row.to_stage_id,
            actor_pk=row.actor_id,
        )

    @strawberry.field
    async def from_stage(self, info: Info) -> OpportunityStage | None:
        return await _stage(info, self.from_stage_pk)

    @strawberry.field
    async def to_stage(self, info: Info) -> OpportunityStage:
        return await _stage(info, self.to_stage_pk)

    @strawberry.field
    async def actor(self, info: Info) -> User | None:
        if self.actor_pk is None:
            return None
        return User.of(await info.context.loaders.user.load(self.actor_pk))


@strawberry.type(description="A product on an opportunity, with its price and discount.")
class OpportunityLine:
    quantity: Decimal
    unit_price: Decimal
    discount: Decimal = strawberry.field(description="Percent, 0–100.")
    product_pk: strawberry.Private[int]

    @classmethod
    def of(cls, row: models.OpportunityProduct) -> OpportunityLine:
        return cls(
            quantity=row.quantity,
            unit_price=row.unit_price,
            discount=row.discount,
            product_pk=row.product_id,
        )

    @strawberry.field(description="quantity × unitPrice × (1 − discount %), to the cent.")
    def amount(self) -> Decimal:
        return line_amount(self.quantity, self.unit_price, self.discount)

    @strawberry.field
    async def product(self, info: Info) -> Product:
        return Product.of(await info.context.loaders.product.load(self.product_pk))


@strawberry.type(description="A sales opportunity (商机).")
class Opportunity(Node):
    name: str
    amount: Decimal = strawberry.field(
        description="While the opportunity has product lines, their total."
    )
    status: OpportunityStatus
    lost_reason: str | None
    expected_close_date: date | None
    remarks: str | None
    closed_at: datetime | None = strawberry.field(description="When it was won or lost.")
    version: int
    created_at: datetime
    updated_at: datetime
    pk: strawberry.Private[int]
    stage_pk: strawberry.Private[int]
    owner_pk: strawberry.Private[int]
    customer_pk: strawberry.Private[int]
    created_by_pk: strawberry.Private[int]

    @classmethod
    def of(cls, row: models.Opportunity) -> Opportunity:
        return cls(
            id=to_global_id("Opportunity", row.id),
            pk=row.id,
            name=row.name,
            amount=row.amount,
            status=OpportunityStatusModel(row.status),
            lost_reason=row.lost_reason,
            expected_close_date=row.expected_close_date,
            remarks=row.remarks,
            closed_at=row.closed_at,
            version=row.version,
            created_at=row.created_at,
            updated_at=row.updated_at,
            stage_pk=row.stage_id,
            owner_pk=row.owner_id,
            customer_pk=row.customer_id,
            created_by_pk=row.created_by_id,
        )

    @strawberry.field(description="Where it is (or was won or lost) in its pipeline.")
    async def stage(self, info: Info) -> OpportunityStage:
        return await _stage(info, self.stage_pk)

    @strawberry.field(description="The pipeline of its stage.")
    async def pipeline(self, info: Info) -> LazyPipeline:
        stage = await info.context.loaders.opportunity_stage.load(self.stage_pk)
        return await _pipeline(info, stage.pipeline_id)

    @strawberry.field(description="100 when won, 0 when lost, else the stage's win rate.")
    async def win_rate(self, info: Info) -> int:
        stage = await info.context.loaders.opportunity_stage.load(self.stage_pk)
        return opportunities.effective_win_rate(self.status, stage.win_rate)

    @strawberry.field(description="amount × win rate, to the cent.")
    async def weighted_amount(self, info: Info) -> Decimal:
        stage = await info.context.loaders.opportunity_stage.load(self.stage_pk)
        return opportunities.weighted_amount(self.amount, self.status, stage.win_rate)

    @strawberry.field
    async def owner(self, info: Info) -> User:
        return User.of(await info.context.loaders.user.load(self.owner_pk))

    @strawberry.field
    async def created_by(self, info: Info) -> User:
        return User.of(await info.context.loaders.user.load(self.created_by_pk))

    @strawberry.field(
        description="Null when the customer is outside your sight (e.g. transferred away)."
    )
    async def customer(self, info: Info) -> Customer | None:
        viewer = info.context.viewer
        row = await info.context.loaders.visible_customer.load((viewer, self.customer_pk))
        return Customer.of(row) if row is not None else None

    @strawberry.field(description="Every move, oldest first, from creation on.")
    async def stage_history(self, info: Info) -> list[OpportunityStageChange]:
        rows = await info.context.loaders.stage_history_of_opportunity.load(self.pk)
        return [OpportunityStageChange.of(row) for row in rows]

    @strawberry.field(description="Its product lines, in the order they were set.")
    async def products(self, info: Info) -> list[OpportunityLine]:
        rows = await info.context.loaders.lines_of_opportunity.load(self.pk)
        return [OpportunityLine.of(row) for row in rows]

    timeline = timeline_field(models.RecordType.OPPORTUNITY)


# --- inputs ------------------------------------------------------------------


@strawberry.input
class OpportunityFilter:
    customer_id: strawberry.ID | None = None
    owner_id: strawberry.ID | None = None
    pipeline_id: strawberry.ID | None = strawberry.field(
        default=None, description="Only the opportunities in this pipeline (a board's columns)."
    )
    stage_id: strawberry.ID | None = None
    status: OpportunityStatus | None = None
    search: str | None = strawberry.field(default=None, description="Matches the name.")
    expected_close_from: date | None = None
    expected_close_to: date | None = None


@strawberry.enum
class OpportunityOrderField(Enum):
    CREATED_AT = "created_at"
    UPDATED_AT = "updated_at"
    NAME = "name"
    AMOUNT = "amount"
    EXPECTED_CLOSE_DATE = "expected_close_date"

    @property
    def if_null(self) -> date | None:
        """Opportunities without an expected close date sort after every dated one."""
        return UNDATED if self is OpportunityOrderField.EXPECTED_CLOSE_DATE else None


UNDATED = date(9999, 12, 31)


@strawberry.input
class OpportunityOrder:
    field: OpportunityOrderField = OpportunityOrderField.CREATED_AT
    descending: bool = True


@strawberry.input
class OpportunityProductInput:
    product_id: strawberry.ID
    quantity: Decimal
    unit_price: Decimal | None = strawberry.field(
        default=None, description="Defaults to the product's unit price."
    )
    discount: Decimal | None = strawberry.field(default=None, description="Percent, 0–100.")


@strawberry.input
class CreateOpportunityInput:
    customer_id: strawberry.ID
    name: str
    amount: Decimal = strawberry.field(
        description="Replaced by the total of `products` when lines are given."
    )
    pipeline_id: strawberry.ID | None = strawberry.field(
        default=None, description="Defaults to the stage's pipeline, else the default pipeline."
    )
    stage_id: strawberry.ID | None = strawberry.field(
        default=None, description="Defaults to the pipeline's first stage."
    )
    expected_close_date: date | None = None
    remarks: str | None = None
    products: list[OpportunityProductInput] | None = None


@strawberry.input(description="Send only what changes; an empty string clears remarks.")
class UpdateOpportunityInput:
    name: str | None = None
    amount: Decimal | None = strawberry.field(
        default=None, description="Refused while the opportunity has product lines."
    )
    expected_close_date: date | None = strawberry.field(
        default=strawberry.UNSET, description="null clears it."
    )
    remarks: str | None = None


@strawberry.input
class CreateOpportunityStageInput:
    name: str
    win_rate: int = strawberry.field(description="Percent, 0–100.")
    pipeline_id: strawberry.ID | None = strawberry.field(
        default=None, description="Defaults to the default pipeline."
    )


@strawberry.input
class UpdateOpportunityStageInput:
    name: str | None = None
    win_rate: int | None = None


def _lines(
    items: list[OpportunityProductInput] | None, field: str
) -> list[opportunities.LineInput]:
    return [
        opportunities.LineInput(
            product_id=reference_id(item.product_id, "Product", f"{field}.{index}.productId"),
            quantity=item.quantity,
            unit_price=item.unit_price,
            discount=item.discount,
        )
        for index, item in enumerate(items or [])
    ]


def _optional_reference(global_id: strawberry.ID | None, type_name: str, field: str) -> int | None:
    return reference_id(global_id, type_name, field) if global_id is not None else None


# --- root fields -------------------------------------------------------------


@strawberry.type
class OpportunityQuery:
    @strawberry.field(
        description="A pipeline's stages, in order: the default pipeline's unless `pipelineId` "
        "names another.",
        permission_classes=[SignedIn],
    )
    async def opportunity_stages(
        self, pipeline_id: strawberry.ID | None = None
    ) -> list[OpportunityStage]:
        pipeline = _optional_reference(pipeline_id, "Pipeline", "pipelineId")
        return [OpportunityStage.of(row) for row in await stages.list_stages(pipeline)]

    @strawberry.field(description="Opportunities the caller may see.")
    async def opportunities(
        self,
        info: Info,
        filter: OpportunityFilter | None = None,
        order_by: OpportunityOrder | None = None,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[Opportunity]:
        viewer = info.context.viewer
        where = filter or OpportunityFilter()
        query = await opportunities.list_opportunities(
            viewer,
            opportunities.OpportunityFilter(
                customer_id=_optional_reference(where.customer_id, "Customer", "customerId"),
                owner_id=_optional_reference(where.owner_id, "User", "ownerId"),
                pipeline_id=_optional_reference(where.pipeline_id, "Pipeline", "pipelineId"),
                stage_id=_optional_reference(where.stage_id, "OpportunityStage", "stageId"),
                status=OpportunityStatusModel(where.status.value) if where.status else None,
                search=where.search,
                expected_close_from=where.expected_close_from,
                expected_close_to=where.expected_close_to,
            ),
        )
        order = order_by or OpportunityOrder()
        return await connection(
            info,
            query,
            Ordering(order.field.value, order.descending, if_null=order.field.if_null),
            Opportunity,
            first=first,
            after=after,
            last=last,
            before=before,
        )


@strawberry.type
class OpportunityMutation:
    @strawberry.mutation(
        description="Open an opportunity on a customer; you own it. Starts at the first stage "
        "of `pipelineId` (the default pipeline when omitted) unless `stageId` says otherwise."
    )
    async def create_opportunity(self, info: Info, input: CreateOpportunityInput) -> Opportunity:
        viewer = info.context.viewer
        row = await opportunities.create_opportunity(
            viewer,
            reference_id(input.customer_id, "Customer", "customerId"),
            opportunities.OpportunityInput(
                name=input.name,
                amount=input.amount,
                expected_close_date=input.expected_close_date,
                remarks=input.remarks,
            ),
            _optional_reference(input.stage_id, "OpportunityStage", "stageId"),
            _lines(input.products, "products"),
            _optional_reference(input.pipeline_id, "Pipeline", "pipelineId"),
        )
        return Opportunity.of(row)

    @strawberry.mutation(description="Fails with CONFLICT when `expectedVersion` is stale.")
    async def update_opportunity(
        self,
        info: Info,
        id: strawberry.ID,
        input: UpdateOpportunityInput,
        expected_version: int | None = None,
    ) -> Opportunity:
        viewer = info.context.viewer
        row = await opportunities.update_opportunity(
            viewer,
            record_id(id, "Opportunity"),
            opportunities.OpportunityInput(
                name=input.name,
                amount=input.amount,
                expected_close_date=(
                    org.UNSET
                    if input.expected_close_date is strawberry.UNSET
                    else input.expected_close_date
                ),
                remarks=input.remarks,
            ),
            expected_version,
        )
        return Opportunity.of(row)

    @strawberry.mutation(description="Refused (CONFLICT) while contracts refer to it.")
    async def delete_opportunity(self, info: Info, id: strawberry.ID) -> DeletePayload:
        viewer = info.context.viewer
        await opportunities.delete_opportunity(viewer, record_id(id, "Opportunity"))
        return DeletePayload(deleted_id=id)

    @strawberry.mutation(
        description="Move to another stage of its pipeline (BAD_USER_INPUT for another "
        "pipeline's); a won or lost opportunity is reopened there. Fails with CONFLICT when "
        "`expectedVersion` is stale."
    )
    async def move_opportunity_stage(
        self,
        info: Info,
        id: strawberry.ID,
        stage_id: strawberry.ID,
        expected_version: int | None = None,
    ) -> Opportunity:
        viewer = info.context.viewer
        row = await opportunities.move_stage(
            viewer,
            record_id(id, "Opportunity"),
            reference_id(stage_id, "OpportunityStage", "stageId"),
            expected_version,
        )
        return Opportunity.of(row)

    @strawberry.mutation(
        description="Move to another active pipeline, at its first stage unless `stageId` names "
        "one of it; recorded in the stage history and pushed live like a stage move, and a won "
        "or lost opportunity is reopened there. Fails with CONFLICT when `expectedVersion` is "
        "stale."
    )
    async def change_opportunity_pipeline(
        self,
        info: Info,
        id: strawberry.ID,
        pipeline_id: strawberry.ID,
        stage_id: strawberry.ID | None = None,
        expected_version: int | None = None,
    ) -> Opportunity:
        viewer = info.context.viewer
        row = await opportunities.change_pipeline(
            viewer,
            record_id(id, "Opportunity"),
            reference_id(pipeline_id, "Pipeline", "pipelineId"),
            _optional_reference(stage_id, "OpportunityStage", "stageId"),
            expected_version,
        )
        return Opportunity.of(row)

    @strawberry.mutation(description="Mark it won at its current stage (win rate 100 %).")
    async def win_opportunity(
        self, info: Info, id: strawberry.ID, expected_version: int | None = None
    ) -> Opportunity:
        viewer = info.context.viewer
        row = await opportunities.win_opportunity(
            viewer, record_id(id, "Opportunity"), expected_version
        )
        return Opportunity.of(row)

    @strawberry.mutation(description="Mark it lost (win rate 0 %); the reason is required.")
    async def lose_opportunity(
        self, info: Info, id: strawberry.ID, reason: str, expected_version: int | None = None
    ) -> Opportunity:
        viewer = info.context.viewer
        row = await opportunities.lose_opportunity(
            viewer, record_id(id, "Opportunity"), reason, expected_version
        )
        return Opportunity.of(row)

    @strawberry.mutation(
        description="Replace the product lines; the amount becomes their total "
        "(an empty list keeps the amount)."
    )
    async def set_opportunity_products(
        self,
        info: Info,
        id: strawberry.ID,
        items: list[OpportunityProductInput],
        expected_version: int | None = None,
    ) -> Opportunity:
        viewer = info.context.viewer
        row = await opportunities.set_products(
            viewer, record_id(id, "Opportunity"), _lines(items, "items"), expected_version
        )
        return Opportunity.of(row)

    @strawberry.mutation(description="Hand opportunities to another user; all or none.")
    async def transfer_opportunities(
        self, info: Info, ids: list[strawberry.ID], owner_id: strawberry.ID
    ) -> list[Opportunity]:
        viewer = info.context.viewer
        rows = await opportunities.transfer_opportunities(
            viewer,
            [record_id(gid, "Opportunity") for gid in ids],
            reference_id(owner_id, "User", "ownerId"),
        )
        return [Opportunity.of(row) for row in rows]

    @strawberry.mutation(
        description="Add a stage at the end of a pipeline (the default one unless `pipelineId`)."
    )
    async def create_opportunity_stage(
        self, info: Info, input: CreateOpportunityStageInput
    ) -> OpportunityStage:
        viewer = info.context.viewer
        row = await stages.create_stage(
            viewer,
            input.name,
            input.win_rate,
            _optional_reference(input.pipeline_id, "Pipeline", "pipelineId"),
        )
        return OpportunityStage.of(row)

    @strawberry.mutation(description="Fails with CONFLICT when `expectedVersion` is stale.")
    async def update_opportunity_stage(
        self,
        info: Info,
        id: strawberry.ID,
        input: UpdateOpportunityStageInput,
        expected_version: int | None = None,
    ) -> OpportunityStage:
        viewer = info.context.viewer
        row = await stages.update_stage(
            viewer,
            record_id(id, "OpportunityStage"),
            name=input.name,
            win_rate=input.win_rate,
            expected_version=expected_version,
        )
        return OpportunityStage.of(row)

    @strawberry.mutation(
        description="Put a pipeline's stages in this order; list every stage of that pipeline once."
    )
    async def reorder_opportunity_stages(
        self, info: Info, ids: list[strawberry.ID]
    ) -> list[OpportunityStage]:
        viewer = info.context.viewer
        rows = await stages.reorder_stages(viewer, reference_ids(ids, "OpportunityStage", "ids"))
        return [OpportunityStage.of(row) for row in rows]

    @strawberry.mutation(
        description="Delete a stage no opportunity is at and no stage history names (else "
        "CONFLICT); the stages after it move up."
    )
    async def delete_opportunity_stage(self, info: Info, id: strawberry.ID) -> DeletePayload:
        viewer = info.context.viewer
        await stages.delete_stage(viewer, record_id(id, "OpportunityStage"))
        return DeletePayload(deleted_id=id)

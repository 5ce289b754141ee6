"""GraphQL API of pipelines (销售流程): the stage groups admins configure."""

from __future__ import annotations

from datetime import datetime

import strawberry

from meihua import models
from meihua.resolvers import pipelines
from meihua.schema.context import Info
from meihua.schema.opportunities import OpportunityStage
from meihua.schema.org import DeletePayload
from meihua.schema.permissions import SignedIn
from meihua.schema.relay import Node, record_id, reference_ids, to_global_id


@strawberry.type(
    description="A sales pipeline (销售流程): ordered stages with win rates, e.g. per business "
    "line. An opportunity belongs to the pipeline of its stage."
)
class Pipeline(Node):
    name: str
    description: str | None = strawberry.field(description="E.g. the business line it serves.")
    order: int = strawberry.field(
        description="Position among the pipelines, from 1; the first active one is the default."
    )
    active: bool = strawberry.field(description="An inactive pipeline takes no new opportunities.")
    version: int
    created_at: datetime
    updated_at: datetime
    pk: strawberry.Private[int]

    @classmethod
    def of(cls, row: models.Pipeline) -> Pipeline:
        return cls(
            id=to_global_id("Pipeline", row.id),
            pk=row.id,
            name=row.name,
            description=row.description,
            order=row.order,
            active=row.is_active,
            version=row.version,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    @strawberry.field(description="Its stages, in order.")
    async def stages(self, info: Info) -> list[OpportunityStage]:
        rows = await info.context.loaders.stages_of_pipeline.load(self.pk)
        return [OpportunityStage.of(row) for row in rows]


@strawberry.input
class PipelineStageInput:
    name: str
    win_rate: int = strawberry.field(description="Percent, 0–100.")


@strawberry.input
class CreatePipelineInput:
    name: str
    description: str | None = None
    stages: list[PipelineStageInput] = strawberry.field(
        description="Its stages in order: 1 to 50, with distinct names."
    )


@strawberry.input(description="Send only what changes; an empty description clears it.")
class UpdatePipelineInput:
    name: str | None = None
    description: str | None = None
    active: bool | None = strawberry.field(
        default=None, description="false retires it (refused for the last active pipeline)."
    )


@strawberry.type
class PipelineQuery:
    @strawberry.field(
        description="Every pipeline with its stages, in order; the first active one is the "
        "default.",
        permission_classes=[SignedIn],
    )
    async def pipelines(self) -> list[Pipeline]:
        return [Pipeline.of(row) for row in await pipelines.list_pipelines()]


@strawberry.type
class PipelineMutation:
    @strawberry.mutation(description="A new active pipeline with its stages, placed last.")
    async def create_pipeline(self, info: Info, input: CreatePipelineInput) -> Pipeline:
        viewer = info.context.viewer
        row = await pipelines.create_pipeline(
            viewer,
            input.name,
            input.description,
            [pipelines.StageInput(stage.name, stage.win_rate) for stage in input.stages],
        )
        return Pipeline.of(row)

    @strawberry.mutation(
        description="Rename, describe, retire or bring back a pipeline; its stages change with "
        "the opportunity stage operations. Fails with CONFLICT when `expectedVersion` is stale."
    )
    async def update_pipeline(
        self,
        info: Info,
        id: strawberry.ID,
        input: UpdatePipelineInput,
        expected_version: int | None = None,
    ) -> Pipeline:
        viewer = info.context.viewer
        row = await pipelines.update_pipeline(
            viewer,
            record_id(id, "Pipeline"),
            name=input.name,
            description=input.description,
            is_active=input.active,
            expected_version=expected_version,
        )
        return Pipeline.of(row)

    @strawberry.mutation(
        description="Put the pipelines in this order (list every pipeline once); the first "
        "active one becomes the default."
    )
    async def reorder_pipelines(self, info: Info, ids: list[strawberry.ID]) -> list[Pipeline]:
        viewer = info.context.viewer
        rows = await pipelines.reorder_pipelines(viewer, reference_ids(ids, "Pipeline", "ids"))
        return [Pipeline.of(row) for row in rows]

    @strawberry.mutation(
        description="Delete a pipeline and its stages. CONFLICT while opportunities are in it or "
        "its stages are in a stage history (retire it instead), or when it is the last active "
        "pipeline."
    )
    async def delete_pipeline(self, info: Info, id: strawberry.ID) -> DeletePayload:
        viewer = info.context.viewer
        await pipelines.delete_pipeline(viewer, record_id(id, "Pipeline"))
        return DeletePayload(deleted_id=id)

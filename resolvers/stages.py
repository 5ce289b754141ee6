"""Opportunity stages (商机阶段): the steps of a pipeline, each with a win rate.

Stages are ordered 1..n without gaps within their pipeline (see
resolvers.pipelines). Winning and losing are statuses, not stages (an
opportunity is won *at* a stage), so every stage is an open one. A stage that
an opportunity or the stage history still names cannot be deleted: the history
must keep saying where deals were.
"""

from __future__ import annotations

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q

from meihua.models import Opportunity, OpportunityStage, OpportunityStageChange, Pipeline
from meihua.resolvers.access import Viewer
from meihua.resolvers.errors import BadUserInput, Conflict, Duplicate, NotFound
from meihua.resolvers.org import clean_name
from meihua.resolvers.pipelines import (
    SETTINGS_MANAGE,
    clean_win_rate,
    default_pipeline,
    pipeline_for_new_opportunities,
    renumber,
)
from meihua.resolvers.versioning import update_versioned
from meihua.subscriptions.events import transaction


async def list_stages(pipeline_id: int | None = None) -> list[OpportunityStage]:
    """The stages of a pipeline (the default one when none is named), in order."""
    if pipeline_id is None:
        pipeline_id = (await default_pipeline()).id
    elif not await Pipeline.exists(id=pipeline_id):
        raise BadUserInput("No such pipeline.", field="pipelineId")
    return await OpportunityStage.filter(pipeline_id=pipeline_id).order_by("order", "id")


async def starting_stage(
    pipeline_id: int | None, stage_id: int | None, prefix: str = ""
) -> OpportunityStage:
    """Where a new opportunity starts: the given stage, else the first of the given
    pipeline, else the first of the default pipeline.

    A stage of another pipeline than the one named, or of a retired pipeline, is
    refused (BAD_USER_INPUT on `<prefix>stageId` / `<prefix>pipelineId`).
    """
    if stage_id is None:
        pipeline = await pipeline_for_new_opportunities(pipeline_id, f"{prefix}pipelineId")
        stage = await OpportunityStage.filter(pipeline_id=pipeline.id).order_by("order").first()
        if stage is None:
            raise Conflict("The pipeline has no stages; an admin must add one.")
        return stage
    stage = await OpportunityStage.get_or_none(id=stage_id)
    if stage is None:
        raise BadUserInput("No such opportunity stage.", field=f"{prefix}stageId")
    if pipeline_id is not None and stage.pipeline_id != pipeline_id:
        raise BadUserInput("That stage belongs to another pipeline.", field=f"{prefix}stageId")
    pipeline = await Pipeline.get(id=stage.pipeline_id)
    if not pipeline.is_active:
        raise BadUserInput(
            f"The pipeline {pipeline.name} is no longer in use.", field=f"{prefix}stageId"
        )
    return stage


async def _lock_stages(pipeline_id: int) -> list[OpportunityStage]:
    """A pipeline's stages, behind a lock on the pipeline: appends, reorders and
    deletes renumber the whole pipeline, so they take turns (PostgreSQL; SQLite
    serialises writers).

    The stages are read once the lock is held: a locking read that had to wait
    does not see stages added meanwhile, and would hand out their places.
    """
    if not await Pipeline.filter(id=pipeline_id).select_for_update():
        raise BadUserInput("No such pipeline.", field="pipelineId")
    return await OpportunityStage.filter(pipeline_id=pipeline_id).order_by("id")


async def _pipeline_of_stage(pk: int) -> int:
    pipeline_id = await OpportunityStage.filter(id=pk).values_list("pipeline_id", flat=True)
    if not pipeline_id:
        raise NotFound("No such opportunity stage.")
    return pipeline_id[0]


def _refuse_duplicate_name(stages: list[OpportunityStage], name: str, exclude: int | None):
    if any(s.name == name and s.id != exclude for s in stages):
        raise Duplicate(f"A stage named {name!r} already exists.", field="name")


async def create_stage(
    viewer: Viewer, name: str, win_rate: int, pipeline_id: int | None = None
) -> OpportunityStage:
    """A new stage, placed last in the pipeline (the default one when none is named)."""
    viewer.require(SETTINGS_MANAGE)
    name = clean_name(name, "name")
    win_rate = clean_win_rate(win_rate)
    async with transaction():
        if pipeline_id is None:
            pipeline_id = (await default_pipeline()).id
        stages = await _lock_stages(pipeline_id)
        _refuse_duplicate_name(stages, name, exclude=None)
        last = max((s.order for s in stages), default=0)
        return await OpportunityStage.create(
            pipeline_id=pipeline_id, name=name, win_rate=win_rate, order=last + 1
        )


async def update_stage(
    viewer: Viewer,
    pk: int,
    *,
    name: str | None,
    win_rate: int | None,
    expected_version: int | None,
) -> OpportunityStage:
    """Rename a stage or change its win rate (open opportunities' weighted amounts follow)."""
    viewer.require(SETTINGS_MANAGE)
    changes: dict = {}
    if name is not None:
        changes["name"] = clean_name(name, "name")
    if win_rate is not None:
        changes["win_rate"] = clean_win_rate(win_rate)
    async with transaction():
        stages = await _lock_stages(await _pipeline_of_stage(pk))
        stage = next((s for s in stages if s.id == pk), None)
        if stage is None:
            raise NotFound("No such opportunity stage.")
        if "name" in changes:
            _refuse_duplicate_name(stages, changes["name"], exclude=pk)
        return await update_versioned(stage, expected_version, **changes)


async def reorder_stages(viewer: Viewer, ids: list[int]) -> list[OpportunityStage]:
    """Put a pipeline's stages in the given order; the list names each of them exactly once."""
    viewer.require(SETTINGS_MANAGE)
    refused = BadUserInput(
        "List every stage of one pipeline exactly once, in the new order.", field="ids"
    )
    if not ids:
        raise refused
    async with transaction():
        pipeline_ids = await OpportunityStage.filter(id=ids[0]).values_list(
            "pipeline_id", flat=True
        )
        if not pipeline_ids:
            raise refused
        stages = {s.id: s for s in await _lock_stages(pipeline_ids[0])}
        if len(ids) != len(set(ids)) or set(ids) != set(stages):
            raise refused
        await renumber([stages[pk] for pk in ids])
        return await list_stages(pipeline_ids[0])


async def delete_stage(viewer: Viewer, pk: int) -> int:
    """Delete a stage no opportunity and no stage history names; the rest close up."""
    viewer.require(SETTINGS_MANAGE)
    async with transaction():
        stages = await _lock_stages(await _pipeline_of_stage(pk))
        stage = next((s for s in stages if s.id == pk), None)
        if stage is None:
            raise NotFound("No such opportunity stage.")
        if len(stages) == 1:
            raise Conflict("The pipeline needs at least one stage.")
        if await Opportunity.filter(stage_id=pk).exists():
            raise Conflict("Opportunities are at this stage; move them to another stage first.")
        if await OpportunityStageChange.filter(Q(from_stage_id=pk) | Q(to_stage_id=pk)).exists():
            raise Conflict(
                "Opportunities have passed through this stage and their history names it; "
                "rename it instead."
            )
        try:
            await stage.delete()
        except IntegrityError:
            # An opportunity moved into the stage after our check (PostgreSQL).
            raise Conflict("The stage was just put to use; it cannot be deleted.") from None
        await renumber(sorted((s for s in stages if s.id != pk), key=lambda s: (s.order, s.id)))
    return pk

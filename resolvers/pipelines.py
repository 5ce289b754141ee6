"""Pipelines (销售流程): groups of ordered stages admins configure, e.g. one per business line.

An opportunity belongs to the pipeline of its stage. Pipelines are ordered
1..n without gaps; the first active one is the default, where opportunities
start when no pipeline is named and whose funnel the dashboard shows by
default. There is always at least one active pipeline, and every pipeline has
at least one stage. An inactive pipeline takes no new opportunities; the ones
already in it carry on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F, Q

from meihua.models import Opportunity, OpportunityStage, OpportunityStageChange, Pipeline
from meihua.resolvers.access import Viewer
from meihua.resolvers.errors import BadUserInput, Conflict, Duplicate, NotFound
from meihua.resolvers.org import clean_name
from meihua.resolvers.versioning import update_versioned
from meihua.subscriptions.events import transaction

SETTINGS_MANAGE = "settings:manage"
MAX_STAGES = 50
_DESCRIPTION_LIMIT = 2_000


@dataclass
class StageInput:
    name: str
    win_rate: int


async def list_pipelines() -> list[Pipeline]:
    return await Pipeline.all().order_by("order", "id")


async def default_pipeline() -> Pipeline:
    pipeline = await Pipeline.filter(is_active=True).order_by("order", "id").first()
    if pipeline is None:
        raise Conflict("No opportunity pipeline is configured; an admin must add one.")
    return pipeline


async def pipeline_for_new_opportunities(pk: int | None, field: str = "pipelineId") -> Pipeline:
    """The named pipeline (BAD_USER_INPUT when missing or inactive), else the default."""
    if pk is None:
        return await default_pipeline()
    pipeline = await Pipeline.get_or_none(id=pk)
    if pipeline is None:
        raise BadUserInput("No such pipeline.", field=field)
    if not pipeline.is_active:
        raise BadUserInput(f"The pipeline {pipeline.name} is no longer in use.", field=field)
    return pipeline


async def funnel_pipeline(pk: int | None) -> Pipeline:
    """The pipeline a funnel counts: the named one (retired ones too), else the default."""
    if pk is None:
        return await default_pipeline()
    pipeline = await Pipeline.get_or_none(id=pk)
    if pipeline is None:
        raise BadUserInput("No such pipeline.", field="pipelineId")
    return pipeline


def clean_win_rate(value: int, field: str = "winRate") -> int:
    if not 0 <= value <= 100:
        raise BadUserInput("`winRate` is a percentage from 0 to 100.", field=field)
    return value


def _clean_description(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if len(value) > _DESCRIPTION_LIMIT:
        raise BadUserInput("`description` is too long.", field="description")
    return value or None


async def _lock_pipelines() -> list[Pipeline]:
    """Every pipeline, locked: creating, reordering and deleting renumber them all.

    Read again once the lock is held, as a locking read that waited does not
    see pipelines added meanwhile (see stages._lock_stages).
    """
    await Pipeline.all().order_by("id").select_for_update()
    return await Pipeline.all().order_by("order", "id")


def _refuse_duplicate_name(pipelines: list[Pipeline], name: str, exclude: int | None) -> None:
    if any(p.name == name and p.id != exclude for p in pipelines):
        raise Duplicate(f"A pipeline named {name!r} already exists.", field="name")


def _clean_stages(items: list[StageInput]) -> list[StageInput]:
    if not 0 < len(items) <= MAX_STAGES:
        raise BadUserInput(f"A pipeline has 1 to {MAX_STAGES} stages.", field="stages")
    cleaned = [
        StageInput(
            clean_name(item.name, f"stages.{index}.name"),
            clean_win_rate(item.win_rate, f"stages.{index}.winRate"),
        )
        for index, item in enumerate(items)
    ]
    names = [item.name for item in cleaned]
    if len(names) != len(set(names)):
        raise Duplicate("Two stages of the pipeline have the same name.", field="stages")
    return cleaned


async def create_pipeline(
    viewer: Viewer, name: str, description: str | None, stages: list[StageInput]
) -> Pipeline:
    """A new active pipeline with its stages in the given order, placed last."""
    viewer.require(SETTINGS_MANAGE)
    name = clean_name(name, "name", max_length=100)
    description = _clean_description(description)
    cleaned = _clean_stages(stages)
    async with transaction():
        pipelines = await _lock_pipelines()
        _refuse_duplicate_name(pipelines, name, exclude=None)
        last = max((p.order for p in pipelines), default=0)
        pipeline = await Pipeline.create(name=name, description=description, order=last + 1)
        await OpportunityStage.bulk_create(
            [
                OpportunityStage(
                    pipeline_id=pipeline.id, name=item.name, win_rate=item.win_rate, order=order
                )
                for order, item in enumerate(cleaned, start=1)
            ]
        )
        return pipeline


async def update_pipeline(
    viewer: Viewer,
    pk: int,
    *,
    name: str | None,
    description: str | None,
    is_active: bool | None,
    expected_version: int | None,
) -> Pipeline:
    """Rename, describe, retire or bring back a pipeline (its stages have their own operations)."""
    viewer.require(SETTINGS_MANAGE)
    changes: dict = {}
    if name is not None:
        changes["name"] = clean_name(name, "name", max_length=100)
    if description is not None:
        changes["description"] = _clean_description(description)
    if is_active is not None:
        changes["is_active"] = is_active
    async with transaction():
        pipelines = await _lock_pipelines()
        pipeline = next((p for p in pipelines if p.id == pk), None)
        if pipeline is None:
            raise NotFound("No such pipeline.")
        if "name" in changes:
            _refuse_duplicate_name(pipelines, changes["name"], exclude=pk)
        if is_active is False and not any(p.is_active for p in pipelines if p.id != pk):
            raise Conflict("At least one pipeline must stay active.")
        return await update_versioned(pipeline, expected_version, **changes)


async def reorder_pipelines(viewer: Viewer, ids: list[int]) -> list[Pipeline]:
    """Put the pipelines in the given order (the first active one becomes the default)."""
    viewer.require(SETTINGS_MANAGE)
    async with transaction():
        pipelines = {p.id: p for p in await _lock_pipelines()}
        if len(ids) != len(set(ids)) or set(ids) != set(pipelines):
            raise BadUserInput("List every pipeline exactly once, in the new order.", field="ids")
        await renumber([pipelines[pk] for pk in ids])
        return await list_pipelines()


async def renumber(ordered: list[Pipeline] | list[OpportunityStage]) -> None:
    """Orders 1..n in the given sequence; a row whose place changes gets a new version."""
    now = datetime.now(UTC)
    for order, row in enumerate(ordered, start=1):
        if row.order != order:
            model = type(row)
            await model.filter(id=row.id).update(
                order=order, version=F("version") + 1, updated_at=now
            )


async def delete_pipeline(viewer: Viewer, pk: int) -> int:
    """Delete a pipeline with its stages, when no opportunity is or ever was in it."""
    viewer.require(SETTINGS_MANAGE)
    async with transaction():
        pipelines = await _lock_pipelines()
        pipeline = next((p for p in pipelines if p.id == pk), None)
        if pipeline is None:
            raise NotFound("No such pipeline.")
        if not any(p.is_active for p in pipelines if p.id != pk):
            raise Conflict("At least one active pipeline must remain.")
        stage_ids = await OpportunityStage.filter(pipeline_id=pk).values_list("id", flat=True)
        if await Opportunity.filter(stage_id__in=stage_ids).exists():
            raise Conflict(
                "Opportunities are in this pipeline; move them to another pipeline first."
            )
        named = Q(from_stage_id__in=stage_ids) | Q(to_stage_id__in=stage_ids)
        if await OpportunityStageChange.filter(named).exists():
            raise Conflict(
                "Opportunities have passed through this pipeline and their history names its "
                "stages; retire it (active: false) instead."
            )
        try:
            await OpportunityStage.filter(pipeline_id=pk).delete()
            await pipeline.delete()
        except IntegrityError:
            # An opportunity moved into one of its stages after our check (PostgreSQL).
            raise Conflict("The pipeline was just put to use; it cannot be deleted.") from None
        await renumber([p for p in pipelines if p.id != pk])
    return pk

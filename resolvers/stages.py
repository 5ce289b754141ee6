"""Opportunity stages (商机阶段): the pipeline admins configure, each with a win rate.

Stages are ordered 1..n without gaps. Winning and losing are statuses, not
stages (an opportunity is won *at* a stage), so every stage is an open one.
A stage that an opportunity or the stage history still names cannot be
deleted: the history must keep saying where deals were.
"""

from __future__ import annotations

from datetime import UTC, datetime

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F, Q

from meihua.models import Opportunity, OpportunityStage, OpportunityStageChange
from meihua.resolvers.access import Viewer
from meihua.resolvers.errors import BadUserInput, Conflict, Duplicate, NotFound
from meihua.resolvers.org import clean_name
from meihua.resolvers.versioning import update_versioned
from meihua.subscriptions.events import transaction

SETTINGS_MANAGE = "settings:manage"


async def list_stages() -> list[OpportunityStage]:
    return await OpportunityStage.all().order_by("order", "id")


async def first_stage() -> OpportunityStage | None:
    return await OpportunityStage.all().order_by("order", "id").first()


async def get_stage(pk: int) -> OpportunityStage:
    stage = await OpportunityStage.get_or_none(id=pk)
    if stage is None:
        raise NotFound("No such opportunity stage.")
    return stage


def clean_win_rate(value: int) -> int:
    if not 0 <= value <= 100:
        raise BadUserInput("`winRate` is a percentage from 0 to 100.", field="winRate")
    return value


async def _lock_stages() -> list[OpportunityStage]:
    """Every stage, locked: appends, reorders and deletes renumber the whole
    pipeline, so they take turns (PostgreSQL; SQLite serialises writers).

    The stages are read again once the lock is held: a locking read that had to
    wait does not see stages added meanwhile, and would hand out their places.
    """
    await OpportunityStage.all().order_by("id").select_for_update()
    return await OpportunityStage.all().order_by("id")


def _refuse_duplicate_name(stages: list[OpportunityStage], name: str, exclude: int | None):
    if any(s.name == name and s.id != exclude for s in stages):
        raise Duplicate(f"A stage named {name!r} already exists.", field="name")


async def create_stage(viewer: Viewer, name: str, win_rate: int) -> OpportunityStage:
    """A new stage, placed last in the pipeline."""
    viewer.require(SETTINGS_MANAGE)
    name = clean_name(name, "name")
    win_rate = clean_win_rate(win_rate)
    async with transaction():
        stages = await _lock_stages()
        _refuse_duplicate_name(stages, name, exclude=None)
        last = max((s.order for s in stages), default=0)
        return await OpportunityStage.create(name=name, win_rate=win_rate, order=last + 1)


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
        stages = await _lock_stages()
        stage = next((s for s in stages if s.id == pk), None)
        if stage is None:
            raise NotFound("No such opportunity stage.")
        if "name" in changes:
            _refuse_duplicate_name(stages, changes["name"], exclude=pk)
        return await update_versioned(stage, expected_version, **changes)


async def reorder_stages(viewer: Viewer, ids: list[int]) -> list[OpportunityStage]:
    """Put the stages in the given order; the list names every stage exactly once."""
    viewer.require(SETTINGS_MANAGE)
    async with transaction():
        stages = {s.id: s for s in await _lock_stages()}
        if len(ids) != len(set(ids)) or set(ids) != set(stages):
            raise BadUserInput("List every stage exactly once, in the new order.", field="ids")
        await _renumber([stages[pk] for pk in ids])
        return await list_stages()


async def _renumber(ordered: list[OpportunityStage]) -> None:
    """Orders 1..n in the given sequence; a stage whose place changes gets a new version."""
    now = datetime.now(UTC)
    for order, stage in enumerate(ordered, start=1):
        if stage.order != order:
            await OpportunityStage.filter(id=stage.id).update(
                order=order, version=F("version") + 1, updated_at=now
            )


async def delete_stage(viewer: Viewer, pk: int) -> int:
    """Delete a stage no opportunity and no stage history names; the rest close up."""
    viewer.require(SETTINGS_MANAGE)
    async with transaction():
        stages = await _lock_stages()
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
        await _renumber(sorted((s for s in stages if s.id != pk), key=lambda s: (s.order, s.id)))
    return pk

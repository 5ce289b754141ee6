"""Public pools (公海) and their rules: who may claim, the caps, the cool-down,
and when customers are recycled.

There is one company-wide pool, open to everybody; it stays company-wide and
cannot be deleted. Every other pool serves member departments (and the
departments below them), so it needs at least one; a department belongs to
one pool at most, which makes the home pool of its people's new customers
unambiguous. Pools are managed with `pool:manage`; a pool with customers
cannot be deleted.

The operation log only keeps business records, so pool changes are not in
it; every change records a `pool.changed` event instead, after which live
subscribers work out their pool memberships again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.queryset import QuerySet

from meihua.models import Customer, Department, Pool
from meihua.resolvers.access import Viewer
from meihua.resolvers.errors import BadUserInput, Conflict, Duplicate, NotFound
from meihua.resolvers.oplog import diff
from meihua.resolvers.org import UNSET, clean_name
from meihua.resolvers.versioning import update_versioned
from meihua.subscriptions.events import record_event, transaction

POOL_MANAGE = "pool:manage"

MAX_DAYS = 3650  # ten years: any rule in days
MAX_COUNT = 1_000_000  # customers owned or claimed per day
MAX_WARNING_DAYS = 365

# Rule fields in days or counts: a positive whole number, or null for no limit / off.
_LIMITS = {
    "max_owned": MAX_COUNT,
    "max_claims_per_day": MAX_COUNT,
    "reclaim_cooldown_days": MAX_DAYS,
    "recycle_not_dealt_after_days": MAX_DAYS,
    "recycle_dealt_after_days": MAX_DAYS,
    "recycle_no_deal_after_days": MAX_DAYS,
}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


async def visible_pools(viewer: Viewer) -> QuerySet[Pool]:
    """The pools the viewer is a member of; every pool for those who manage pools."""
    if viewer.can(POOL_MANAGE):
        return Pool.all()
    return Pool.filter(id__in=sorted(await viewer.pool_ids()))


async def get_visible_pool(viewer: Viewer, pk: int) -> Pool:
    pool = await (await visible_pools(viewer)).get_or_none(id=pk)
    if pool is None:
        raise NotFound("No such pool.")
    return pool


@dataclass
class PoolInput:
    """What a pool is made of; UNSET leaves a field as it is (None turns a rule off)."""

    name: str | None = None
    department_ids: list[int] | None = None
    max_owned: int | None = UNSET
    max_claims_per_day: int | None = UNSET
    reclaim_cooldown_days: int | None = UNSET
    recycle_not_dealt_after_days: int | None = UNSET
    recycle_dealt_after_days: int | None = UNSET
    recycle_no_deal_after_days: int | None = UNSET
    warning_days: int | None = None


async def _validated(data: PoolInput, current: Pool | None) -> tuple[dict[str, Any], list | None]:
    """The field changes and the new member departments (None: unchanged)."""
    changes: dict[str, Any] = {}
    if data.name is not None:
        changes["name"] = clean_name(data.name, "name", max_length=100)
        clash = Pool.filter(name=changes["name"])
        if current is not None:
            clash = clash.exclude(id=current.id)
        if await clash.exists():
            raise _name_taken(changes["name"])
    for name, limit in _LIMITS.items():
        value = getattr(data, name)
        if value is UNSET:
            continue
        if value is not None and not 1 <= value <= limit:
            raise BadUserInput(
                f"`{_camel(name)}` must be between 1 and {limit}, or null for none.",
                field=_camel(name),
            )
        changes[name] = value
    if data.warning_days is not None:
        if not 0 <= data.warning_days <= MAX_WARNING_DAYS:
            raise BadUserInput(
                f"`warningDays` must be between 0 and {MAX_WARNING_DAYS}.", field="warningDays"
            )
        changes["warning_days"] = data.warning_days
    departments = None
    if data.department_ids is not None or current is None:
        departments = await _departments(data.department_ids or [], current)
    if current is not None and current.company_wide:
        if departments:
            raise BadUserInput(
                "The company-wide pool is open to everybody; it has no member departments.",
                field="departmentIds",
            )
    elif departments == []:
        raise BadUserInput(
            "A department pool needs at least one department.", field="departmentIds"
        )
    return changes, departments


async def _departments(ids: list[int], current: Pool | None) -> list[Department]:
    wanted = set(ids)
    if not wanted:
        return []
    departments = await Department.filter(id__in=wanted).order_by("id")
    if len(departments) != len(wanted):
        raise BadUserInput("Some departments do not exist.", field="departmentIds")
    taken = Pool.filter(departments__id__in=wanted)
    if current is not None:
        taken = taken.exclude(id=current.id)
    other = await taken.first()
    if other is not None:
        raise Duplicate(
            f"A department can serve one pool only; one of these already serves {other.name}.",
            field="departmentIds",
        )
    return list(departments)


def _name_taken(name: str) -> Duplicate:
    return Duplicate(f"A pool named {name!r} already exists.", field="name")


async def _pool_changed(
    viewer: Viewer, change: str, pool: Pool, fields: list[str] | None = None
) -> None:
    """Memberships and rules may have changed: live subscribers work them out again."""
    await record_event(
        "pool.changed",
        record_type="POOL",
        record_id=pool.id,
        actor_id=viewer.id,
        payload={"change": change, "fields": fields or [], "version": pool.version},
    )


async def create_pool(viewer: Viewer, data: PoolInput) -> Pool:
    viewer.require(POOL_MANAGE)
    if data.name is None:
        raise BadUserInput("`name` is required.", field="name")
    try:
        async with transaction():
            changes, departments = await _validated(data, None)
            pool = await Pool.create(**changes)
            await pool.departments.add(*departments)
            await _pool_changed(viewer, "CREATED", pool)
            return pool
    except IntegrityError:
        # Another manager took the name between the check and the insert.
        raise _name_taken(data.name.strip()) from None


async def update_pool(
    viewer: Viewer, pk: int, data: PoolInput, expected_version: int | None
) -> Pool:
    viewer.require(POOL_MANAGE)
    try:
        async with transaction():
            pool = await get_visible_pool(viewer, pk)
            changes, departments = await _validated(data, pool)
            changed = sorted(map(_camel, diff(pool, changes)))
            if departments is not None:
                before = set(await pool.departments.all().values_list("id", flat=True))
                if before != {department.id for department in departments}:
                    await pool.departments.clear()
                    await pool.departments.add(*departments)
                    changed.append("departmentIds")
            pool = await update_versioned(pool, expected_version, **changes)
            if changed:
                await _pool_changed(viewer, "UPDATED", pool, sorted(changed))
            return pool
    except IntegrityError:
        if data.name is None:
            raise
        # Another manager took the name between the check and the write.
        raise _name_taken(data.name.strip()) from None


async def delete_pool(viewer: Viewer, pk: int) -> int:
    viewer.require(POOL_MANAGE)
    async with transaction():
        pool = await get_visible_pool(viewer, pk)
        if pool.company_wide:
            raise Conflict("The company-wide pool cannot be deleted.")
        customers = await Customer.filter(pool_id=pk).count()
        if customers:
            raise Conflict(f"{customers} customers still belong to this pool.")
        await pool.delete()
        await _pool_changed(viewer, "DELETED", pool)
    return pk

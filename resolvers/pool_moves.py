"""Customers in and out of the public pools: release (放入公海), claim (领取),
assign (分配).

A customer is in a pool while it has no owner; `pool_id` says which. Who
gets it is decided by one conditional UPDATE on `owner_id IS NULL`, never by
reading and then writing: when fifty reps claim the same customer at once,
on one worker or many, the database lets exactly one UPDATE match and the
others get CONFLICT.

The pool's caps (not-dealt customers owned from the pool, claims per day)
are counted while holding a lock on the taker's user row, so one rep's
concurrent claims queue up behind each other and cannot overshoot the cap,
while different reps never wait for each other. Anything that locks a user
row and customer rows locks the user row first, so two such calls cannot
deadlock.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from tortoise.expressions import F

from meihua import metrics
from meihua.models import (
    Customer,
    CustomerTeamMember,
    DealStatus,
    Pool,
    PoolMovement,
    PoolMovementKind,
    RecordType,
    User,
)
from meihua.resolvers.access import Viewer
from meihua.resolvers.customers import get_visible_customer, require_ownership, visible_batch
from meihua.resolvers.errors import BadUserInput, Conflict, Forbidden, LimitExceeded, NotFound
from meihua.resolvers.leads import MAX_REASON, active_user
from meihua.resolvers.oplog import log_operation, plain
from meihua.resolvers.pool_history import record_movement
from meihua.resolvers.pool_membership import home_pool_id
from meihua.resolvers.pools import get_visible_pool
from meihua.resolvers.versioning import update_versioned
from meihua.subscriptions.events import transaction

POOL_CLAIM = "pool:claim"
POOL_ASSIGN = "pool:assign"
POOL_RELEASE = "pool:release"


async def _taken_just_now(viewer: Viewer, ids: list[int]) -> None:
    """CONFLICT when a customer the caller cannot see left one of their pools to a
    new owner: to those who lost the race for it, it was taken, not unknown.

    Only a customer whose latest movement is that claim or assignment counts,
    so ids that were never in the caller's pools still cannot be probed.
    """
    pools = await viewer.pool_ids()
    latest: dict[int, PoolMovement] = {}
    movements = PoolMovement.filter(customer_id__in=ids).order_by("-created_at", "-id")
    for movement in await movements:
        latest.setdefault(movement.customer_id, movement)
    taken = (PoolMovementKind.CLAIMED, PoolMovementKind.ASSIGNED)
    if any(m.kind in taken and m.pool_id in pools for m in latest.values()):
        raise Conflict("Someone took this customer from the pool first.")


async def _lock_user(pk: int) -> None:
    """Serialize everything that hands customers to this user (see the module doc)."""
    await User.filter(id=pk).select_for_update()


def _clean_reason(reason: str | None) -> str | None:
    reason = (reason or "").strip() or None
    if reason is not None and len(reason) > MAX_REASON:
        raise BadUserInput(f"`reason` is longer than {MAX_REASON} characters.", field="reason")
    return reason


# --- release -------------------------------------------------------------------


async def release_customers(
    viewer: Viewer, ids: list[int], reason: str | None, pool_id: int | None = None
) -> list[Customer]:
    """Put owned customers into a pool, all or none.

    By default each goes back to the pool it belongs to; `pool_id` sends them
    all to another pool the caller is a member of (any pool with `pool:manage`).
    """
    reason = _clean_reason(reason)
    async with transaction():
        customers = await visible_batch(viewer, ids)
        viewer.require(POOL_RELEASE)
        target = await get_visible_pool(viewer, pool_id) if pool_id is not None else None
        for customer in customers:
            if customer.owner_id is None:
                raise Conflict(f"{customer.name} is already in the public pool.")
            await require_ownership(viewer, customer)
        pools: dict[int, Pool] = {}
        released = []
        for customer in customers:
            destination = target or await _home_of(customer, pools)
            released.append(await _release(viewer, customer, destination, reason))
        return released


async def _home_of(customer: Customer, pools: dict[int, Pool]) -> Pool:
    """The pool the customer belongs to (its owner's home pool if it has none yet)."""
    pk = customer.pool_id or await home_pool_id(await User.get(id=customer.owner_id))
    if pk not in pools:
        pools[pk] = await Pool.get(id=pk)
    return pools[pk]


async def _release(viewer: Viewer, customer: Customer, pool: Pool, reason: str | None) -> Customer:
    previous, previous_pool = customer.owner_id, customer.pool_id
    # Nobody owns it now, so nobody shares it either: the next owner builds their team.
    team = await CustomerTeamMember.filter(customer_id=customer.id).order_by("id")
    await CustomerTeamMember.filter(customer_id=customer.id).delete()
    customer = await update_versioned(
        customer,
        None,
        owner_id=None,
        previous_owner_id=previous,
        pool_id=pool.id,
        pool_entered_at=datetime.now(UTC),
        taken_at=None,
        recycle_warned_at=None,
    )
    changes = {"owner_id": [previous, None]}
    if previous_pool != pool.id:
        changes["pool_id"] = [previous_pool, pool.id]
    if team:
        seats = [{"userId": m.user_id, "access": plain(m.access)} for m in team]
        changes["team"] = [seats, []]
    await log_operation(
        viewer.id,
        "RELEASE",
        RecordType.CUSTOMER,
        customer.id,
        customer_id=customer.id,
        changes=changes,
        summary=f"Released to {pool.name}" + (f": {reason}" if reason else ""),
    )
    await record_movement(
        PoolMovementKind.RELEASED,
        customer,
        actor_id=viewer.id,
        previous_owner_id=previous,
        new_owner_id=None,
        pool_id=pool.id,
        reason=reason,
    )
    return customer


# --- claim ---------------------------------------------------------------------


@metrics.counts_claims
async def claim_customer(viewer: Viewer, pk: int, timezone: str) -> Customer:
    """Take a customer from one of the caller's pools, within the pool's rules.

    `timezone` is the company's: the daily claim cap counts from its midnight.
    """
    async with transaction():
        await _lock_user(viewer.id)
        try:
            customer = await get_visible_customer(viewer, pk)
        except NotFound:
            await _taken_just_now(viewer, [pk])
            raise
        viewer.require(POOL_CLAIM)
        if customer.owner_id is not None:
            raise Conflict(f"{customer.name} is not in the public pool; it has an owner.")
        if not viewer.is_super_admin and customer.pool_id not in await viewer.pool_ids():
            raise Forbidden("Only members of the customer's pool can claim it.")
        pool = await Pool.get(id=customer.pool_id)
        now = datetime.now(UTC)
        await _refuse_cooldown(viewer, customer, pool, now, ZoneInfo(timezone))
        await _refuse_over_cap(viewer.user, pool, incoming=1)
        await _refuse_over_daily_cap(viewer, pool, now, ZoneInfo(timezone))
        if not await _take(customer, pool.id, viewer.id, now):
            raise Conflict(f"Someone took {customer.name} from the pool first.")
        await customer.refresh_from_db()
        await _record_taking(
            viewer,
            customer,
            pool,
            viewer.id,
            now,
            PoolMovementKind.CLAIMED,
            "CLAIM",
            f"Claimed from {pool.name}",
        )
        return customer


async def _record_taking(
    viewer: Viewer,
    customer: Customer,
    pool: Pool,
    owner_id: int,
    now: datetime,
    kind: PoolMovementKind,
    action: str,
    summary: str,
) -> None:
    """The log entry and the movement (with its live event) of a customer leaving the pool."""
    await log_operation(
        viewer.id,
        action,
        RecordType.CUSTOMER,
        customer.id,
        customer_id=customer.id,
        changes={"owner_id": [None, owner_id]},
        summary=summary,
    )
    await record_movement(
        kind,
        customer,
        actor_id=viewer.id,
        previous_owner_id=None,
        new_owner_id=owner_id,
        pool_id=pool.id,
        at=now,
    )


async def _take(customer: Customer, pool_id: int, owner_id: int, now: datetime) -> bool:
    """The one conditional UPDATE that makes `owner_id` the owner, if still nobody is."""
    taken = await Customer.filter(id=customer.id, owner_id=None, pool_id=pool_id).update(
        owner_id=owner_id,
        taken_at=now,
        pool_entered_at=None,
        recycle_warned_at=None,
        version=F("version") + 1,
        updated_at=now,
    )
    return taken == 1


async def _refuse_cooldown(
    viewer: Viewer, customer: Customer, pool: Pool, now: datetime, zone: ZoneInfo
) -> None:
    """A rep who gave the customer up (or lost it to recycling) waits before taking it back."""
    if pool.reclaim_cooldown_days is None:
        return
    lost = (
        await PoolMovement.filter(
            customer_id=customer.id,
            previous_owner_id=viewer.id,
            kind__in=(PoolMovementKind.RELEASED, PoolMovementKind.RECYCLED),
        )
        .order_by("-created_at", "-id")
        .first()
    )
    if lost is None:
        return
    until = lost.created_at + timedelta(days=pool.reclaim_cooldown_days)
    if now < until:
        local = until.astimezone(zone).strftime("%Y-%m-%d %H:%M")
        raise Forbidden(
            f"You owned {customer.name} until recently; you can claim it back from {local}.",
            until=until.astimezone(UTC).isoformat(),
        )


async def _refuse_over_cap(owner: User, pool: Pool, incoming: int) -> None:
    """LIMIT_EXCEEDED when `owner` would own more not-dealt customers of the pool than it allows."""
    if pool.max_owned is None:
        return
    owned = await Customer.filter(
        owner_id=owner.id, pool_id=pool.id, deal_status=DealStatus.NOT_DEALT
    ).count()
    if owned + incoming > pool.max_owned:
        raise LimitExceeded(
            f"{owner.name} already owns {owned} not-dealt customers of {pool.name}; "
            f"the pool allows {pool.max_owned}.",
            limit=pool.max_owned,
        )


async def _refuse_over_daily_cap(viewer: Viewer, pool: Pool, now: datetime, zone: ZoneInfo) -> None:
    if pool.max_claims_per_day is None:
        return
    midnight = datetime.combine(now.astimezone(zone).date(), time(), zone).astimezone(UTC)
    claims = await PoolMovement.filter(
        new_owner_id=viewer.id,
        kind=PoolMovementKind.CLAIMED,
        pool_id=pool.id,
        created_at__gte=midnight,
    ).count()
    if claims >= pool.max_claims_per_day:
        raise LimitExceeded(
            f"You claimed {claims} customers from {pool.name} today; "
            f"the pool allows {pool.max_claims_per_day} a day.",
            limit=pool.max_claims_per_day,
        )


# --- assign --------------------------------------------------------------------


async def assign_customers(viewer: Viewer, ids: list[int], owner_id: int) -> list[Customer]:
    """Hand pool customers to a user, all or none, within each pool's cap on owned customers."""
    async with transaction():
        viewer.require(POOL_ASSIGN)
        owner = await active_user(owner_id)
        await _lock_user(owner.id)
        try:
            customers = await visible_batch(viewer, ids)
        except NotFound:
            await _taken_just_now(viewer, ids)
            raise
        for customer in customers:
            if customer.owner_id is not None:
                raise Conflict(f"{customer.name} is not in the public pool; it has an owner.")
        pools = {pool.id: pool for pool in await Pool.filter(id__in={c.pool_id for c in customers})}
        incoming = Counter(c.pool_id for c in customers if c.deal_status == DealStatus.NOT_DEALT)
        for pool_id, count in sorted(incoming.items()):
            await _refuse_over_cap(owner, pools[pool_id], incoming=count)
        now = datetime.now(UTC)
        for customer in customers:
            if not await _take(customer, customer.pool_id, owner.id, now):
                raise Conflict(f"Someone took {customer.name} from the pool a moment ago.")
            pool = pools[customer.pool_id]
            await _record_taking(
                viewer,
                customer,
                pool,
                owner.id,
                now,
                PoolMovementKind.ASSIGNED,
                "ASSIGN",
                f"Assigned to {owner.name} from {pool.name}",
            )
        rows = {row.id: row for row in await Customer.filter(id__in=[c.id for c in customers])}
        return [rows[customer.id] for customer in customers]

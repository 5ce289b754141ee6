"""Merging customers (合并客户): fold duplicates into the customer that stays.

Everything that hangs off a merged customer moves to the kept one in the same
transaction: contacts, opportunities, contracts, follow-ups, tasks, team,
pool history, operation-log entries (its timeline) and the leads converted
into it. Then the merged customer is deleted.

The kept customer keeps its name, owner and pool. Its empty fields are filled
from the merged customers, in the order given (`fill`); tags are united,
dealt wins over not dealt, locked over unlocked, and the later last follow-up
stands. Whoever owned a merged customer goes on the kept customer's team
with WRITE access, since their opportunities and contracts are now there
(unless the kept customer sits in a pool, which has no team).

Merging needs `customer:update` with write access to the kept customer, and
`customer:delete` with ownership of each merged one, as it deletes them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tortoise.expressions import Q

from meihua.models import (
    Contact,
    Contract,
    Customer,
    CustomerTeamMember,
    DealStatus,
    FollowUp,
    Lead,
    OperationLog,
    Opportunity,
    PoolMovement,
    RecordType,
    Task,
    TeamAccess,
)
from meihua.resolvers.access import Viewer
from meihua.resolvers.customers import (
    CUSTOMER_DELETE,
    MAX_TAGS,
    require_ownership,
    visible_batch,
)
from meihua.resolvers.errors import BadUserInput, Conflict
from meihua.resolvers.oplog import diff, log_operation
from meihua.resolvers.permissions import CUSTOMER_UPDATE
from meihua.resolvers.versioning import update_versioned
from meihua.subscriptions.events import record_event, transaction

MAX_MERGED = 20  # customers folded in by one call
# Filled on the kept customer only while it has none of its own.
FILLED = (
    "phone",
    "phone_key",
    "industry",
    "region",
    "source",
    "level",
    "address",
    "remarks",
    "next_contact_at",
)


async def merge_customers(
    viewer: Viewer,
    keep_id: int,
    merge_ids: list[int],
    expected_version: int | None = None,
    merge_versions: list[int] | None = None,
) -> Customer:
    """Fold `merge_ids` into `keep_id`, all or nothing; the kept customer as stored."""
    merging = list(dict.fromkeys(merge_ids))
    if not merging:
        raise BadUserInput("Name at least one customer to merge.", field="mergeIds")
    if keep_id in merging:
        raise BadUserInput("A customer cannot be merged into itself.", field="mergeIds")
    if len(merging) > MAX_MERGED:
        raise BadUserInput(f"At most {MAX_MERGED} customers at a time.", field="mergeIds")
    if merge_versions is not None and len(merge_versions) != len(merge_ids):
        raise BadUserInput("Give one version per merged customer.", field="mergeVersions")
    async with transaction():
        keep, *merged = await visible_batch(viewer, [keep_id, *merging])
        viewer.require(CUSTOMER_UPDATE)
        viewer.require(CUSTOMER_DELETE)
        await viewer.require_write(keep.owner_id, keep.id)
        for customer in merged:
            await require_ownership(viewer, customer)
        if expected_version is not None and expected_version != keep.version:
            raise _stale(keep)
        expected = dict(zip(merge_ids, merge_versions or [], strict=False))
        for customer in merged:
            if customer.id in expected and expected[customer.id] != customer.version:
                raise _stale(customer)
        ids = [customer.id for customer in merged]
        moved = await _move_records(keep, ids)
        await _merge_teams(viewer, keep, merged)
        changes = fill(keep, merged)
        changed = diff(keep, {k: v for k, v in changes.items() if k != "phone_key"})
        # The merged rows go first: the kept one may take over a phone they hold.
        await Customer.filter(id__in=ids).delete()
        keep = await update_versioned(keep, expected_version, **changes)
        names = ", ".join(f"{c.name} (#{c.id})" for c in merged)
        changed["merged"] = [[{"id": c.id, "name": c.name} for c in merged], None]
        await log_operation(
            viewer.id,
            "MERGE",
            RecordType.CUSTOMER,
            keep.id,
            customer_id=keep.id,
            changes=changed | {"moved": [None, moved]},
            summary=f"Merged {names} into {keep.name} (#{keep.id})",
        )
        await _record_events(viewer, keep, merged, sorted(set(changed) - {"merged"}))
    return keep


def _stale(customer: Customer) -> Conflict:
    return Conflict(
        f"Customer {customer.name} was changed by someone else; reload it and try again.",
        currentVersion=customer.version,
    )


async def _move_records(keep: Customer, ids: list[int]) -> dict[str, int]:
    """Point everything under the merged customers at the kept one; how many of each moved."""
    to = keep.id
    about = {"related_type": RecordType.CUSTOMER, "related_id__in": ids}
    target = {"target_type": RecordType.CUSTOMER, "target_id__in": ids}
    moved = {
        "contacts": await Contact.filter(customer_id__in=ids).update(customer_id=to),
        "opportunities": await Opportunity.filter(customer_id__in=ids).update(customer_id=to),
        "contracts": await Contract.filter(customer_id__in=ids).update(customer_id=to),
        "follow_ups": await FollowUp.filter(customer_id__in=ids).update(customer_id=to),
        "tasks": await Task.filter(customer_id__in=ids).update(customer_id=to),
        "pool_movements": await PoolMovement.filter(customer_id__in=ids).update(customer_id=to),
        "leads": await Lead.filter(converted_customer_id__in=ids).update(converted_customer_id=to),
    }
    # Follow-ups and tasks on the customer itself name it as their record too.
    await FollowUp.filter(**target).update(target_id=to)
    await Task.filter(**about).update(related_id=to)
    await OperationLog.filter(
        Q(customer_id__in=ids) | Q(record_type=RecordType.CUSTOMER, record_id__in=ids)
    ).update(customer_id=to)
    return moved


def _stronger(a: CustomerTeamMember, b: CustomerTeamMember) -> tuple[TeamAccess, datetime | None]:
    """The access and expiry of two memberships of one user, whichever is wider."""
    access = TeamAccess.WRITE if TeamAccess.WRITE in (a.access, b.access) else TeamAccess.READ
    if a.expires_at is None or b.expires_at is None:
        return access, None
    return access, max(a.expires_at, b.expires_at)


async def _merge_teams(viewer: Viewer, keep: Customer, merged: list[Customer]) -> None:
    """One membership per user on the kept customer, the stronger access of their seats.

    A kept customer sitting in a pool takes no team: pool customers have none.
    """
    ids = [customer.id for customer in merged]
    if keep.owner_id is None:
        await CustomerTeamMember.filter(customer_id__in=ids).delete()
        return
    seats = {m.user_id: m for m in await CustomerTeamMember.filter(customer_id=keep.id)}
    incoming = await CustomerTeamMember.filter(customer_id__in=ids).order_by("id")
    # Previous owners of merged customers come with a permanent WRITE seat.
    incoming += [
        CustomerTeamMember(user_id=c.owner_id, access=TeamAccess.WRITE, added_by_id=viewer.id)
        for c in merged
        if c.owner_id is not None
    ]
    for member in incoming:
        if member.user_id == keep.owner_id:
            continue
        seat = seats.get(member.user_id)
        if seat is None:
            seats[member.user_id] = await CustomerTeamMember.create(
                customer_id=keep.id,
                user_id=member.user_id,
                access=member.access,
                expires_at=member.expires_at,
                added_by_id=member.added_by_id,
            )
            continue
        access, expires_at = _stronger(seat, member)
        if (access, expires_at) != (seat.access, seat.expires_at):
            seat.access, seat.expires_at = access, expires_at
            await seat.save(update_fields=["access", "expires_at"])
    await CustomerTeamMember.filter(customer_id__in=ids).delete()


def fill(keep: Customer, merged: list[Customer]) -> dict[str, Any]:
    """What the kept customer takes over from the merged ones.

    An empty field takes the first merged customer's value that is set; tags
    are united (up to the limit); dealt, locked and the latest follow-up win.
    """
    changes: dict[str, Any] = {}
    for field in FILLED:
        if getattr(keep, field) in (None, ""):
            value = next((getattr(c, field) for c in merged if getattr(c, field)), None)
            if value is not None:
                changes[field] = value
    tags: dict[str, str] = {}  # the kept customer's spelling of a tag wins
    for customer in [keep, *merged]:
        for tag in customer.tags:
            tags.setdefault(tag.casefold(), tag)
    if len(tags) > len(keep.tags):
        changes["tags"] = list(tags.values())[:MAX_TAGS]
    if any(c.deal_status == DealStatus.DEALT for c in merged):
        changes["deal_status"] = DealStatus.DEALT
    if any(c.locked for c in merged):
        changes["locked"] = True
    followed = [t for c in [keep, *merged] if (t := c.last_followup_at) is not None]
    if followed:
        changes["last_followup_at"] = max(followed)
    return {k: v for k, v in changes.items() if getattr(keep, k) != v}


async def _record_events(
    viewer: Viewer, keep: Customer, merged: list[Customer], fields: list[str]
) -> None:
    """A change of the kept customer and the removal of each merged one, live after commit."""
    await record_event(
        "customer.changed",
        record_type=RecordType.CUSTOMER.value,
        record_id=keep.id,
        owner_id=keep.owner_id,
        customer_id=keep.id,
        actor_id=viewer.id,
        payload={"fields": fields, "version": keep.version, "merged": [c.id for c in merged]},
    )
    for customer in merged:
        await record_event(
            "customer.deleted",
            record_type=RecordType.CUSTOMER.value,
            record_id=customer.id,
            owner_id=customer.owner_id,
            customer_id=customer.id,
            actor_id=viewer.id,
            payload={"name": customer.name, "merged_into": keep.id},
        )

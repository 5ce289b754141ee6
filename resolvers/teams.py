"""Customer teams (团队成员): colleagues who share a customer, READ or WRITE.

A member sees the customer and everything under it through the access layer;
with WRITE they may also change it. A membership can end at a given time,
after which it grants nothing (the access layer compares `expires_at` with
now, so nothing has to run when it expires).

The team is managed by the owner, or by someone who has the owner in their
data scope and holds `customer:update`; team members themselves cannot share
a customer further, but anyone may leave a team they are on.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tortoise.exceptions import IntegrityError

from meihua.models import Customer, CustomerTeamMember, RecordType, TeamAccess, User
from meihua.resolvers.access import Viewer
from meihua.resolvers.customers import get_visible_customer
from meihua.resolvers.errors import BadUserInput, Duplicate, Forbidden, NotFound
from meihua.resolvers.oplog import diff, log_operation, plain
from meihua.resolvers.org import UNSET
from meihua.resolvers.permissions import CUSTOMER_UPDATE
from meihua.subscriptions.events import record_event, transaction

_SUMMARIES = {
    "TEAM_ADD": "Added to the team",
    "TEAM_UPDATE": "Team access changed",
    "TEAM_REMOVE": "Removed from the team",
}


async def _require_team_manager(viewer: Viewer, customer: Customer) -> None:
    if viewer.id == customer.owner_id:
        return
    if await viewer.in_scope(customer.owner_id) and viewer.can(CUSTOMER_UPDATE):
        return
    raise Forbidden("Only the owner or a manager in scope with `customer:update` manages the team.")


def _future(expires_at: datetime | None) -> datetime | None:
    """An expiry in the future (naive times are taken as UTC)."""
    if expires_at is None:
        return None
    if expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=UTC)
    if expires_at <= datetime.now(UTC):
        raise BadUserInput("The membership must expire in the future.", field="expiresAt")
    return expires_at.astimezone(UTC)


async def _member(customer: Customer, user_id: int) -> CustomerTeamMember:
    member = await CustomerTeamMember.get_or_none(customer_id=customer.id, user_id=user_id)
    if member is None:
        raise NotFound("This user is not on the customer's team.")
    return member


def seat_entry(member: CustomerTeamMember) -> dict[str, Any]:
    """A membership as the operation log keeps it."""
    return {
        "userId": member.user_id,
        "access": plain(member.access),
        "expiresAt": plain(member.expires_at),
    }


async def _record(
    viewer: Viewer,
    action: str,
    customer: Customer,
    user: User,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    """Log the team change and tell the member (they gain or lose access)."""
    await log_operation(
        viewer.id,
        action,
        RecordType.CUSTOMER,
        customer.id,
        customer_id=customer.id,
        changes={"team": [before, after]},
        summary=f"{_SUMMARIES[action]}: {user.name}",
    )
    await record_event(
        "customer.team_changed",
        record_type=RecordType.CUSTOMER.value,
        record_id=customer.id,
        owner_id=customer.owner_id,
        customer_id=customer.id,
        recipient_id=user.id,
        actor_id=viewer.id,
        payload={"change": action, "member": after or before},
    )


async def add_member(
    viewer: Viewer,
    customer_id: int,
    user_id: int,
    access: TeamAccess,
    expires_at: datetime | None,
) -> Customer:
    try:
        async with transaction():
            customer = await get_visible_customer(viewer, customer_id)
            await _require_team_manager(viewer, customer)
            user = await User.get_or_none(id=user_id)
            if user is None or not user.is_active:
                raise BadUserInput("No such active user.", field="userId")
            if user.id == customer.owner_id:
                raise BadUserInput("The owner already has full access.", field="userId")
            expires_at = _future(expires_at)
            if await CustomerTeamMember.exists(customer_id=customer.id, user_id=user.id):
                raise _already_member()
            member = await CustomerTeamMember.create(
                customer_id=customer.id,
                user_id=user.id,
                access=access,
                expires_at=expires_at,
                added_by_id=viewer.id,
            )
            await _record(viewer, "TEAM_ADD", customer, user, None, seat_entry(member))
            return customer
    except IntegrityError:
        # Added by someone else between our check and insert.
        raise _already_member() from None


def _already_member() -> Duplicate:
    return Duplicate(
        "This user is already on the customer's team; change their access instead.",
        field="userId",
    )


async def update_member(
    viewer: Viewer,
    customer_id: int,
    user_id: int,
    access: TeamAccess | None,
    expires_at: datetime | None = UNSET,
) -> Customer:
    """Change a member's access or expiry (None clears the expiry; UNSET keeps it)."""
    async with transaction():
        customer = await get_visible_customer(viewer, customer_id)
        await _require_team_manager(viewer, customer)
        member = await _member(customer, user_id)
        changes: dict[str, Any] = {}
        if access is not None:
            changes["access"] = access
        if expires_at is not UNSET:
            changes["expires_at"] = _future(expires_at)
        if diff(member, changes):
            before = seat_entry(member)
            await CustomerTeamMember.filter(id=member.id).update(**changes)
            await member.refresh_from_db()
            user = await User.get(id=user_id)
            await _record(viewer, "TEAM_UPDATE", customer, user, before, seat_entry(member))
        return customer


async def remove_member(viewer: Viewer, customer_id: int, user_id: int) -> Customer:
    async with transaction():
        customer = await get_visible_customer(viewer, customer_id)
        if user_id != viewer.id:  # leaving a team needs no one's permission
            await _require_team_manager(viewer, customer)
        member = await _member(customer, user_id)
        await member.delete()
        user = await User.get(id=user_id)
        await _record(viewer, "TEAM_REMOVE", customer, user, seat_entry(member), None)
        return customer

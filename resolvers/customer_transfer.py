"""Transfer (转移): hand customers to a new owner.

Contacts belong to their customer and have no owner of their own, so they
always move with it. Opportunities and contracts have owners: those the
previous owner held on the customer move too when asked. The previous owner
can stay on the team (READ or WRITE) or leave it.

A transfer is an ownership decision: it needs `customer:transfer` and the
customer's owner inside the caller's scope (team members cannot give a
customer away). A customer in a public pool has no owner to give it away: it
is assigned (`pool:assign`, with the pool's caps). A list moves all or
nothing, and each move is kept in the customer's pool history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from tortoise.expressions import F
from tortoise.models import Model

from meihua.models import (
    Contract,
    Customer,
    CustomerTeamMember,
    Opportunity,
    PoolMovementKind,
    RecordType,
    TeamAccess,
    User,
)
from meihua.resolvers.access import Viewer
from meihua.resolvers.customers import require_ownership, visible_batch
from meihua.resolvers.errors import BadUserInput, Conflict
from meihua.resolvers.oplog import log_operation
from meihua.resolvers.pool_history import record_movement
from meihua.resolvers.versioning import update_versioned
from meihua.subscriptions.events import record_event, transaction

CUSTOMER_TRANSFER = "customer:transfer"


class PreviousOwner(StrEnum):
    """What becomes of the previous owner."""

    KEEP_READ = "KEEP_READ"  # stays on the team and can still read
    KEEP_WRITE = "KEEP_WRITE"  # stays on the team and can still edit
    REMOVE = "REMOVE"  # loses the customer entirely


@dataclass
class TransferOptions:
    with_opportunities: bool = False
    with_contracts: bool = False
    previous_owner: PreviousOwner = PreviousOwner.REMOVE


async def transfer_customers(
    viewer: Viewer, ids: list[int], owner_id: int, options: TransferOptions
) -> list[Customer]:
    async with transaction():
        customers = await visible_batch(viewer, ids)
        viewer.require(CUSTOMER_TRANSFER)
        for customer in customers:
            if customer.owner_id is None:
                raise Conflict(f"{customer.name} is in the public pool: assign it instead.")
            await require_ownership(viewer, customer)
        new_owner = await User.get_or_none(id=owner_id)
        if new_owner is None or not new_owner.is_active:
            raise BadUserInput("No such active user.", field="ownerId")
        return [await _transfer(viewer, c, new_owner, options) for c in customers]


async def _transfer(
    viewer: Viewer, customer: Customer, new_owner: User, options: TransferOptions
) -> Customer:
    previous = customer.owner_id
    if previous == new_owner.id:
        return customer
    # A new ownership: the no-deal clock restarts and a recycle warning was the old owner's.
    customer = await update_versioned(
        customer,
        None,
        owner_id=new_owner.id,
        taken_at=datetime.now(UTC),
        recycle_warned_at=None,
    )
    # The owner needs no seat on their own team.
    await CustomerTeamMember.filter(customer_id=customer.id, user_id=new_owner.id).delete()
    await _settle_previous_owner(viewer, customer.id, previous, options.previous_owner)
    moved: dict[str, list[int]] = {"opportunityIds": [], "contractIds": []}
    if options.with_opportunities:
        moved["opportunityIds"] = await _move_owned(
            viewer, Opportunity, RecordType.OPPORTUNITY, customer.id, previous, new_owner.id
        )
    if options.with_contracts:
        moved["contractIds"] = await _move_owned(
            viewer, Contract, RecordType.CONTRACT, customer.id, previous, new_owner.id
        )
    await log_operation(
        viewer.id,
        "TRANSFER",
        RecordType.CUSTOMER,
        customer.id,
        customer_id=customer.id,
        changes={"owner_id": [previous, new_owner.id]},
        summary=f"Transferred to {new_owner.name}",
    )
    await record_movement(
        PoolMovementKind.TRANSFERRED,
        customer,
        actor_id=viewer.id,
        previous_owner_id=previous,
        new_owner_id=new_owner.id,
        pool_id=customer.pool_id,
    )
    await record_event(
        "customer.transferred",
        record_type=RecordType.CUSTOMER.value,
        record_id=customer.id,
        owner_id=new_owner.id,
        customer_id=customer.id,
        recipient_id=new_owner.id,  # "a customer was transferred to me"
        actor_id=viewer.id,
        payload={
            "fromOwnerId": previous,
            "toOwnerId": new_owner.id,
            "previousOwner": options.previous_owner.value,
            "version": customer.version,
            **moved,
        },
    )
    return customer


async def _settle_previous_owner(
    viewer: Viewer, customer_id: int, user_id: int, choice: PreviousOwner
) -> None:
    seat = CustomerTeamMember.filter(customer_id=customer_id, user_id=user_id)
    if choice is PreviousOwner.REMOVE:
        await seat.delete()
        return
    access = TeamAccess.WRITE if choice is PreviousOwner.KEEP_WRITE else TeamAccess.READ
    if not await seat.update(access=access, expires_at=None):
        await CustomerTeamMember.create(
            customer_id=customer_id, user_id=user_id, access=access, added_by_id=viewer.id
        )


async def _move_owned(
    viewer: Viewer,
    model: type[Model],
    record_type: RecordType,
    customer_id: int,
    previous: int,
    new_owner: int,
) -> list[int]:
    """Hand the previous owner's records on this customer over, logging each."""
    owned = model.filter(customer_id=customer_id, owner_id=previous)
    ids = list(await owned.order_by("id").values_list("id", flat=True))
    if not ids:
        return []
    await model.filter(id__in=ids).update(
        owner_id=new_owner, version=F("version") + 1, updated_at=datetime.now(UTC)
    )
    kind = f"{record_type.value.lower()}.transferred"
    for pk in ids:
        await log_operation(
            viewer.id,
            "TRANSFER",
            record_type,
            pk,
            customer_id=customer_id,
            changes={"owner_id": [previous, new_owner]},
            summary="Moved with its customer",
        )
        # No recipient: the customer's event already tells the new owner;
        # this one lets viewers of the record see it change hands.
        await record_event(
            kind,
            record_type=record_type.value,
            record_id=pk,
            owner_id=new_owner,
            customer_id=customer_id,
            actor_id=viewer.id,
            payload={"fromOwnerId": previous, "toOwnerId": new_owner},
        )
    return ids

"""The history of pool movements (released, claimed, assigned, recycled, transferred).

Every movement is kept on the customer, with actor, time, previous and new
owner and reason, and the four pool kinds are pushed live as pool events
(`poolEvents`). A customer assigned to someone is also a notification to them.
"""

from __future__ import annotations

from datetime import UTC, datetime

from meihua.models import Customer, PoolMovement, PoolMovementKind, RecordType, RecycleRule
from meihua.subscriptions.events import record_event

# Event kinds of the four pool movements pushed on `poolEvents`.
POOL_EVENT_KINDS = {
    PoolMovementKind.RELEASED: "pool.released",
    PoolMovementKind.CLAIMED: "pool.claimed",
    PoolMovementKind.ASSIGNED: "pool.assigned",
    PoolMovementKind.RECYCLED: "pool.recycled",
}


async def record_movement(
    kind: PoolMovementKind,
    customer: Customer,
    *,
    actor_id: int | None,
    previous_owner_id: int | None,
    new_owner_id: int | None,
    pool_id: int | None,
    reason: str | None = None,
    rule: RecycleRule | None = None,
    at: datetime | None = None,
) -> PoolMovement:
    """Keep one movement in the history and, for pool kinds, record its live event.

    Call it inside the mutation's transaction, after the customer row changed.
    """
    at = at or datetime.now(UTC)
    movement = await PoolMovement.create(
        customer_id=customer.id,
        pool_id=pool_id,
        kind=kind,
        actor_id=actor_id,
        previous_owner_id=previous_owner_id,
        new_owner_id=new_owner_id,
        reason=reason,
        rule=rule,
        created_at=at,
    )
    event_kind = POOL_EVENT_KINDS.get(kind)
    if event_kind is not None:
        notify = new_owner_id if new_owner_id not in (None, actor_id) else None
        await record_event(
            event_kind,
            record_type=RecordType.CUSTOMER,
            record_id=customer.id,
            owner_id=new_owner_id,
            customer_id=customer.id,
            recipient_id=notify,
            actor_id=actor_id,
            payload={
                "movement_id": movement.id,
                "pool_id": pool_id,
                "previous_owner_id": previous_owner_id,
                "new_owner_id": new_owner_id,
                "reason": reason,
                "rule": rule.value if rule else None,
                "name": customer.name,
            },
        )
    return movement

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
# Ids per statement when reading many back (SQLite and PostgreSQL both take at
# most about 32 000 parameters).
READ_BACK_CHUNK = 10_000


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
    await _record_pool_event(movement, customer.name)
    return movement


async def record_movements(
    kind: PoolMovementKind,
    customers: list[Customer],
    *,
    actor_id: int | None,
    previous_owner_ids: dict[int, int | None],
    new_owner_id: int | None,
    pool_id: int | None,
    reason: str | None = None,
    rule: RecycleRule | None = None,
    at: datetime | None = None,
) -> None:
    """`record_movement` for many customers at once: one INSERT, then their events.

    `previous_owner_ids` maps each customer id to its previous owner.
    """
    if not customers:
        return
    at = at or datetime.now(UTC)
    ids = [customer.id for customer in customers]
    await PoolMovement.bulk_create(
        [
            PoolMovement(
                customer_id=pk,
                pool_id=pool_id,
                kind=kind,
                actor_id=actor_id,
                previous_owner_id=previous_owner_ids.get(pk),
                new_owner_id=new_owner_id,
                reason=reason,
                rule=rule,
                created_at=at,
            )
            for pk in ids
        ]
    )
    if kind not in POOL_EVENT_KINDS:
        return
    # A bulk insert hands no ids back; the events carry them, so read them, in
    # chunks a statement's parameters can hold (a recycling pass moves many).
    movements: list[PoolMovement] = []
    for start in range(0, len(ids), READ_BACK_CHUNK):
        chunk = ids[start : start + READ_BACK_CHUNK]
        movements += await PoolMovement.filter(customer_id__in=chunk, kind=kind, created_at=at)
    names = {customer.id: customer.name for customer in customers}
    for movement in sorted(movements, key=lambda m: m.id):
        await _record_pool_event(movement, names[movement.customer_id])


async def _record_pool_event(movement: PoolMovement, name: str) -> None:
    """The live event of a pool movement (none for transfers, which have their own)."""
    event_kind = POOL_EVENT_KINDS.get(movement.kind)
    if event_kind is None:
        return
    new_owner_id, actor_id = movement.new_owner_id, movement.actor_id
    notify = new_owner_id if new_owner_id not in (None, actor_id) else None
    await record_event(
        event_kind,
        record_type=RecordType.CUSTOMER,
        record_id=movement.customer_id,
        owner_id=new_owner_id,
        customer_id=movement.customer_id,
        recipient_id=notify,
        actor_id=actor_id,
        payload={
            "movement_id": movement.id,
            "pool_id": movement.pool_id,
            "previous_owner_id": movement.previous_owner_id,
            "new_owner_id": new_owner_id,
            "reason": movement.reason,
            "rule": movement.rule.value if movement.rule else None,
            "name": name,
        },
    )

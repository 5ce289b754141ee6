"""Who works a lead: transfer (转移), the lead pool (线索池) and manual distribution (分配).

- Transfer hands owned leads to a colleague (`lead:transfer`).
- Assign is the distributor's move (`lead:distribute`): pooled leads, or
  leads in the distributor's scope, go to an active user.
- Release puts owned leads back in the pool, by their owner or a manager
  whose scope covers the owner (`lead:update`).

Every call is all or nothing: one id the caller cannot see makes it
NOT_FOUND, so a batch cannot be used to probe ids either.
"""

from __future__ import annotations

from meihua.models import Lead, RecordType
from meihua.resolvers.access import Viewer
from meihua.resolvers.errors import BadUserInput, Conflict, NotFound
from meihua.resolvers.lead_handover import hand_over
from meihua.resolvers.leads import LEAD_UPDATE, MAX_REASON, active_user, refuse_converted
from meihua.resolvers.oplog import log_operation
from meihua.resolvers.records import LEAD_DISTRIBUTE, visible
from meihua.resolvers.versioning import update_versioned
from meihua.subscriptions.events import record_event, transaction

LEAD_TRANSFER = "lead:transfer"

MAX_BATCH = 200  # leads per transfer/assign/release call


async def visible_batch(viewer: Viewer, ids: list[int]) -> list[Lead]:
    """Every lead of a batch, locked for the transaction, in the caller's order."""
    wanted = list(dict.fromkeys(ids))
    if len(wanted) > MAX_BATCH:
        raise BadUserInput(f"At most {MAX_BATCH} leads at a time.", field="ids")
    query = (await visible(viewer, RecordType.LEAD)).filter(id__in=wanted)
    # Locking in id order keeps two overlapping batches from deadlocking.
    rows = {row.id: row for row in await query.order_by("id").select_for_update()}
    if len(rows) != len(wanted):
        raise NotFound("No such lead.")
    return [rows[pk] for pk in wanted]


async def transfer_leads(viewer: Viewer, ids: list[int], owner_id: int) -> list[Lead]:
    async with transaction():
        leads = await visible_batch(viewer, ids)
        viewer.require(LEAD_TRANSFER)
        new_owner = await active_user(owner_id)
        if any(lead.owner_id is None for lead in leads):
            # Handing out pooled leads is distribution, with its own permission.
            raise Conflict("A lead in the lead pool is assigned, not transferred.")
        summary = f"Transferred to {new_owner.name}"
        return [
            await hand_over(viewer, lead, new_owner.id, "TRANSFER", "lead.transferred", summary)
            for lead in leads
        ]


async def assign_leads(viewer: Viewer, ids: list[int], owner_id: int) -> list[Lead]:
    async with transaction():
        leads = await visible_batch(viewer, ids)
        viewer.require(LEAD_DISTRIBUTE)
        new_owner = await active_user(owner_id)
        for lead in leads:
            refuse_converted(lead)
        summary = f"Assigned to {new_owner.name}"
        return [
            await hand_over(viewer, lead, new_owner.id, "ASSIGN", "lead.assigned", summary)
            for lead in leads
        ]


async def release_leads(viewer: Viewer, ids: list[int], reason: str | None) -> list[Lead]:
    """Back to the lead pool; leads already there are left as they are."""
    reason = (reason or "").strip() or None
    if reason is not None and len(reason) > MAX_REASON:
        raise BadUserInput(f"`reason` is longer than {MAX_REASON} characters.", field="reason")
    async with transaction():
        leads = await visible_batch(viewer, ids)
        viewer.require(LEAD_UPDATE)
        for lead in leads:
            refuse_converted(lead)
        released = []
        for lead in leads:
            previous = lead.owner_id
            if previous is not None:
                lead = await update_versioned(lead, None, owner_id=None)
                await log_operation(
                    viewer.id,
                    "RELEASE",
                    RecordType.LEAD,
                    lead.id,
                    changes={"owner_id": [previous, None]},
                    summary="Released to the lead pool" + (f": {reason}" if reason else ""),
                )
                await record_event(
                    "lead.released",
                    record_type=RecordType.LEAD.value,
                    record_id=lead.id,
                    actor_id=viewer.id,
                    payload={"fromOwnerId": previous, "reason": reason, "version": lead.version},
                )
            released.append(lead)
        return released

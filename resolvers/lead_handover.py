"""Handing a lead to a new owner: the one way transfer, assignment and the
distribution rules change who works a lead, so each is logged and announced alike."""

from __future__ import annotations

from meihua.models import Lead, RecordType
from meihua.resolvers.access import Viewer
from meihua.resolvers.oplog import log_operation
from meihua.resolvers.versioning import update_versioned
from meihua.subscriptions.events import record_event


async def hand_over(
    viewer: Viewer, lead: Lead, new_owner: int, action: str, kind: str, summary: str
) -> Lead:
    """A new owner for one lead, logged and announced to the recipient."""
    previous = lead.owner_id
    if previous == new_owner:
        return lead
    lead = await update_versioned(lead, None, owner_id=new_owner)
    await log_operation(
        viewer.id,
        action,
        RecordType.LEAD,
        lead.id,
        changes={"owner_id": [previous, new_owner]},
        summary=summary,
    )
    await record_event(
        kind,
        record_type=RecordType.LEAD.value,
        record_id=lead.id,
        owner_id=new_owner,
        recipient_id=new_owner,  # "a lead was handed to me"
        actor_id=viewer.id,
        payload={"fromOwnerId": previous, "toOwnerId": new_owner, "version": lead.version},
    )
    return lead

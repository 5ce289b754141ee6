"""Which events each subscription wants, and may show, at delivery time.

Each function here is an `Accept` for the hub: it gets the subscriber's
`Sight`, the event and the batch it came in (where its record sits now), and
answers whether to deliver it.
"""

from __future__ import annotations

from meihua.models import Event
from meihua.resolvers.sight import Sight
from meihua.subscriptions.hub import Accept, Batch, may_see
from meihua.subscriptions.scope import LEFT_SCOPE

POOL_KINDS = {
    "pool.released": "RELEASED",
    "pool.claimed": "CLAIMED",
    "pool.assigned": "ASSIGNED",
    "pool.recycled": "RECYCLED",
}
STAGE_CHANGED = "opportunity.stage_changed"

# Event kind → NotificationKind, for events addressed to someone.
NOTIFICATION_KINDS = {
    "task.assigned": "TASK_ASSIGNED",
    "task.completed": "TASK_COMPLETED",
    "approval.requested": "APPROVAL_REQUESTED",
    "approval.decided": "APPROVAL_DECIDED",
    "pool.assigned": "CUSTOMER_ASSIGNED",
    "customer.transferred": "CUSTOMER_TRANSFERRED",
    "customer.recycle_warning": "RECYCLE_WARNING",
    "lead.assigned": "LEAD_ASSIGNED",
    "customer.team_changed": "ADDED_TO_TEAM",
    "opportunity.transferred": "OPPORTUNITY_TRANSFERRED",
    "contract.transferred": "CONTRACT_TRANSFERRED",
    LEFT_SCOPE: "LEFT_SCOPE",
}
# Addressed by the system to someone it chose to act on the record: an
# approver outside the owner's scope, a task's assignee or creator.
ADDRESSED_ANYWAY = {"approval.requested", "task.assigned", "task.completed"}

NODE_TYPES = {
    "CUSTOMER": "Customer",
    "CONTACT": "Contact",
    "LEAD": "Lead",
    "OPPORTUNITY": "Opportunity",
    "CONTRACT": "Contract",
    "TASK": "Task",
}
RECORD_TYPES = {name: record_type for record_type, name in NODE_TYPES.items()}


def pool_event(sight: Sight, event: Event, batch: Batch) -> bool:
    """Pool movements of customers the subscriber sees, or of the pools they belong to.

    A member watching their pool sees a customer leave it even when the new
    owner is outside their scope: that is how the pool board stays right.
    """
    if event.kind not in POOL_KINDS:
        return False
    return event.payload.get("pool_id") in sight.pool_ids or may_see(sight, event, batch)


def stage_change(sight: Sight, event: Event, batch: Batch) -> bool:
    return event.kind == STAGE_CHANGED and may_see(sight, event, batch)


def changes_of(record_type: str, pk: int) -> Accept:
    def accept(sight: Sight, event: Event, batch: Batch) -> bool:
        return (
            event.record_type == record_type
            and event.record_id == pk
            and may_see(sight, event, batch)
        )

    return accept


def notification(sight: Sight, event: Event, batch: Batch) -> bool:
    if event.recipient_id != sight.user_id or event.kind not in NOTIFICATION_KINDS:
        return False
    if event.kind == "customer.team_changed" and event.payload.get("change") != "TEAM_ADD":
        return False
    return event.kind in ADDRESSED_ANYWAY or may_see(sight, event, batch)


def notification_title(event: Event) -> str:
    """One line a notification list can show."""
    payload = event.payload
    name = payload.get("name") or payload.get("title") or payload.get("number") or ""
    titles = {
        "task.assigned": "New task",
        "task.completed": "Task completed",
        "approval.requested": "Contract waiting for your approval",
        "approval.decided": "Approval decided",
        "pool.assigned": "Customer assigned to you",
        "customer.transferred": "Customer transferred to you",
        "customer.recycle_warning": "Customer will go back to the pool",
        "lead.assigned": "Lead assigned to you",
        "customer.team_changed": "Added to a customer team",
        "opportunity.transferred": "Opportunity transferred to you",
        "contract.transferred": "Contract transferred to you",
        LEFT_SCOPE: "No longer visible to you",
    }
    title = titles.get(event.kind, event.kind)
    return f"{title}: {name}" if name else title

"""What a webhook delivery says about its event: the one place its body is made.

A hook acts as the admin who owns it, so the record's data is read through
the access layer as that owner: a record the owner may not see (or one that
is gone by the time the delivery is made) goes out with `data: null`, the
event itself still announced. Events the owner may not see at all never get
a delivery (the worker asks the hub's visibility rule first).

Field names and ids are the API's: camelCase names, Relay global ids, money
as strings. Hiding fields the owner may not read is done here, in
`record_data`, for every delivery.
"""

from __future__ import annotations

from typing import Any

from tortoise.models import Model

from meihua.models import Event, RecordType
from meihua.resolvers.access import Viewer
from meihua.resolvers.errors import NotFound
from meihua.resolvers.field_access import visible_fields
from meihua.resolvers.oplog import plain
from meihua.resolvers.records import get_visible
from meihua.resolvers.tasks import get_visible_task
from meihua.schema.relay import to_global_id
from meihua.subscriptions.delivery import NODE_TYPES

# Per record type: API field name -> the model's attribute, or (attribute, node type) for ids.
FIELDS: dict[str, dict[str, str | tuple[str, str]]] = {
    "CUSTOMER": {
        "name": "name",
        "phone": "phone",
        "industry": "industry",
        "region": "region",
        "source": "source",
        "level": "level",
        "address": "address",
        "remarks": "remarks",
        "tags": "tags",
        "dealStatus": "deal_status",
        "locked": "locked",
        "lastFollowUpAt": "last_followup_at",
        "nextContactAt": "next_contact_at",
        "ownerId": ("owner_id", "User"),
    },
    "CONTACT": {
        "name": "name",
        "title": "title",
        "phone": "phone",
        "mobile": "mobile",
        "email": "email",
        "isPrimary": "is_primary",
        "decisionRole": "decision_role",
        "remarks": "remarks",
        "customerId": ("customer_id", "Customer"),
    },
    "LEAD": {
        "companyName": "company_name",
        "contactName": "contact_name",
        "phone": "phone",
        "email": "email",
        "source": "source",
        "industry": "industry",
        "region": "region",
        "status": "status",
        "remarks": "remarks",
        "ownerId": ("owner_id", "User"),
    },
    "OPPORTUNITY": {
        "name": "name",
        "amount": "amount",
        "status": "status",
        "lostReason": "lost_reason",
        "expectedCloseDate": "expected_close_date",
        "closedAt": "closed_at",
        "remarks": "remarks",
        "stageId": ("stage_id", "OpportunityStage"),
        "ownerId": ("owner_id", "User"),
        "customerId": ("customer_id", "Customer"),
    },
    "CONTRACT": {
        "number": "number",
        "title": "title",
        "status": "status",
        "signedOn": "signed_on",
        "startsOn": "starts_on",
        "endsOn": "ends_on",
        "total": "total",
        "remarks": "remarks",
        "ownerId": ("owner_id", "User"),
        "customerId": ("customer_id", "Customer"),
    },
    "TASK": {
        "title": "title",
        "description": "description",
        "dueAt": "due_at",
        "priority": "priority",
        "status": "status",
        "completedAt": "completed_at",
        "assigneeId": ("assignee_id", "User"),
        "customerId": ("customer_id", "Customer"),
    },
}
# Every record carries these too.
COMMON = {"version": "version", "createdAt": "created_at", "updatedAt": "updated_at"}


def _global_id(type_name: str, pk: int | None) -> str | None:
    return None if pk is None else str(to_global_id(type_name, pk))


async def visible_record(owner: Viewer, event: Event) -> Model | None:
    """The event's record as it is now, if the owner may see it."""
    try:
        if event.record_type == "TASK":
            return await get_visible_task(owner, event.record_id)
        return await get_visible(owner, RecordType(event.record_type), event.record_id)
    except NotFound:
        return None


async def record_data(owner: Viewer, record_type: str, record: Model) -> dict[str, Any]:
    """The record's fields as the owner may read them: hidden ones masked."""
    data: dict[str, Any] = {}
    for name, source in {**FIELDS[record_type], **COMMON}.items():
        if isinstance(source, tuple):
            attribute, type_name = source
            data[name] = _global_id(type_name, getattr(record, attribute))
        else:
            data[name] = plain(getattr(record, source))
    if record_type in RecordType.__members__:  # tasks have no field permissions
        data = await visible_fields(owner, record_type, record, data)
    return data


async def webhook_payload(owner: Viewer, event: Event) -> dict[str, Any]:
    """The JSON body of a delivery of `event` to a hook owned by `owner`."""
    node_type = NODE_TYPES.get(event.record_type)
    data = None
    if node_type is not None:
        record = await visible_record(owner, event)
        if record is not None:
            data = await record_data(owner, event.record_type, record)
    return {
        "event": event.kind,
        "cursor": str(event.id),
        "occurredAt": plain(event.created_at),
        "actorId": _global_id("User", event.actor_id),
        "record": {
            "type": node_type,
            "id": _global_id(node_type, event.record_id) if node_type else None,
            "data": data,
        },
    }

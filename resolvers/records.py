"""Any business record by type and id, through the access layer.

Follow-ups, tasks, timelines and the operation log attach to leads,
customers, contacts, opportunities and contracts alike; this is the one place
that knows how each kind is scoped and which customer sits above it.
"""

from __future__ import annotations

from tortoise.expressions import Q
from tortoise.models import Model
from tortoise.queryset import QuerySet

from meihua.models import Contact, Contract, Customer, Lead, Opportunity, RecordType
from meihua.resolvers.access import Viewer
from meihua.resolvers.errors import NotFound

MODELS: dict[RecordType, type[Model]] = {
    RecordType.LEAD: Lead,
    RecordType.CUSTOMER: Customer,
    RecordType.CONTACT: Contact,
    RecordType.OPPORTUNITY: Opportunity,
    RecordType.CONTRACT: Contract,
}

LEAD_DISTRIBUTE = "lead:distribute"


async def lead_filter(viewer: Viewer) -> Q:
    """Leads with an owner in scope; pooled leads (no owner) for those who distribute them."""
    if viewer.sees_everything:
        return Q()
    visible = await viewer.owner_filter()
    if viewer.can(LEAD_DISTRIBUTE):
        visible |= Q(owner_id=None)
    return visible


async def visible(viewer: Viewer, record_type: RecordType) -> QuerySet:
    """All records of one kind the viewer may see."""
    model = MODELS[record_type]
    if record_type is RecordType.LEAD:
        where = await lead_filter(viewer)
    elif record_type is RecordType.CUSTOMER:
        where = await viewer.customer_filter()
    elif record_type is RecordType.CONTACT:
        where = await viewer.customer_child_filter()
    else:
        where = await viewer.owned_record_filter()
    return model.filter(where)


async def get_visible(viewer: Viewer, record_type: RecordType, pk: int) -> Model:
    """The record, or NOT_FOUND when it does not exist or is outside the viewer's sight."""
    record = await (await visible(viewer, record_type)).get_or_none(id=pk)
    if record is None:
        raise NotFound(f"No such {record_type.value.lower()}.")
    return record


def customer_id_of(record: Model) -> int | None:
    """The customer a record sits under (itself for a customer; none for a lead)."""
    if isinstance(record, Customer):
        return record.id
    return getattr(record, "customer_id", None)


def owner_id_of(record: Model) -> int | None:
    """Whose record it is for write checks: its own owner, else its customer's."""
    return getattr(record, "owner_id", None)


async def require_write(viewer: Viewer, record: Model) -> None:
    """FORBIDDEN unless the viewer may change this visible record (scope or WRITE team)."""
    owner_id = owner_id_of(record)
    if isinstance(record, Contact):
        owner_id = (await Customer.get(id=record.customer_id)).owner_id
    await viewer.require_write(owner_id, customer_id_of(record))

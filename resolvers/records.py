"""Any business record by type and id, through the access layer.

Follow-ups, tasks, timelines and the operation log attach to leads,
customers, contacts, opportunities and contracts alike; this is the one place
that knows how each kind is scoped and which customer sits above it.
"""

from __future__ import annotations

from tortoise.expressions import Q, Subquery
from tortoise.models import Model
from tortoise.queryset import QuerySet

from meihua.models import Contact, Contract, Customer, Lead, Opportunity, RecordType
from meihua.resolvers.access import Viewer
from meihua.resolvers.approvers import awaiting_decision_of
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


async def contract_filter(viewer: Viewer) -> Q:
    """Contracts in the caller's scope, plus those waiting for the caller's decision.

    Approvers (a given user, the owner's manager, a role's holders) often sit
    outside the owner's data scope; they still have to read what they decide.
    The widening is kept here, for contracts only, rather than in the access
    layer every other record goes through.
    """
    in_scope = await viewer.owned_record_filter()
    if viewer.sees_everything:
        return in_scope
    awaiting = await awaiting_decision_of(viewer)
    return in_scope if awaiting is None else in_scope | awaiting


async def visible(viewer: Viewer, record_type: RecordType) -> QuerySet:
    """All records of one kind the viewer may see."""
    model = MODELS[record_type]
    if record_type is RecordType.LEAD:
        where = await lead_filter(viewer)
    elif record_type is RecordType.CUSTOMER:
        where = await viewer.customer_filter()
    elif record_type is RecordType.CONTACT:
        where = await viewer.customer_child_filter()
    elif record_type is RecordType.CONTRACT:
        where = await contract_filter(viewer)
    else:
        where = await viewer.owned_record_filter()
    return model.filter(where)


async def about_visible(viewer: Viewer, type_field: str, id_field: str) -> Q:
    """Rows pointing at a record (follow-ups, tasks, log entries) whose record the viewer sees.

    Deliberately no shortcut for those who see everything: a row whose record
    no longer exists does not match.
    """
    clauses = []
    for kind in RecordType:
        ids = Subquery((await visible(viewer, kind)).values("id"))
        clauses.append(Q(**{type_field: kind, f"{id_field}__in": ids}))
    return Q(*clauses, join_type=Q.OR)


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

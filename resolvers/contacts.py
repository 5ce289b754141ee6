"""Contacts (联系人) and the decision circle (梅花分配理论).

A contact has no owner of its own: it is visible with its customer and may be
changed by whoever may change the customer (owner in scope, or a WRITE team
member) and holds the `contact:*` permission. A customer has at most one
primary contact; naming a new one demotes the old one in the same
transaction. Log entries carry the customer, so they show in its timeline.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Any

from tortoise.expressions import F, Q
from tortoise.queryset import QuerySet

from meihua.models import Contact, Contract, Customer, DecisionRole, FollowUp, RecordType, Task
from meihua.resolvers.access import Viewer
from meihua.resolvers.errors import BadUserInput, Conflict
from meihua.resolvers.field_access import check_filterable, check_writable, searchable
from meihua.resolvers.oplog import diff, log_operation, plain
from meihua.resolvers.org import UNSET, clean_name
from meihua.resolvers.records import get_visible, visible
from meihua.resolvers.versioning import update_versioned
from meihua.subscriptions.events import record_event, transaction

CONTACT_CREATE = "contact:create"
CONTACT_UPDATE = "contact:update"
CONTACT_DELETE = "contact:delete"

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_LIMITS = {"title": 100, "phone": 40, "mobile": 40, "email": 200, "remarks": 10_000}


# --- listing -----------------------------------------------------------------


@dataclass
class ContactFilter:
    customer_id: int | None = None
    decision_role: DecisionRole | None = None
    search: str | None = None


async def list_contacts(viewer: Viewer, where: ContactFilter) -> QuerySet[Contact]:
    query = await visible(viewer, RecordType.CONTACT)
    if where.customer_id is not None:
        query = query.filter(customer_id=where.customer_id)
    if where.decision_role is not None:
        await check_filterable(viewer, RecordType.CONTACT, ["decision_role"])
        query = query.filter(decision_role=where.decision_role)
    if where.search and (term := where.search.strip()):
        found = Q(name__icontains=term)
        # Fields hidden from the viewer are not searched: a match would reveal them.
        for field in ("phone", "mobile", "email"):
            if await searchable(viewer, RecordType.CONTACT, field):
                lookup = "icontains" if field == "email" else "contains"
                found |= Q(**{f"{field}__{lookup}": term})
        query = query.filter(found)
    return query


def decision_circle(contacts: list[Contact]) -> list[tuple[DecisionRole, list[Contact]]]:
    """The five petals in their fixed order, each with the contacts filling it."""
    return [
        (role, [contact for contact in contacts if contact.decision_role == role])
        for role in DecisionRole
    ]


# --- creating and editing ----------------------------------------------------


@dataclass
class ContactInput:
    name: str | None = None
    title: str | None = None
    phone: str | None = None
    mobile: str | None = None
    email: str | None = None
    remarks: str | None = None
    is_primary: bool | None = None
    decision_role: DecisionRole | None = UNSET  # None clears the role


def _changes(data: ContactInput) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for item in fields(data):
        value = getattr(data, item.name)
        if item.name == "decision_role":
            if value is not UNSET:
                changes["decision_role"] = value
            continue
        if value is None:
            continue
        if item.name == "name":
            changes["name"] = clean_name(value, "name")
        elif item.name == "is_primary":
            changes["is_primary"] = value
        else:
            value = value.strip()
            if len(value) > _LIMITS[item.name]:
                raise BadUserInput(
                    f"`{item.name}` is longer than {_LIMITS[item.name]} characters.",
                    field=item.name,
                )
            if item.name == "email" and value and not EMAIL.match(value):
                raise BadUserInput("`email` is not an email address.", field="email")
            changes[item.name] = value or None
    return changes


async def _writable_customer(viewer: Viewer, customer_id: int) -> Customer:
    """The contact's customer, locked: primary flags change one at a time."""
    customer = await Customer.filter(id=customer_id).select_for_update().get()
    await viewer.require_write(customer.owner_id, customer.id)
    return customer


async def _demote_primary(viewer: Viewer, customer: Customer, keep: int | None) -> None:
    """Only one primary contact per customer: the previous one stops being it."""
    previous = Contact.filter(customer_id=customer.id, is_primary=True)
    if keep is not None:
        previous = previous.exclude(id=keep)
    for contact in await previous:
        contact = await update_versioned(contact, None, is_primary=False)
        await _record(viewer, "UPDATE", contact, customer, {"is_primary": [True, False]})


async def _record(
    viewer: Viewer, action: str, contact: Contact, customer: Customer, changed: dict
) -> None:
    await log_operation(
        viewer.id,
        action,
        RecordType.CONTACT,
        contact.id,
        customer_id=customer.id,
        changes=changed,
        summary=f"{action.title()} contact {contact.name}",
    )
    await record_event(
        "contact.deleted" if action == "DELETE" else "contact.changed",
        record_type=RecordType.CONTACT.value,
        record_id=contact.id,
        owner_id=customer.owner_id,
        customer_id=customer.id,
        actor_id=viewer.id,
        payload={"fields": sorted(changed), "version": contact.version},
    )


async def create_contact(viewer: Viewer, customer_id: int, data: ContactInput) -> Contact:
    """A new contact; the first contact of a customer is its primary one unless told otherwise."""
    async with transaction():
        await get_visible(viewer, RecordType.CUSTOMER, customer_id)
        viewer.require(CONTACT_CREATE)
        customer = await _writable_customer(viewer, customer_id)
        changes = _changes(data)
        if "name" not in changes:
            raise BadUserInput("`name` is required.", field="name")
        await check_writable(viewer, RecordType.CONTACT, changes, pooled=customer.owner_id is None)
        if data.is_primary is None:
            changes["is_primary"] = not await Contact.exists(customer_id=customer.id)
        if changes["is_primary"]:
            await _demote_primary(viewer, customer, keep=None)
        contact = await Contact.create(**changes, customer_id=customer.id, created_by_id=viewer.id)
        entered = {k: [None, plain(v)] for k, v in changes.items() if v}
        await _record(viewer, "CREATE", contact, customer, entered)
        return contact


async def update_contact(
    viewer: Viewer, pk: int, data: ContactInput, expected_version: int | None
) -> Contact:
    async with transaction():
        contact = await get_visible(viewer, RecordType.CONTACT, pk)
        viewer.require(CONTACT_UPDATE)
        customer = await _writable_customer(viewer, contact.customer_id)
        changes = _changes(data)
        await check_writable(viewer, RecordType.CONTACT, changes, pooled=customer.owner_id is None)
        changed = diff(contact, changes)
        if changes.get("is_primary"):
            await _demote_primary(viewer, customer, keep=contact.id)
        contact = await update_versioned(contact, expected_version, **changes)
        if changed:
            await _record(viewer, "UPDATE", contact, customer, changed)
        return contact


async def delete_contact(viewer: Viewer, pk: int) -> int:
    """Delete a contact. Its follow-ups and tasks stay in the customer's history,
    re-attached to the customer itself; a contact who signed a contract stays
    (CONFLICT), as the contract must keep naming its signatory."""
    async with transaction():
        contact = await get_visible(viewer, RecordType.CONTACT, pk)
        viewer.require(CONTACT_DELETE)
        customer = await _writable_customer(viewer, contact.customer_id)
        signed = await Contract.filter(signing_contact_id=pk).values_list("number", flat=True)
        if signed:
            raise Conflict(f"The contact signed contract {', '.join(sorted(signed))}; keep them.")
        await FollowUp.filter(target_type=RecordType.CONTACT, target_id=pk).update(
            target_type=RecordType.CUSTOMER, target_id=customer.id
        )
        await Task.filter(related_type=RecordType.CONTACT, related_id=pk).update(
            related_type=RecordType.CUSTOMER, related_id=customer.id, version=F("version") + 1
        )
        await contact.delete()
        removed = {
            k: [plain(getattr(contact, k)), None]
            for k in ("name", "title", "phone", "mobile", "email", "decision_role")
            if getattr(contact, k) is not None
        }
        await _record(viewer, "DELETE", contact, customer, removed)
    return pk

"""Lead rules (线索): entering, editing, listing, invalid and reopened leads, deletion.

A lead is seen by whoever has its owner in their data scope; a lead in the
lead pool (no owner) by those who distribute leads (`lead:distribute`) and
those who see everything (see records.lead_filter). Leads have no team, so a
lead the caller can see is one they may work on, given the permission.

A converted lead is history: it keeps what it was and links to the customer,
contact and opportunity it became, and is no longer edited, invalidated,
assigned, released or deleted (CONFLICT). Its owner can still change hands, so a
departing rep's history goes with their book (see lead_pool).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from tortoise.expressions import Q
from tortoise.queryset import QuerySet

from meihua.models import FollowUp, Lead, LeadStatus, RecordType, Task, User
from meihua.resolvers.access import Viewer
from meihua.resolvers.customers import normalize_phone
from meihua.resolvers.errors import BadUserInput, Conflict, NotFound
from meihua.resolvers.field_access import check_filterable, check_writable, searchable
from meihua.resolvers.lead_distribution import distribute_new_lead
from meihua.resolvers.oplog import diff, log_operation, plain
from meihua.resolvers.org import UNSET, clean_name
from meihua.resolvers.pagination import LONG_AGO, Ordering
from meihua.resolvers.records import LEAD_DISTRIBUTE, get_visible, visible
from meihua.resolvers.versioning import update_versioned
from meihua.subscriptions.events import record_event, transaction

LEAD_CREATE = "lead:create"
LEAD_UPDATE = "lead:update"
LEAD_DELETE = "lead:delete"

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_LIMITS = {"contact_name": 100, "phone": 40, "email": 200, "source": 100, "industry": 100}
_LIMITS |= {"region": 100, "remarks": 10_000}
MAX_REASON = 2_000

# Derived lookup key: stored for search by phone digits, never shown as a change.
_KEYS = {"phone_key"}


async def get_visible_lead(viewer: Viewer, pk: int) -> Lead:
    return await get_visible(viewer, RecordType.LEAD, pk)


def refuse_converted(lead: Lead) -> None:
    if lead.status == LeadStatus.CONVERTED:
        raise Conflict("The lead was converted; it now only records what it became.")


async def active_user(pk: int, field: str = "ownerId") -> User:
    user = await User.get_or_none(id=pk)
    if user is None or not user.is_active:
        raise BadUserInput("No such active user.", field=field)
    return user


async def record_lead_change(
    viewer: Viewer,
    action: str,
    lead: Lead,
    changed: dict[str, list[Any]],
    summary: str = "",
    kind: str = "lead.changed",
) -> None:
    """The operation-log entry and the live event of one change to a lead."""
    await log_operation(
        viewer.id, action, RecordType.LEAD, lead.id, changes=changed, summary=summary
    )
    await record_event(
        kind,
        record_type=RecordType.LEAD.value,
        record_id=lead.id,
        owner_id=lead.owner_id,
        actor_id=viewer.id,
        payload={"fields": sorted(changed), "version": lead.version},
    )


# --- listing -----------------------------------------------------------------


@dataclass
class LeadFilter:
    status: LeadStatus | None = None
    owner_id: int | None = None
    in_pool: bool | None = None
    source: str | None = None
    industry: str | None = None
    region: str | None = None
    created_from: datetime | None = None  # inclusive
    created_to: datetime | None = None  # exclusive
    followed_up_from: datetime | None = None  # inclusive
    followed_up_to: datetime | None = None  # exclusive
    search: str | None = None


def _search(term: str, by_phone: bool) -> Q:
    """Company or contact name fragment, or phone digits in any spelling."""
    found = Q(company_name__icontains=term) | Q(contact_name__icontains=term)
    digits = normalize_phone(term)
    if by_phone and digits and re.fullmatch(r"[\d\s()+\-－（）]+", term):
        found |= Q(phone_key__contains=digits)
    return found


def lead_ordering(field: str, descending: bool) -> Ordering:
    # Leads never followed up sort as followed up longest ago: first when the
    # most neglected come first, last when the most recently worked do.
    return Ordering(field, descending, if_null=LONG_AGO if field == "last_followup_at" else None)


async def list_leads(viewer: Viewer, where: LeadFilter) -> QuerySet[Lead]:
    asked = ("status", "source", "industry", "region")
    filtered = [name for name in asked if getattr(where, name) is not None]
    if where.followed_up_from is not None or where.followed_up_to is not None:
        filtered.append("last_followup_at")
    await check_filterable(viewer, RecordType.LEAD, filtered)
    query = await visible(viewer, RecordType.LEAD)
    if where.status is not None:
        query = query.filter(status=where.status)
    if where.owner_id is not None:
        query = query.filter(owner_id=where.owner_id)
    for field in ("source", "industry", "region"):
        value = getattr(where, field)
        if value is not None:
            # tortoise refuses (ValidationError) a value longer than the column.
            if len(value.strip()) > (limit := Lead._meta.fields_map[field].max_length):
                raise BadUserInput(f"`{field}` is longer than {limit} characters.", field=field)
            query = query.filter(**{field: value.strip()})
    if where.in_pool is not None:
        query = query.filter(owner_id__isnull=where.in_pool)
    ranges = (
        ("created_at", where.created_from, where.created_to),
        ("last_followup_at", where.followed_up_from, where.followed_up_to),
    )
    for field, start, end in ranges:
        if start is not None:
            query = query.filter(**{f"{field}__gte": start})
        if end is not None:
            query = query.filter(**{f"{field}__lt": end})
    if where.search and where.search.strip():
        # A phone hidden from the viewer is not searched: a match would reveal it.
        by_phone = await searchable(viewer, RecordType.LEAD, "phone")
        query = query.filter(_search(where.search.strip(), by_phone))
    return query


# --- creating and editing ----------------------------------------------------


@dataclass
class LeadInput:
    company_name: str | None = None
    contact_name: str | None = None
    phone: str | None = None
    email: str | None = None
    source: str | None = None
    industry: str | None = None
    region: str | None = None
    remarks: str | None = None


def _changes(data: LeadInput) -> dict[str, Any]:
    """Validated column values; an empty string clears an optional field."""
    changes: dict[str, Any] = {}
    for item in fields(data):
        value = getattr(data, item.name)
        if value is None:
            continue
        field = _camel(item.name)
        if item.name == "company_name":
            changes["company_name"] = clean_name(value, field, max_length=200)
            continue
        value = value.strip()
        if len(value) > _LIMITS[item.name]:
            raise BadUserInput(
                f"`{field}` is longer than {_LIMITS[item.name]} characters.", field=field
            )
        if item.name == "email" and value and not EMAIL.match(value):
            raise BadUserInput("`email` is not an email address.", field="email")
        changes[item.name] = value or None
        if item.name == "phone":
            changes["phone_key"] = normalize_phone(value)
            if len(changes["phone_key"] or "") > _LIMITS["phone"]:  # ⑩ → 10
                raise BadUserInput("`phone` has too many digits.", field="phone")
    return changes


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


async def _first_owner(viewer: Viewer, owner_id: Any) -> int | None:
    """Who a new lead belongs to: its creator unless told otherwise.

    Entering a lead into the pool (`None`) or for a colleague is distributing
    it, so that needs `lead:distribute`. A lead entered into the pool is
    handed out at once by the distribution rules when one takes it.
    """
    if owner_id is UNSET or owner_id == viewer.id:
        return viewer.id
    viewer.require(LEAD_DISTRIBUTE)
    if owner_id is None:
        return None
    return (await active_user(owner_id)).id


async def create_lead(viewer: Viewer, data: LeadInput, owner_id: Any = UNSET) -> Lead:
    viewer.require(LEAD_CREATE)
    changes = _changes(data)
    if "company_name" not in changes:
        raise BadUserInput("`companyName` is required.", field="companyName")
    await check_writable(viewer, RecordType.LEAD, changes)
    async with transaction():
        owner = await _first_owner(viewer, owner_id)
        lead = await Lead.create(**changes, owner_id=owner, created_by_id=viewer.id)
        entered = {"owner_id": owner, **changes}
        await record_lead_change(
            viewer,
            "CREATE",
            lead,
            {k: [None, plain(v)] for k, v in entered.items() if k not in _KEYS and v},
            f"Entered lead {lead.company_name}",
        )
        if owner is None:
            return await distribute_new_lead(viewer, lead)
        if owner != viewer.id:
            await record_event(
                "lead.assigned",
                record_type=RecordType.LEAD.value,
                record_id=lead.id,
                owner_id=owner,
                recipient_id=owner,  # "a lead was handed to me"
                actor_id=viewer.id,
                payload={"fromOwnerId": None, "toOwnerId": owner, "version": lead.version},
            )
        return lead


async def update_lead(
    viewer: Viewer, pk: int, data: LeadInput, expected_version: int | None
) -> Lead:
    async with transaction():
        lead = await get_visible_lead(viewer, pk)
        viewer.require(LEAD_UPDATE)
        refuse_converted(lead)
        changes = _changes(data)
        await check_writable(viewer, RecordType.LEAD, changes, pooled=lead.owner_id is None)
        changed = diff(lead, {k: v for k, v in changes.items() if k not in _KEYS})
        lead = await update_versioned(lead, expected_version, **changes)
        if changed:
            await record_lead_change(viewer, "UPDATE", lead, changed)
        return lead


# --- status ------------------------------------------------------------------


async def mark_invalid(viewer: Viewer, pk: int, reason: str) -> Lead:
    """INVALID (无效) with the reason why: a wrong number, no budget, a competitor…"""
    reason = reason.strip()
    if not reason:
        raise BadUserInput("Say why the lead is invalid.", field="reason")
    if len(reason) > MAX_REASON:
        raise BadUserInput(f"`reason` is longer than {MAX_REASON} characters.", field="reason")
    async with transaction():
        lead = await get_visible_lead(viewer, pk)
        viewer.require(LEAD_UPDATE)
        refuse_converted(lead)
        wanted = {"status": LeadStatus.INVALID, "invalid_reason": reason}
        changed = diff(lead, wanted)
        if not changed:
            return lead
        lead = await update_versioned(lead, None, **wanted)
        await record_lead_change(viewer, "MARK_INVALID", lead, changed, f"Invalid: {reason}")
        return lead


async def reopen(viewer: Viewer, pk: int) -> Lead:
    """Back from INVALID: FOLLOWING when it was ever followed up, else NEW."""
    async with transaction():
        lead = await get_visible_lead(viewer, pk)
        viewer.require(LEAD_UPDATE)
        if lead.status != LeadStatus.INVALID:
            raise Conflict("Only an invalid lead can be reopened.")
        status = LeadStatus.FOLLOWING if lead.last_followup_at else LeadStatus.NEW
        wanted = {"status": status, "invalid_reason": None}
        changed = diff(lead, wanted)
        lead = await update_versioned(lead, None, **wanted)
        await record_lead_change(viewer, "REOPEN", lead, changed, "Reopened")
        return lead


# --- deleting ----------------------------------------------------------------


async def delete_lead(viewer: Viewer, pk: int) -> int:
    """Delete a lead with its follow-ups and the tasks about it.

    A converted lead stays: it is the record of where a customer came from.
    The operation log keeps the deletion.
    """
    async with transaction():
        # Locked first, so a conversion cannot slip in under the deletion.
        lead = await (await visible(viewer, RecordType.LEAD)).select_for_update().get_or_none(id=pk)
        if lead is None:
            raise NotFound("No such lead.")
        viewer.require(LEAD_DELETE)
        refuse_converted(lead)
        await Task.filter(related_type=RecordType.LEAD, related_id=pk).delete()
        await FollowUp.filter(target_type=RecordType.LEAD, target_id=pk).delete()
        await lead.delete()
        await record_lead_change(
            viewer,
            "DELETE",
            lead,
            {"company_name": [lead.company_name, None], "owner_id": [lead.owner_id, None]},
            f"Deleted lead {lead.company_name}",
            kind="lead.deleted",
        )
    return pk

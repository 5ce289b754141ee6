"""Customer rules: visibility, first in owns (谁先录入谁拥有), edits with versions,
lock/unlock (锁定) and deletion."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q, RawSQL
from tortoise.queryset import QuerySet

from meihua.models import (
    Contact,
    Contract,
    Customer,
    DealStatus,
    FollowUp,
    Opportunity,
    RecordType,
    Task,
    User,
)
from meihua.resolvers.access import Viewer
from meihua.resolvers.errors import BadUserInput, Conflict, Duplicate, Forbidden, NotFound
from meihua.resolvers.field_access import check_filterable, check_writable, searchable
from meihua.resolvers.oplog import diff, log_operation, plain
from meihua.resolvers.org import clean_name
from meihua.resolvers.permissions import CUSTOMER_CREATE, CUSTOMER_UPDATE
from meihua.resolvers.pool_membership import home_pool_id
from meihua.resolvers.versioning import update_versioned
from meihua.subscriptions.events import record_event, transaction

CUSTOMER_DELETE = "customer:delete"
CUSTOMER_LOCK = "customer:lock"

MAX_TAGS = 20
MAX_TAG_LENGTH = 30
MAX_BATCH = 200  # customers per lock/unlock/transfer call

# Derived lookup keys: stored for the first-in-owns rule, never shown as changes.
_KEYS = {"name_key", "phone_key"}


def normalize_name(name: str) -> str:
    """Trimmed, case-folded, full-width folded to half-width, inner spaces collapsed."""
    folded = unicodedata.normalize("NFKC", name).casefold()
    return re.sub(r"\s+", " ", folded).strip()


def normalize_phone(phone: str | None) -> str | None:
    """Digits only, without a +86 / 0086 country prefix on mainland numbers."""
    if phone is None:
        return None
    digits = re.sub(r"\D", "", unicodedata.normalize("NFKC", phone))
    if digits.startswith("0086"):
        digits = digits[4:]
    elif digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    return digits or None


async def visible_customers(viewer: Viewer) -> QuerySet[Customer]:
    return Customer.filter(await viewer.customer_filter())


async def get_visible_customer(viewer: Viewer, pk: int) -> Customer:
    customer = await (await visible_customers(viewer)).get_or_none(id=pk)
    if customer is None:
        raise NotFound("No such customer.")
    return customer


async def visible_batch(viewer: Viewer, ids: list[int]) -> list[Customer]:
    """Every customer of a batch, locked for the transaction, in the caller's order.

    All or nothing: one id the caller cannot see makes the whole call
    NOT_FOUND, so a batch cannot be used to probe ids either.
    """
    wanted = list(dict.fromkeys(ids))
    if len(wanted) > MAX_BATCH:
        raise BadUserInput(f"At most {MAX_BATCH} customers at a time.", field="ids")
    query = (await visible_customers(viewer)).filter(id__in=wanted)
    # Locking in id order keeps two overlapping batches from deadlocking.
    rows = {row.id: row for row in await query.order_by("id").select_for_update()}
    if len(rows) != len(wanted):
        raise NotFound("No such customer.")
    return [rows[pk] for pk in wanted]


async def require_ownership(viewer: Viewer, customer: Customer) -> None:
    """Ownership decisions (transfer, team, deletion) belong to the owner and to
    whoever has the owner in their data scope; team members share the work on
    a customer, not the customer itself."""
    if not await viewer.in_scope(customer.owner_id):
        raise Forbidden("Only the owner or a manager whose scope covers them can do this.")


# --- listing -----------------------------------------------------------------


@dataclass
class CustomerFilter:
    owner_id: int | None = None
    search: str | None = None
    level: str | None = None
    industry: str | None = None
    region: str | None = None
    source: str | None = None
    tag: str | None = None
    locked: bool | None = None
    deal_status: DealStatus | None = None
    in_pool: bool | None = None
    pool_id: int | None = None


def _with_tag(query: QuerySet[Customer], tag: str) -> QuerySet[Customer]:
    """Customers whose tag list holds `tag` exactly.

    PostgreSQL answers with its JSON containment operator; SQLite has none, so
    there the list is unpacked with json_each, the tag written as an SQL string
    literal (SQLite knows no backslash escapes: doubling quotes is complete).
    """
    if Customer._meta.db.capabilities.dialect == "postgres":
        return query.filter(tags__contains=[tag])
    literal = "'" + tag.replace("'", "''") + "'"
    has_tag = RawSQL(f'EXISTS (SELECT 1 FROM json_each("customer"."tags") WHERE value = {literal})')
    return query.annotate(has_tag=has_tag).filter(has_tag=True)


async def list_customers(viewer: Viewer, where: CustomerFilter) -> QuerySet[Customer]:
    await check_filterable(viewer, RecordType.CUSTOMER, _filtered_fields(where))
    query = await visible_customers(viewer)
    if where.owner_id is not None:
        query = query.filter(owner_id=where.owner_id)
    if where.search:
        term = where.search.strip()
        found = Q(name_key__contains=normalize_name(term))
        # A phone hidden from the viewer is not searched: a match would reveal it.
        if await searchable(viewer, RecordType.CUSTOMER, "phone"):
            found |= Q(phone_key__contains=normalize_phone(term) or term)
        query = query.filter(found)
    for field in ("level", "industry", "region", "source"):
        value = getattr(where, field)
        if value is not None:
            # tortoise refuses (ValidationError) a value longer than the column.
            if len(value.strip()) > (limit := Customer._meta.fields_map[field].max_length):
                raise BadUserInput(f"`{field}` is longer than {limit} characters.", field=field)
            query = query.filter(**{field: value.strip()})
    if where.tag is not None:
        query = _with_tag(query, where.tag.strip())
    if where.locked is not None:
        query = query.filter(locked=where.locked)
    if where.deal_status is not None:
        query = query.filter(deal_status=where.deal_status)
    if where.in_pool is not None:
        query = query.filter(owner_id__isnull=where.in_pool)
    if where.pool_id is not None:
        query = query.filter(pool_id=where.pool_id)
    return query


def _filtered_fields(where: CustomerFilter) -> list[str]:
    """The customer fields a filter asks about (`tag` looks into `tags`)."""
    asked = ("level", "industry", "region", "source", "locked", "deal_status")
    filtered = [name for name in asked if getattr(where, name) is not None]
    return [*filtered, "tags"] if where.tag is not None else filtered


# --- creating and editing ----------------------------------------------------


@dataclass
class CustomerInput:
    name: str | None = None
    phone: str | None = None
    industry: str | None = None
    region: str | None = None
    source: str | None = None
    level: str | None = None
    address: str | None = None
    remarks: str | None = None
    tags: list[str] | None = None
    deal_status: DealStatus | None = None


_LIMITS = {"phone": 40, "industry": 100, "region": 100, "source": 100, "level": 20}
_LIMITS |= {"address": 300, "remarks": 10_000}


def clean_tags(tags: list[str]) -> list[str]:
    """Trimmed, without repeats (case-insensitively, the first spelling wins)."""
    cleaned: dict[str, str] = {}
    for tag in tags:
        tag = tag.strip()
        if not tag:
            raise BadUserInput("Tags must not be blank.", field="tags")
        if any(unicodedata.category(char) == "Cc" for char in tag):
            raise BadUserInput("Tags must not hold control characters.", field="tags")
        if len(tag) > MAX_TAG_LENGTH:
            raise BadUserInput(f"A tag is at most {MAX_TAG_LENGTH} characters long.", field="tags")
        cleaned.setdefault(tag.casefold(), tag)
    if len(cleaned) > MAX_TAGS:
        raise BadUserInput(f"A customer has at most {MAX_TAGS} tags.", field="tags")
    return list(cleaned.values())


def _changes(data: CustomerInput) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for item in fields(data):
        value = getattr(data, item.name)
        if value is None:
            continue
        if item.name == "name":
            changes["name"] = clean_name(value, "name", max_length=200)
            changes["name_key"] = normalize_name(changes["name"])
            if len(changes["name_key"]) > 200:  # NFKC can lengthen a name (㍿ → 株式会社)
                raise BadUserInput("`name` is too long once normalized.", field="name")
            continue
        if item.name == "tags":
            changes["tags"] = clean_tags(value)
            continue
        if item.name == "deal_status":
            changes["deal_status"] = value
            continue
        value = value.strip()
        if len(value) > _LIMITS[item.name]:
            raise BadUserInput(
                f"`{item.name}` is longer than {_LIMITS[item.name]} characters.", field=item.name
            )
        changes[item.name] = value or None
        if item.name == "phone":
            changes["phone_key"] = normalize_phone(value)
            if len(changes["phone_key"] or "") > _LIMITS["phone"]:  # ⑩ → 10
                raise BadUserInput("`phone` has too many digits.", field="phone")
    return changes


async def _refuse_duplicate(viewer: Viewer, changes: dict[str, Any], exclude: int | None) -> None:
    clauses = []
    if "name_key" in changes:
        clauses.append(("name", Q(name_key=changes["name_key"])))
    if changes.get("phone_key"):
        clauses.append(("phone", Q(phone_key=changes["phone_key"])))
    for field, clause in clauses:
        query = Customer.filter(clause)
        if exclude is not None:
            query = query.exclude(id=exclude)
        existing = await query.first()
        if existing is not None:
            raise await duplicate_error(viewer, existing, field)


async def duplicate_error(viewer: Viewer, existing: Customer, field: str) -> Duplicate:
    """DUPLICATE naming the owner (or the pool it sits in) only when the caller
    may see that customer."""
    if existing.owner_id is not None and await viewer.in_scope(existing.owner_id):
        owner = await User.get(id=existing.owner_id)
        return Duplicate(
            f"A customer with this {field} already exists, owned by {owner.name}.",
            field=field,
            ownerName=owner.name,
        )
    if existing.owner_id is None and existing.pool_id in await viewer.pool_ids():
        return Duplicate(
            f"A customer with this {field} already exists in the public pool; claim it there.",
            field=field,
        )
    return Duplicate(f"A customer with this {field} already exists.", field=field)


async def record_customer_change(
    viewer: Viewer, action: str, customer: Customer, changed: dict[str, list[Any]]
) -> None:
    """The operation-log entry and the live `customer.changed` event of one edit."""
    await log_operation(
        viewer.id,
        action,
        RecordType.CUSTOMER,
        customer.id,
        customer_id=customer.id,
        changes=changed,
    )
    await record_event(
        "customer.changed",
        record_type=RecordType.CUSTOMER.value,
        record_id=customer.id,
        owner_id=customer.owner_id,
        customer_id=customer.id,
        actor_id=viewer.id,
        payload={"fields": sorted(changed), "version": customer.version},
    )


async def create_customer(viewer: Viewer, data: CustomerInput) -> Customer:
    viewer.require(CUSTOMER_CREATE)
    changes = _changes(data)
    if "name" not in changes:
        raise BadUserInput("`name` is required.", field="name")
    await check_writable(viewer, RecordType.CUSTOMER, changes)
    try:
        async with transaction():
            await _refuse_duplicate(viewer, changes, exclude=None)
            customer = await Customer.create(
                **changes,
                owner_id=viewer.id,
                created_by_id=viewer.id,
                pool_id=await home_pool_id(viewer.user),
                taken_at=datetime.now(UTC),
            )
            entered = {"owner_id": viewer.id, **changes}
            await record_customer_change(
                viewer,
                "CREATE",
                customer,
                {k: [None, plain(v)] for k, v in entered.items() if k not in _KEYS and v},
            )
            return customer
    except IntegrityError:
        # Someone entered the same customer between our check and insert; now
        # that our transaction is rolled back, their row names field and owner.
        raise await _race_duplicate(viewer, changes, exclude=None) from None


async def _race_duplicate(
    viewer: Viewer, changes: dict[str, Any], exclude: int | None
) -> Duplicate:
    try:
        await _refuse_duplicate(viewer, changes, exclude=exclude)
    except Duplicate as error:
        return error
    return Duplicate("A customer with this name or phone already exists.")


async def update_customer(
    viewer: Viewer, pk: int, data: CustomerInput, expected_version: int | None
) -> Customer:
    changes: dict[str, Any] = {}
    try:
        async with transaction():
            customer = await get_visible_customer(viewer, pk)
            viewer.require(CUSTOMER_UPDATE)
            await viewer.require_write(customer.owner_id, customer.id)
            changes = _changes(data)
            await check_writable(
                viewer, RecordType.CUSTOMER, changes, pooled=customer.owner_id is None
            )
            await _refuse_duplicate(viewer, changes, exclude=customer.id)
            changed = diff(customer, {k: v for k, v in changes.items() if k not in _KEYS})
            customer = await update_versioned(customer, expected_version, **changes)
            if changed:
                await record_customer_change(viewer, "UPDATE", customer, changed)
            return customer
    except IntegrityError:
        raise await _race_duplicate(viewer, changes, exclude=pk) from None


# --- lock and unlock ---------------------------------------------------------


async def set_locked(viewer: Viewer, ids: list[int], locked: bool) -> list[Customer]:
    """Lock (exempt from automatic recycling) or unlock customers, all or none.

    Customers already in the wanted state are left alone: no new version, no
    log entry.
    """
    async with transaction():
        customers = await visible_batch(viewer, ids)
        viewer.require(CUSTOMER_LOCK)
        for customer in customers:
            await viewer.require_write(customer.owner_id, customer.id)
        result = []
        for customer in customers:
            if customer.locked != locked:
                changed = diff(customer, {"locked": locked})
                customer = await update_versioned(customer, None, locked=locked)
                await record_customer_change(
                    viewer, "LOCK" if locked else "UNLOCK", customer, changed
                )
            result.append(customer)
        return result


# --- deleting ----------------------------------------------------------------


async def delete_customer(viewer: Viewer, pk: int) -> int:
    """Delete a customer together with what only exists for it.

    Its contacts, its team, and the follow-ups and tasks about it or its
    contacts go with it: without the customer they mean nothing, and a CRM
    that kept them would show schedule entries and history for a company that
    is gone (Salesforce and Odoo delete an account's activities the same way).
    Opportunities and contracts are different: they carry money, owners and
    approvals of their own, so while the customer has any (or one of its
    contacts signed a contract) the deletion is refused with CONFLICT; they
    have to be dealt with first. The operation log keeps the deletion; older
    entries lose their link to the customer but keep the record id.
    """
    async with transaction():
        # Locked first, so no opportunity or contract can slip in under it.
        customer = await (await visible_customers(viewer)).select_for_update().get_or_none(id=pk)
        if customer is None:
            raise NotFound("No such customer.")
        viewer.require(CUSTOMER_DELETE)
        await require_ownership(viewer, customer)
        contact_ids = await Contact.filter(customer_id=pk).values_list("id", flat=True)
        opportunities = await Opportunity.filter(customer_id=pk).count()
        contracts = await Contract.filter(
            Q(customer_id=pk) | Q(signing_contact_id__in=contact_ids)
        ).count()
        if opportunities or contracts:
            raise Conflict(
                f"The customer still has {opportunities} opportunities and {contracts} "
                "contracts; close them out or move them before deleting it."
            )
        about = Q(customer_id=pk) | Q(related_type=RecordType.CUSTOMER, related_id=pk)
        if contact_ids:
            about |= Q(related_type=RecordType.CONTACT, related_id__in=contact_ids)
        await Task.filter(about).delete()
        followups = Q(customer_id=pk) | Q(target_type=RecordType.CUSTOMER, target_id=pk)
        if contact_ids:
            followups |= Q(target_type=RecordType.CONTACT, target_id__in=contact_ids)
        await FollowUp.filter(followups).delete()
        await Contact.filter(customer_id=pk).delete()
        await customer.delete()
        await log_operation(
            viewer.id,
            "DELETE",
            RecordType.CUSTOMER,
            pk,
            changes={"name": [customer.name, None], "owner_id": [customer.owner_id, None]},
            summary=f"Deleted customer {customer.name}",
        )
        await record_event(
            "customer.deleted",
            record_type=RecordType.CUSTOMER.value,
            record_id=pk,
            owner_id=customer.owner_id,
            customer_id=pk,
            actor_id=viewer.id,
            payload={"name": customer.name},
        )
    return pk

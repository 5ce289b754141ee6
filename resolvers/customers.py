"""Customer rules: visibility, first in owns (谁先录入谁拥有), edits with versions."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, fields
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from meihua.models import Customer, User
from meihua.resolvers.access import Viewer
from meihua.resolvers.errors import BadUserInput, Duplicate, NotFound
from meihua.resolvers.org import clean_name
from meihua.resolvers.permissions import CUSTOMER_CREATE, CUSTOMER_UPDATE
from meihua.resolvers.versioning import update_versioned


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


@dataclass
class CustomerFilter:
    owner_id: int | None = None
    search: str | None = None


async def list_customers(viewer: Viewer, where: CustomerFilter) -> QuerySet[Customer]:
    query = await visible_customers(viewer)
    if where.owner_id is not None:
        query = query.filter(owner_id=where.owner_id)
    if where.search:
        term = where.search.strip()
        query = query.filter(
            Q(name_key__contains=normalize_name(term))
            | Q(phone_key__contains=normalize_phone(term) or term)
        )
    return query


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


_LIMITS = {"phone": 40, "industry": 100, "region": 100, "source": 100, "level": 20}
_LIMITS |= {"address": 300, "remarks": 10_000}


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
    """DUPLICATE naming the owner only when the caller may see that customer."""
    if existing.owner_id is not None and await viewer.in_scope(existing.owner_id):
        owner = await User.get(id=existing.owner_id)
        return Duplicate(
            f"A customer with this {field} already exists, owned by {owner.name}.",
            field=field,
            ownerName=owner.name,
        )
    return Duplicate(f"A customer with this {field} already exists.", field=field)


async def create_customer(viewer: Viewer, data: CustomerInput) -> Customer:
    viewer.require(CUSTOMER_CREATE)
    changes = _changes(data)
    if "name" not in changes:
        raise BadUserInput("`name` is required.", field="name")
    try:
        async with in_transaction():
            await _refuse_duplicate(viewer, changes, exclude=None)
            return await Customer.create(**changes, owner_id=viewer.id, created_by_id=viewer.id)
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
        async with in_transaction():
            customer = await get_visible_customer(viewer, pk)
            viewer.require(CUSTOMER_UPDATE)
            changes = _changes(data)
            await _refuse_duplicate(viewer, changes, exclude=customer.id)
            return await update_versioned(customer, expected_version, **changes)
    except IntegrityError:
        raise await _race_duplicate(viewer, changes, exclude=pk) from None

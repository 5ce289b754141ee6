"""The product catalogue (产品), and the money arithmetic of priced lines.

Everyone signed in reads the catalogue; `product:manage` changes it. Products
are deactivated rather than deleted: lines already selling one keep it, new
lines cannot pick it.
"""

from __future__ import annotations

import decimal
from dataclasses import dataclass, fields
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.queryset import QuerySet

from meihua.models import Product
from meihua.resolvers.access import Viewer
from meihua.resolvers.errors import BadUserInput, Duplicate, NotFound
from meihua.resolvers.org import clean_name
from meihua.resolvers.versioning import update_versioned
from meihua.subscriptions.events import transaction

PRODUCT_MANAGE = "product:manage"

CENT = Decimal("0.01")
# Money columns hold 16 digits, 2 of them after the point; quantities 12 and 2.
MONEY_LIMIT = Decimal(10) ** 14
QUANTITY_LIMIT = Decimal(10) ** 10
# Enough digits that quantity × price × (100 − discount) is never rounded
# before the one rounding to cents (the default context keeps only 28).
_EXACT = decimal.Context(prec=60)


def _cents(value: Decimal, field: str, limit: Decimal) -> Decimal:
    """A finite, non-negative number of whole cents below `limit`."""
    if not value.is_finite():
        raise BadUserInput(f"`{field}` must be a number.", field=field)
    if abs(value) >= limit:
        raise BadUserInput(f"`{field}` is too large.", field=field)
    if value != value.quantize(CENT):
        raise BadUserInput(f"`{field}` has more than two decimal places.", field=field)
    if value < 0:
        raise BadUserInput(f"`{field}` must not be negative.", field=field)
    return value.quantize(CENT)


def clean_money(value: Decimal, field: str) -> Decimal:
    return _cents(value, field, MONEY_LIMIT)


def clean_quantity(value: Decimal, field: str = "quantity") -> Decimal:
    quantity = _cents(value, field, QUANTITY_LIMIT)
    if quantity == 0:
        raise BadUserInput(f"`{field}` must be more than zero.", field=field)
    return quantity


def clean_discount(value: Decimal, field: str = "discount") -> Decimal:
    """A discount in percent, 0–100."""
    discount = _cents(value, field, Decimal(1000))
    if discount > 100:
        raise BadUserInput(f"`{field}` is a percentage from 0 to 100.", field=field)
    return discount


def line_amount(quantity: Decimal, unit_price: Decimal, discount: Decimal) -> Decimal:
    """quantity × unit price × (1 − discount %): exact, then rounded half-up to cents."""
    with decimal.localcontext(_EXACT):
        exact = quantity * unit_price * (100 - discount) / 100
        return exact.quantize(CENT, rounding=ROUND_HALF_UP)


# --- the catalogue -----------------------------------------------------------


@dataclass
class ProductFilter:
    search: str | None = None
    category: str | None = None
    is_active: bool | None = None


def list_products(where: ProductFilter) -> QuerySet[Product]:
    query = Product.all()
    if where.search and where.search.strip():
        term = where.search.strip()
        query = query.filter(Q(name__icontains=term) | Q(code__icontains=term))
    if where.category is not None:
        query = query.filter(category=where.category.strip() or None)
    if where.is_active is not None:
        query = query.filter(is_active=where.is_active)
    return query


async def get_product(pk: int) -> Product:
    product = await Product.get_or_none(id=pk)
    if product is None:
        raise NotFound("No such product.")
    return product


@dataclass
class ProductInput:
    name: str | None = None
    code: str | None = None
    unit: str | None = None
    unit_price: Decimal | None = None
    category: str | None = None
    description: str | None = None


_LIMITS = {"unit": 20, "category": 100, "description": 10_000}


def _changes(data: ProductInput) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for item in fields(data):
        value = getattr(data, item.name)
        if value is None:
            continue
        if item.name == "name":
            changes["name"] = clean_name(value, "name", max_length=200)
        elif item.name == "code":
            changes["code"] = clean_name(value, "code", max_length=64)
        elif item.name == "unit_price":
            changes["unit_price"] = clean_money(value, "unitPrice")
        else:
            value = value.strip()
            if len(value) > _LIMITS[item.name]:
                raise BadUserInput(
                    f"`{item.name}` is longer than {_LIMITS[item.name]} characters.",
                    field=item.name,
                )
            # The unit column is not nullable: a blank unit is "".
            changes[item.name] = value if item.name == "unit" else value or None
    return changes


async def _refuse_duplicate_code(code: str, exclude: int | None) -> None:
    clash = Product.filter(code=code)
    if exclude is not None:
        clash = clash.exclude(id=exclude)
    if await clash.exists():
        raise _duplicate(code)


def _duplicate(code: str) -> Duplicate:
    return Duplicate(f"A product with code {code!r} already exists.", field="code")


async def create_product(viewer: Viewer, data: ProductInput) -> Product:
    viewer.require(PRODUCT_MANAGE)
    changes = _changes(data)
    for field, key in (("name", "name"), ("code", "code"), ("unitPrice", "unit_price")):
        if key not in changes:
            raise BadUserInput(f"`{field}` is required.", field=field)
    try:
        async with transaction():
            await _refuse_duplicate_code(changes["code"], exclude=None)
            return await Product.create(**changes)
    except IntegrityError:
        # Another admin entered the same code between our check and insert.
        raise _duplicate(changes["code"]) from None


async def update_product(
    viewer: Viewer, pk: int, data: ProductInput, expected_version: int | None
) -> Product:
    viewer.require(PRODUCT_MANAGE)
    changes = _changes(data)
    try:
        async with transaction():
            product = await get_product(pk)
            if "code" in changes:
                await _refuse_duplicate_code(changes["code"], exclude=pk)
            return await update_versioned(product, expected_version, **changes)
    except IntegrityError:
        raise _duplicate(changes["code"]) from None


async def set_product_active(viewer: Viewer, pk: int, active: bool) -> Product:
    """Put a product on sale again, or take it off new lines; repeating is harmless."""
    viewer.require(PRODUCT_MANAGE)
    async with transaction():
        product = await get_product(pk)
        if product.is_active == active:
            return product
        return await update_versioned(product, None, is_active=active)

"""GraphQL API of the product catalogue (产品)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from decimal import Decimal
from enum import Enum

import strawberry

from meihua import models
from meihua.resolvers import products
from meihua.resolvers.pagination import Ordering
from meihua.schema.context import Info
from meihua.schema.permissions import SignedIn
from meihua.schema.relay import Connection, Node, connection, record_id, to_global_id


@strawberry.type(description="Something the company sells; every signed-in user may read it.")
class Product(Node):
    name: str
    code: str
    unit: str
    unit_price: Decimal
    category: str | None
    description: str | None
    is_active: bool = strawberry.field(description="Inactive products cannot join new lines.")
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: models.Product) -> Product:
        return cls(
            id=to_global_id("Product", row.id),
            name=row.name,
            code=row.code,
            unit=row.unit,
            unit_price=row.unit_price,
            category=row.category,
            description=row.description,
            is_active=row.is_active,
            version=row.version,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


@strawberry.input
class ProductFilter:
    search: str | None = strawberry.field(default=None, description="Matches name or code.")
    category: str | None = None
    is_active: bool | None = None


@strawberry.enum
class ProductOrderField(Enum):
    NAME = "name"
    CODE = "code"
    CREATED_AT = "created_at"


@strawberry.input
class ProductOrder:
    field: ProductOrderField = ProductOrderField.NAME
    descending: bool = False


@strawberry.input
class CreateProductInput:
    name: str
    code: str = strawberry.field(description="Unique product code (SKU).")
    unit_price: Decimal
    unit: str | None = None
    category: str | None = None
    description: str | None = None


@strawberry.input(description="Send only what changes; an empty string clears a field.")
class UpdateProductInput:
    name: str | None = None
    code: str | None = None
    unit_price: Decimal | None = None
    unit: str | None = None
    category: str | None = None
    description: str | None = None


def _input(data: CreateProductInput | UpdateProductInput) -> products.ProductInput:
    return products.ProductInput(**asdict(data))


@strawberry.type
class ProductQuery:
    @strawberry.field(description="The product catalogue.", permission_classes=[SignedIn])
    async def products(
        self,
        info: Info,
        filter: ProductFilter | None = None,
        order_by: ProductOrder | None = None,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[Product]:
        where = filter or ProductFilter()
        query = products.list_products(
            products.ProductFilter(
                search=where.search, category=where.category, is_active=where.is_active
            )
        )
        order = order_by or ProductOrder()
        return await connection(
            info,
            query,
            Ordering(order.field.value, order.descending),
            Product,
            first=first,
            after=after,
            last=last,
            before=before,
        )


@strawberry.type
class ProductMutation:
    @strawberry.mutation(description="Add a product to the catalogue (`product:manage`).")
    async def create_product(self, info: Info, input: CreateProductInput) -> Product:
        viewer = info.context.viewer
        return Product.of(await products.create_product(viewer, _input(input)))

    @strawberry.mutation(description="Fails with CONFLICT when `expectedVersion` is stale.")
    async def update_product(
        self,
        info: Info,
        id: strawberry.ID,
        input: UpdateProductInput,
        expected_version: int | None = None,
    ) -> Product:
        viewer = info.context.viewer
        row = await products.update_product(
            viewer, record_id(id, "Product"), _input(input), expected_version
        )
        return Product.of(row)

    @strawberry.mutation(description="Put a product on sale again.")
    async def activate_product(self, info: Info, id: strawberry.ID) -> Product:
        viewer = info.context.viewer
        return Product.of(await products.set_product_active(viewer, record_id(id, "Product"), True))

    @strawberry.mutation(
        description="Take a product off sale: lines that have it keep it, new lines cannot."
    )
    async def deactivate_product(self, info: Info, id: strawberry.ID) -> Product:
        viewer = info.context.viewer
        return Product.of(
            await products.set_product_active(viewer, record_id(id, "Product"), False)
        )

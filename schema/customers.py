"""GraphQL API of customers (客户)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from enum import Enum

import strawberry

from meihua import models
from meihua.resolvers import customers
from meihua.resolvers.pagination import Ordering, paginate
from meihua.schema.context import Info
from meihua.schema.org import User
from meihua.schema.relay import Connection, Node, record_id, reference_id, to_global_id


@strawberry.type
class Customer(Node):
    name: str
    phone: str | None
    industry: str | None
    region: str | None
    source: str | None
    level: str | None
    address: str | None
    remarks: str | None
    version: int
    created_at: datetime
    updated_at: datetime
    owner_pk: strawberry.Private[int | None]
    created_by_pk: strawberry.Private[int]

    @classmethod
    def of(cls, row: models.Customer) -> Customer:
        return cls(
            id=to_global_id("Customer", row.id),
            name=row.name,
            phone=row.phone,
            industry=row.industry,
            region=row.region,
            source=row.source,
            level=row.level,
            address=row.address,
            remarks=row.remarks,
            version=row.version,
            created_at=row.created_at,
            updated_at=row.updated_at,
            owner_pk=row.owner_id,
            created_by_pk=row.created_by_id,
        )

    @strawberry.field
    async def owner(self, info: Info) -> User | None:
        if self.owner_pk is None:
            return None
        return User.of(await info.context.loaders.user.load(self.owner_pk))

    @strawberry.field
    async def created_by(self, info: Info) -> User:
        return User.of(await info.context.loaders.user.load(self.created_by_pk))


@strawberry.input
class CustomerFilter:
    owner_id: strawberry.ID | None = None
    search: str | None = strawberry.field(
        default=None, description="Matches the name (normalized) or the phone."
    )


@strawberry.enum
class CustomerOrderField(Enum):
    CREATED_AT = "created_at"
    UPDATED_AT = "updated_at"
    NAME = "name_key"


@strawberry.input
class CustomerOrder:
    field: CustomerOrderField = CustomerOrderField.CREATED_AT
    descending: bool = True


@strawberry.input
class CreateCustomerInput:
    name: str
    phone: str | None = None
    industry: str | None = None
    region: str | None = None
    source: str | None = None
    level: str | None = None
    address: str | None = None
    remarks: str | None = None


@strawberry.input(description="Send only what changes; an empty string clears a field.")
class UpdateCustomerInput:
    name: str | None = None
    phone: str | None = None
    industry: str | None = None
    region: str | None = None
    source: str | None = None
    level: str | None = None
    address: str | None = None
    remarks: str | None = None


def _input(data: CreateCustomerInput | UpdateCustomerInput) -> customers.CustomerInput:
    return customers.CustomerInput(**asdict(data))


@strawberry.type
class CustomerQuery:
    @strawberry.field(description="Customers the caller may see.")
    async def customers(
        self,
        info: Info,
        filter: CustomerFilter | None = None,
        order_by: CustomerOrder | None = None,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[Customer]:
        viewer = info.context.viewer
        where = filter or CustomerFilter()
        query = await customers.list_customers(
            viewer,
            customers.CustomerFilter(
                owner_id=reference_id(where.owner_id, "User", "ownerId")
                if where.owner_id is not None
                else None,
                search=where.search,
            ),
        )
        order = order_by or CustomerOrder()
        page = await paginate(
            query,
            Ordering(order.field.value, order.descending),
            first=first,
            after=after,
            last=last,
            before=before,
            max_page=info.context.settings.page_size_max,
        )
        return Connection[Customer].of(page, Customer.of)


@strawberry.type
class CustomerMutation:
    @strawberry.mutation(
        description="Enter a customer; the first to enter a name or phone owns it."
    )
    async def create_customer(self, info: Info, input: CreateCustomerInput) -> Customer:
        viewer = info.context.viewer
        return Customer.of(await customers.create_customer(viewer, _input(input)))

    @strawberry.mutation(description="Fails with CONFLICT when `expectedVersion` is stale.")
    async def update_customer(
        self,
        info: Info,
        id: strawberry.ID,
        input: UpdateCustomerInput,
        expected_version: int | None = None,
    ) -> Customer:
        viewer = info.context.viewer
        row = await customers.update_customer(
            viewer, record_id(id, "Customer"), _input(input), expected_version
        )
        return Customer.of(row)

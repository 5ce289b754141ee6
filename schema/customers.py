"""GraphQL API of customers (客户)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Annotated

import strawberry

from meihua import models
from meihua.resolvers import customer_transfer, customers, teams
from meihua.resolvers.field_access import check_filterable
from meihua.resolvers.org import UNSET
from meihua.resolvers.pagination import LONG_AGO, Ordering
from meihua.schema.contacts import Contact, DecisionCircle
from meihua.schema.context import Info
from meihua.schema.org import DeletePayload, User
from meihua.schema.relay import Connection, Node, connection, record_id, reference_id, to_global_id
from meihua.schema.timeline import timeline_field

if TYPE_CHECKING:
    from meihua.schema.contracts import Contract
    from meihua.schema.opportunities import Opportunity
    from meihua.schema.pools import Pool, PoolMovement

DealStatus = strawberry.enum(models.DealStatus, description="Whether the customer has bought.")
TeamAccess = strawberry.enum(models.TeamAccess, description="What a team member may do.")
PreviousOwner = strawberry.enum(
    customer_transfer.PreviousOwner, description="What becomes of the previous owner."
)


@strawberry.type(description="A colleague sharing a customer (团队成员).")
class CustomerTeamMember:
    access: TeamAccess
    expires_at: datetime | None
    active: bool = strawberry.field(description="False once the membership has expired.")
    created_at: datetime
    user_pk: strawberry.Private[int]
    added_by_pk: strawberry.Private[int | None]

    @classmethod
    def of(cls, row: models.CustomerTeamMember) -> CustomerTeamMember:
        return cls(
            access=row.access,
            expires_at=row.expires_at,
            active=row.expires_at is None or row.expires_at > datetime.now(UTC),
            created_at=row.created_at,
            user_pk=row.user_id,
            added_by_pk=row.added_by_id,
        )

    @strawberry.field
    async def user(self, info: Info) -> User:
        return User.of(await info.context.loaders.user.load(self.user_pk))

    @strawberry.field
    async def added_by(self, info: Info) -> User | None:
        if self.added_by_pk is None:
            return None
        return User.of(await info.context.loaders.user.load(self.added_by_pk))


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
    tags: list[str]
    deal_status: DealStatus
    locked: bool = strawberry.field(description="Locked customers are never recycled (锁定).")
    last_follow_up_at: datetime | None
    next_contact_at: datetime | None = strawberry.field(
        description="Set by follow-ups; read-only here."
    )
    in_pool: bool = strawberry.field(
        description="In a public pool (公海): no owner, claimable by the pool's members."
    )
    pool_entered_at: datetime | None = strawberry.field(
        description="When it went into the pool, while it sits there."
    )
    taken_at: datetime | None = strawberry.field(
        description="When its owner got it (created, claimed, assigned or transferred)."
    )
    version: int
    created_at: datetime
    updated_at: datetime
    pk: strawberry.Private[int]
    owner_pk: strawberry.Private[int | None]
    created_by_pk: strawberry.Private[int]
    pool_pk: strawberry.Private[int | None]
    previous_owner_pk: strawberry.Private[int | None]

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
            tags=list(row.tags),
            deal_status=row.deal_status,
            locked=row.locked,
            last_follow_up_at=row.last_followup_at,
            next_contact_at=row.next_contact_at,
            in_pool=row.owner_id is None,
            pool_entered_at=row.pool_entered_at,
            taken_at=row.taken_at,
            version=row.version,
            created_at=row.created_at,
            updated_at=row.updated_at,
            pk=row.id,
            owner_pk=row.owner_id,
            created_by_pk=row.created_by_id,
            pool_pk=row.pool_id,
            previous_owner_pk=row.previous_owner_id,
        )

    @strawberry.field
    async def owner(self, info: Info) -> User | None:
        if self.owner_pk is None:
            return None
        return User.of(await info.context.loaders.user.load(self.owner_pk))

    @strawberry.field
    async def created_by(self, info: Info) -> User:
        return User.of(await info.context.loaders.user.load(self.created_by_pk))

    @strawberry.field(description="The pool it sits in, or goes back to when released or recycled.")
    async def pool(
        self, info: Info
    ) -> Annotated[Pool, strawberry.lazy("meihua.schema.pools")] | None:
        # Imported here: schema.pools imports this module for the mutations' results.
        from meihua.schema.pools import Pool

        if self.pool_pk is None:
            return None
        return Pool.of(await info.context.loaders.pool.load(self.pool_pk))

    @strawberry.field(description="Who owned it before it last went into a pool.")
    async def previous_owner(self, info: Info) -> User | None:
        if self.previous_owner_pk is None:
            return None
        return User.of(await info.context.loaders.user.load(self.previous_owner_pk))

    @strawberry.field(description="Every release, claim, assignment, recycling and transfer, "
                      "newest first.")  # fmt: skip
    async def pool_history(
        self, info: Info
    ) -> list[Annotated[PoolMovement, strawberry.lazy("meihua.schema.pools")]]:
        from meihua.schema.pools import PoolMovement

        rows = await info.context.loaders.pool_history_of_customer.load(self.pk)
        return [PoolMovement.of(row) for row in rows]

    @strawberry.field(description="Colleagues sharing the customer, expired ones included.")
    async def team(self, info: Info) -> list[CustomerTeamMember]:
        rows = await info.context.loaders.team_of_customer.load(self.pk)
        return [CustomerTeamMember.of(row) for row in rows]

    @strawberry.field(description="Primary contact first, then in the order entered.")
    async def contacts(self, info: Info) -> list[Contact]:
        return [
            Contact.of(row) for row in await info.context.loaders.contacts_of_customer.load(self.pk)
        ]

    @strawberry.field(description="Which of the five decision roles the contacts fill (梅花).")
    async def decision_circle(self, info: Info) -> DecisionCircle:
        return DecisionCircle.of(await info.context.loaders.contacts_of_customer.load(self.pk))

    @strawberry.field(description="Its opportunities you may see, newest first.")
    async def opportunities(
        self, info: Info
    ) -> list[Annotated[Opportunity, strawberry.lazy("meihua.schema.opportunities")]]:
        viewer = info.context.viewer
        # Imported here: schema.opportunities imports this module for Opportunity.customer.
        from meihua.schema.opportunities import Opportunity

        rows = await info.context.loaders.opportunities_of_customer.load((viewer, self.pk))
        return [Opportunity.of(row) for row in rows]

    @strawberry.field(description="Its contracts you may see, newest first.")
    async def contracts(
        self, info: Info
    ) -> list[Annotated[Contract, strawberry.lazy("meihua.schema.contracts")]]:
        viewer = info.context.viewer
        # Imported here: schema.contracts imports this module for Contract.customer.
        from meihua.schema.contracts import Contract

        rows = await info.context.loaders.contracts_of_customer.load((viewer, self.pk))
        return [Contract.of(row) for row in rows]

    @strawberry.field(description="应收: what its approved contracts you may see still owe.")
    async def receivable(self, info: Info) -> Decimal:
        viewer = info.context.viewer
        from meihua.schema.contracts import receivable_of

        rows = await info.context.loaders.contracts_of_customer.load((viewer, self.pk))
        return await receivable_of(info, rows)

    timeline = timeline_field(models.RecordType.CUSTOMER)


@strawberry.input
class CustomerFilter:
    owner_id: strawberry.ID | None = None
    search: str | None = strawberry.field(
        default=None, description="Matches the name (normalized) or the phone."
    )
    level: str | None = None
    industry: str | None = None
    region: str | None = None
    source: str | None = None
    tag: str | None = strawberry.field(default=None, description="Customers carrying this tag.")
    locked: bool | None = None
    deal_status: DealStatus | None = None
    in_pool: bool | None = strawberry.field(
        default=None, description="true: customers sitting in a pool; false: owned ones."
    )
    pool_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="Customers belonging to this pool (with `inPool: true`, sitting in it).",
    )

    def domain(self) -> customers.CustomerFilter:
        """The filter as the list and export functions take it."""
        return customers.CustomerFilter(
            owner_id=reference_id(self.owner_id, "User", "ownerId")
            if self.owner_id is not None
            else None,
            search=self.search,
            level=self.level,
            industry=self.industry,
            region=self.region,
            source=self.source,
            tag=self.tag,
            locked=self.locked,
            deal_status=self.deal_status,
            in_pool=self.in_pool,
            pool_id=reference_id(self.pool_id, "Pool", "poolId")
            if self.pool_id is not None
            else None,
        )


@strawberry.enum
class CustomerOrderField(Enum):
    CREATED_AT = "created_at"
    UPDATED_AT = "updated_at"
    NAME = "name_key"
    LAST_FOLLOW_UP_AT = "last_followup_at"
    POOL_ENTERED_AT = "pool_entered_at"

    @property
    def if_null(self) -> datetime | None:
        """Never followed up, never pooled: as long ago as it gets."""
        nullable = (CustomerOrderField.LAST_FOLLOW_UP_AT, CustomerOrderField.POOL_ENTERED_AT)
        return LONG_AGO if self in nullable else None


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
    tags: list[str] | None = None
    deal_status: DealStatus | None = None


@strawberry.input(
    description="Send only what changes; an empty string clears a field, [] clears the tags."
)
class UpdateCustomerInput:
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


@strawberry.input(
    description="What moves along with the customers and what the previous owner keeps."
)
class TransferCustomersInput:
    with_opportunities: bool = strawberry.field(
        default=False, description="Also move the previous owner's opportunities on them."
    )
    with_contracts: bool = strawberry.field(
        default=False, description="Also move the previous owner's contracts on them."
    )
    previous_owner: PreviousOwner = PreviousOwner.REMOVE


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
            where.domain(),
        )
        order = order_by or CustomerOrder()
        # Sorting by a field hidden from the viewer would reveal it.
        await check_filterable(viewer, models.RecordType.CUSTOMER, [order.field.value])
        return await connection(
            info,
            query,
            Ordering(order.field.value, order.descending, if_null=order.field.if_null),
            Customer,
            first=first,
            after=after,
            last=last,
            before=before,
        )


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

    @strawberry.mutation(
        description="Delete a customer with its contacts, follow-ups and tasks; "
        "CONFLICT while it has opportunities or contracts."
    )
    async def delete_customer(self, info: Info, id: strawberry.ID) -> DeletePayload:
        viewer = info.context.viewer
        await customers.delete_customer(viewer, record_id(id, "Customer"))
        return DeletePayload(deleted_id=id)

    @strawberry.mutation(description="Exempt customers from automatic recycling (锁定).")
    async def lock_customers(self, info: Info, ids: list[strawberry.ID]) -> list[Customer]:
        viewer = info.context.viewer
        rows = await customers.set_locked(viewer, [record_id(i, "Customer") for i in ids], True)
        return [Customer.of(row) for row in rows]

    @strawberry.mutation
    async def unlock_customers(self, info: Info, ids: list[strawberry.ID]) -> list[Customer]:
        viewer = info.context.viewer
        rows = await customers.set_locked(viewer, [record_id(i, "Customer") for i in ids], False)
        return [Customer.of(row) for row in rows]

    @strawberry.mutation(
        description="Hand customers (with their contacts) to a new owner (转移); all or none."
    )
    async def transfer_customers(
        self,
        info: Info,
        ids: list[strawberry.ID],
        owner_id: strawberry.ID,
        input: TransferCustomersInput | None = None,
    ) -> list[Customer]:
        viewer = info.context.viewer
        options = input or TransferCustomersInput()
        rows = await customer_transfer.transfer_customers(
            viewer,
            [record_id(i, "Customer") for i in ids],
            reference_id(owner_id, "User", "ownerId"),
            customer_transfer.TransferOptions(
                with_opportunities=options.with_opportunities,
                with_contracts=options.with_contracts,
                previous_owner=options.previous_owner,
            ),
        )
        return [Customer.of(row) for row in rows]

    @strawberry.mutation(description="Share a customer with a colleague, READ or WRITE.")
    async def add_customer_team_member(
        self,
        info: Info,
        customer_id: strawberry.ID,
        user_id: strawberry.ID,
        access: TeamAccess = TeamAccess.READ,
        expires_at: datetime | None = None,
    ) -> Customer:
        viewer = info.context.viewer
        row = await teams.add_member(
            viewer,
            record_id(customer_id, "Customer"),
            reference_id(user_id, "User", "userId"),
            access,
            expires_at,
        )
        return Customer.of(row)

    @strawberry.mutation(
        description="Change a member's access or expiry; `expiresAt: null` makes it permanent."
    )
    async def update_customer_team_member(
        self,
        info: Info,
        customer_id: strawberry.ID,
        user_id: strawberry.ID,
        access: TeamAccess | None = None,
        expires_at: datetime | None = strawberry.UNSET,
    ) -> Customer:
        viewer = info.context.viewer
        row = await teams.update_member(
            viewer,
            record_id(customer_id, "Customer"),
            reference_id(user_id, "User", "userId"),
            access,
            UNSET if expires_at is strawberry.UNSET else expires_at,
        )
        return Customer.of(row)

    @strawberry.mutation(description="Take a colleague off the team; anyone may leave a team.")
    async def remove_customer_team_member(
        self, info: Info, customer_id: strawberry.ID, user_id: strawberry.ID
    ) -> Customer:
        viewer = info.context.viewer
        row = await teams.remove_member(
            viewer, record_id(customer_id, "Customer"), reference_id(user_id, "User", "userId")
        )
        return Customer.of(row)

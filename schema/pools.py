"""GraphQL API of the public pools (公海): pools and their rules, release,
claim and assign, and each customer's pool history."""

from __future__ import annotations

from datetime import datetime

import strawberry

from meihua import models
from meihua.resolvers import pool_moves, pools
from meihua.resolvers.org import UNSET
from meihua.schema.context import Info
from meihua.schema.customers import Customer
from meihua.schema.org import DeletePayload, Department, User
from meihua.schema.recycling import RecycleRule
from meihua.schema.relay import Node, record_id, reference_id, reference_ids, to_global_id

PoolMovementKind = strawberry.enum(
    models.PoolMovementKind, description="How a customer moved between owners and pools."
)


@strawberry.type(description="A public pool (公海) with its claim and recycle rules.")
class Pool(Node):
    name: str
    company_wide: bool = strawberry.field(
        description="Open to everybody; other pools serve their departments and those below."
    )
    max_owned: int | None = strawberry.field(
        description="How many not-dealt customers of this pool one user may own; null: no cap."
    )
    max_claims_per_day: int | None = strawberry.field(
        description="Claims from this pool per user and day (company time); null: no cap."
    )
    reclaim_cooldown_days: int | None = strawberry.field(
        description="Days before whoever gave a customer up may claim it again; null: none."
    )
    recycle_not_dealt_after_days: int | None = strawberry.field(
        description="Not-dealt customers without a follow-up for this long come back; null: off."
    )
    recycle_dealt_after_days: int | None = strawberry.field(
        description="Dealt customers without a follow-up for this long come back; null: off."
    )
    recycle_no_deal_after_days: int | None = strawberry.field(
        description="Customers without a deal this long after being taken come back; null: off."
    )
    warning_days: int = strawberry.field(
        description="Owners are warned this many days before a customer is recycled."
    )
    version: int
    created_at: datetime
    updated_at: datetime
    pk: strawberry.Private[int]

    @classmethod
    def of(cls, row: models.Pool) -> Pool:
        return cls(
            id=to_global_id("Pool", row.id),
            name=row.name,
            company_wide=row.company_wide,
            max_owned=row.max_owned,
            max_claims_per_day=row.max_claims_per_day,
            reclaim_cooldown_days=row.reclaim_cooldown_days,
            recycle_not_dealt_after_days=row.recycle_not_dealt_after_days,
            recycle_dealt_after_days=row.recycle_dealt_after_days,
            recycle_no_deal_after_days=row.recycle_no_deal_after_days,
            warning_days=row.warning_days,
            version=row.version,
            created_at=row.created_at,
            updated_at=row.updated_at,
            pk=row.id,
        )

    @strawberry.field(description="Member departments, by name (none for the company-wide pool).")
    async def departments(self, info: Info) -> list[Department]:
        rows = await info.context.loaders.departments_of_pool.load(self.pk)
        return [Department.of(row) for row in rows]

    @strawberry.field(description="Customers sitting in the pool now.")
    async def customer_count(self, info: Info) -> int:
        return await info.context.loaders.customers_in_pool.load(self.pk)


async def _user(info: Info, pk: int | None) -> User | None:
    if pk is None:
        return None
    return User.of(await info.context.loaders.user.load(pk))


@strawberry.type(description="One move of a customer: released, claimed, assigned, recycled "
                 "or transferred, with who did it and why.")  # fmt: skip
class PoolMovement:
    id: strawberry.ID
    kind: PoolMovementKind
    reason: str | None
    rule: RecycleRule | None = strawberry.field(description="The rule that recycled it.")
    at: datetime
    customer_pk: strawberry.Private[int]
    pool_pk: strawberry.Private[int | None]
    actor_pk: strawberry.Private[int | None]
    previous_owner_pk: strawberry.Private[int | None]
    new_owner_pk: strawberry.Private[int | None]

    @classmethod
    def of(cls, row: models.PoolMovement) -> PoolMovement:
        return cls(
            id=to_global_id("PoolMovement", row.id),
            kind=row.kind,
            reason=row.reason,
            rule=row.rule,
            at=row.created_at,
            customer_pk=row.customer_id,
            pool_pk=row.pool_id,
            actor_pk=row.actor_id,
            previous_owner_pk=row.previous_owner_id,
            new_owner_pk=row.new_owner_id,
        )

    @strawberry.field
    async def customer(self, info: Info) -> Customer:
        return Customer.of(await info.context.loaders.customer.load(self.customer_pk))

    @strawberry.field(description="The pool it went to or came from; null once deleted.")
    async def pool(self, info: Info) -> Pool | None:
        if self.pool_pk is None:
            return None
        row = await info.context.loaders.pool.load(self.pool_pk)
        return Pool.of(row) if row is not None else None

    @strawberry.field(description="Who moved it; null when recycling did.")
    async def actor(self, info: Info) -> User | None:
        return await _user(info, self.actor_pk)

    @strawberry.field
    async def previous_owner(self, info: Info) -> User | None:
        return await _user(info, self.previous_owner_pk)

    @strawberry.field
    async def new_owner(self, info: Info) -> User | None:
        return await _user(info, self.new_owner_pk)


@strawberry.input
class CreatePoolInput:
    name: str
    department_ids: list[strawberry.ID] = strawberry.field(
        description="The departments it serves (and those below them); at least one."
    )
    max_owned: int | None = None
    max_claims_per_day: int | None = None
    reclaim_cooldown_days: int | None = None
    recycle_not_dealt_after_days: int | None = None
    recycle_dealt_after_days: int | None = None
    recycle_no_deal_after_days: int | None = None
    warning_days: int = 3


@strawberry.input(description="Send only what changes; null turns a cap or rule off.")
class UpdatePoolInput:
    name: str | None = None
    department_ids: list[strawberry.ID] | None = None
    max_owned: int | None = strawberry.UNSET
    max_claims_per_day: int | None = strawberry.UNSET
    reclaim_cooldown_days: int | None = strawberry.UNSET
    recycle_not_dealt_after_days: int | None = strawberry.UNSET
    recycle_dealt_after_days: int | None = strawberry.UNSET
    recycle_no_deal_after_days: int | None = strawberry.UNSET
    warning_days: int | None = None


_RULES = (
    "max_owned",
    "max_claims_per_day",
    "reclaim_cooldown_days",
    "recycle_not_dealt_after_days",
    "recycle_dealt_after_days",
    "recycle_no_deal_after_days",
)


def _input(data: CreatePoolInput | UpdatePoolInput) -> pools.PoolInput:
    rules = {name: getattr(data, name) for name in _RULES}
    return pools.PoolInput(
        name=data.name,
        department_ids=(
            reference_ids(data.department_ids, "Department", "departmentIds")
            if data.department_ids is not None
            else None
        ),
        warning_days=data.warning_days,
        **{name: UNSET if value is strawberry.UNSET else value for name, value in rules.items()},
    )


@strawberry.type
class PoolQuery:
    @strawberry.field(
        description="The pools you are a member of (every pool with `pool:manage`), "
        "the company-wide pool first."
    )
    async def pools(self, info: Info) -> list[Pool]:
        viewer = info.context.viewer
        rows = await (await pools.visible_pools(viewer)).order_by("-company_wide", "name", "id")
        return [Pool.of(row) for row in rows]


@strawberry.type
class PoolMutation:
    @strawberry.mutation(
        description="Put your customers (or those of people in your scope) into the public "
        "pool (放入公海): each into its own pool, or all into `poolId`; all or none."
    )
    async def release_customers(
        self,
        info: Info,
        ids: list[strawberry.ID],
        reason: str | None = None,
        pool_id: strawberry.ID | None = None,
    ) -> list[Customer]:
        viewer = info.context.viewer
        rows = await pool_moves.release_customers(
            viewer,
            [record_id(i, "Customer") for i in ids],
            reason,
            reference_id(pool_id, "Pool", "poolId") if pool_id is not None else None,
        )
        return [Customer.of(row) for row in rows]

    @strawberry.mutation(
        description="Take a customer from one of your pools (领取). CONFLICT when someone "
        "was faster, LIMIT_EXCEEDED over the pool's caps, FORBIDDEN during the cool-down "
        "(`extensions.until` says when it ends)."
    )
    async def claim_customer(self, info: Info, id: strawberry.ID) -> Customer:
        viewer = info.context.viewer
        row = await pool_moves.claim_customer(
            viewer, record_id(id, "Customer"), info.context.settings.timezone
        )
        return Customer.of(row)

    @strawberry.mutation(
        description="Hand pool customers to a user (分配), within the pools' caps; all or none."
    )
    async def assign_customers(
        self, info: Info, ids: list[strawberry.ID], owner_id: strawberry.ID
    ) -> list[Customer]:
        viewer = info.context.viewer
        rows = await pool_moves.assign_customers(
            viewer,
            [record_id(i, "Customer") for i in ids],
            reference_id(owner_id, "User", "ownerId"),
        )
        return [Customer.of(row) for row in rows]

    @strawberry.mutation(description="A pool for some departments, with its rules.")
    async def create_pool(self, info: Info, input: CreatePoolInput) -> Pool:
        viewer = info.context.viewer
        return Pool.of(await pools.create_pool(viewer, _input(input)))

    @strawberry.mutation(description="Fails with CONFLICT when `expectedVersion` is stale.")
    async def update_pool(
        self,
        info: Info,
        id: strawberry.ID,
        input: UpdatePoolInput,
        expected_version: int | None = None,
    ) -> Pool:
        viewer = info.context.viewer
        row = await pools.update_pool(
            viewer, record_id(id, "Pool"), _input(input), expected_version
        )
        return Pool.of(row)

    @strawberry.mutation(
        description="Delete a department pool; CONFLICT while customers belong to it."
    )
    async def delete_pool(self, info: Info, id: strawberry.ID) -> DeletePayload:
        viewer = info.context.viewer
        await pools.delete_pool(viewer, record_id(id, "Pool"))
        return DeletePayload(deleted_id=id)

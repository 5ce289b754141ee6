"""GraphQL API of follow-up records (跟进记录)."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated

import strawberry

from meihua import models
from meihua.resolvers import followups
from meihua.resolvers.pagination import Ordering
from meihua.schema.activity import (
    RecordType,
    company_time,
    record_global_id,
    record_reference,
)
from meihua.schema.context import Info
from meihua.schema.org import DeletePayload, User
from meihua.schema.relay import Connection, Node, connection, record_id, reference_id, to_global_id

if TYPE_CHECKING:
    from meihua.schema.customers import Customer

FollowUpMethod = strawberry.enum(models.FollowUpMethod, description="How the contact was made.")


@strawberry.type(
    description="A follow-up (跟进记录) on a lead, customer, contact, opportunity or contract."
)
class FollowUp(Node):
    method: FollowUpMethod
    content: str
    occurred_at: datetime = strawberry.field(description="When the contact took place.")
    next_contact_at: datetime | None = strawberry.field(
        description="When to contact again; it is also a task of the author."
    )
    target_id: strawberry.ID = strawberry.field(description="The record followed up.")
    target_type: RecordType
    created_at: datetime
    editable_until: datetime = strawberry.field(
        description="Its author may correct or delete it until then (super admins always)."
    )
    author_pk: strawberry.Private[int]
    customer_pk: strawberry.Private[int | None]

    @classmethod
    def of(cls, row: models.FollowUp) -> FollowUp:
        return cls(
            id=to_global_id("FollowUp", row.id),
            method=row.method,
            content=row.content,
            occurred_at=row.occurred_at,
            next_contact_at=row.next_contact_at,
            target_id=record_global_id(row.target_type, row.target_id),
            target_type=row.target_type,
            created_at=row.created_at,
            editable_until=row.created_at + followups.EDIT_WINDOW,
            author_pk=row.author_id,
            customer_pk=row.customer_id,
        )

    @strawberry.field
    async def author(self, info: Info) -> User:
        return User.of(await info.context.loaders.user.load(self.author_pk))

    @strawberry.field(description="The customer above the record (none for a lead).")
    async def customer(
        self, info: Info
    ) -> Annotated[Customer, strawberry.lazy("meihua.schema.customers")] | None:
        viewer = info.context.viewer
        # Imported here: schema.customers imports this module for Customer.timeline.
        from meihua.schema.customers import Customer

        if self.customer_pk is None:
            return None
        row = await info.context.loaders.visible_customer.load((viewer, self.customer_pk))
        return Customer.of(row) if row is not None else None


@strawberry.input
class FollowUpFilter:
    target_id: strawberry.ID | None = strawberry.field(
        default=None, description="Follow-ups on exactly this record."
    )
    customer_id: strawberry.ID | None = strawberry.field(
        default=None, description="Follow-ups on the customer and everything under it."
    )
    author_id: strawberry.ID | None = None
    method: FollowUpMethod | None = None
    occurred_from: datetime | None = None
    occurred_to: datetime | None = strawberry.field(default=None, description="Exclusive.")


@strawberry.enum
class FollowUpOrderField(Enum):
    OCCURRED_AT = "occurred_at"
    CREATED_AT = "created_at"


@strawberry.input
class FollowUpOrder:
    field: FollowUpOrderField = FollowUpOrderField.OCCURRED_AT
    descending: bool = True


@strawberry.input
class CreateFollowUpInput:
    target_id: strawberry.ID = strawberry.field(
        description="A lead, customer, contact, opportunity or contract."
    )
    method: FollowUpMethod
    content: str
    next_contact_at: datetime | None = strawberry.field(
        default=None, description="Also puts a task in your schedule, due then."
    )
    occurred_at: datetime | None = strawberry.field(
        default=None, description="Defaults to now; never in the future."
    )


@strawberry.input(description="Send only what changes. The time cannot be changed.")
class UpdateFollowUpInput:
    method: FollowUpMethod | None = None
    content: str | None = None


@strawberry.type
class FollowUpQuery:
    @strawberry.field(description="Follow-ups on records you may see.")
    async def follow_ups(
        self,
        info: Info,
        filter: FollowUpFilter | None = None,
        order_by: FollowUpOrder | None = None,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[FollowUp]:
        viewer = info.context.viewer
        where = filter or FollowUpFilter()
        timezone = info.context.settings.timezone
        query = await followups.list_followups(
            viewer,
            followups.FollowUpFilter(
                target=record_reference(where.target_id, "targetId") if where.target_id else None,
                customer_id=reference_id(where.customer_id, "Customer", "customerId")
                if where.customer_id
                else None,
                author_id=reference_id(where.author_id, "User", "authorId")
                if where.author_id
                else None,
                method=where.method,
                occurred_from=company_time(where.occurred_from, timezone),
                occurred_to=company_time(where.occurred_to, timezone),
            ),
        )
        order = order_by or FollowUpOrder()
        return await connection(
            info,
            query,
            Ordering(order.field.value, order.descending),
            FollowUp,
            first=first,
            after=after,
            last=last,
            before=before,
        )


@strawberry.type
class FollowUpMutation:
    @strawberry.mutation(
        description="Record a follow-up; it moves the record's and its customer's "
        "last follow-up time, which recycling measures."
    )
    async def create_follow_up(self, info: Info, input: CreateFollowUpInput) -> FollowUp:
        viewer = info.context.viewer
        timezone = info.context.settings.timezone
        target_type, target_id = record_reference(input.target_id, "targetId")
        row = await followups.create_followup(
            viewer,
            followups.FollowUpInput(
                target_type=target_type,
                target_id=target_id,
                method=input.method,
                content=input.content,
                occurred_at=company_time(input.occurred_at, timezone),
                next_contact_at=company_time(input.next_contact_at, timezone),
            ),
        )
        return FollowUp.of(row)

    @strawberry.mutation(description="Correct your follow-up within 24 hours of entering it.")
    async def update_follow_up(
        self, info: Info, id: strawberry.ID, input: UpdateFollowUpInput
    ) -> FollowUp:
        viewer = info.context.viewer
        row = await followups.update_followup(
            viewer,
            record_id(id, "FollowUp"),
            method=input.method,
            content=input.content,
        )
        return FollowUp.of(row)

    @strawberry.mutation(description="Delete your follow-up within 24 hours of entering it.")
    async def delete_follow_up(self, info: Info, id: strawberry.ID) -> DeletePayload:
        viewer = info.context.viewer
        await followups.delete_followup(viewer, record_id(id, "FollowUp"))
        return DeletePayload(deleted_id=id)

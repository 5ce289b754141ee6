"""GraphQL API of contacts (联系人) and the decision circle (梅花分配理论)."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated

import strawberry

from meihua import models
from meihua.resolvers import contacts
from meihua.resolvers.org import UNSET
from meihua.resolvers.pagination import Ordering
from meihua.schema.context import Info
from meihua.schema.org import DeletePayload, User
from meihua.schema.relay import Connection, Node, connection, record_id, reference_id, to_global_id
from meihua.schema.timeline import timeline_field

if TYPE_CHECKING:
    from meihua.schema.customers import Customer

DecisionRole = strawberry.enum(
    models.DecisionRole,
    description=(
        "The five petals of the decision circle: 首倡者, 技术把关者, 关键使用者, "
        "辅助决策者, 内线支持者."
    ),
)


@strawberry.type
class Contact(Node):
    name: str
    title: str | None
    phone: str | None
    mobile: str | None
    email: str | None
    is_primary: bool
    decision_role: DecisionRole | None
    remarks: str | None
    last_follow_up_at: datetime | None
    next_contact_at: datetime | None
    version: int
    created_at: datetime
    updated_at: datetime
    customer_pk: strawberry.Private[int]
    created_by_pk: strawberry.Private[int]

    @classmethod
    def of(cls, row: models.Contact) -> Contact:
        return cls(
            id=to_global_id("Contact", row.id),
            name=row.name,
            title=row.title,
            phone=row.phone,
            mobile=row.mobile,
            email=row.email,
            is_primary=row.is_primary,
            decision_role=row.decision_role,
            remarks=row.remarks,
            last_follow_up_at=row.last_followup_at,
            next_contact_at=row.next_contact_at,
            version=row.version,
            created_at=row.created_at,
            updated_at=row.updated_at,
            customer_pk=row.customer_id,
            created_by_pk=row.created_by_id,
        )

    @strawberry.field
    async def customer(
        self, info: Info
    ) -> Annotated[Customer, strawberry.lazy("meihua.schema.customers")]:
        from meihua.schema.customers import Customer

        # A contact is visible exactly when its customer is: no check needed here.
        return Customer.of(await info.context.loaders.customer.load(self.customer_pk))

    @strawberry.field
    async def created_by(self, info: Info) -> User:
        return User.of(await info.context.loaders.user.load(self.created_by_pk))

    timeline = timeline_field(models.RecordType.CONTACT)


@strawberry.type(description="One petal of the decision circle and the contacts filling it.")
class DecisionPetal:
    role: DecisionRole
    contacts: list[Contact]
    filled: bool


@strawberry.type(
    description="Who fills each of the five petals; all five filled is being in the circle."
)
class DecisionCircle:
    petals: list[DecisionPetal] = strawberry.field(description="One per role, in enum order.")
    missing_roles: list[DecisionRole]
    coverage: int = strawberry.field(description="Filled petals, 0–5.")
    complete: bool

    @classmethod
    def of(cls, rows: list[models.Contact]) -> DecisionCircle:
        petals = [
            DecisionPetal(role=role, contacts=[Contact.of(c) for c in found], filled=bool(found))
            for role, found in contacts.decision_circle(rows)
        ]
        missing = [petal.role for petal in petals if not petal.filled]
        return cls(
            petals=petals,
            missing_roles=missing,
            coverage=len(petals) - len(missing),
            complete=not missing,
        )


@strawberry.input
class ContactFilter:
    customer_id: strawberry.ID | None = None
    decision_role: DecisionRole | None = None
    search: str | None = strawberry.field(
        default=None, description="Matches name, phone, mobile or email."
    )

    def domain(self) -> contacts.ContactFilter:
        """The filter as the list and export functions take it."""
        return contacts.ContactFilter(
            customer_id=reference_id(self.customer_id, "Customer", "customerId")
            if self.customer_id is not None
            else None,
            decision_role=self.decision_role,
            search=self.search,
        )


@strawberry.enum
class ContactOrderField(Enum):
    CREATED_AT = "created_at"
    UPDATED_AT = "updated_at"
    NAME = "name"


@strawberry.input
class ContactOrder:
    field: ContactOrderField = ContactOrderField.CREATED_AT
    descending: bool = True


@strawberry.input
class CreateContactInput:
    customer_id: strawberry.ID
    name: str
    decision_role: DecisionRole | None = None
    phone: str | None = None
    email: str | None = None
    title: str | None = None
    mobile: str | None = None
    is_primary: bool | None = strawberry.field(
        default=None, description="Defaults to true for a customer's first contact."
    )
    remarks: str | None = None


@strawberry.input(
    description="Send only what changes; an empty string clears a field, null clears the role."
)
class UpdateContactInput:
    name: str | None = None
    decision_role: DecisionRole | None = strawberry.UNSET
    phone: str | None = None
    email: str | None = None
    title: str | None = None
    mobile: str | None = None
    is_primary: bool | None = strawberry.field(
        default=None, description="true makes this the primary contact in place of the old one."
    )
    remarks: str | None = None


def _input(data: CreateContactInput | UpdateContactInput) -> contacts.ContactInput:
    role = data.decision_role
    return contacts.ContactInput(
        name=data.name,
        title=data.title,
        phone=data.phone,
        mobile=data.mobile,
        email=data.email,
        remarks=data.remarks,
        is_primary=data.is_primary,
        decision_role=UNSET if role is strawberry.UNSET else role,
    )


@strawberry.type
class ContactQuery:
    @strawberry.field(description="Contacts of the customers the caller may see.")
    async def contacts(
        self,
        info: Info,
        filter: ContactFilter | None = None,
        order_by: ContactOrder | None = None,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[Contact]:
        viewer = info.context.viewer
        where = filter or ContactFilter()
        query = await contacts.list_contacts(
            viewer,
            where.domain(),
        )
        order = order_by or ContactOrder()
        return await connection(
            info,
            query,
            Ordering(order.field.value, order.descending),
            Contact,
            first=first,
            after=after,
            last=last,
            before=before,
        )


@strawberry.type
class ContactMutation:
    @strawberry.mutation(description="Add a contact to a customer the caller may change.")
    async def create_contact(self, info: Info, input: CreateContactInput) -> Contact:
        viewer = info.context.viewer
        customer = reference_id(input.customer_id, "Customer", "customerId")
        return Contact.of(await contacts.create_contact(viewer, customer, _input(input)))

    @strawberry.mutation(description="Fails with CONFLICT when `expectedVersion` is stale.")
    async def update_contact(
        self,
        info: Info,
        id: strawberry.ID,
        input: UpdateContactInput,
        expected_version: int | None = None,
    ) -> Contact:
        viewer = info.context.viewer
        row = await contacts.update_contact(
            viewer, record_id(id, "Contact"), _input(input), expected_version
        )
        return Contact.of(row)

    @strawberry.mutation(
        description="Delete a contact; their follow-ups and tasks move to the customer."
    )
    async def delete_contact(self, info: Info, id: strawberry.ID) -> DeletePayload:
        viewer = info.context.viewer
        await contacts.delete_contact(viewer, record_id(id, "Contact"))
        return DeletePayload(deleted_id=id)

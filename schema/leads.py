"""GraphQL API of leads (线索): the lead list, the lead pool and conversion."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import Enum

import strawberry

from meihua import models
from meihua.resolvers import lead_conversion, lead_pool, leads
from meihua.resolvers.field_access import check_filterable
from meihua.resolvers.org import UNSET
from meihua.schema.contacts import DecisionRole
from meihua.schema.context import Info
from meihua.schema.customers import Customer
from meihua.schema.org import DeletePayload, User
from meihua.schema.relay import Connection, Node, connection, record_id, reference_id, to_global_id
from meihua.schema.timeline import timeline_field

LeadStatus = strawberry.enum(
    models.LeadStatus,
    description="NEW until followed up, then FOLLOWING; CONVERTED or INVALID at the end.",
)


@strawberry.type
class Lead(Node):
    company_name: str
    contact_name: str | None
    phone: str | None
    email: str | None
    source: str | None
    industry: str | None
    region: str | None
    status: LeadStatus
    invalid_reason: str | None
    remarks: str | None
    in_pool: bool = strawberry.field(description="True while no one owns it (线索池).")
    last_follow_up_at: datetime | None
    next_contact_at: datetime | None = strawberry.field(
        description="Set by follow-ups; read-only here."
    )
    converted_at: datetime | None
    converted_contact_id: strawberry.ID | None = strawberry.field(
        description="The contact the lead became (see `node`)."
    )
    converted_opportunity_id: strawberry.ID | None = strawberry.field(
        description="The opportunity the lead became, if one was created (see `node`)."
    )
    version: int
    created_at: datetime
    updated_at: datetime
    owner_pk: strawberry.Private[int | None]
    created_by_pk: strawberry.Private[int]
    converted_customer_pk: strawberry.Private[int | None]

    @classmethod
    def of(cls, row: models.Lead) -> Lead:
        def global_id(type_name: str, pk: int | None) -> strawberry.ID | None:
            return to_global_id(type_name, pk) if pk is not None else None

        return cls(
            id=to_global_id("Lead", row.id),
            company_name=row.company_name,
            contact_name=row.contact_name,
            phone=row.phone,
            email=row.email,
            source=row.source,
            industry=row.industry,
            region=row.region,
            status=row.status,
            invalid_reason=row.invalid_reason,
            remarks=row.remarks,
            in_pool=row.owner_id is None,
            last_follow_up_at=row.last_followup_at,
            next_contact_at=row.next_contact_at,
            converted_at=row.converted_at,
            converted_contact_id=global_id("Contact", row.converted_contact_id),
            converted_opportunity_id=global_id("Opportunity", row.converted_opportunity_id),
            version=row.version,
            created_at=row.created_at,
            updated_at=row.updated_at,
            owner_pk=row.owner_id,
            created_by_pk=row.created_by_id,
            converted_customer_pk=row.converted_customer_id,
        )

    @strawberry.field(description="Null while the lead is in the lead pool.")
    async def owner(self, info: Info) -> User | None:
        if self.owner_pk is None:
            return None
        return User.of(await info.context.loaders.user.load(self.owner_pk))

    @strawberry.field
    async def created_by(self, info: Info) -> User:
        return User.of(await info.context.loaders.user.load(self.created_by_pk))

    @strawberry.field(description="The customer the lead became; null if the caller cannot see it.")
    async def converted_customer(self, info: Info) -> Customer | None:
        viewer = info.context.viewer
        if self.converted_customer_pk is None:
            return None
        row = await info.context.loaders.visible_customer.load((viewer, self.converted_customer_pk))
        return Customer.of(row) if row is not None else None

    timeline = timeline_field(models.RecordType.LEAD)


@strawberry.input
class LeadFilter:
    status: LeadStatus | None = None
    owner_id: strawberry.ID | None = None
    in_pool: bool | None = strawberry.field(
        default=None, description="true: only the lead pool; false: only owned leads."
    )
    source: str | None = None
    industry: str | None = None
    region: str | None = None
    created_from: datetime | None = strawberry.field(default=None, description="Inclusive.")
    created_to: datetime | None = strawberry.field(default=None, description="Exclusive.")
    followed_up_from: datetime | None = strawberry.field(default=None, description="Inclusive.")
    followed_up_to: datetime | None = strawberry.field(default=None, description="Exclusive.")
    search: str | None = strawberry.field(
        default=None, description="Matches the company or contact name, or the phone digits."
    )

    def domain(self) -> leads.LeadFilter:
        """The filter as the list and export functions take it."""
        return leads.LeadFilter(
            status=self.status,
            owner_id=reference_id(self.owner_id, "User", "ownerId")
            if self.owner_id is not None
            else None,
            in_pool=self.in_pool,
            source=self.source,
            industry=self.industry,
            region=self.region,
            created_from=self.created_from,
            created_to=self.created_to,
            followed_up_from=self.followed_up_from,
            followed_up_to=self.followed_up_to,
            search=self.search,
        )


@strawberry.enum
class LeadOrderField(Enum):
    CREATED_AT = "created_at"
    LAST_FOLLOW_UP_AT = "last_followup_at"
    COMPANY_NAME = "company_name"


@strawberry.input(
    description="LAST_FOLLOW_UP_AT counts leads never followed up as the longest ago."
)
class LeadOrder:
    field: LeadOrderField = LeadOrderField.CREATED_AT
    descending: bool = True


@strawberry.input
class CreateLeadInput:
    company_name: str
    contact_name: str | None = None
    phone: str | None = None
    email: str | None = None
    source: str | None = None
    industry: str | None = None
    region: str | None = None
    remarks: str | None = None
    owner_id: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET,
        description="Defaults to the creator; null (the lead pool) or a colleague needs "
        "`lead:distribute`. A lead entered into the pool goes at once to the first "
        "distribution rule that takes it, and stays in the pool when none does.",
    )


@strawberry.input(description="Send only what changes; an empty string clears a field.")
class UpdateLeadInput:
    company_name: str | None = None
    contact_name: str | None = None
    phone: str | None = None
    email: str | None = None
    source: str | None = None
    industry: str | None = None
    region: str | None = None
    remarks: str | None = None


@strawberry.input(description="Unset fields come from the lead; an empty string leaves one empty.")
class LeadCustomerInput:
    name: str | None = strawberry.field(default=None, description="Defaults to the company name.")
    phone: str | None = None
    level: str | None = None
    industry: str | None = None
    region: str | None = None
    source: str | None = None


@strawberry.input(description="Unset fields come from the lead; an empty string leaves one empty.")
class LeadContactInput:
    name: str | None = strawberry.field(default=None, description="Defaults to the contact name.")
    title: str | None = None
    decision_role: DecisionRole | None = None
    phone: str | None = None
    email: str | None = None


@strawberry.input
class LeadOpportunityInput:
    name: str
    amount: Decimal
    stage_id: strawberry.ID | None = strawberry.field(
        default=None, description="Defaults to the pipeline's first stage."
    )
    pipeline_id: strawberry.ID | None = strawberry.field(
        default=None, description="Defaults to the default pipeline (or the stage's)."
    )


@strawberry.input
class ConvertLeadInput:
    customer: LeadCustomerInput | None = None
    contact: LeadContactInput | None = None
    opportunity: LeadOpportunityInput | None = strawberry.field(
        default=None, description="Also open an opportunity on the new customer."
    )


def _lead_input(data: CreateLeadInput | UpdateLeadInput) -> leads.LeadInput:
    return leads.LeadInput(
        company_name=data.company_name,
        contact_name=data.contact_name,
        phone=data.phone,
        email=data.email,
        source=data.source,
        industry=data.industry,
        region=data.region,
        remarks=data.remarks,
    )


def _conversion(data: ConvertLeadInput) -> lead_conversion.Conversion:
    customer = data.customer or LeadCustomerInput()
    contact = data.contact or LeadContactInput()
    opportunity = None
    if data.opportunity is not None:
        stage = data.opportunity.stage_id
        pipeline = data.opportunity.pipeline_id
        opportunity = lead_conversion.OpportunityPart(
            name=data.opportunity.name,
            amount=data.opportunity.amount,
            stage_id=reference_id(stage, "OpportunityStage", "opportunity.stageId")
            if stage is not None
            else None,
            pipeline_id=reference_id(pipeline, "Pipeline", "opportunity.pipelineId")
            if pipeline is not None
            else None,
        )
    return lead_conversion.Conversion(
        customer=lead_conversion.CustomerPart(
            name=customer.name,
            phone=customer.phone,
            level=customer.level,
            industry=customer.industry,
            region=customer.region,
            source=customer.source,
        ),
        contact=lead_conversion.ContactPart(
            name=contact.name,
            title=contact.title,
            decision_role=contact.decision_role,
            phone=contact.phone,
            email=contact.email,
        ),
        opportunity=opportunity,
    )


def _lead_ids(ids: list[strawberry.ID]) -> list[int]:
    return [record_id(i, "Lead") for i in ids]


@strawberry.type
class LeadQuery:
    @strawberry.field(
        description="Leads the caller may see, the lead pool included for distributors."
    )
    async def leads(
        self,
        info: Info,
        filter: LeadFilter | None = None,
        order_by: LeadOrder | None = None,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[Lead]:
        viewer = info.context.viewer
        where = filter or LeadFilter()
        query = await leads.list_leads(
            viewer,
            where.domain(),
        )
        order = order_by or LeadOrder()
        # Sorting by a field hidden from the viewer would reveal it.
        await check_filterable(viewer, models.RecordType.LEAD, [order.field.value])
        return await connection(
            info,
            query,
            leads.lead_ordering(order.field.value, order.descending),
            Lead,
            first=first,
            after=after,
            last=last,
            before=before,
        )


@strawberry.type
class LeadMutation:
    @strawberry.mutation(
        description="Enter a lead; it belongs to its creator unless told otherwise."
    )
    async def create_lead(self, info: Info, input: CreateLeadInput) -> Lead:
        viewer = info.context.viewer
        owner = input.owner_id
        if owner is strawberry.UNSET:
            owner = UNSET
        elif owner is not None:
            owner = reference_id(owner, "User", "ownerId")
        return Lead.of(await leads.create_lead(viewer, _lead_input(input), owner))

    @strawberry.mutation(description="Fails with CONFLICT when `expectedVersion` is stale.")
    async def update_lead(
        self,
        info: Info,
        id: strawberry.ID,
        input: UpdateLeadInput,
        expected_version: int | None = None,
    ) -> Lead:
        viewer = info.context.viewer
        row = await leads.update_lead(
            viewer, record_id(id, "Lead"), _lead_input(input), expected_version
        )
        return Lead.of(row)

    @strawberry.mutation(
        description="Delete a lead with its follow-ups and tasks; CONFLICT once converted."
    )
    async def delete_lead(self, info: Info, id: strawberry.ID) -> DeletePayload:
        viewer = info.context.viewer
        await leads.delete_lead(viewer, record_id(id, "Lead"))
        return DeletePayload(deleted_id=id)

    @strawberry.mutation(description="Set a lead aside as invalid (无效), saying why.")
    async def mark_lead_invalid(self, info: Info, id: strawberry.ID, reason: str) -> Lead:
        viewer = info.context.viewer
        return Lead.of(await leads.mark_invalid(viewer, record_id(id, "Lead"), reason))

    @strawberry.mutation(description="Take an invalid lead up again.")
    async def reopen_lead(self, info: Info, id: strawberry.ID) -> Lead:
        viewer = info.context.viewer
        return Lead.of(await leads.reopen(viewer, record_id(id, "Lead")))

    @strawberry.mutation(description="Hand owned leads to a colleague (转移); all or none.")
    async def transfer_leads(
        self, info: Info, ids: list[strawberry.ID], owner_id: strawberry.ID
    ) -> list[Lead]:
        viewer = info.context.viewer
        rows = await lead_pool.transfer_leads(
            viewer, _lead_ids(ids), reference_id(owner_id, "User", "ownerId")
        )
        return [Lead.of(row) for row in rows]

    @strawberry.mutation(
        description="Distribute leads from the lead pool (or in your scope) to a user (分配)."
    )
    async def assign_leads(
        self, info: Info, ids: list[strawberry.ID], owner_id: strawberry.ID
    ) -> list[Lead]:
        viewer = info.context.viewer
        rows = await lead_pool.assign_leads(
            viewer, _lead_ids(ids), reference_id(owner_id, "User", "ownerId")
        )
        return [Lead.of(row) for row in rows]

    @strawberry.mutation(description="Put owned leads back in the lead pool; all or none.")
    async def release_leads(
        self, info: Info, ids: list[strawberry.ID], reason: str | None = None
    ) -> list[Lead]:
        viewer = info.context.viewer
        rows = await lead_pool.release_leads(viewer, _lead_ids(ids), reason)
        return [Lead.of(row) for row in rows]

    @strawberry.mutation(
        description="Turn a lead into a customer with a contact (and an opportunity), all at "
        "once; DUPLICATE when the customer exists, and then nothing is written."
    )
    async def convert_lead(
        self, info: Info, id: strawberry.ID, input: ConvertLeadInput | None = None
    ) -> Lead:
        viewer = info.context.viewer
        conversion = _conversion(input or ConvertLeadInput())
        return Lead.of(
            await lead_conversion.convert_lead(viewer, record_id(id, "Lead"), conversion)
        )

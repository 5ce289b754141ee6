"""Converting a lead (线索转化): a customer, its first contact and optionally an opportunity.

Everything happens in one transaction. The customer goes through the same
first-in-owns rule as `createCustomer` (it is created by the same function),
so a duplicate answers DUPLICATE, naming the owner only to those who may see
them, and nothing at all is written. The contact becomes the customer's
primary contact; the opportunity starts at the given stage or the first one.
The lead keeps its own history (its follow-ups stay on it) and links to what
it became.

Converting creates those records, so besides `lead:convert` the caller needs
the permission to create each of them (as in Salesforce), and what is created
belongs to the caller: whoever enters a customer first owns it.

Two people converting one lead at once: the lead is claimed by a conditional
update of its status, so exactly one of them goes on and the other gets
CONFLICT.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from tortoise.exceptions import IntegrityError, TransactionManagementError
from tortoise.expressions import F

from meihua.models import (
    Contact,
    Customer,
    DecisionRole,
    Lead,
    LeadStatus,
    Opportunity,
    OpportunityStageChange,
    OpportunityStatus,
    RecordType,
)
from meihua.resolvers.access import Viewer
from meihua.resolvers.customers import CustomerInput, create_customer
from meihua.resolvers.errors import BadUserInput, Conflict, Duplicate, Forbidden
from meihua.resolvers.field_access import check_writable
from meihua.resolvers.leads import EMAIL, get_visible_lead
from meihua.resolvers.oplog import log_operation, plain
from meihua.resolvers.org import clean_name
from meihua.resolvers.permissions import CUSTOMER_CREATE
from meihua.resolvers.stages import starting_stage
from meihua.subscriptions.events import record_event, transaction

LEAD_CONVERT = "lead:convert"
CONTACT_CREATE = "contact:create"
OPPORTUNITY_CREATE = "opportunity:create"

_OPEN = (LeadStatus.NEW, LeadStatus.FOLLOWING)
_CONTACT_LIMITS = {"title": 100, "phone": 40, "email": 200}
CENT = Decimal("0.01")
MONEY_LIMIT = Decimal(10) ** 14  # the column holds 16 digits, 2 of them cents


@dataclass
class CustomerPart:
    """Unset fields come from the lead (name ← company name); "" leaves one empty."""

    name: str | None = None
    phone: str | None = None
    level: str | None = None
    industry: str | None = None
    region: str | None = None
    source: str | None = None


@dataclass
class ContactPart:
    """Unset fields come from the lead (name ← contact name); "" leaves one empty."""

    name: str | None = None
    title: str | None = None
    decision_role: DecisionRole | None = None
    phone: str | None = None
    email: str | None = None


@dataclass
class OpportunityPart:
    name: str
    amount: Decimal
    stage_id: int | None = None  # the first stage of the pipeline unless given
    pipeline_id: int | None = None  # the default pipeline unless given


@dataclass
class Conversion:
    customer: CustomerPart = field(default_factory=CustomerPart)
    contact: ContactPart = field(default_factory=ContactPart)
    opportunity: OpportunityPart | None = None


async def convert_lead(viewer: Viewer, pk: int, conversion: Conversion) -> Lead:
    try:
        return await _convert(viewer, pk, conversion)
    except (IntegrityError, TransactionManagementError):
        # A colleague entered the same customer between the first-in-owns
        # check and our insert, and the unique index refused ours (on
        # PostgreSQL the refused insert aborts the transaction, so it can
        # surface from the next statement). All of it is rolled back; run
        # once more and the check meets their customer and answers DUPLICATE
        # exactly as it does for any latecomer.
        return await _convert(viewer, pk, conversion)


async def _convert(viewer: Viewer, pk: int, conversion: Conversion) -> Lead:
    async with transaction():
        lead = await get_visible_lead(viewer, pk)
        for permission in (LEAD_CONVERT, CUSTOMER_CREATE, CONTACT_CREATE):
            viewer.require(permission)
        if conversion.opportunity is not None:
            viewer.require(OPPORTUNITY_CREATE)
        _refuse_closed(lead)
        contact_values = _contact_values(lead, conversion.contact)
        opportunity_values = None
        if conversion.opportunity is not None:
            opportunity_values = await _opportunity_values(conversion.opportunity)
        with _part("contact"):
            entering = [key for key, value in contact_values.items() if value is not None]
            await check_writable(viewer, RecordType.CONTACT, entering)
        if opportunity_values is not None:
            with _part("opportunity"):
                await check_writable(viewer, RecordType.OPPORTUNITY, ["name", "amount"])
        previous_status = lead.status
        await _claim(lead)
        with _part("customer"):
            customer = await create_customer(viewer, _customer_input(lead, conversion.customer))
        contact = await _create_contact(viewer, customer, contact_values)
        opportunity = None
        if opportunity_values is not None:
            opportunity = await _create_opportunity(viewer, customer, opportunity_values)
        links = {
            "converted_customer_id": customer.id,
            "converted_contact_id": contact.id,
            "converted_opportunity_id": opportunity.id if opportunity else None,
        }
        await Lead.filter(id=lead.id).update(**links)
        await lead.refresh_from_db()
        await _record_conversion(viewer, lead, previous_status, customer, links)
        return lead


def _refuse_closed(lead: Lead) -> None:
    if lead.status == LeadStatus.CONVERTED:
        raise Conflict("The lead was already converted.")
    if lead.status == LeadStatus.INVALID:
        raise Conflict("The lead is marked invalid; reopen it before converting it.")


async def _claim(lead: Lead) -> None:
    """Take the lead for this conversion, or CONFLICT when someone just did."""
    now = datetime.now(UTC)
    claimed = await Lead.filter(id=lead.id, status__in=_OPEN).update(
        status=LeadStatus.CONVERTED, converted_at=now, updated_at=now, version=F("version") + 1
    )
    if not claimed:
        raise Conflict("Someone converted or closed this lead a moment ago.")


@contextmanager
def _part(name: str) -> Iterator[None]:
    """Name the input field at fault by its place in the conversion (`customer.name`)."""
    try:
        yield
    except (BadUserInput, Duplicate, Forbidden) as error:
        if "field" in error.extensions:
            error.extensions["field"] = f"{name}.{error.extensions['field']}"
        raise


def _customer_input(lead: Lead, part: CustomerPart) -> CustomerInput:
    def given(value: str | None, default: str | None) -> str | None:
        return default if value is None else value

    return CustomerInput(
        name=given(part.name, lead.company_name),
        phone=given(part.phone, lead.phone),
        level=part.level,
        industry=given(part.industry, lead.industry),
        region=given(part.region, lead.region),
        source=given(part.source, lead.source),
    )


def _contact_values(lead: Lead, part: ContactPart) -> dict[str, Any]:
    name = part.name if part.name is not None else lead.contact_name
    if name is None:
        raise BadUserInput(
            "The lead has no contact name; give the contact one.", field="contact.name"
        )
    values: dict[str, Any] = {
        "name": clean_name(name, "contact.name"),
        "decision_role": part.decision_role,
    }
    defaults = {"title": None, "phone": lead.phone, "email": lead.email}
    for key, default in defaults.items():
        value = getattr(part, key)
        value = ((default if value is None else value) or "").strip()
        if len(value) > _CONTACT_LIMITS[key]:
            raise BadUserInput(
                f"`{key}` is longer than {_CONTACT_LIMITS[key]} characters.", field=f"contact.{key}"
            )
        if key == "email" and value and not EMAIL.match(value):
            raise BadUserInput("`email` is not an email address.", field="contact.email")
        values[key] = value or None
    return values


async def _opportunity_values(part: OpportunityPart) -> dict[str, Any]:
    amount = part.amount
    if not amount.is_finite() or amount < 0 or amount >= MONEY_LIMIT:
        raise BadUserInput(
            "`amount` must be a sum of money, zero or more.", field="opportunity.amount"
        )
    if amount != amount.quantize(CENT):
        raise BadUserInput("`amount` has at most two decimals.", field="opportunity.amount")
    stage = await starting_stage(part.pipeline_id, part.stage_id, prefix="opportunity.")
    return {
        "name": clean_name(part.name, "opportunity.name", max_length=200),
        "amount": amount.quantize(CENT),
        "stage_id": stage.id,
    }


async def _create_contact(viewer: Viewer, customer: Customer, values: dict[str, Any]) -> Contact:
    """The new customer's first, and so primary, contact."""
    contact = await Contact.create(
        **values, customer_id=customer.id, is_primary=True, created_by_id=viewer.id
    )
    entered = {k: [None, plain(v)] for k, v in values.items() if v}
    await log_operation(
        viewer.id,
        "CREATE",
        RecordType.CONTACT,
        contact.id,
        customer_id=customer.id,
        changes=entered,
        summary=f"Created contact {contact.name} from a lead",
    )
    await record_event(
        "contact.changed",
        record_type=RecordType.CONTACT.value,
        record_id=contact.id,
        owner_id=customer.owner_id,
        customer_id=customer.id,
        actor_id=viewer.id,
        payload={"fields": sorted(entered), "version": contact.version},
    )
    return contact


async def _create_opportunity(
    viewer: Viewer, customer: Customer, values: dict[str, Any]
) -> Opportunity:
    """An open opportunity at its first stage, with the stage history starting there."""
    opportunity = await Opportunity.create(
        **values, customer_id=customer.id, owner_id=viewer.id, created_by_id=viewer.id
    )
    await OpportunityStageChange.create(
        opportunity_id=opportunity.id,
        from_stage_id=None,
        to_stage_id=opportunity.stage_id,
        from_status=None,
        to_status=OpportunityStatus.OPEN,
        actor_id=viewer.id,
    )
    await log_operation(
        viewer.id,
        "CREATE",
        RecordType.OPPORTUNITY,
        opportunity.id,
        customer_id=customer.id,
        changes={k: [None, plain(v)] for k, v in values.items()},
        summary=f"Created opportunity {opportunity.name} from a lead",
    )
    # Entering the pipeline is a stage change pipeline boards show live.
    await record_event(
        "opportunity.stage_changed",
        record_type=RecordType.OPPORTUNITY.value,
        record_id=opportunity.id,
        owner_id=opportunity.owner_id,
        customer_id=customer.id,
        actor_id=viewer.id,
        payload={
            "fromStageId": None,
            "toStageId": opportunity.stage_id,
            "fromStatus": None,
            "status": OpportunityStatus.OPEN.value,
        },
    )
    return opportunity


async def _record_conversion(
    viewer: Viewer,
    lead: Lead,
    previous_status: LeadStatus,
    customer: Customer,
    links: dict[str, int | None],
) -> None:
    """The conversion in the history of the lead and of the customer, and live."""
    changes = {"status": [plain(previous_status), LeadStatus.CONVERTED.value]}
    changes |= {key: [None, value] for key, value in links.items() if value is not None}
    await log_operation(
        viewer.id,
        "CONVERT",
        RecordType.LEAD,
        lead.id,
        changes=changes,
        summary=f"Converted into customer {customer.name}",
    )
    await log_operation(
        viewer.id,
        "CONVERT",
        RecordType.CUSTOMER,
        customer.id,
        customer_id=customer.id,
        changes={"lead_id": [None, lead.id]},
        summary=f"Converted from lead {lead.company_name}",
    )
    await record_event(
        "lead.converted",
        record_type=RecordType.LEAD.value,
        record_id=lead.id,
        owner_id=lead.owner_id,
        customer_id=customer.id,
        actor_id=viewer.id,
        payload={
            "customerId": customer.id,
            "contactId": links["converted_contact_id"],
            "opportunityId": links["converted_opportunity_id"],
            "version": lead.version,
        },
    )

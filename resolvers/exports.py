"""CSV exports of customers, leads and contacts: exactly what the lists show.

Each export takes the list query of its kind, so scope and filters are the
same as on screen, and refuses to grow beyond MAX_ROWS rows rather than
silently cutting the file short.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from tortoise.queryset import QuerySet

from meihua.models import Customer
from meihua.resolvers import contacts, customers, leads
from meihua.resolvers.access import Viewer
from meihua.resolvers.csv_io import MAX_ROWS, TAG_SEPARATOR, encode
from meihua.resolvers.errors import LimitExceeded

CUSTOMER_EXPORT = "customer:export"
LEAD_EXPORT = "lead:export"

# The headers are the field names of the API; imports read the same ones.
CUSTOMER_COLUMNS = [
    "name",
    "phone",
    "industry",
    "region",
    "source",
    "level",
    "address",
    "remarks",
    "tags",
    "dealStatus",
]
LEAD_COLUMNS = [
    "companyName",
    "contactName",
    "phone",
    "email",
    "source",
    "industry",
    "region",
    "remarks",
]
CONTACT_COLUMNS = [
    "customer",
    "name",
    "title",
    "phone",
    "mobile",
    "email",
    "decisionRole",
    "isPrimary",
    "remarks",
]


@dataclass
class CsvFile:
    filename: str
    content: str
    row_count: int


async def _capped(query: QuerySet) -> list:
    count = await query.count()
    if count > MAX_ROWS:
        raise LimitExceeded(
            f"{count} rows match; an export holds at most {MAX_ROWS}. Narrow the filter."
        )
    return await query.order_by("id")


def _filename(kind: str) -> str:
    return f"{kind}-{datetime.now(UTC):%Y%m%d-%H%M%S}.csv"


async def export_customers(viewer: Viewer, where: customers.CustomerFilter) -> CsvFile:
    viewer.require(CUSTOMER_EXPORT)
    rows = await _capped(await customers.list_customers(viewer, where))
    content = encode(
        CUSTOMER_COLUMNS,
        (
            [
                row.name,
                row.phone,
                row.industry,
                row.region,
                row.source,
                row.level,
                row.address,
                row.remarks,
                TAG_SEPARATOR.join(row.tags),
                row.deal_status.value,
            ]
            for row in rows
        ),
    )
    return CsvFile(_filename("customers"), content, len(rows))


async def export_leads(viewer: Viewer, where: leads.LeadFilter) -> CsvFile:
    viewer.require(LEAD_EXPORT)
    rows = await _capped(await leads.list_leads(viewer, where))
    content = encode(
        LEAD_COLUMNS,
        (
            [
                row.company_name,
                row.contact_name,
                row.phone,
                row.email,
                row.source,
                row.industry,
                row.region,
                row.remarks,
            ]
            for row in rows
        ),
    )
    return CsvFile(_filename("leads"), content, len(rows))


async def export_contacts(viewer: Viewer, where: contacts.ContactFilter) -> CsvFile:
    # Contacts have no export permission of their own: they are customer data.
    viewer.require(CUSTOMER_EXPORT)
    rows = await _capped(await contacts.list_contacts(viewer, where))
    names = dict(
        await Customer.filter(id__in={row.customer_id for row in rows}).values_list("id", "name")
    )
    content = encode(
        CONTACT_COLUMNS,
        (
            [
                names[row.customer_id],
                row.name,
                row.title,
                row.phone,
                row.mobile,
                row.email,
                row.decision_role.value if row.decision_role else None,
                "true" if row.is_primary else "false",
                row.remarks,
            ]
            for row in rows
        ),
    )
    return CsvFile(_filename("contacts"), content, len(rows))

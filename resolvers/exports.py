"""CSV exports of customers, leads and contacts: exactly what the lists show.

Each export takes the list query of its kind, so scope and filters are the
same as on screen. Over GraphQL it refuses to grow beyond MAX_ROWS rows
rather than silently cutting the file short; the command line, which writes
to a file instead of a response, reads the same rows in batches instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tortoise.queryset import QuerySet

from meihua.models import Customer, RecordType
from meihua.resolvers import contacts, customers, leads
from meihua.resolvers.access import Viewer
from meihua.resolvers.csv_io import MAX_ROWS, TAG_SEPARATOR, encode
from meihua.resolvers.errors import LimitExceeded
from meihua.resolvers.field_access import visible_cells

CUSTOMER_EXPORT = "customer:export"
LEAD_EXPORT = "lead:export"
BATCH = 1000  # rows per query when exporting without a cap

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


@dataclass(frozen=True)
class Export:
    """One kind of record as CSV: who may export it, its list query and its rows."""

    name: str
    record_type: RecordType
    permission: str
    columns: list[str]
    listing: Callable[[Viewer, Any], Awaitable[QuerySet]]
    filter: type  # the listing's filter; its defaults match everything
    cells: Callable[[list], Awaitable[list[list[object]]]]  # records to rows, in columns order


async def _customer_cells(rows: list) -> list[list[object]]:
    return [
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
    ]


async def _lead_cells(rows: list) -> list[list[object]]:
    return [
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
    ]


async def _contact_cells(rows: list) -> list[list[object]]:
    names = dict(
        await Customer.filter(id__in={row.customer_id for row in rows}).values_list("id", "name")
    )
    return [
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
    ]


CUSTOMERS = Export(
    "customers",
    RecordType.CUSTOMER,
    CUSTOMER_EXPORT,
    CUSTOMER_COLUMNS,
    customers.list_customers,
    customers.CustomerFilter,
    _customer_cells,
)
LEADS = Export(
    "leads",
    RecordType.LEAD,
    LEAD_EXPORT,
    LEAD_COLUMNS,
    leads.list_leads,
    leads.LeadFilter,
    _lead_cells,
)
# Contacts have no export permission of their own: they are customer data.
CONTACTS = Export(
    "contacts",
    RecordType.CONTACT,
    CUSTOMER_EXPORT,
    CONTACT_COLUMNS,
    contacts.list_contacts,
    contacts.ContactFilter,
    _contact_cells,
)
EXPORTS = {export.name: export for export in (CUSTOMERS, LEADS, CONTACTS)}


async def matching(export: Export, viewer: Viewer, where: Any = None) -> QuerySet:
    """What the viewer's list of this kind shows (all of it without a filter)."""
    viewer.require(export.permission)
    return await export.listing(viewer, where if where is not None else export.filter())


async def rows_of(export: Export, viewer: Viewer, records: list) -> list[list[object]]:
    """The CSV rows of `records` as the viewer may see them: hidden fields masked."""
    rows = await export.cells(records)
    return await visible_cells(viewer, export.record_type, export.columns, records, rows)


async def batches(
    export: Export, viewer: Viewer, query: QuerySet, size: int = BATCH
) -> AsyncIterator[list[list[object]]]:
    """The CSV rows of `query` a batch at a time, in id order, with no cap: for the
    command line, which writes files of any length."""
    last = 0
    while batch := await query.filter(id__gt=last).order_by("id").limit(size):
        yield await rows_of(export, viewer, batch)
        last = batch[-1].id


def filename(kind: str) -> str:
    return f"{kind}-{datetime.now(UTC):%Y%m%d-%H%M%S}.csv"


async def _export(export: Export, viewer: Viewer, where: Any) -> CsvFile:
    query = await matching(export, viewer, where)
    count = await query.count()
    if count > MAX_ROWS:
        raise LimitExceeded(
            f"{count} rows match; an export holds at most {MAX_ROWS}. Narrow the filter."
        )
    rows = await query.order_by("id")
    content = encode(export.columns, await rows_of(export, viewer, rows))
    return CsvFile(filename(export.name), content, len(rows))


async def export_customers(viewer: Viewer, where: customers.CustomerFilter) -> CsvFile:
    return await _export(CUSTOMERS, viewer, where)


async def export_leads(viewer: Viewer, where: leads.LeadFilter) -> CsvFile:
    return await _export(LEADS, viewer, where)


async def export_contacts(viewer: Viewer, where: contacts.ContactFilter) -> CsvFile:
    return await _export(CONTACTS, viewer, where)

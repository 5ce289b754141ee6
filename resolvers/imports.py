"""CSV imports of customers, leads and contacts (批量导入).

Every row passes the rules of the matching create mutation; a bad row is
reported with its line number and skipped, the good ones are inserted in one
transaction with bulk inserts. A dry run checks everything and writes
nothing. Imported records belong to the importer. A `progress(settled,
total)` callback hears how many of the file's rows are dealt with as the
inserts go (the command line draws its progress bar with it).

The operation log gets ONE `IMPORT` entry per import, not one per row: ten
thousand CREATE entries would bury everything else in the log. The entry
points at the first imported record and counts the rest; live events are not
sent per row either, for the same reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tortoise.exceptions import IntegrityError

from meihua.models import Contact, Customer, DealStatus, DecisionRole, Lead, RecordType
from meihua.resolvers import contacts, customers, leads
from meihua.resolvers.access import Viewer
from meihua.resolvers.csv_io import TAG_SEPARATOR, Row, RowError, flag, read_rows, uploaded_text
from meihua.resolvers.errors import BadUserInput, Duplicate, MeihuaError
from meihua.resolvers.exports import CONTACT_COLUMNS, CUSTOMER_COLUMNS, LEAD_COLUMNS
from meihua.resolvers.field_access import check_writable
from meihua.resolvers.oplog import log_operation
from meihua.resolvers.pool_membership import home_pool_id
from meihua.subscriptions.events import transaction

CUSTOMER_IMPORT = "customer:import"
LEAD_IMPORT = "lead:import"
BATCH = 500  # rows per INSERT statement

Progress = Callable[[int, int], object]


@dataclass
class ImportReport:
    dry_run: bool
    total: int
    imported: int = 0
    errors: list[RowError] = field(default_factory=list)


def _cell(row: Row, column: str) -> str | None:
    """The cell's text, None when empty or absent (an optional field left out)."""
    value = row.cells.get(column)
    return value if value and value.strip() else None


def _choice(row: Row, column: str, enum: type) -> Any:
    value = _cell(row, column)
    if value is None:
        return None
    try:
        return enum(value.strip().upper())
    except ValueError:
        names = ", ".join(member.value for member in enum)
        raise BadUserInput(f"`{column}` must be one of {names}.", field=column) from None


def _validated(rows: list[Row], report: ImportReport, check: Callable[[Row], Any]) -> list:
    """(row, changes) for each row passing `check`; the others go into the report."""
    good = []
    for row in rows:
        try:
            good.append((row, check(row)))
        except MeihuaError as error:
            report.errors.append(RowError.of(row.line, error))
    return good


async def _writable(
    viewer: Viewer, record_type: RecordType, good: list, report: ImportReport
) -> list:
    """The rows filling only fields the importer may write; the others go into
    the report (FORBIDDEN naming the field)."""
    writable = []
    for row, changes in good:
        try:
            await check_writable(viewer, record_type, changes)
        except MeihuaError as error:
            report.errors.append(RowError.of(row.line, error))
        else:
            writable.append((row, changes))
    return writable


async def _log(viewer: Viewer, record_type: RecordType, first_id: int, count: int) -> None:
    await log_operation(
        viewer.id,
        "IMPORT",
        record_type,
        first_id,
        changes={"imported": [None, count]},
        summary=f"Imported {count} {record_type.value.lower()} records from a CSV file",
    )


async def _save(
    model: type, records: list, report: ImportReport, progress: Progress | None
) -> bool:
    """Insert `records` in batches (none on a dry run), telling `progress` first
    of the rows not inserted, then batch by batch. Whether any were inserted."""
    if report.dry_run:
        records = []
    settled = report.total - len(records)
    if progress is not None:
        progress(settled, report.total)
    for start in range(0, len(records), BATCH):
        batch = records[start : start + BATCH]
        await model.bulk_create(batch)
        settled += len(batch)
        if progress is not None:
            progress(settled, report.total)
    return bool(records)


async def _first_created(model: type, viewer: Viewer, count: int) -> Any:
    """The first of the `count` records the importer just inserted; the
    transaction keeps them the importer's newest."""
    return await model.filter(created_by_id=viewer.id).order_by("-id").offset(count - 1).first()


# --- customers ---------------------------------------------------------------


def _customer_changes(row: Row) -> dict[str, Any]:
    tags = _cell(row, "tags")
    data = customers.CustomerInput(
        name=row.cells.get("name", ""),
        phone=_cell(row, "phone"),
        industry=_cell(row, "industry"),
        region=_cell(row, "region"),
        source=_cell(row, "source"),
        level=_cell(row, "level"),
        address=_cell(row, "address"),
        remarks=_cell(row, "remarks"),
        tags=[t for t in tags.split(TAG_SEPARATOR) if t.strip()] if tags else None,
        deal_status=_choice(row, "dealStatus", DealStatus),
    )
    return customers._changes(data)


async def _refuse_duplicates(viewer: Viewer, good: list, report: ImportReport) -> list:
    """First in owns, within the file and against the customers already entered."""
    seen: dict[tuple[str, str], int] = {}
    unique = []
    for row, changes in good:
        keys = [("name", changes["name_key"])]
        if changes.get("phone_key"):
            keys.append(("phone", changes["phone_key"]))
        clash = next((key for key in keys if key in seen), None)
        if clash is not None:
            message = f"Line {seen[clash]} already has this {clash[0]}."
            report.errors.append(RowError(row.line, clash[0], Duplicate.code, message))
            continue
        seen.update(dict.fromkeys(keys, row.line))
        unique.append((row, changes))
    names = [changes["name_key"] for _, changes in unique]
    phones = [changes["phone_key"] for _, changes in unique if changes.get("phone_key")]
    existing = {("name", c.name_key): c for c in await Customer.filter(name_key__in=names)} | {
        ("phone", c.phone_key): c for c in await Customer.filter(phone_key__in=phones)
    }
    fresh = []
    for row, changes in unique:
        keys = [("name", changes["name_key"]), ("phone", changes.get("phone_key"))]
        clash = next((key for key in keys if key in existing), None)
        if clash is None:
            fresh.append((row, changes))
            continue
        error = await customers.duplicate_error(viewer, existing[clash], clash[0])
        report.errors.append(RowError.of(row.line, error))
    return fresh


async def import_customers(
    viewer: Viewer,
    content: str | None,
    content_base64: str | None,
    dry_run: bool,
    progress: Progress | None = None,
) -> ImportReport:
    viewer.require(CUSTOMER_IMPORT)
    rows = read_rows(uploaded_text(content, content_base64), CUSTOMER_COLUMNS, "name")
    report = ImportReport(dry_run, len(rows))
    good = _validated(rows, report, _customer_changes)
    good = await _writable(viewer, RecordType.CUSTOMER, good, report)
    try:
        async with transaction():
            good = await _refuse_duplicates(viewer, good, report)
            pool_id, now = await home_pool_id(viewer.user), datetime.now(UTC)
            records = [
                Customer(
                    **changes,
                    owner_id=viewer.id,
                    created_by_id=viewer.id,
                    pool_id=pool_id,
                    taken_at=now,
                )
                for _, changes in good
            ]
            if await _save(Customer, records, report, progress):
                first = await Customer.get(name_key=good[0][1]["name_key"])
                await _log(viewer, RecordType.CUSTOMER, first.id, len(good))
    except IntegrityError:
        # Someone entered one of these customers between our check and insert.
        raise Duplicate(
            "A customer in the file was entered by someone else meanwhile; import again."
        ) from None
    report.imported = len(good)
    report.errors.sort(key=lambda error: error.line)
    return report


# --- leads -------------------------------------------------------------------


def _lead_changes(row: Row) -> dict[str, Any]:
    data = leads.LeadInput(
        company_name=row.cells.get("companyName", ""),
        **{
            name: _cell(row, leads._camel(name))
            for name in ("contact_name", "phone", "email", "source", "industry", "region")
        },
        remarks=_cell(row, "remarks"),
    )
    return leads._changes(data)


async def import_leads(
    viewer: Viewer,
    content: str | None,
    content_base64: str | None,
    dry_run: bool,
    progress: Progress | None = None,
) -> ImportReport:
    viewer.require(LEAD_IMPORT)
    rows = read_rows(uploaded_text(content, content_base64), LEAD_COLUMNS, "companyName")
    report = ImportReport(dry_run, len(rows))
    good = _validated(rows, report, _lead_changes)
    good = await _writable(viewer, RecordType.LEAD, good, report)
    records = [Lead(**changes, owner_id=viewer.id, created_by_id=viewer.id) for _, changes in good]
    async with transaction():
        if await _save(Lead, records, report, progress):
            first = await _first_created(Lead, viewer, len(records))
            await _log(viewer, RecordType.LEAD, first.id, len(records))
    report.imported = len(good)
    return report


# --- contacts ----------------------------------------------------------------


def _contact_changes(row: Row) -> dict[str, Any]:
    customer = _cell(row, "customer")
    if customer is None:
        raise BadUserInput("Name the contact's customer.", field="customer")
    data = contacts.ContactInput(
        name=row.cells.get("name", ""),
        title=_cell(row, "title"),
        phone=_cell(row, "phone"),
        mobile=_cell(row, "mobile"),
        email=_cell(row, "email"),
        remarks=_cell(row, "remarks"),
        is_primary=flag(row.cells.get("isPrimary", ""), "isPrimary"),
        decision_role=_choice(row, "decisionRole", DecisionRole),
    )
    return {"customer": customers.normalize_name(customer), **contacts._changes(data)}


async def _writable_customers(viewer: Viewer, good: list, report: ImportReport) -> list:
    """Rows whose customer the importer can see and may change, with its id."""
    names = {changes["customer"] for _, changes in good}
    found = {
        c.name_key: c
        for c in await (await customers.visible_customers(viewer)).filter(name_key__in=names)
    }
    writable = {key: await viewer.may_write(c.owner_id, c.id) for key, c in found.items()}
    result = []
    for row, changes in good:
        customer = found.get(changes.pop("customer"))
        if customer is None:
            message = "No customer you can see has this name."
        elif not writable[customer.name_key]:
            message = "You may not change this customer's contacts."
        else:
            result.append((row, {**changes, "customer_id": customer.id}))
            continue
        report.errors.append(RowError(row.line, "customer", BadUserInput.code, message))
    return result


def _primary_contacts(good: list, has_primary: set[int], report: ImportReport) -> list:
    """One primary contact per customer, as createContact keeps it: a row may
    claim it only for a customer without one, and a customer's first contact
    becomes it unless its row says otherwise."""
    claimed: dict[int, int] = {}
    result = []
    for row, changes in good:
        customer_id = changes["customer_id"]
        taken = customer_id in has_primary or customer_id in claimed
        if changes.get("is_primary") is None:
            changes["is_primary"] = not taken
        elif changes["is_primary"] and taken:
            where = f"line {claimed[customer_id]}" if customer_id in claimed else "the CRM"
            message = f"The customer's primary contact is already named in {where}."
            report.errors.append(RowError(row.line, "isPrimary", BadUserInput.code, message))
            continue
        if changes["is_primary"]:
            claimed[customer_id] = row.line
        result.append((row, changes))
    return result


async def import_contacts(
    viewer: Viewer,
    content: str | None,
    content_base64: str | None,
    dry_run: bool,
    progress: Progress | None = None,
) -> ImportReport:
    # Contacts are customer data: importing them is importing into customers.
    viewer.require(CUSTOMER_IMPORT)
    rows = read_rows(uploaded_text(content, content_base64), CONTACT_COLUMNS, "name")
    report = ImportReport(dry_run, len(rows))
    good = _validated(rows, report, _contact_changes)
    good = await _writable(viewer, RecordType.CONTACT, good, report)
    async with transaction():
        good = await _writable_customers(viewer, good, report)
        ids = {changes["customer_id"] for _, changes in good}
        has_primary = set(
            await Contact.filter(customer_id__in=ids, is_primary=True).values_list(
                "customer_id", flat=True
            )
        )
        good = _primary_contacts(good, has_primary, report)
        records = [Contact(**changes, created_by_id=viewer.id) for _, changes in good]
        if await _save(Contact, records, report, progress):
            first = await _first_created(Contact, viewer, len(records))
            await _log(viewer, RecordType.CONTACT, first.id, len(records))
    report.imported = len(good)
    report.errors.sort(key=lambda error: error.line)
    return report

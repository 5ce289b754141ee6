"""Contracts (合同): drafts with priced lines, generated numbers, transfer.

A contract is edited only while it is a DRAFT or came back REJECTED; from
submission on, what was approved is what stays (resolvers.approvals moves it
through the flow). Totals are exact decimals: each line is quantity × unit
price × (1 − discount %) rounded half-up to cents once, the total their sum.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import uuid4
from zoneinfo import ZoneInfo

from tortoise.expressions import Q
from tortoise.queryset import QuerySet

from meihua.models import (
    Contact,
    Contract,
    ContractItem,
    ContractStatus,
    Product,
    RecordType,
    User,
)
from meihua.resolvers.access import Viewer
from meihua.resolvers.approvers import awaiting_decision_of
from meihua.resolvers.customers import get_visible_customer
from meihua.resolvers.errors import BadUserInput, Conflict, NotFound
from meihua.resolvers.field_access import check_writable
from meihua.resolvers.oplog import diff, log_operation, plain
from meihua.resolvers.org import UNSET, clean_name
from meihua.resolvers.products import (
    CENT,
    MONEY_LIMIT,
    clean_discount,
    clean_money,
    clean_quantity,
    line_amount,
)
from meihua.resolvers.records import contract_filter, require_write, visible
from meihua.resolvers.versioning import update_versioned
from meihua.subscriptions.events import record_event, transaction

CONTRACT_CREATE = "contract:create"
CONTRACT_UPDATE = "contract:update"
CONTRACT_DELETE = "contract:delete"
CONTRACT_TRANSFER = "contract:transfer"

NUMBER_PREFIX = "HT"  # 合同
EDITABLE = (ContractStatus.DRAFT, ContractStatus.REJECTED)
MAX_ITEMS = 200
MAX_BATCH = 200  # contracts per transfer call
_LIMITS = {"title": 200, "remarks": 10_000}


def company_today(timezone: str) -> date:
    """Today's date where the company is, not where the server runs."""
    return datetime.now(ZoneInfo(timezone)).date()


def contract_number(pk: int, day: date) -> str:
    """HT-20261123-000042: readable, and unique because the row id is."""
    return f"{NUMBER_PREFIX}-{day:%Y%m%d}-{pk:06d}"


# --- who sees which contracts -------------------------------------------------


async def visible_contracts(viewer: Viewer) -> QuerySet[Contract]:
    return Contract.filter(await contract_filter(viewer))


async def get_contract(viewer: Viewer, pk: int, *, lock: bool = False) -> Contract:
    """The contract, or NOT_FOUND; `lock` holds its row until the transaction ends."""
    query = await visible_contracts(viewer)
    if lock:
        # PostgreSQL serialises competing writers on the row; SQLite has a
        # single writer, so there the transaction itself is the lock.
        query = query.select_for_update()
    contract = await query.get_or_none(id=pk)
    if contract is None:
        raise NotFound("No such contract.")
    return contract


@dataclass
class ContractFilter:
    customer_id: int | None = None
    owner_id: int | None = None
    status: ContractStatus | None = None
    signed_from: date | None = None
    signed_to: date | None = None
    search: str | None = None
    awaiting_my_approval: bool | None = None


async def list_contracts(viewer: Viewer, where: ContractFilter) -> QuerySet[Contract]:
    query = await visible_contracts(viewer)
    if where.awaiting_my_approval is not None:
        awaiting = await awaiting_decision_of(viewer)
        if where.awaiting_my_approval:
            # tortoise has no .none(); an empty id list is its `WHERE 1=0`.
            query = query.filter(awaiting) if awaiting is not None else query.filter(id__in=[])
        elif awaiting is not None:
            query = query.filter(~awaiting)
    if where.customer_id is not None:
        query = query.filter(customer_id=where.customer_id)
    if where.owner_id is not None:
        query = query.filter(owner_id=where.owner_id)
    if where.status is not None:
        query = query.filter(status=where.status)
    if where.signed_from is not None:
        query = query.filter(signed_on__gte=where.signed_from)
    if where.signed_to is not None:
        query = query.filter(signed_on__lte=where.signed_to)
    if where.search and where.search.strip():
        term = where.search.strip()
        query = query.filter(Q(number__icontains=term) | Q(title__icontains=term))
    return query


# --- input --------------------------------------------------------------------


@dataclass
class LineInput:
    product_id: int
    quantity: Decimal
    unit_price: Decimal | None = None  # None: the product's list price
    discount: Decimal | None = None  # percent; None: no discount


@dataclass
class ContractInput:
    """What a create or update sends; UNSET fields are left as they are."""

    customer_id: int | None = None
    title: str | None = None
    opportunity_id: Any = UNSET
    signing_contact_id: Any = UNSET
    signed_on: Any = UNSET
    starts_on: Any = UNSET
    ends_on: Any = UNSET
    remarks: str | None = None
    items: list[LineInput] | None = None


def _text_changes(data: ContractInput) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if data.title is not None:
        changes["title"] = clean_name(data.title, "title", max_length=_LIMITS["title"])
    if data.remarks is not None:
        remarks = data.remarks.strip()
        if len(remarks) > _LIMITS["remarks"]:
            raise BadUserInput("`remarks` is too long.", field="remarks")
        changes["remarks"] = remarks or None
    for field in ("signed_on", "starts_on", "ends_on"):
        value = getattr(data, field)
        if value is not UNSET:
            changes[field] = value
    return changes


def _check_dates(contract: Contract | None, changes: dict[str, Any]) -> None:
    starts = changes.get("starts_on", contract.starts_on if contract else None)
    ends = changes.get("ends_on", contract.ends_on if contract else None)
    if starts is not None and ends is not None and ends < starts:
        raise BadUserInput("The contract cannot end before it starts.", field="endsOn")


async def _reference_changes(
    viewer: Viewer, customer_id: int, data: ContractInput
) -> dict[str, Any]:
    """Opportunity and signing contact: visible, and of the contract's own customer."""
    changes: dict[str, Any] = {}
    if data.opportunity_id is not UNSET:
        if data.opportunity_id is not None:
            opportunities = await visible(viewer, RecordType.OPPORTUNITY)
            if not await opportunities.filter(
                id=data.opportunity_id, customer_id=customer_id
            ).exists():
                raise BadUserInput("No such opportunity of this customer.", field="opportunityId")
        changes["opportunity_id"] = data.opportunity_id
    if data.signing_contact_id is not UNSET:
        if data.signing_contact_id is not None:
            # Contacts are visible with their customer, and the customer is.
            if not await Contact.filter(
                id=data.signing_contact_id, customer_id=customer_id
            ).exists():
                raise BadUserInput("No such contact of this customer.", field="signingContactId")
        changes["signing_contact_id"] = data.signing_contact_id
    return changes


async def _priced_lines(lines: list[LineInput]) -> tuple[list[dict[str, Any]], Decimal]:
    """Validated line values (in order) and their exact total."""
    if len(lines) > MAX_ITEMS:
        raise BadUserInput(f"A contract has at most {MAX_ITEMS} lines.", field="items")
    wanted = {line.product_id for line in lines}
    products = {p.id: p for p in await Product.filter(id__in=wanted, is_active=True)}
    priced: list[dict[str, Any]] = []
    total = Decimal("0.00")
    for index, line in enumerate(lines):
        field = f"items.{index}"
        product = products.get(line.product_id)
        if product is None:
            raise BadUserInput(
                "No such product on sale (it may have been deactivated).",
                field=f"{field}.productId",
            )
        quantity = clean_quantity(line.quantity, f"{field}.quantity")
        unit_price = (
            product.unit_price
            if line.unit_price is None
            else clean_money(line.unit_price, f"{field}.unitPrice")
        )
        discount = (
            Decimal("0.00")
            if line.discount is None
            else clean_discount(line.discount, f"{field}.discount")
        )
        amount = line_amount(quantity, unit_price, discount)
        total += amount
        if total >= MONEY_LIMIT:
            raise BadUserInput("The contract total is too large.", field=f"{field}.quantity")
        priced.append(
            {
                "product_id": product.id,
                "quantity": quantity,
                "unit_price": unit_price,
                "discount": discount,
                "amount": amount,
            }
        )
    return priced, total.quantize(CENT)


async def _replace_lines(contract_id: int, priced: list[dict[str, Any]]) -> None:
    await ContractItem.filter(contract_id=contract_id).delete()
    await ContractItem.bulk_create([ContractItem(contract_id=contract_id, **v) for v in priced])


def _described_lines(priced: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Lines as the operation log keeps them."""
    return [{k: plain(v) for k, v in line.items()} for line in priced]


async def record_contract_change(
    viewer: Viewer,
    action: str,
    contract: Contract,
    changed: dict[str, list[Any]],
    summary: str = "",
) -> None:
    """The operation-log entry and the live `contract.changed` event of one change."""
    await log_operation(
        viewer.id,
        action,
        RecordType.CONTRACT,
        contract.id,
        customer_id=contract.customer_id,
        changes=changed,
        summary=summary,
    )
    await record_event(
        "contract.changed",
        record_type=RecordType.CONTRACT.value,
        record_id=contract.id,
        owner_id=contract.owner_id,
        customer_id=contract.customer_id,
        actor_id=viewer.id,
        payload={"action": action, "fields": sorted(changed), "version": contract.version},
    )


# --- creating, editing, deleting ----------------------------------------------


async def create_contract(viewer: Viewer, data: ContractInput, today: date) -> Contract:
    """A DRAFT owned by its creator, on a customer the creator may write to."""
    viewer.require(CONTRACT_CREATE)
    changes = _text_changes(data)
    if "title" not in changes:
        raise BadUserInput("`title` is required.", field="title")
    _check_dates(None, changes)
    async with transaction():
        customer = await get_visible_customer(viewer, data.customer_id)
        await require_write(viewer, customer)
        changes |= await _reference_changes(viewer, customer.id, data)
        priced, total = await _priced_lines(data.items or [])
        await check_writable(
            viewer, RecordType.CONTRACT, [*changes, "total"] if priced else changes
        )
        contract = await Contract.create(
            # A placeholder until the row has its id; it never leaves the transaction.
            number=f"~{uuid4().hex}",
            customer_id=customer.id,
            owner_id=viewer.id,
            created_by_id=viewer.id,
            total=total,
            **changes,
        )
        contract.number = contract_number(contract.id, today)
        await Contract.filter(id=contract.id).update(number=contract.number)
        await _replace_lines(contract.id, priced)
        entered = {"number": contract.number, "owner_id": viewer.id, "total": total, **changes}
        changed = {k: [None, plain(v)] for k, v in entered.items() if v is not None}
        if priced:
            changed["items"] = [None, _described_lines(priced)]
        await record_contract_change(
            viewer, "CREATE", contract, changed, summary=f"Contract {contract.number} drafted"
        )
        return contract


async def update_contract(
    viewer: Viewer, pk: int, data: ContractInput, expected_version: int | None
) -> Contract:
    """Edit a DRAFT or REJECTED contract; `items`, when sent, replaces every line."""
    async with transaction():
        contract = await get_contract(viewer, pk, lock=True)
        viewer.require(CONTRACT_UPDATE)
        await require_write(viewer, contract)
        if contract.status not in EDITABLE:
            raise Conflict(
                f"A contract that is {contract.status.value} cannot be edited; "
                "only drafts and rejected contracts can."
            )
        changes = _text_changes(data)
        _check_dates(contract, changes)
        changes |= await _reference_changes(viewer, contract.customer_id, data)
        priced: list[dict[str, Any]] | None = None
        if data.items is not None:
            priced, changes["total"] = await _priced_lines(data.items)
        await check_writable(viewer, RecordType.CONTRACT, changes)
        changed = diff(contract, changes)
        if priced is not None:
            old = (
                await ContractItem.filter(contract_id=pk)
                .order_by("id")
                .values("product_id", "quantity", "unit_price", "discount", "amount")
            )
            if _described_lines(old) != _described_lines(priced):
                changed["items"] = [_described_lines(old), _described_lines(priced)]
                await _replace_lines(pk, priced)
        contract = await update_versioned(contract, expected_version, **changes)
        if changed:
            await record_contract_change(viewer, "UPDATE", contract, changed)
        return contract


async def delete_contract(viewer: Viewer, pk: int) -> int:
    """Delete a DRAFT or REJECTED contract with its lines, plans and approval history."""
    async with transaction():
        contract = await get_contract(viewer, pk, lock=True)
        viewer.require(CONTRACT_DELETE)
        await require_write(viewer, contract)
        if contract.status not in EDITABLE:
            raise Conflict(
                f"A contract that is {contract.status.value} cannot be deleted; "
                "only drafts and rejected contracts can."
            )
        # Payments exist only on approved contracts, so none block this.
        await contract.delete()
        await log_operation(
            viewer.id,
            "DELETE",
            RecordType.CONTRACT,
            pk,
            customer_id=contract.customer_id,
            changes={"number": [contract.number, None], "total": [plain(contract.total), None]},
            summary=f"Contract {contract.number} deleted",
        )
        await record_event(
            "contract.deleted",
            record_type=RecordType.CONTRACT.value,
            record_id=pk,
            owner_id=contract.owner_id,
            customer_id=contract.customer_id,
            actor_id=viewer.id,
            payload={"number": contract.number},
        )
    return pk


async def transfer_contracts(viewer: Viewer, ids: list[int], owner_id: int) -> list[Contract]:
    """Hand contracts to another active user, all or none, in any status."""
    wanted = list(dict.fromkeys(ids))
    if len(wanted) > MAX_BATCH:
        raise BadUserInput(f"At most {MAX_BATCH} contracts at a time.", field="ids")
    async with transaction():
        query = (await visible_contracts(viewer)).filter(id__in=wanted)
        # Locking in id order keeps two overlapping transfers from deadlocking.
        rows = {row.id: row for row in await query.order_by("id").select_for_update()}
        if len(rows) != len(wanted):
            raise NotFound("No such contract.")
        viewer.require(CONTRACT_TRANSFER)
        for contract in rows.values():
            await require_write(viewer, contract)
        if not await User.filter(id=owner_id, is_active=True).exists():
            raise BadUserInput("No such active user.", field="ownerId")
        result = []
        for pk in wanted:
            contract = rows[pk]
            if contract.owner_id != owner_id:
                previous = contract.owner_id
                contract = await update_versioned(contract, None, owner_id=owner_id)
                await log_operation(
                    viewer.id,
                    "TRANSFER",
                    RecordType.CONTRACT,
                    pk,
                    customer_id=contract.customer_id,
                    changes={"owner_id": [previous, owner_id]},
                    summary=f"Contract {contract.number} transferred",
                )
                await record_event(
                    "contract.transferred",
                    record_type=RecordType.CONTRACT.value,
                    record_id=pk,
                    owner_id=owner_id,
                    customer_id=contract.customer_id,
                    recipient_id=owner_id,
                    actor_id=viewer.id,
                    payload={"previousOwnerId": previous, "version": contract.version},
                )
            result.append(contract)
        return result

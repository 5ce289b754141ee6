"""Opportunities (商机): the deals a team works, stage by stage, to won or lost.

An opportunity is seen by whoever sees its owner (data scope) or is on its
customer's team; changing it needs the operation permission and write access.

Choices where CRMs differ, following Salesforce and Odoo:
- Moving a WON or LOST opportunity to a stage reopens it (status OPEN), as
  dragging a closed deal back into the pipeline does in both. The stage history
  keeps the close and the reopening.
- An opportunity is won or lost *at* its current stage; the effective win rate
  is then 100 % or 0 %, otherwise the stage's.
- An opportunity belongs to the pipeline of its stage. Moving stage stays within
  that pipeline; changing pipeline is its own, explicit move (to the new
  pipeline's first stage unless another is named), recorded in the stage
  history like any move, and likewise reopens a closed opportunity.
- While an opportunity has product lines, its amount is their total (Salesforce:
  Amount is the sum of the products and cannot be typed over). Setting the
  lines recomputes it and `updateOpportunity` refuses a different amount; with
  no lines the amount is typed.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.queryset import QuerySet

from meihua.models import (
    Contract,
    Opportunity,
    OpportunityProduct,
    OpportunityStage,
    OpportunityStageChange,
    OpportunityStatus,
    Product,
    RecordType,
    User,
)
from meihua.resolvers.access import Viewer
from meihua.resolvers.errors import BadUserInput, Conflict, NotFound
from meihua.resolvers.field_access import check_writable
from meihua.resolvers.oplog import diff, log_operation, plain
from meihua.resolvers.org import UNSET, clean_name
from meihua.resolvers.pipelines import pipeline_for_new_opportunities
from meihua.resolvers.products import (
    CENT,
    MONEY_LIMIT,
    clean_discount,
    clean_money,
    clean_quantity,
    line_amount,
)
from meihua.resolvers.records import get_visible, require_write, visible
from meihua.resolvers.stages import starting_stage
from meihua.resolvers.versioning import update_versioned
from meihua.subscriptions.events import record_event, transaction

OPPORTUNITY_CREATE = "opportunity:create"
OPPORTUNITY_UPDATE = "opportunity:update"
OPPORTUNITY_DELETE = "opportunity:delete"
OPPORTUNITY_TRANSFER = "opportunity:transfer"

STAGE_CHANGED = "opportunity.stage_changed"
UPDATED = "opportunity.updated"
TRANSFERRED = "opportunity.transferred"
DELETED = "opportunity.deleted"

MAX_LINES = 200
MAX_TRANSFER = 100
_LIMITS = {"name": 200, "remarks": 10_000, "reason": 2_000}


def effective_win_rate(status: OpportunityStatus, stage_win_rate: int) -> int:
    if status == OpportunityStatus.WON:
        return 100
    if status == OpportunityStatus.LOST:
        return 0
    return stage_win_rate


def weighted_amount(amount: Decimal, status: OpportunityStatus, stage_win_rate: int) -> Decimal:
    """amount × effective win rate, rounded half-up to cents."""
    rate = effective_win_rate(status, stage_win_rate)
    return (amount * rate / 100).quantize(CENT, rounding=ROUND_HALF_UP)


# --- reading -----------------------------------------------------------------


@dataclass
class OpportunityFilter:
    customer_id: int | None = None
    owner_id: int | None = None
    pipeline_id: int | None = None
    stage_id: int | None = None
    status: OpportunityStatus | None = None
    search: str | None = None
    expected_close_from: date | None = None
    expected_close_to: date | None = None


async def list_opportunities(viewer: Viewer, where: OpportunityFilter) -> QuerySet[Opportunity]:
    query = await visible(viewer, RecordType.OPPORTUNITY)
    for field in ("customer_id", "owner_id", "stage_id", "status"):
        value = getattr(where, field)
        if value is not None:
            query = query.filter(**{field: value})
    if where.pipeline_id is not None:
        query = query.filter(stage__pipeline_id=where.pipeline_id)
    if where.search and where.search.strip():
        query = query.filter(name__icontains=where.search.strip())
    if where.expected_close_from is not None:
        query = query.filter(expected_close_date__gte=where.expected_close_from)
    if where.expected_close_to is not None:
        query = query.filter(expected_close_date__lte=where.expected_close_to)
    return query


async def get_visible_opportunity(viewer: Viewer, pk: int) -> Opportunity:
    return await get_visible(viewer, RecordType.OPPORTUNITY, pk)


async def _writable(viewer: Viewer, pk: int, permission: str) -> Opportunity:
    """The opportunity, locked until commit, when the viewer may change it.

    The lock makes concurrent changes of one opportunity take turns, so each
    stage-history row starts where the previous one ended.
    """
    query = await visible(viewer, RecordType.OPPORTUNITY)
    opportunity = await query.select_for_update().get_or_none(id=pk)
    if opportunity is None:
        raise NotFound("No such opportunity.")
    viewer.require(permission)
    await require_write(viewer, opportunity)
    return opportunity


def _check_version(opportunity: Opportunity, expected_version: int | None) -> None:
    """CONFLICT for a stale version even when the change turns out to be a no-op."""
    if expected_version is not None and expected_version != opportunity.version:
        raise Conflict(
            "This opportunity was changed by someone else; reload it and try again.",
            currentVersion=opportunity.version,
        )


async def _stage(pk: int) -> OpportunityStage:
    stage = await OpportunityStage.get_or_none(id=pk)
    if stage is None:
        raise BadUserInput("No such opportunity stage.", field="stageId")
    return stage


# --- input -------------------------------------------------------------------


@dataclass
class OpportunityInput:
    name: str | None = None
    amount: Decimal | None = None
    expected_close_date: date | None = UNSET  # None clears it
    remarks: str | None = None  # "" clears them


def _changes(data: OpportunityInput) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for item in fields(data):
        value = getattr(data, item.name)
        if value is UNSET or (value is None and item.name != "expected_close_date"):
            continue
        if item.name == "name":
            changes["name"] = clean_name(value, "name", max_length=_LIMITS["name"])
        elif item.name == "amount":
            changes["amount"] = clean_money(value, "amount")
        elif item.name == "remarks":
            value = value.strip()
            if len(value) > _LIMITS["remarks"]:
                raise BadUserInput("`remarks` are too long.", field="remarks")
            changes["remarks"] = value or None
        else:
            changes[item.name] = value
    return changes


@dataclass
class LineInput:
    product_id: int
    quantity: Decimal
    unit_price: Decimal | None = None  # defaults to the product's price
    discount: Decimal | None = None  # percent, defaults to 0


@dataclass
class PricedLine:
    product_id: int
    quantity: Decimal
    unit_price: Decimal
    discount: Decimal

    @property
    def amount(self) -> Decimal:
        return line_amount(self.quantity, self.unit_price, self.discount)

    def plain(self) -> dict[str, Any]:
        return {
            "productId": self.product_id,
            "quantity": plain(self.quantity),
            "unitPrice": plain(self.unit_price),
            "discount": plain(self.discount),
        }


async def _priced_lines(
    items: list[LineInput], field: str, already_sold: set[int]
) -> list[PricedLine]:
    """Validated lines; a deactivated product may stay on lines that had it, not join new ones.

    Errors name the line's field as `<field>.<index>.<name>`, e.g. `items.2.discount`.
    """
    if len(items) > MAX_LINES:
        raise BadUserInput(f"At most {MAX_LINES} product lines.", field=field)
    products = {p.id: p for p in await Product.filter(id__in={i.product_id for i in items})}
    return [
        _priced_line(item, products.get(item.product_id), already_sold, f"{field}.{index}")
        for index, item in enumerate(items)
    ]


def _priced_line(
    item: LineInput, product: Product | None, already_sold: set[int], field: str
) -> PricedLine:
    if product is None:
        raise BadUserInput("No such product.", field=f"{field}.productId")
    if not product.is_active and product.id not in already_sold:
        raise BadUserInput(f"{product.name} is no longer sold.", field=f"{field}.productId")
    line = PricedLine(
        product_id=product.id,
        quantity=clean_quantity(item.quantity, f"{field}.quantity"),
        unit_price=(
            clean_money(item.unit_price, f"{field}.unitPrice")
            if item.unit_price is not None
            else product.unit_price
        ),
        discount=(
            clean_discount(item.discount, f"{field}.discount")
            if item.discount is not None
            else Decimal("0.00")
        ),
    )
    if line.amount >= MONEY_LIMIT:
        raise BadUserInput("This line's amount is too large.", field=f"{field}.quantity")
    return line


def _total(lines: list[PricedLine]) -> Decimal:
    total = sum((line.amount for line in lines), Decimal("0.00"))
    if total >= MONEY_LIMIT:
        raise BadUserInput("The lines' total is too large.", field="amount")
    return total


async def _replace_lines(opportunity_id: int, lines: list[PricedLine]) -> None:
    await OpportunityProduct.filter(opportunity_id=opportunity_id).delete()
    await OpportunityProduct.bulk_create(
        [
            OpportunityProduct(
                opportunity_id=opportunity_id,
                product_id=line.product_id,
                quantity=line.quantity,
                unit_price=line.unit_price,
                discount=line.discount,
            )
            for line in lines
        ]
    )


# --- events and history ------------------------------------------------------


async def _event(
    kind: str,
    viewer: Viewer,
    opportunity: Opportunity,
    *,
    recipient_id: int | None = None,
    **payload: Any,
) -> None:
    await record_event(
        kind,
        record_type=RecordType.OPPORTUNITY.value,
        record_id=opportunity.id,
        owner_id=opportunity.owner_id,
        customer_id=opportunity.customer_id,
        recipient_id=recipient_id,
        actor_id=viewer.id,
        payload=payload,
    )


async def _log(
    viewer: Viewer, action: str, opportunity: Opportunity, changes: dict, summary: str
) -> None:
    await log_operation(
        viewer.id,
        action,
        RecordType.OPPORTUNITY,
        opportunity.id,
        customer_id=opportunity.customer_id,
        changes=changes,
        summary=summary,
    )


async def _record_stage_change(
    viewer: Viewer,
    opportunity: Opportunity,
    from_stage_id: int | None,
    from_status: OpportunityStatus | None,
    reason: str | None = None,
) -> None:
    """The history row and the live event of a stage or status change."""
    await OpportunityStageChange.create(
        opportunity_id=opportunity.id,
        from_stage_id=from_stage_id,
        to_stage_id=opportunity.stage_id,
        from_status=from_status,
        to_status=opportunity.status,
        actor_id=viewer.id,
        reason=reason,
    )
    await _event(
        STAGE_CHANGED,
        viewer,
        opportunity,
        fromStageId=from_stage_id,
        toStageId=opportunity.stage_id,
        fromStatus=plain(from_status),
        status=plain(opportunity.status),
    )


# --- changing ----------------------------------------------------------------


async def create_opportunity(
    viewer: Viewer,
    customer_id: int,
    data: OpportunityInput,
    stage_id: int | None,
    lines: list[LineInput] | None,
    pipeline_id: int | None = None,
) -> Opportunity:
    """A new opportunity owned by its creator, at the given stage or the first one of
    the given pipeline (the default pipeline when neither is given)."""
    async with transaction():
        customer = await get_visible(viewer, RecordType.CUSTOMER, customer_id)
        viewer.require(OPPORTUNITY_CREATE)
        await require_write(viewer, customer)
        changes = _changes(data)
        for field in ("name", "amount"):
            if field not in changes:
                raise BadUserInput(f"`{field}` is required.", field=field)
        stage = await starting_stage(pipeline_id, stage_id)
        priced = await _priced_lines(lines or [], "products", already_sold=set())
        if priced:
            changes["amount"] = _total(priced)
        await check_writable(viewer, RecordType.OPPORTUNITY, changes)
        opportunity = await Opportunity.create(
            **changes,
            customer_id=customer.id,
            stage_id=stage.id,
            owner_id=viewer.id,
            created_by_id=viewer.id,
        )
        await _replace_lines(opportunity.id, priced)
        await _record_stage_change(viewer, opportunity, None, None)
        await _log(
            viewer,
            "CREATE",
            opportunity,
            {field: [None, plain(value)] for field, value in changes.items()},
            f"Created opportunity {opportunity.name}",
        )
        return opportunity


async def update_opportunity(
    viewer: Viewer, pk: int, data: OpportunityInput, expected_version: int | None
) -> Opportunity:
    """Edit name, amount, expected close date or remarks (stages move with their own mutations)."""
    async with transaction():
        opportunity = await _writable(viewer, pk, OPPORTUNITY_UPDATE)
        changes = _changes(data)
        await check_writable(viewer, RecordType.OPPORTUNITY, changes)
        changed = diff(opportunity, changes)
        if "amount" in changed and await OpportunityProduct.filter(opportunity_id=pk).exists():
            raise BadUserInput(
                "The amount is the total of the product lines; change the lines instead.",
                field="amount",
            )
        _check_version(opportunity, expected_version)
        if not changed:
            return opportunity
        await update_versioned(opportunity, expected_version, **changes)
        await _log(viewer, "UPDATE", opportunity, changed, f"Edited {', '.join(changed)}")
        await _event(
            UPDATED, viewer, opportunity, fields=sorted(changed), version=opportunity.version
        )
        return opportunity


async def move_stage(
    viewer: Viewer, pk: int, stage_id: int, expected_version: int | None
) -> Opportunity:
    """Move to a stage of its pipeline; a won or lost opportunity is reopened there."""
    async with transaction():
        opportunity = await _writable(viewer, pk, OPPORTUNITY_UPDATE)
        stage = await _stage(stage_id)
        current = await OpportunityStage.get(id=opportunity.stage_id)
        if stage.pipeline_id != current.pipeline_id:
            raise BadUserInput(
                "That stage belongs to another pipeline; change the opportunity's pipeline "
                "instead.",
                field="stageId",
            )
        _check_version(opportunity, expected_version)
        if opportunity.stage_id == stage.id and opportunity.status == OpportunityStatus.OPEN:
            return opportunity
        return await _change_stage(
            viewer, opportunity, expected_version, "MOVE_STAGE", stage.id, OpportunityStatus.OPEN
        )


async def change_pipeline(
    viewer: Viewer,
    pk: int,
    pipeline_id: int,
    stage_id: int | None,
    expected_version: int | None,
) -> Opportunity:
    """Move to another active pipeline, at its first stage or the given one of it; a won
    or lost opportunity is reopened there."""
    async with transaction():
        opportunity = await _writable(viewer, pk, OPPORTUNITY_UPDATE)
        pipeline = await pipeline_for_new_opportunities(pipeline_id)
        current = await OpportunityStage.get(id=opportunity.stage_id)
        if current.pipeline_id == pipeline.id:
            raise BadUserInput(
                "The opportunity is already in this pipeline; move its stage instead.",
                field="pipelineId",
            )
        stage = await starting_stage(pipeline.id, stage_id)
        _check_version(opportunity, expected_version)
        return await _change_stage(
            viewer,
            opportunity,
            expected_version,
            "CHANGE_PIPELINE",
            stage.id,
            OpportunityStatus.OPEN,
        )


async def win_opportunity(viewer: Viewer, pk: int, expected_version: int | None) -> Opportunity:
    async with transaction():
        opportunity = await _writable(viewer, pk, OPPORTUNITY_UPDATE)
        _check_version(opportunity, expected_version)
        if opportunity.status == OpportunityStatus.WON:
            raise Conflict("This opportunity is already won.")
        return await _change_stage(
            viewer,
            opportunity,
            expected_version,
            "WIN",
            opportunity.stage_id,
            OpportunityStatus.WON,
        )


async def lose_opportunity(
    viewer: Viewer, pk: int, reason: str, expected_version: int | None
) -> Opportunity:
    async with transaction():
        opportunity = await _writable(viewer, pk, OPPORTUNITY_UPDATE)
        reason = clean_name(reason, "reason", max_length=_LIMITS["reason"])
        _check_version(opportunity, expected_version)
        if opportunity.status == OpportunityStatus.LOST:
            raise Conflict("This opportunity is already lost.")
        return await _change_stage(
            viewer,
            opportunity,
            expected_version,
            "LOSE",
            opportunity.stage_id,
            OpportunityStatus.LOST,
            reason,
        )


async def _change_stage(
    viewer: Viewer,
    opportunity: Opportunity,
    expected_version: int | None,
    action: str,
    stage_id: int,
    status: OpportunityStatus,
    reason: str | None = None,
) -> Opportunity:
    from_stage_id, from_status = opportunity.stage_id, opportunity.status
    closed = status != OpportunityStatus.OPEN
    changes = {
        "stage_id": stage_id,
        "status": status,
        "lost_reason": reason,
        "closed_at": datetime.now(UTC) if closed else None,
    }
    changed = diff(opportunity, changes)
    await update_versioned(opportunity, expected_version, **changes)
    await _record_stage_change(viewer, opportunity, from_stage_id, from_status, reason)
    await _log(viewer, action, opportunity, changed, reason or "")
    return opportunity


async def set_products(
    viewer: Viewer, pk: int, items: list[LineInput], expected_version: int | None
) -> Opportunity:
    """Replace the product lines; the amount becomes their total (kept when the list is empty)."""
    async with transaction():
        opportunity = await _writable(viewer, pk, OPPORTUNITY_UPDATE)
        _check_version(opportunity, expected_version)
        before = [
            PricedLine(line.product_id, line.quantity, line.unit_price, line.discount)
            for line in await OpportunityProduct.filter(opportunity_id=pk).order_by("id")
        ]
        lines = await _priced_lines(items, "items", {line.product_id for line in before})
        changes = {"amount": _total(lines)} if lines else {}
        changed = diff(opportunity, changes)
        old, new = [line.plain() for line in before], [line.plain() for line in lines]
        if old != new:
            changed["products"] = [old, new]
        if not changed:
            return opportunity
        await _replace_lines(pk, lines)
        await update_versioned(opportunity, expected_version, **changes)
        await _log(viewer, "UPDATE", opportunity, changed, "Set the product lines")
        await _event(
            UPDATED, viewer, opportunity, fields=sorted(changed), version=opportunity.version
        )
        return opportunity


async def transfer_opportunities(
    viewer: Viewer, ids: list[int], owner_id: int
) -> list[Opportunity]:
    """Hand opportunities to another active user; all or none."""
    wanted = list(dict.fromkeys(ids))
    if not 0 < len(wanted) <= MAX_TRANSFER:
        raise BadUserInput(f"Transfer 1 to {MAX_TRANSFER} opportunities at a time.", field="ids")
    async with transaction():
        query = await visible(viewer, RecordType.OPPORTUNITY)
        rows = {
            o.id: o for o in await query.filter(id__in=wanted).order_by("id").select_for_update()
        }
        if len(rows) != len(wanted):
            raise NotFound("No such opportunity.")
        viewer.require(OPPORTUNITY_TRANSFER)
        owner = await User.get_or_none(id=owner_id, is_active=True)
        if owner is None:
            raise BadUserInput("No such active user.", field="ownerId")
        for opportunity in rows.values():
            await require_write(viewer, opportunity)
        for opportunity in rows.values():
            previous = opportunity.owner_id
            if previous == owner.id:
                continue
            await update_versioned(opportunity, None, owner_id=owner.id)
            await _log(
                viewer,
                "TRANSFER",
                opportunity,
                {"owner_id": [previous, owner.id]},
                f"Transferred to {owner.name}",
            )
            await _event(
                TRANSFERRED,
                viewer,
                opportunity,
                recipient_id=owner.id,
                fromOwnerId=previous,
                toOwnerId=owner.id,
            )
        return [rows[pk] for pk in wanted]


async def delete_opportunity(viewer: Viewer, pk: int) -> int:
    """Delete an opportunity no contract refers to; its lines and history go with it."""
    async with transaction():
        opportunity = await _writable(viewer, pk, OPPORTUNITY_DELETE)
        if await Contract.filter(opportunity_id=pk).exists():
            raise Conflict("Contracts refer to this opportunity; it cannot be deleted.")
        await _log(viewer, "DELETE", opportunity, {}, f"Deleted opportunity {opportunity.name}")
        await _event(DELETED, viewer, opportunity)
        try:
            await opportunity.delete()
        except IntegrityError:
            # A contract was signed against it after our check (PostgreSQL).
            raise Conflict("A contract now refers to this opportunity.") from None
    return pk

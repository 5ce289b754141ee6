"""The contract approval flow (合同审批): configuring its steps, and moving contracts
through it.

Submitting puts a contract at step 1; each approval moves it one step on,
the last one to APPROVED; a rejection sends it back to its owner. Pending
contracts follow the flow as it is now, at their current step number.

Approval requests are personal notifications: a ROLE step sends one
`approval.requested` event to each active approving holder of the role, so
each of them finds it among their own notifications.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tortoise.expressions import F, Q

from meihua.models import (
    ApprovalDecision,
    ApprovalRecord,
    ApprovalStep,
    ApproverKind,
    Contract,
    ContractItem,
    ContractStatus,
    Payment,
    RecordType,
    Role,
    User,
)
from meihua.resolvers.access import Viewer
from meihua.resolvers.approvers import CONTRACT_APPROVE, Flow, load_flow
from meihua.resolvers.contracts import (
    CONTRACT_UPDATE,
    EDITABLE,
    get_contract,
    record_contract_change,
)
from meihua.resolvers.errors import BadUserInput, Conflict, Forbidden
from meihua.resolvers.records import require_write
from meihua.subscriptions.events import record_event, transaction

CONTRACT_VOID = "contract:void"
SETTINGS_MANAGE = "settings:manage"

MAX_STEPS = 20
MAX_COMMENT = 2_000

Progress = tuple[ContractStatus, int | None]  # (status, current step)


# --- configuring the flow -------------------------------------------------------


@dataclass
class StepInput:
    kind: ApproverKind
    user_id: int | None = None
    role_id: int | None = None


async def approval_steps() -> list[ApprovalStep]:
    return await ApprovalStep.all().order_by("order")


async def _checked_step(index: int, step: StepInput) -> dict[str, Any]:
    prefix = f"steps.{index}"
    if step.kind == ApproverKind.USER:
        if step.user_id is None:
            raise BadUserInput("A USER step names its approver.", field=f"{prefix}.userId")
        if not await User.filter(id=step.user_id, is_active=True).exists():
            raise BadUserInput("No such active user.", field=f"{prefix}.userId")
    elif step.user_id is not None:
        raise BadUserInput("Only USER steps name a user.", field=f"{prefix}.userId")
    if step.kind == ApproverKind.ROLE:
        if step.role_id is None:
            raise BadUserInput("A ROLE step names its role.", field=f"{prefix}.roleId")
        if not await Role.filter(id=step.role_id).exists():
            raise BadUserInput("No such role.", field=f"{prefix}.roleId")
    elif step.role_id is not None:
        raise BadUserInput("Only ROLE steps name a role.", field=f"{prefix}.roleId")
    return {"kind": step.kind, "user_id": step.user_id, "role_id": step.role_id}


async def set_approval_steps(viewer: Viewer, steps: list[StepInput]) -> list[ApprovalStep]:
    """Replace the ordered flow; an empty list approves contracts on submission."""
    viewer.require(SETTINGS_MANAGE)
    if len(steps) > MAX_STEPS:
        raise BadUserInput(f"A flow has at most {MAX_STEPS} steps.", field="steps")
    checked = [await _checked_step(i, step) for i, step in enumerate(steps)]
    async with transaction():
        await load_flow(lock=True)
        stranded = await Contract.filter(
            status=ContractStatus.PENDING_APPROVAL, current_step__gt=len(checked)
        ).count()
        if stranded:
            raise Conflict(
                f"{stranded} contracts wait at a step beyond step {len(checked)}; "
                "decide them first or keep enough steps."
            )
        await ApprovalStep.all().delete()
        for order, values in enumerate(checked, start=1):
            await ApprovalStep.create(order=order, **values)
        return await approval_steps()


# --- moving a contract through the flow -----------------------------------------


async def _move(contract: Contract, expected: Q, **changes: Any) -> Contract:
    """Change the status only if nobody moved the contract since we read it.

    One conditional UPDATE: two approvers deciding the same step at once
    cannot both advance it; the second gets CONFLICT.
    """
    moved = await Contract.filter(expected, id=contract.id).update(
        version=F("version") + 1, updated_at=datetime.now(UTC), **changes
    )
    if not moved:
        raise Conflict("This contract was moved on by someone else; reload it.")
    await contract.refresh_from_db()
    return contract


async def _request_decision(viewer: Viewer, flow: Flow, contract: Contract) -> None:
    step = flow.steps[contract.current_step]
    for approver in sorted(flow.approvers(step, contract.owner_id)):
        await record_event(
            "approval.requested",
            record_type=RecordType.CONTRACT.value,
            record_id=contract.id,
            owner_id=contract.owner_id,
            customer_id=contract.customer_id,
            recipient_id=approver,
            actor_id=viewer.id,
            payload={"number": contract.number, "step": contract.current_step},
        )


async def _record_decision(
    viewer: Viewer,
    contract: Contract,
    decision: ApprovalDecision,
    step: int | None,
    comment: str | None,
    changed: dict[str, list[Any]],
) -> None:
    """History, operation log, the live change and the owner's notification."""
    await ApprovalRecord.create(
        contract_id=contract.id, step=step, decision=decision, actor_id=viewer.id, comment=comment
    )
    await record_contract_change(
        viewer,
        decision.value,
        contract,
        changed,
        summary=f"Contract {contract.number}: {decision.value.lower()}"
        + (f" at step {step}" if step else ""),
    )
    if decision != ApprovalDecision.SUBMITTED:
        await record_event(
            "approval.decided",
            record_type=RecordType.CONTRACT.value,
            record_id=contract.id,
            owner_id=contract.owner_id,
            customer_id=contract.customer_id,
            recipient_id=contract.owner_id,
            actor_id=viewer.id,
            payload={
                "number": contract.number,
                "decision": decision.value,
                "step": step,
                "comment": comment,
                "status": contract.status.value,
            },
        )


def _progress(contract: Contract) -> Progress:
    return contract.status, contract.current_step


def _changed(before: Progress, contract: Contract) -> dict[str, list[Any]]:
    pairs = {
        "status": [before[0].value, contract.status.value],
        "current_step": [before[1], contract.current_step],
    }
    return {k: v for k, v in pairs.items() if v[0] != v[1]}


def _comment(comment: str | None, *, required: bool, field: str = "comment") -> str | None:
    text = (comment or "").strip()
    if required and not text:
        raise BadUserInput(f"Say why in `{field}`.", field=field)
    if len(text) > MAX_COMMENT:
        raise BadUserInput(f"`{field}` is longer than {MAX_COMMENT} characters.", field=field)
    return text or None


async def submit_contract(viewer: Viewer, pk: int) -> Contract:
    """DRAFT or REJECTED -> PENDING_APPROVAL at step 1 (APPROVED when there are no steps)."""
    async with transaction():
        flow = await load_flow(lock=True)
        contract = await get_contract(viewer, pk, lock=True)
        viewer.require(CONTRACT_UPDATE)
        await require_write(viewer, contract)
        if contract.status not in EDITABLE:
            raise Conflict(f"A contract that is {contract.status.value} cannot be submitted.")
        if not await ContractItem.filter(contract_id=pk).exists():
            raise BadUserInput("Add at least one line before submitting.", field="items")
        before = _progress(contract)
        if flow.steps:
            changes = {"status": ContractStatus.PENDING_APPROVAL, "current_step": min(flow.steps)}
        else:
            changes = {"status": ContractStatus.APPROVED, "current_step": None}
        contract = await _move(contract, Q(status__in=EDITABLE), **changes)
        await _record_decision(
            viewer, contract, ApprovalDecision.SUBMITTED, None, None, _changed(before, contract)
        )
        if flow.steps:
            await _request_decision(viewer, flow, contract)
        else:
            await _record_decision(
                viewer,
                contract,
                ApprovalDecision.APPROVED,
                None,
                "Approved on submission: no approval steps are configured.",
                {},
            )
        return contract


async def _decide(
    viewer: Viewer, pk: int, approve: bool, comment: str | None, expected_version: int | None
) -> Contract:
    async with transaction():
        flow = await load_flow(lock=True)
        contract = await get_contract(viewer, pk)
        viewer.require(CONTRACT_APPROVE)
        if contract.status != ContractStatus.PENDING_APPROVAL:
            raise Conflict(f"The contract is {contract.status.value}, not pending approval.")
        step = contract.current_step
        if viewer.id not in flow.approvers(flow.steps[step], contract.owner_id):
            raise Forbidden("Only an approver of the contract's current step can decide it.")
        expected = Q(status=ContractStatus.PENDING_APPROVAL, current_step=step)
        if expected_version is not None:
            # The step the approver looked at: a colleague may have moved it on since.
            if expected_version != contract.version:
                raise Conflict(
                    "This contract was moved on by someone else; reload it.",
                    currentVersion=contract.version,
                )
            expected &= Q(version=expected_version)
        before = _progress(contract)
        if not approve:
            changes = {"status": ContractStatus.REJECTED, "current_step": None}
        elif step + 1 in flow.steps:
            changes = {"current_step": step + 1}
        else:
            changes = {"status": ContractStatus.APPROVED, "current_step": None}
        contract = await _move(contract, expected, **changes)
        decision = ApprovalDecision.APPROVED if approve else ApprovalDecision.REJECTED
        await _record_decision(
            viewer, contract, decision, step, comment, _changed(before, contract)
        )
        if contract.status == ContractStatus.PENDING_APPROVAL:
            await _request_decision(viewer, flow, contract)
        return contract


async def approve_contract(
    viewer: Viewer, pk: int, comment: str | None, expected_version: int | None = None
) -> Contract:
    """Approve the current step: on to the next, or APPROVED after the last."""
    return await _decide(viewer, pk, True, _comment(comment, required=False), expected_version)


async def reject_contract(
    viewer: Viewer, pk: int, comment: str, expected_version: int | None = None
) -> Contract:
    """Send the contract back to its owner (REJECTED), who may edit and resubmit."""
    return await _decide(viewer, pk, False, _comment(comment, required=True), expected_version)


async def void_contract(viewer: Viewer, pk: int, reason: str) -> Contract:
    """APPROVED -> VOIDED (作废). Payments received must be deleted first."""
    reason = _comment(reason, required=True, field="reason")
    async with transaction():
        # Locked so no payment slips in while we check there are none.
        contract = await get_contract(viewer, pk, lock=True)
        viewer.require(CONTRACT_VOID)
        await require_write(viewer, contract)
        if contract.status != ContractStatus.APPROVED:
            raise Conflict(f"Only approved contracts can be voided; this one is "
                           f"{contract.status.value}.")  # fmt: skip
        if await Payment.filter(contract_id=pk).exists():
            raise Conflict("Payments were received on this contract; delete them first.")
        before = _progress(contract)
        contract = await _move(
            contract, Q(status=ContractStatus.APPROVED), status=ContractStatus.VOIDED
        )
        await _record_decision(
            viewer, contract, ApprovalDecision.VOIDED, None, reason, _changed(before, contract)
        )
        return contract

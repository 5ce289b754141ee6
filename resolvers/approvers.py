"""Who may decide a contract's current approval step.

Each step of the flow is decided by a given user, by the contract owner's
manager (上级), or by any holder of a role, and only by those who also hold
`contract:approve`. A step nobody can decide (the user deactivated, an owner
without an active approving manager, a role no active approver holds) falls
to the super admins, so no contract is ever stuck.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tortoise.expressions import Q

from meihua.models import ApprovalStep, ApproverKind, CompanySettings, ContractStatus, Role, User
from meihua.resolvers.access import Viewer

CONTRACT_APPROVE = "contract:approve"


@dataclass
class Flow:
    """The configured steps and who may decide them, as read at one moment."""

    steps: dict[int, ApprovalStep]  # by order, 1..n
    deciders: set[int]  # active users holding contract:approve
    super_admins: set[int]  # active super admins: the fallback
    role_holders: dict[int, set[int]] = field(default_factory=dict)  # deciders by step role
    managers: dict[int, int | None] = field(default_factory=dict)  # user -> manager

    def approvers(self, step: ApprovalStep, owner_id: int | None) -> set[int]:
        """Who may decide `step` of a contract owned by `owner_id`."""
        if step.kind == ApproverKind.USER:
            found = {step.user_id} & self.deciders
        elif step.kind == ApproverKind.OWNER_MANAGER:
            manager = self.managers.get(owner_id) if owner_id is not None else None
            found = {manager} & self.deciders
        else:
            found = self.role_holders.get(step.role_id, set())
        return found or self.super_admins


async def _active_deciders() -> tuple[set[int], set[int]]:
    """(active users holding contract:approve, active super admins)."""
    approving_roles = [
        pk for pk, permissions in await Role.all().values_list("id", "permissions")
        if CONTRACT_APPROVE in permissions
    ]  # fmt: skip
    active = User.filter(is_active=True)
    super_admins = set(await active.filter(is_super_admin=True).values_list("id", flat=True))
    holders = active.filter(roles__id__in=approving_roles).values_list("id", flat=True)
    holding = set(await holders) if approving_roles else set()
    return holding | super_admins, super_admins


async def load_flow(*, lock: bool = False) -> Flow:
    """The flow as it is now.

    `lock` holds the company settings row, which stands for the flow's
    configuration, until the transaction ends: submissions and decisions take
    it, so admins cannot replace the steps under a contract being moved.
    """
    if lock:
        await CompanySettings.all().order_by("id").select_for_update().first()
    steps = {s.order: s for s in await ApprovalStep.all().order_by("order")}
    deciders, super_admins = await _active_deciders()
    flow = Flow(steps=steps, deciders=deciders, super_admins=super_admins)
    step_roles = {s.role_id for s in steps.values() if s.kind == ApproverKind.ROLE}
    if step_roles:
        pairs = await Role.filter(id__in=step_roles).values_list("id", "users__id")
        for role_id, user_id in pairs:
            if user_id in deciders:
                flow.role_holders.setdefault(role_id, set()).add(user_id)
    if any(s.kind == ApproverKind.OWNER_MANAGER for s in steps.values()):
        flow.managers = dict(await User.all().values_list("id", "manager_id"))
    return flow


async def awaiting_decision_of(viewer: Viewer) -> Q | None:
    """Contracts whose current step the viewer may decide (None: there are none)."""
    if not viewer.can(CONTRACT_APPROVE):
        return None
    flow = await load_flow()
    clauses = []
    for order, step in flow.steps.items():
        if step.kind == ApproverKind.OWNER_MANAGER:
            owners = [u for u in flow.managers if viewer.id in flow.approvers(step, u)]
            if owners:
                clauses.append(Q(current_step=order, owner_id__in=sorted(owners)))
        elif viewer.id in flow.approvers(step, None):
            clauses.append(Q(current_step=order))
    if not clauses:
        return None
    return Q(Q(*clauses, join_type="OR"), status=ContractStatus.PENDING_APPROVAL)

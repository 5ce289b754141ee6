"""DataLoaders: one batched query per relation per operation, never one per row.

A fresh `Loaders` is made for every operation (see schema.extensions), so a
long-lived WebSocket never serves stale rows from a cache.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence

from strawberry.dataloader import DataLoader
from tortoise.expressions import Q
from tortoise.functions import Count
from tortoise.models import Model

from meihua.models import (
    ApprovalRecord,
    CompanySettings,
    Contact,
    Contract,
    ContractItem,
    Customer,
    CustomerTeamMember,
    Department,
    FollowUp,
    Opportunity,
    OpportunityProduct,
    OpportunityStage,
    OpportunityStageChange,
    Payment,
    PaymentPlan,
    Pipeline,
    Pool,
    PoolMovement,
    Product,
    RecordType,
    Role,
    User,
)
from meihua.resolvers.access import Viewer
from meihua.resolvers.records import contract_filter, visible


def _by_id(model: type[Model]) -> DataLoader[int, Model | None]:
    async def load(ids: Sequence[int]) -> list[Model | None]:
        rows = {row.pk: row for row in await model.filter(id__in=set(ids))}
        return [rows.get(pk) for pk in ids]

    return DataLoader(load_fn=load)


async def _roles_of_users(user_ids: Sequence[int]) -> list[list[Role]]:
    pairs = await User.filter(id__in=set(user_ids)).values_list("id", "roles__id")
    role_ids = {role_id for _, role_id in pairs if role_id is not None}
    roles = {r.id: r for r in await Role.filter(id__in=role_ids).order_by("id")}
    by_user: dict[int, list[Role]] = defaultdict(list)
    for user_id, role_id in pairs:
        if role_id is not None:
            by_user[user_id].append(roles[role_id])
    return [sorted(by_user[uid], key=lambda r: r.id) for uid in user_ids]


async def _departments_of_roles(role_ids: Sequence[int]) -> list[list[Department]]:
    pairs = await Role.filter(id__in=set(role_ids)).values_list("id", "departments__id")
    dept_ids = {d for _, d in pairs if d is not None}
    departments = {d.id: d for d in await Department.filter(id__in=dept_ids)}
    by_role: dict[int, list[Department]] = defaultdict(list)
    for role_id, dept_id in pairs:
        if dept_id is not None:
            by_role[role_id].append(departments[dept_id])
    return [sorted(by_role[rid], key=lambda d: d.id) for rid in role_ids]


async def _children_of_departments(parent_ids: Sequence[int]) -> list[list[Department]]:
    by_parent: dict[int, list[Department]] = defaultdict(list)
    for dept in await Department.filter(parent_id__in=set(parent_ids)).order_by("name", "id"):
        by_parent[dept.parent_id].append(dept)
    return [by_parent[pid] for pid in parent_ids]


async def _departments_of_pools(pool_ids: Sequence[int]) -> list[list[Department]]:
    pairs = await Pool.filter(id__in=set(pool_ids)).values_list("id", "departments__id")
    dept_ids = {d for _, d in pairs if d is not None}
    departments = {d.id: d for d in await Department.filter(id__in=dept_ids)}
    by_pool: dict[int, list[Department]] = defaultdict(list)
    for pool_id, dept_id in pairs:
        if dept_id is not None:
            by_pool[pool_id].append(departments[dept_id])
    return [sorted(by_pool[pid], key=lambda d: (d.name, d.id)) for pid in pool_ids]


async def _customers_in_pools(pool_ids: Sequence[int]) -> list[int]:
    """How many customers sit in each pool (no owner) right now."""
    rows = (
        await Customer.filter(owner_id=None, pool_id__in=set(pool_ids))
        .annotate(count=Count("id"))
        .group_by("pool_id")
        .values_list("pool_id", "count")
    )
    counts = dict(rows)
    return [counts.get(pid, 0) for pid in pool_ids]


async def _contacts_of_customers(customer_ids: Sequence[int]) -> list[list[Contact]]:
    """Primary contact first, then in the order they were entered."""
    by_customer: dict[int, list[Contact]] = defaultdict(list)
    rows = Contact.filter(customer_id__in=set(customer_ids)).order_by("-is_primary", "id")
    for contact in await rows:
        by_customer[contact.customer_id].append(contact)
    return [by_customer[cid] for cid in customer_ids]


async def _team_of_customers(customer_ids: Sequence[int]) -> list[list[CustomerTeamMember]]:
    by_customer: dict[int, list[CustomerTeamMember]] = defaultdict(list)
    for member in await CustomerTeamMember.filter(customer_id__in=set(customer_ids)).order_by("id"):
        by_customer[member.customer_id].append(member)
    return [by_customer[cid] for cid in customer_ids]


def _grouped(model: type[Model], key: str, *order: str) -> DataLoader[int, list[Model]]:
    """The rows of `model` per value of `key` (e.g. the lines of each opportunity)."""

    async def load(keys: Sequence[int]) -> list[list[Model]]:
        rows = await model.filter(**{f"{key}__in": set(keys)}).order_by(*order)
        return _group(rows, key, keys)

    return DataLoader(load_fn=load)


def _group(rows: list[Model], key: str, keys: Sequence[int]) -> list[list[Model]]:
    groups: dict[int, list[Model]] = defaultdict(list)
    for row in rows:
        groups[getattr(row, key)].append(row)
    return [groups[k] for k in keys]


# Records with a data scope are loaded with the viewer as part of the key:
# `Loaders` is made before the operation's viewer is known (one viewer per
# operation, so batching is unaffected). What the viewer may not see is absent.
Scope = Callable[[Viewer], Awaitable[Q]]


def _visible_by_id(
    model: type[Model], scope: Scope
) -> DataLoader[tuple[Viewer, int], Model | None]:
    async def load(keys: Sequence[tuple[Viewer, int]]) -> list[Model | None]:
        viewer = keys[0][0]
        found = model.filter(await scope(viewer), id__in={pk for _, pk in keys})
        rows = {row.pk: row for row in await found}
        return [rows.get(pk) for _, pk in keys]

    return DataLoader(load_fn=load)


def _visible_grouped(
    model: type[Model], scope: Scope, key: str, *order: str
) -> DataLoader[tuple[Viewer, int], list[Model]]:
    async def load(keys: Sequence[tuple[Viewer, int]]) -> list[list[Model]]:
        viewer, wanted = keys[0][0], [k for _, k in keys]
        found = model.filter(await scope(viewer), **{f"{key}__in": set(wanted)})
        return _group(await found.order_by(*order), key, wanted)

    return DataLoader(load_fn=load)


async def _company_currency(keys: Sequence[None]) -> list[str]:
    """The currency code of the company settings, read once per operation."""
    settings = await CompanySettings.all().order_by("id").first()
    currency = settings.currency if settings is not None else "CNY"
    return [currency for _ in keys]


async def _visible_records(keys: Sequence[tuple[Viewer, RecordType, int]]) -> list[Model | None]:
    """Records of any kind by (viewer, kind, id), absent where the viewer may not see them."""
    viewer = keys[0][0]
    found: dict[tuple[RecordType, int], Model] = {}
    for kind in {kind for _, kind, _ in keys}:
        ids = {pk for _, other, pk in keys if other is kind}
        for row in await (await visible(viewer, kind)).filter(id__in=ids):
            found[(kind, row.pk)] = row
    return [found.get((kind, pk)) for _, kind, pk in keys]


class Loaders:
    def __init__(self) -> None:
        self.user = _by_id(User)
        self.department = _by_id(Department)
        self.role = _by_id(Role)
        self.roles_of_user = DataLoader(load_fn=_roles_of_users)
        self.departments_of_role = DataLoader(load_fn=_departments_of_roles)
        self.children_of_department = DataLoader(load_fn=_children_of_departments)
        self.customer = _by_id(Customer)
        self.contacts_of_customer = DataLoader(load_fn=_contacts_of_customers)
        self.team_of_customer = DataLoader(load_fn=_team_of_customers)
        self.visible_customer = _visible_by_id(Customer, Viewer.customer_filter)
        self.pool = _by_id(Pool)
        self.departments_of_pool = DataLoader(load_fn=_departments_of_pools)
        self.customers_in_pool = DataLoader(load_fn=_customers_in_pools)
        self.pool_history_of_customer = _grouped(PoolMovement, "customer_id", "-created_at", "-id")
        self.opportunities_of_customer = _visible_grouped(
            Opportunity, Viewer.owned_record_filter, "customer_id", "-created_at", "-id"
        )
        self.opportunity_stage = _by_id(OpportunityStage)
        self.pipeline = _by_id(Pipeline)
        self.stages_of_pipeline = _grouped(OpportunityStage, "pipeline_id", "order", "id")
        self.stage_history_of_opportunity = _grouped(
            OpportunityStageChange, "opportunity_id", "at", "id"
        )
        self.lines_of_opportunity = _grouped(OpportunityProduct, "opportunity_id", "id")
        self.product = _by_id(Product)
        self.contract = _by_id(Contract)
        self.contracts_of_customer = _visible_grouped(
            Contract, contract_filter, "customer_id", "-created_at", "-id"
        )
        self.items_of_contract = _grouped(ContractItem, "contract_id", "id")
        self.approvals_of_contract = _grouped(ApprovalRecord, "contract_id", "at", "id")
        self.payment_plans_of_contract = _grouped(PaymentPlan, "contract_id", "period", "id")
        self.payments_of_contract = _grouped(Payment, "contract_id", "paid_on", "id")
        self.company_currency = DataLoader(load_fn=_company_currency)
        self.visible_record = DataLoader(load_fn=_visible_records)
        self.followup = _by_id(FollowUp)

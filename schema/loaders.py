"""DataLoaders: one batched query per relation per operation, never one per row.

A fresh `Loaders` is made for every operation (see schema.extensions), so a
long-lived WebSocket never serves stale rows from a cache.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from strawberry.dataloader import DataLoader
from tortoise.models import Model

from meihua.models import Department, Role, User


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


class Loaders:
    def __init__(self) -> None:
        self.user = _by_id(User)
        self.department = _by_id(Department)
        self.role = _by_id(Role)
        self.roles_of_user = DataLoader(load_fn=_roles_of_users)
        self.departments_of_role = DataLoader(load_fn=_departments_of_roles)
        self.children_of_department = DataLoader(load_fn=_children_of_departments)

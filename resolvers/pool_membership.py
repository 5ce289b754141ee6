"""Who belongs to which public pool, and which pool a customer belongs to.

A company-wide pool is open to everybody. Any other pool is open to the users
of its member departments and of every department below them, so a pool for
"East China sales" also serves the teams under it.
"""

from __future__ import annotations

from tortoise.expressions import Q

from meihua.models import Department, Pool, User
from meihua.resolvers.errors import NotFound


async def department_ancestry(department_id: int) -> list[int]:
    """The department and its parents, up to the top."""
    parents = dict(await Department.all().values_list("id", "parent_id"))
    chain: list[int] = []
    current: int | None = department_id
    while current is not None and current not in chain:
        chain.append(current)
        current = parents.get(current)
    return chain


async def member_pool_ids(user: User) -> set[int]:
    """The pools the user may see into and claim from."""
    ancestry = await department_ancestry(user.department_id)
    return set(
        await Pool.filter(Q(company_wide=True) | Q(departments__id__in=ancestry))
        .distinct()
        .values_list("id", flat=True)
    )


async def home_pool_id(owner: User) -> int | None:
    """Where a new customer of this owner belongs: the pool of their nearest
    department that has one, else the company-wide pool."""
    ancestry = await department_ancestry(owner.department_id)
    rows = await Pool.filter(departments__id__in=ancestry).values_list("id", "departments__id")
    nearest = {department: pool for pool, department in rows}
    for department in ancestry:
        if department in nearest:
            return nearest[department]
    return await company_pool_id()


async def company_pool_id() -> int | None:
    return await Pool.filter(company_wide=True).order_by("id").first().values_list("id", flat=True)


async def get_pool(pk: int) -> Pool:
    pool = await Pool.get_or_none(id=pk)
    if pool is None:
        raise NotFound("No such pool.")
    return pool

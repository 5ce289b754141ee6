"""The two trees of an organization: departments and the manager chain.

Both are small next to the business data, so they are read whole (one query)
and walked in Python, to any depth.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from meihua.models import Department, User


def descendants(children: dict[int | None, list[int]], roots: Iterable[int]) -> set[int]:
    """The roots and everything below them in a parent → children map."""
    found: set[int] = set()
    stack = list(roots)
    while stack:
        node = stack.pop()
        if node in found:
            continue
        found.add(node)
        stack.extend(children.get(node, ()))
    return found


async def department_subtree(*department_ids: int) -> set[int]:
    """The departments and all their sub-departments (本级和子级)."""
    below: dict[int | None, list[int]] = defaultdict(list)
    for dept_id, parent_id in await Department.all().values_list("id", "parent_id"):
        below[parent_id].append(dept_id)
    return descendants(below, department_ids)


async def reporting_tree(user_id: int) -> set[int]:
    """The user and everyone whose manager chain leads to them."""
    reports: dict[int | None, list[int]] = defaultdict(list)
    for member_id, manager_id in await User.all().values_list("id", "manager_id"):
        reports[manager_id].append(member_id)
    return descendants(reports, [user_id])

"""Tortoise models: the tables Meihua keeps.

Every model lives in the single tortoise app ``models`` so migrations stay in
one ordered history (``meihua.migrations``).
"""

from meihua.models.customers import Customer
from meihua.models.org import DataScope, Department, Role, User

__all__ = ["Customer", "DataScope", "Department", "Role", "User"]

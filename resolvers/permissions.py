"""The catalogue of operation permissions (`resource:action`).

A role holds a subset of these; the `permissions` query serves the list so a
front end can build its role editor from it.
"""

from __future__ import annotations

_ACTIONS: dict[str, tuple[str, ...]] = {
    "customer": ("create", "update", "delete", "import", "export", "transfer", "lock"),
    "pool": ("claim", "assign", "release", "manage"),
    "lead": (
        "create",
        "update",
        "delete",
        "import",
        "export",
        "transfer",
        "convert",
        "distribute",
    ),
    "contact": ("create", "update", "delete"),
    "opportunity": ("create", "update", "delete", "transfer"),
    "contract": ("create", "update", "delete", "transfer", "approve", "void"),
    "payment": ("create", "update", "delete"),
    "product": ("manage",),
    "dashboard": ("view",),
    "org": ("manage",),
    "settings": ("manage",),
}

ALL_PERMISSIONS: tuple[str, ...] = tuple(
    f"{resource}:{action}" for resource, actions in _ACTIONS.items() for action in actions
)

CUSTOMER_CREATE = "customer:create"
CUSTOMER_UPDATE = "customer:update"
ORG_MANAGE = "org:manage"


def unknown_permissions(permissions: list[str]) -> list[str]:
    known = set(ALL_PERMISSIONS)
    return [p for p in permissions if p not in known]

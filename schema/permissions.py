"""Field guards declared next to the fields they protect."""

from __future__ import annotations

from typing import Any

from strawberry.permission import BasePermission

from meihua.schema.context import Info


class SignedIn(BasePermission):
    """For fields that need a signed-in caller but no per-record check."""

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        return info.context.viewer is not None  # raises UNAUTHENTICATED

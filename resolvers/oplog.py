"""The operation log (操作日志): who changed what, with old and new values."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from tortoise.models import Model

from meihua.models import OperationLog, RecordType


def plain(value: Any) -> Any:
    """A JSON-friendly copy of a field value."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    return value


def diff(record: Model, changes: dict[str, Any]) -> dict[str, list[Any]]:
    """{field: [old, new]} for the changes that really change something."""
    changed = {}
    for field, new in changes.items():
        old = getattr(record, field, None)
        if plain(old) != plain(new):
            changed[field] = [plain(old), plain(new)]
    return changed


async def log_operation(
    actor_id: int | None,
    action: str,
    record_type: RecordType,
    record_id: int,
    *,
    customer_id: int | None = None,
    changes: dict[str, list[Any]] | None = None,
    summary: str = "",
) -> OperationLog:
    """Append an entry; call it inside the mutation's transaction."""
    return await OperationLog.create(
        actor_id=actor_id,
        action=action,
        record_type=record_type,
        record_id=record_id,
        customer_id=customer_id,
        changes=changes or {},
        summary=summary[:500],
    )

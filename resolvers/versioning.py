"""Optimistic concurrency: every updatable record carries `version`.

An update names the version it was based on; the write is one conditional
UPDATE, so two teammates editing at once cannot silently overwrite each other.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar

from tortoise.expressions import F
from tortoise.models import Model

from meihua.resolvers.errors import Conflict

M = TypeVar("M", bound=Model)


async def update_versioned(record: M, expected_version: int | None, **changes: Any) -> M:
    """Write `changes` to `record` if it is still at `expected_version`.

    With no expected version the write is unconditional but still bumps the
    version, so others' stale edits fail. Returns the record as stored.
    """
    query = type(record).filter(pk=record.pk)
    if expected_version is not None:
        if expected_version != record.version:
            raise _stale(record)
        query = query.filter(version=expected_version)
    if "updated_at" in record._meta.fields_map:
        changes.setdefault("updated_at", datetime.now(UTC))
    updated = await query.update(version=F("version") + 1, **changes)
    if not updated:
        raise _stale(record)
    await record.refresh_from_db()
    return record


def _stale(record: Model) -> Conflict:
    return Conflict(
        f"This {type(record).__name__.lower()} was changed by someone else; "
        "reload it and try again.",
        currentVersion=record.version,
    )

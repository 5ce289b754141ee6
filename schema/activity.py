"""What follow-ups, tasks and timelines share: naming any record, and times as entered."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import strawberry

from meihua import models
from meihua.resolvers.errors import BadUserInput, NotFound
from meihua.schema.relay import from_global_id, to_global_id

RecordType = strawberry.enum(
    models.RecordType,
    description="The kinds of record follow-ups, tasks and log entries attach to.",
)

# The GraphQL type each kind of record has; their global ids carry these names.
TYPE_NAMES: dict[models.RecordType, str] = {
    models.RecordType.LEAD: "Lead",
    models.RecordType.CUSTOMER: "Customer",
    models.RecordType.CONTACT: "Contact",
    models.RecordType.OPPORTUNITY: "Opportunity",
    models.RecordType.CONTRACT: "Contract",
}
_KINDS = {name: kind for kind, name in TYPE_NAMES.items()}


def record_global_id(kind: models.RecordType, pk: int) -> strawberry.ID:
    return to_global_id(TYPE_NAMES[kind], pk)


def _parse(global_id: str) -> tuple[models.RecordType, int] | None:
    try:
        type_name, pk = from_global_id(global_id)
    except ValueError:
        return None
    kind = _KINDS.get(type_name)
    return (kind, pk) if kind is not None else None


def record_reference(global_id: str, field: str) -> tuple[models.RecordType, int]:
    """A record named in an input; an id of anything else is the caller's input error."""
    parsed = _parse(global_id)
    if parsed is None:
        raise BadUserInput(
            f"`{field}` must be the id of a lead, customer, contact, opportunity or contract.",
            field=field,
        )
    return parsed


def record_key(global_id: str) -> tuple[models.RecordType, int]:
    """The record an operation acts on; an id of anything else does not exist."""
    parsed = _parse(global_id)
    if parsed is None:
        raise NotFound("No such record.")
    return parsed


def company_time(value: datetime | None, timezone: str) -> datetime | None:
    """A time as a client sent it: without an offset it is the company's wall-clock time."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=ZoneInfo(timezone))

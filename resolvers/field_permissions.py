"""The field permission matrix (字段权限) admins edit: per role, record type and field.

The catalogue of controllable fields comes from the schema (see
schema.field_access) and is handed in, so this module never lists fields by
hand. An entry with no access removes the role's entry (back to EDIT, or in a
pool back to the role's general entry).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from meihua.models import FieldAccess, FieldMask, FieldPermission, RecordType, Role
from meihua.resolvers.access import Viewer
from meihua.resolvers.errors import BadUserInput, NotFound
from meihua.resolvers.field_rules import POOLED
from meihua.resolvers.org import org_changed
from meihua.subscriptions.events import transaction

SETTINGS_MANAGE = "settings:manage"
MAX_ENTRIES = 500  # per call; the whole catalogue times two is well below


class ControllableField(Protocol):
    name: str
    nullable: bool
    text: bool


Catalogue = dict[RecordType, list[ControllableField]]


@dataclass
class EntryInput:
    record_type: RecordType
    field: str
    access: FieldAccess | None  # None removes the entry
    mask: FieldMask = FieldMask.NULL
    in_pool: bool = False


async def _role(role_id: int) -> Role:
    role = await Role.get_or_none(id=role_id)
    if role is None:
        raise NotFound("No such role.")
    return role


async def role_matrix(viewer: Viewer, role_id: int) -> list[FieldPermission]:
    """A role's entries, by record type, field, general before pool."""
    viewer.require(SETTINGS_MANAGE)
    await _role(role_id)
    return await FieldPermission.filter(role_id=role_id).order_by("record_type", "field", "in_pool")


def _validate(entry: EntryInput, catalogue: Catalogue) -> None:
    spec = {item.name: item for item in catalogue.get(entry.record_type, [])}.get(entry.field)
    if spec is None:
        raise BadUserInput(
            f"`{entry.field}` is not a controllable field of {entry.record_type.value}; "
            "see `fieldCatalogue`.",
            field="field",
        )
    hidden = entry.access is FieldAccess.HIDDEN
    if hidden and not spec.nullable:
        raise BadUserInput(
            f"`{entry.field}` is never empty, so it cannot be hidden; make it READ instead.",
            field="access",
        )
    removing = entry.access is None
    if entry.mask is not FieldMask.NULL and not removing and not (spec.text and hidden):
        raise BadUserInput("Only a hidden text field can be masked.", field="mask")
    if entry.in_pool and entry.record_type not in POOLED:
        raise BadUserInput("Only customers, their contacts and leads sit in pools.", field="inPool")


async def set_matrix(
    viewer: Viewer, role_id: int, entries: list[EntryInput], catalogue: Catalogue
) -> list[FieldPermission]:
    """Set (or remove) a role's entries, all or none; the role's whole matrix back."""
    viewer.require(SETTINGS_MANAGE)
    if len(entries) > MAX_ENTRIES:
        raise BadUserInput(f"At most {MAX_ENTRIES} entries at a time.", field="entries")
    for entry in entries:
        _validate(entry, catalogue)
    async with transaction():
        await _role(role_id)
        # Recorded in the event log with the actor; hubs re-read what people may see.
        await org_changed(viewer, "role.field_permissions", role_id)
        for entry in entries:
            key = dict(
                role_id=role_id,
                record_type=entry.record_type,
                field=entry.field,
                in_pool=entry.in_pool,
            )
            if entry.access is None:
                await FieldPermission.filter(**key).delete()
            else:
                await FieldPermission.update_or_create(
                    defaults={"access": entry.access, "mask": entry.mask}, **key
                )
    return await role_matrix(viewer, role_id)

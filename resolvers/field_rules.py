"""A viewer's field-level permissions (字段权限), folded over their roles.

Entries are kept per role, record type and API field name; a field without
an entry is EDIT. A user's access to a field is the most permissive of their
roles', and a role's pool entry for a field replaces its general entry while
the record sits in a pool. Super admins are never restricted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from meihua.models import FieldAccess, FieldMask, FieldPermission, RecordType

RANK = {FieldAccess.HIDDEN: 0, FieldAccess.READ: 1, FieldAccess.EDIT: 2}

# The API names of the record types whose fields can be restricted.
TYPE_NAMES = {
    RecordType.CUSTOMER: "Customer",
    RecordType.CONTACT: "Contact",
    RecordType.LEAD: "Lead",
    RecordType.OPPORTUNITY: "Opportunity",
    RecordType.CONTRACT: "Contract",
}

# Records that can sit in a pool: customers and their contacts, leads.
POOLED = {RecordType.CUSTOMER, RecordType.CONTACT, RecordType.LEAD}


def api_name(model_field: str) -> str:
    """A model field as the API spells it: `last_followup_at` is `lastFollowUpAt`."""
    camel = re.sub(r"_([a-z0-9])", lambda match: match.group(1).upper(), model_field)
    return camel.replace("followup", "followUp").replace("Followup", "FollowUp")


@dataclass(frozen=True)
class Rule:
    access: FieldAccess
    mask: FieldMask = FieldMask.NULL

    @property
    def hidden(self) -> bool:
        return self.access is FieldAccess.HIDDEN

    def _weight(self) -> tuple[int, bool]:
        # Between two hidden rules, a masked text shows more than null.
        return RANK[self.access], self.mask is not FieldMask.NULL


EDIT = Rule(FieldAccess.EDIT)

Key = tuple[RecordType, str]


class FieldRules:
    """The restricted fields of one viewer: general rules and the rules in a pool."""

    def __init__(self, general: dict[Key, Rule], pooled: dict[Key, Rule]) -> None:
        self._general = general
        self._pooled = pooled
        self._types = {record_type for record_type, _ in (*general, *pooled)}

    @classmethod
    def of(cls, role_ids: list[int], entries: list[FieldPermission]) -> FieldRules:
        by_role: dict[tuple[int, RecordType, str, bool], Rule] = {}
        for entry in entries:
            rule = Rule(FieldAccess(entry.access), FieldMask(entry.mask))
            by_role[(entry.role_id, RecordType(entry.record_type), entry.field, entry.in_pool)] = (
                rule
            )
        keys = {(record_type, field) for _, record_type, field, _ in by_role}
        general: dict[Key, Rule] = {}
        pooled: dict[Key, Rule] = {}
        for record_type, field in keys:
            outside = [by_role.get((r, record_type, field, False), EDIT) for r in role_ids]
            inside = [
                by_role.get((r, record_type, field, True), outside[i])
                for i, r in enumerate(role_ids)
            ]
            if (rule := max(outside, key=Rule._weight, default=EDIT)) != EDIT:
                general[(record_type, field)] = rule
            if (rule := max(inside, key=Rule._weight, default=EDIT)) != EDIT:
                pooled[(record_type, field)] = rule
        return cls(general, pooled)

    def restricts(self, record_type: RecordType) -> bool:
        """Whether any field of this record type is restricted for the viewer."""
        return record_type in self._types

    def restricts_field(self, record_type: RecordType, field: str) -> bool:
        """Whether the field is restricted for the viewer, in or out of a pool."""
        key = (record_type, field)
        return key in self._general or key in self._pooled

    def rule(self, record_type: RecordType, field: str, in_pool: bool = False) -> Rule:
        rules = self._pooled if in_pool else self._general
        return rules.get((record_type, field), EDIT)

    def depends_on_pool(self, record_type: RecordType, field: str) -> bool:
        key = (record_type, field)
        return self._general.get(key, EDIT) != self._pooled.get(key, EDIT)

    def strictest(self, record_type: RecordType, field: str) -> Rule:
        """The rule in or out of a pool, whichever shows less: for what outlives
        the record's state (log entries) or spans many records (filters)."""
        return min(
            self.rule(record_type, field), self.rule(record_type, field, True), key=Rule._weight
        )


NO_RULES = FieldRules({}, {})


async def load_field_rules(role_ids: list[int]) -> FieldRules:
    """One query for all the entries of the viewer's roles."""
    if not role_ids:
        return NO_RULES
    entries = await FieldPermission.filter(role_id__in=role_ids)
    return FieldRules.of(role_ids, entries) if entries else NO_RULES


def mask(value: Any, kind: FieldMask) -> Any:
    """How a hidden value reads: null, or a masked text (138****5678, z***@example.com)."""
    if value is None or kind is FieldMask.NULL or not isinstance(value, str):
        return None
    if kind is FieldMask.PHONE:
        return value[:3] + "****" + value[-4:] if len(value) >= 8 else "****"
    local, at, domain = value.partition("@")
    return (local[:1] + "***" + at + domain) if at else "****"

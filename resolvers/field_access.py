"""Field-level permissions applied: what leaves the server, what may be written.

Every channel a field value can leave by goes through here or through the
schema's field guard (schema.field_access): exports mask their cells, the
operation log masks old and new values, webhooks mask their payloads with
`visible_fields`, filters and searches refuse or skip hidden fields so they
cannot serve as an oracle. Create, update and import paths call
`check_writable` before changing anything.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tortoise.models import Model

from meihua.models import Contact, Customer, FieldAccess, Lead, RecordType
from meihua.resolvers.access import Viewer
from meihua.resolvers.errors import Forbidden
from meihua.resolvers.field_rules import POOLED, api_name, mask


async def in_pool(record: Model) -> bool:
    """Whether the record sits in a pool: a customer (or a contact's customer)
    or a lead without owner."""
    if isinstance(record, Contact):
        owner = await Customer.filter(id=record.customer_id).values_list("owner_id", flat=True)
        return owner == [None]
    return isinstance(record, Customer | Lead) and record.owner_id is None


async def visible_fields(
    viewer: Viewer, record_type: RecordType | str, record: Model, data: dict[str, Any]
) -> dict[str, Any]:
    """`data`, fields of `record` keyed by API or model name, as the viewer may
    see them: hidden fields masked (null or e.g. 138****5678), the rest as is.

    For payloads leaving by other channels than GraphQL (webhooks).
    """
    record_type = RecordType(record_type)
    rules = await viewer.field_rules()
    if not rules.restricts(record_type):
        return data
    pooled = record_type in POOLED and await in_pool(record)
    visible = {}
    for key, value in data.items():
        rule = rules.rule(record_type, api_name(key), pooled)
        visible[key] = mask(value, rule.mask) if rule.hidden else value
    return visible


async def visible_changes(
    viewer: Viewer, record_type: RecordType, changes: dict[str, list[Any]]
) -> dict[str, list[Any]]:
    """Logged `{field: [old, new]}` as the viewer may see them.

    A log entry outlives the state its record was in, so a field hidden in or
    out of a pool is masked in both of its values.
    """
    rules = await viewer.field_rules()
    if not rules.restricts(record_type):
        return changes
    visible = {}
    for field, values in changes.items():
        rule = rules.strictest(record_type, api_name(field))
        visible[field] = [mask(v, rule.mask) for v in values] if rule.hidden else values
    return visible


async def visible_cells(
    viewer: Viewer,
    record_type: RecordType,
    columns: list[str],
    records: list[Model],
    rows: list[list[object]],
) -> list[list[object]]:
    """Export rows (one per record, cells in `columns` order) with hidden cells masked."""
    rules = await viewer.field_rules()
    if not rules.restricts(record_type):
        return rows
    pooled = await _pool_states(record_type, records)
    masked = []
    for row, in_a_pool in zip(rows, pooled, strict=True):
        cells = list(row)
        for i, column in enumerate(columns):
            rule = rules.rule(record_type, column, in_a_pool)
            if rule.hidden:
                cells[i] = mask(cells[i], rule.mask)
        masked.append(cells)
    return masked


async def _pool_states(record_type: RecordType, records: list[Model]) -> list[bool]:
    """Which records sit in a pool, in one query for contacts (their customers')."""
    if record_type is RecordType.CONTACT:
        customer_ids = {record.customer_id for record in records}
        owners = dict(await Customer.filter(id__in=customer_ids).values_list("id", "owner_id"))
        return [owners.get(record.customer_id) is None for record in records]
    if record_type in POOLED:
        return [record.owner_id is None for record in records]
    return [False] * len(records)


async def check_writable(
    viewer: Viewer, record_type: RecordType, fields: Iterable[str], *, pooled: bool = False
) -> None:
    """FORBIDDEN naming the field (`extensions.field`) when one of `fields`
    (model or API names) is HIDDEN or READ for the viewer."""
    rules = await viewer.field_rules()
    if not rules.restricts(record_type):
        return
    for field in sorted(api_name(name) for name in fields):
        if rules.rule(record_type, field, pooled).access is not FieldAccess.EDIT:
            raise Forbidden(f"You may not change `{field}`.", field=field)


async def check_filterable(viewer: Viewer, record_type: RecordType, fields: Iterable[str]) -> None:
    """FORBIDDEN naming the field when a filter or ordering uses a field hidden
    from the viewer: its answers would reveal the value."""
    rules = await viewer.field_rules()
    if not rules.restricts(record_type):
        return
    for field in sorted(api_name(name) for name in fields):
        if rules.strictest(record_type, field).hidden:
            raise Forbidden(f"You may not filter or sort by `{field}`.", field=field)


async def searchable(viewer: Viewer, record_type: RecordType, field: str) -> bool:
    """Whether a free-text search may match this field: never a hidden one."""
    rules = await viewer.field_rules()
    return not rules.strictest(record_type, field).hidden

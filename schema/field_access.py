"""Field-level permissions in the schema: the guard on record fields and the catalogue.

`guard_fields` puts a FieldGuard on every scalar field of the record types
(but `id`, `version` and references by id), so a hidden field reads as null or masked wherever
the type is resolved: lists, `node`, nested fields, mutation results and
subscription payloads alike. The catalogue the admin API offers is read off
the same type definitions, never kept by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from strawberry.extensions import FieldExtension
from strawberry.schema.types.scalar import DEFAULT_SCALAR_REGISTRY
from strawberry.types.base import StrawberryList, StrawberryOptional, has_object_definition
from strawberry.types.enum import StrawberryEnumDefinition
from strawberry.types.lazy_type import LazyType
from strawberry.types.private import is_private
from strawberry.utils.await_maybe import await_maybe
from strawberry.utils.str_converters import to_camel_case

from meihua.models import RecordType
from meihua.resolvers.field_rules import mask
from meihua.schema.context import Info

# Fields no entry may restrict: they identify a record and guard its edits
# (references to other records, typed ID, are controlled by those records).
UNCONTROLLED = {"id", "version"}


@dataclass(frozen=True)
class CatalogueField:
    name: str
    type: str
    nullable: bool = False  # only a nullable field can read as null, so be hidden
    text: bool = False  # only a text can be masked (138****5678)


class FieldGuard(FieldExtension):
    """Reads one field through the viewer's field rules."""

    def __init__(self, record_type: RecordType, field: str) -> None:
        self.record_type = record_type
        self.field = field

    def resolve(self, next_: Any, source: Any, info: Info, **kwargs: Any) -> Any:
        value = next_(source, info, **kwargs)
        rules = info.context.viewer.loaded_field_rules
        if rules is not None and not rules.restricts_field(self.record_type, self.field):
            return value  # the common case stays synchronous
        return self._guarded(value, source, info)

    async def resolve_async(self, next_: Any, source: Any, info: Info, **kwargs: Any) -> Any:
        return await self._guarded(next_(source, info, **kwargs), source, info)

    async def _guarded(self, value: Any, source: Any, info: Info) -> Any:
        value = await await_maybe(value)
        rules = await info.context.viewer.field_rules()
        pooled = False
        if rules.depends_on_pool(self.record_type, self.field):
            pooled = await _in_pool(self.record_type, source, info)
        rule = rules.rule(self.record_type, self.field, pooled)
        return mask(value, rule.mask) if rule.hidden else value


async def _in_pool(record_type: RecordType, source: Any, info: Info) -> bool:
    if record_type is RecordType.CONTACT:
        customer = await info.context.loaders.customer.load(source.customer_pk)
        return customer is not None and customer.owner_id is None
    return getattr(source, "owner_pk", 0) is None


def _leaf(type_: Any) -> tuple[str, bool, bool] | None:
    """(API type, nullable, text) of a scalar or enum field type; None for objects."""
    nullable = isinstance(type_, StrawberryOptional)
    if nullable:
        type_ = type_.of_type
    if isinstance(type_, StrawberryList):
        inner = _leaf(type_.of_type)
        return None if inner is None else (f"[{inner[0]}]", nullable, False)
    if isinstance(type_, LazyType) or has_object_definition(type_):
        return None
    if isinstance(type_, StrawberryEnumDefinition):
        return type_.name, nullable, False
    scalar = DEFAULT_SCALAR_REGISTRY.get(type_) or getattr(type_, "_scalar_definition", None)
    return (scalar.name if scalar else type_.__name__), nullable, type_ is str


CATALOGUE: dict[RecordType, list[CatalogueField]] = {}


def guard_fields(record_type: RecordType, strawberry_type: type) -> None:
    """Guard the type's controllable fields and list them in the catalogue."""
    fields = []
    for field in strawberry_type.__strawberry_definition__.fields:
        if is_private(field.type):
            continue
        name = field.graphql_name or to_camel_case(field.python_name)
        leaf = _leaf(field.type)
        if name in UNCONTROLLED or leaf is None or leaf[0] == "ID":
            continue
        field.extensions.append(FieldGuard(record_type, name))
        fields.append(CatalogueField(name, leaf[0], nullable=leaf[1], text=leaf[2]))
    CATALOGUE[record_type] = fields

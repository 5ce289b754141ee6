"""GraphQL API of field-level permissions (字段权限): the catalogue and each role's matrix."""

from __future__ import annotations

import strawberry

from meihua import models
from meihua.resolvers import field_permissions
from meihua.schema.activity import RecordType
from meihua.schema.contacts import Contact
from meihua.schema.context import Info
from meihua.schema.contracts import Contract
from meihua.schema.customers import Customer
from meihua.schema.field_access import CATALOGUE, CatalogueField, guard_fields
from meihua.schema.leads import Lead
from meihua.schema.opportunities import Opportunity
from meihua.schema.org import Role
from meihua.schema.relay import reference_id

for _kind, _type in (
    (models.RecordType.CUSTOMER, Customer),
    (models.RecordType.CONTACT, Contact),
    (models.RecordType.LEAD, Lead),
    (models.RecordType.OPPORTUNITY, Opportunity),
    (models.RecordType.CONTRACT, Contract),
):
    guard_fields(_kind, _type)

FieldAccess = strawberry.enum(
    models.FieldAccess, description="What a role may do with a field; no entry means EDIT."
)
FieldMask = strawberry.enum(
    models.FieldMask, description="How a hidden field reads: null, 138****5678, z***@example.com."
)


@strawberry.type(description="A field whose access roles can restrict.")
class ControllableField:
    name: str = strawberry.field(description="As the API spells it, e.g. `phone`.")
    type: str
    hideable: bool = strawberry.field(description="Nullable, so it can read as null when hidden.")
    maskable: bool = strawberry.field(description="A text, so it can be masked when hidden.")

    @classmethod
    def of(cls, field: CatalogueField) -> ControllableField:
        return cls(name=field.name, type=field.type, hideable=field.nullable, maskable=field.text)


@strawberry.type(description="The controllable fields of one kind of record.")
class FieldCatalogueEntry:
    record_type: RecordType
    fields: list[ControllableField]


@strawberry.type(description="One role's access to one field (字段权限).")
class FieldPermission:
    record_type: RecordType
    field: str
    in_pool: bool = strawberry.field(
        description="Applies instead of the general entry while the record sits in a pool."
    )
    access: FieldAccess
    mask: FieldMask
    role_pk: strawberry.Private[int]

    @classmethod
    def of(cls, row: models.FieldPermission) -> FieldPermission:
        return cls(
            record_type=row.record_type,
            field=row.field,
            in_pool=row.in_pool,
            access=row.access,
            mask=row.mask,
            role_pk=row.role_id,
        )

    @strawberry.field
    async def role(self, info: Info) -> Role:
        return Role.of(await info.context.loaders.role.load(self.role_pk))


@strawberry.input(description="Set one entry; `access: null` removes it.")
class FieldPermissionInput:
    record_type: RecordType
    field: str
    access: FieldAccess | None
    mask: FieldMask = models.FieldMask.NULL
    in_pool: bool = False

    def domain(self) -> field_permissions.EntryInput:
        return field_permissions.EntryInput(
            record_type=self.record_type,
            field=self.field,
            access=self.access,
            mask=self.mask,
            in_pool=self.in_pool,
        )


@strawberry.type
class FieldPermissionQuery:
    @strawberry.field(description="Every field roles can restrict, read off the schema.")
    async def field_catalogue(self, info: Info) -> list[FieldCatalogueEntry]:
        info.context.viewer.require(field_permissions.SETTINGS_MANAGE)
        return [
            FieldCatalogueEntry(
                record_type=kind, fields=[ControllableField.of(field) for field in fields]
            )
            for kind, fields in CATALOGUE.items()
        ]

    @strawberry.field(description="A role's field permissions; fields not listed are EDIT.")
    async def field_permissions(self, info: Info, role_id: strawberry.ID) -> list[FieldPermission]:
        viewer = info.context.viewer
        rows = await field_permissions.role_matrix(viewer, reference_id(role_id, "Role", "roleId"))
        return [FieldPermission.of(row) for row in rows]


@strawberry.type
class FieldPermissionMutation:
    @strawberry.mutation(description="Set or remove entries of a role's matrix; all or none.")
    async def set_field_permissions(
        self, info: Info, role_id: strawberry.ID, entries: list[FieldPermissionInput]
    ) -> list[FieldPermission]:
        viewer = info.context.viewer
        rows = await field_permissions.set_matrix(
            viewer,
            reference_id(role_id, "Role", "roleId"),
            [entry.domain() for entry in entries],
            CATALOGUE,
        )
        return [FieldPermission.of(row) for row in rows]

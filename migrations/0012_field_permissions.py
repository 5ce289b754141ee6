from tortoise import migrations
from tortoise.migrations import operations as ops
from meihua.models.activity import RecordType
from meihua.models.field_permissions import FieldAccess, FieldMask
from tortoise.fields.base import OnDelete
from tortoise import fields


class Migration(migrations.Migration):
    dependencies = [("models", "0011_pipelines")]

    initial = False

    operations = [
        ops.CreateModel(
            name="FieldPermission",
            fields=[
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                (
                    "role",
                    fields.ForeignKeyField(
                        "models.Role",
                        source_field="role_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="field_permissions",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                (
                    "record_type",
                    fields.CharEnumField(
                        description="LEAD: LEAD\nCUSTOMER: CUSTOMER\nCONTACT: CONTACT\nOPPORTUNITY: OPPORTUNITY\nCONTRACT: CONTRACT",
                        enum_type=RecordType,
                        max_length=16,
                    ),
                ),
                ("field", fields.CharField(max_length=64)),
                ("in_pool", fields.BooleanField(default=False)),
                (
                    "access",
                    fields.CharEnumField(
                        description="HIDDEN: HIDDEN\nREAD: READ\nEDIT: EDIT",
                        enum_type=FieldAccess,
                        max_length=8,
                    ),
                ),
                (
                    "mask",
                    fields.CharEnumField(
                        default=FieldMask.NULL,
                        description="NULL: NULL\nPHONE: PHONE\nEMAIL: EMAIL",
                        enum_type=FieldMask,
                        max_length=8,
                    ),
                ),
                ("updated_at", fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={
                "table": "field_permission",
                "app": "models",
                "unique_together": (("role", "record_type", "field", "in_pool"),),
                "pk_attr": "id",
                "table_description": "The access of one role to one field of one kind of record.",
            },
            bases=["Model"],
        ),
    ]

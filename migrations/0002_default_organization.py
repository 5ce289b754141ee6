"""The organization every installation starts with.

The top department "Office" (办公室) and the four default roles. Values are
written out here, not imported, so this migration means the same thing forever.
"""

from tortoise import migrations
from tortoise.migrations import operations as ops

_REP = [
    "customer:create", "customer:update", "customer:export",
    "pool:claim", "pool:release",
    "lead:create", "lead:update", "lead:convert",
    "contact:create", "contact:update",
    "opportunity:create", "opportunity:update",
    "contract:create", "contract:update",
    "payment:create",
    "dashboard:view",
]  # fmt: skip
_MANAGER = _REP + [
    "customer:delete", "customer:import", "customer:transfer", "customer:lock",
    "pool:assign",
    "lead:delete", "lead:import", "lead:export", "lead:transfer", "lead:distribute",
    "contact:delete",
    "opportunity:delete", "opportunity:transfer",
    "contract:transfer", "contract:approve",
]  # fmt: skip
_FINANCE = [
    "customer:export",
    "contract:update", "contract:approve", "contract:void",
    "payment:create", "payment:update", "payment:delete",
    "dashboard:view",
]  # fmt: skip
_ADMIN = [
    "customer:create", "customer:update", "customer:delete", "customer:import",
    "customer:export", "customer:transfer", "customer:lock",
    "pool:claim", "pool:assign", "pool:release", "pool:manage",
    "lead:create", "lead:update", "lead:delete", "lead:import", "lead:export",
    "lead:transfer", "lead:convert", "lead:distribute",
    "contact:create", "contact:update", "contact:delete",
    "opportunity:create", "opportunity:update", "opportunity:delete", "opportunity:transfer",
    "contract:create", "contract:update", "contract:delete", "contract:transfer",
    "contract:approve", "contract:void",
    "payment:create", "payment:update", "payment:delete",
    "product:manage", "dashboard:view", "org:manage", "settings:manage",
]  # fmt: skip

DEFAULT_ROLES = [
    ("Sales Rep", "SELF", _REP),
    ("Sales Manager", "DEPARTMENT_TREE", _MANAGER),
    ("Finance", "ALL", _FINANCE),
    ("Administrator", "ALL", _ADMIN),
]


async def create_default_organization(apps, schema_editor) -> None:
    db = schema_editor.client
    Department = apps.get_model("models", "Department")
    Role = apps.get_model("models", "Role")
    await Department.create(name="Office", using_db=db)
    for name, scope, permissions in DEFAULT_ROLES:
        await Role.create(name=name, data_scope=scope, permissions=permissions, using_db=db)


async def remove_default_organization(apps, schema_editor) -> None:
    db = schema_editor.client
    await (
        apps.get_model("models", "Role")
        .filter(name__in=[name for name, _, _ in DEFAULT_ROLES])
        .using_db(db)
        .delete()
    )
    await apps.get_model("models", "Department").filter(name="Office").using_db(db).delete()


class Migration(migrations.Migration):
    dependencies = [("models", "0001_initial")]

    operations = [
        ops.RunPython(create_default_organization, remove_default_organization),
    ]

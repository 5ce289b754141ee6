"""The company-wide public pool (公海), and every existing customer in it.

Recycling starts switched off: an upgrade must not send customers back to the
pool by itself. Admins turn the rules on per pool.
"""

from tortoise import migrations
from tortoise.expressions import F
from tortoise.migrations import operations as ops

COMPANY_POOL = "公海 Company pool"


async def create_company_pool(apps, schema_editor) -> None:
    db = schema_editor.client
    pool = await apps.get_model("models", "Pool").create(
        name=COMPANY_POOL, company_wide=True, warning_days=3, using_db=db
    )
    customers = apps.get_model("models", "Customer")
    await customers.all().using_db(db).update(pool_id=pool.id)
    await customers.filter(owner_id__isnull=False).using_db(db).update(taken_at=F("created_at"))
    await customers.filter(owner_id__isnull=True).using_db(db).update(
        pool_entered_at=F("updated_at")
    )


async def remove_company_pool(apps, schema_editor) -> None:
    db = schema_editor.client
    await apps.get_model("models", "Customer").all().using_db(db).update(pool_id=None)
    await apps.get_model("models", "Pool").filter(company_wide=True).using_db(db).delete()


class Migration(migrations.Migration):
    dependencies = [("models", "0005_pools_and_distribution")]

    initial = False

    operations = [
        ops.RunPython(create_company_pool, reverse_code=remove_company_pool),
    ]

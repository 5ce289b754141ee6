"""Sales defaults every installation starts with.

Four opportunity stages with win rates (winning and losing are statuses, not
stages), the company settings row (currency CNY), and a one-step contract
approval by holders of the Finance role. Admins can change all of it.
"""

from tortoise import migrations
from tortoise.migrations import operations as ops

DEFAULT_STAGES = [
    ("初步接洽 Initial contact", 10),
    ("需求确认 Needs confirmed", 30),
    ("方案报价 Proposal and quote", 60),
    ("谈判审核 Negotiation", 80),
]


async def create_sales_setup(apps, schema_editor) -> None:
    db = schema_editor.client
    Stage = apps.get_model("models", "OpportunityStage")
    for order, (name, win_rate) in enumerate(DEFAULT_STAGES, start=1):
        await Stage.create(name=name, win_rate=win_rate, order=order, using_db=db)
    await apps.get_model("models", "CompanySettings").create(currency="CNY", using_db=db)
    finance = await apps.get_model("models", "Role").filter(name="Finance").using_db(db).first()
    if finance is not None:
        await apps.get_model("models", "ApprovalStep").create(
            order=1, kind="ROLE", role_id=finance.id, using_db=db
        )


async def remove_sales_setup(apps, schema_editor) -> None:
    db = schema_editor.client
    for name in ("ApprovalStep", "CompanySettings", "OpportunityStage"):
        await apps.get_model("models", name).all().using_db(db).delete()


class Migration(migrations.Migration):
    dependencies = [("models", "0003_crm_graph")]

    operations = [ops.RunPython(create_sales_setup, remove_sales_setup)]

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0007_sales_targets')]

    initial = False

    operations = [
        ops.AddIndex(
            model_name='ApprovalRecord',
            index=Index(fields=['contract_id', 'at']),
        ),
        ops.AddIndex(
            model_name='ContractItem',
            index=Index(fields=['contract_id']),
        ),
        ops.AddIndex(
            model_name='OpportunityProduct',
            index=Index(fields=['opportunity_id']),
        ),
        ops.AddIndex(
            model_name='OpportunityStageChange',
            index=Index(fields=['opportunity_id', 'at']),
        ),
        ops.AddIndex(
            model_name='Payment',
            index=Index(fields=['contract_id']),
        ),
    ]

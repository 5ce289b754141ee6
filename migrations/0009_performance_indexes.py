from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0008_history_indexes')]

    initial = False

    operations = [
        ops.AddIndex(
            model_name='Contact',
            index=Index(fields=['created_at']),
        ),
        ops.AddIndex(
            model_name='Contract',
            index=Index(fields=['status']),
        ),
        ops.AddIndex(
            model_name='Contract',
            index=Index(fields=['signed_on']),
        ),
        ops.AddIndex(
            model_name='Contract',
            index=Index(fields=['updated_at']),
        ),
        ops.AddIndex(
            model_name='Customer',
            index=Index(fields=['deal_status']),
        ),
        ops.AddIndex(
            model_name='Customer',
            index=Index(fields=['updated_at']),
        ),
        ops.AddIndex(
            model_name='FollowUp',
            index=Index(fields=['customer_id', 'occurred_at']),
        ),
        ops.AddIndex(
            model_name='Lead',
            index=Index(fields=['status']),
        ),
        ops.AddIndex(
            model_name='Lead',
            index=Index(fields=['last_followup_at']),
        ),
        ops.AddIndex(
            model_name='OperationLog',
            index=Index(fields=['customer_id']),
        ),
        ops.AddIndex(
            model_name='Opportunity',
            index=Index(fields=['stage_id', 'status']),
        ),
        ops.AddIndex(
            model_name='Opportunity',
            index=Index(fields=['status']),
        ),
        ops.AddIndex(
            model_name='Opportunity',
            index=Index(fields=['expected_close_date']),
        ),
        ops.AddIndex(
            model_name='Opportunity',
            index=Index(fields=['updated_at']),
        ),
        ops.AddIndex(
            model_name='Task',
            index=Index(fields=['assignee_id', 'status', 'due_at']),
        ),
        ops.AddIndex(
            model_name='Task',
            index=Index(fields=['customer_id']),
        ),
    ]

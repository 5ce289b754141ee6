"""Pipelines: stage groups, e.g. one per business line.

Every existing stage goes into the default pipeline, in its order; an
opportunity belongs to the pipeline of its stage.
"""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

DEFAULT_PIPELINE = "销售 Sales"


async def create_default_pipeline(apps, schema_editor) -> None:
    db = schema_editor.client
    pipeline = await apps.get_model("models", "Pipeline").create(
        name=DEFAULT_PIPELINE, order=1, using_db=db
    )
    stages = apps.get_model("models", "OpportunityStage")
    await stages.filter(pipeline_id__isnull=True).using_db(db).update(pipeline_id=pipeline.id)


async def remove_default_pipeline(apps, schema_editor) -> None:
    db = schema_editor.client
    await apps.get_model("models", "OpportunityStage").all().using_db(db).update(pipeline_id=None)
    await apps.get_model("models", "Pipeline").all().using_db(db).delete()


class Migration(migrations.Migration):
    dependencies = [('models', '0010_webhooks')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Pipeline',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('name', fields.CharField(unique=True, max_length=100)),
                ('description', fields.TextField(null=True, unique=False)),
                ('order', fields.IntField()),
                ('is_active', fields.BooleanField(default=True)),
                ('version', fields.IntField(default=1)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'pipeline', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A group of ordered opportunity stages, e.g. one per business line.'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='OpportunityStage',
            name='pipeline',
            field=fields.ForeignKeyField('models.Pipeline', source_field='pipeline_id', null=True, db_constraint=True, to_field='id', related_name='stages', on_delete=OnDelete.RESTRICT),
        ),
        ops.AddIndex(
            model_name='OpportunityStage',
            index=Index(fields=['pipeline_id', 'order']),
        ),
        ops.RunPython(create_default_pipeline, reverse_code=remove_default_pipeline),
    ]

from tortoise import migrations
from tortoise.migrations import operations as ops
from meihua.models.targets import TargetMetric
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0006_company_pool')]

    initial = False

    operations = [
        ops.CreateModel(
            name='SalesTarget',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user', fields.ForeignKeyField('models.User', source_field='user_id', null=True, db_constraint=True, to_field='id', related_name='targets', on_delete=OnDelete.RESTRICT)),
                ('department', fields.ForeignKeyField('models.Department', source_field='department_id', null=True, db_constraint=True, to_field='id', related_name='targets', on_delete=OnDelete.CASCADE)),
                ('metric', fields.CharEnumField(description='CONTRACT_AMOUNT: CONTRACT_AMOUNT\nPAYMENT_AMOUNT: PAYMENT_AMOUNT\nNEW_CUSTOMERS: NEW_CUSTOMERS', enum_type=TargetMetric, max_length=24)),
                ('year', fields.IntField()),
                ('month', fields.IntField()),
                ('value', fields.DecimalField(max_digits=18, decimal_places=2)),
                ('version', fields.IntField(default=1)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'sales_target', 'app': 'models', 'unique_together': (('user', 'department', 'metric', 'year', 'month'),), 'pk_attr': 'id', 'table_description': 'One month of one metric for a user or a department (exactly one of the two).'},
            bases=['Model'],
        ),
    ]

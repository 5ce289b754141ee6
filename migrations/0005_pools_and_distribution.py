from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from meihua.models.distribution import DistributionStrategy
from meihua.models.pools import PoolMovementKind, RecycleRule
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0004_default_sales_setup')]

    initial = False

    operations = [
        ops.CreateModel(
            name='LeadDistributionRule',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('name', fields.CharField(max_length=100)),
                ('position', fields.IntField(db_index=True)),
                ('regions', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('industries', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('sources', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('users', fields.ManyToManyField('models.User', unique=True, db_constraint=True, through='lead_distribution_user', forward_key='user_id', backward_key='lead_distribution_rule_id', related_name='lead_distribution_rules', on_delete=OnDelete.CASCADE)),
                ('strategy', fields.CharEnumField(default=DistributionStrategy.ROUND_ROBIN, description='ROUND_ROBIN: ROUND_ROBIN\nLEAST_LOADED: LEAST_LOADED', enum_type=DistributionStrategy, max_length=16)),
                ('turns', fields.IntField(default=0)),
                ('active', fields.BooleanField(default=True)),
                ('version', fields.IntField(default=1)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'lead_distribution_rule', 'app': 'models', 'pk_attr': 'id', 'table_description': 'Leads matching every non-empty condition go to the rule users. The lowest position wins.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Pool',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('name', fields.CharField(unique=True, max_length=100)),
                ('company_wide', fields.BooleanField(default=False)),
                ('departments', fields.ManyToManyField('models.Department', unique=True, db_constraint=True, through='pool_department', forward_key='department_id', backward_key='pool_id', related_name='pools', on_delete=OnDelete.CASCADE)),
                ('max_owned', fields.IntField(null=True)),
                ('max_claims_per_day', fields.IntField(null=True)),
                ('reclaim_cooldown_days', fields.IntField(null=True)),
                ('recycle_not_dealt_after_days', fields.IntField(null=True)),
                ('recycle_dealt_after_days', fields.IntField(null=True)),
                ('recycle_no_deal_after_days', fields.IntField(null=True)),
                ('warning_days', fields.IntField(default=3)),
                ('version', fields.IntField(default=1)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'pool', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A public pool. The company-wide one is open to everybody, others to member departments.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PoolMovement',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('customer', fields.ForeignKeyField('models.Customer', source_field='customer_id', db_constraint=True, to_field='id', related_name='pool_movements', on_delete=OnDelete.CASCADE)),
                ('pool', fields.ForeignKeyField('models.Pool', source_field='pool_id', null=True, db_constraint=True, to_field='id', related_name='movements', on_delete=OnDelete.SET_NULL)),
                ('kind', fields.CharEnumField(description='RELEASED: RELEASED\nCLAIMED: CLAIMED\nASSIGNED: ASSIGNED\nRECYCLED: RECYCLED\nTRANSFERRED: TRANSFERRED', enum_type=PoolMovementKind, max_length=16)),
                ('actor', fields.ForeignKeyField('models.User', source_field='actor_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('previous_owner', fields.ForeignKeyField('models.User', source_field='previous_owner_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('new_owner', fields.ForeignKeyField('models.User', source_field='new_owner_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT)),
                ('reason', fields.TextField(null=True, unique=False)),
                ('rule', fields.CharEnumField(null=True, description='NO_FOLLOW_UP_NOT_DEALT: NO_FOLLOW_UP_NOT_DEALT\nNO_FOLLOW_UP_DEALT: NO_FOLLOW_UP_DEALT\nNO_DEAL: NO_DEAL', enum_type=RecycleRule, max_length=32)),
                ('created_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'pool_movement', 'app': 'models', 'indexes': [Index(fields=['customer_id', 'created_at']), Index(fields=['new_owner_id', 'kind', 'created_at'])], 'pk_attr': 'id', 'table_description': 'One pool movement of a customer: who moved it, from whom, to whom, and why.'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Customer',
            name='pool',
            field=fields.ForeignKeyField('models.Pool', source_field='pool_id', null=True, db_constraint=True, to_field='id', related_name='customers', on_delete=OnDelete.RESTRICT),
        ),
        ops.AddField(
            model_name='Customer',
            name='pool_entered_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Customer',
            name='previous_owner',
            field=fields.ForeignKeyField('models.User', source_field='previous_owner_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.RESTRICT),
        ),
        ops.AddField(
            model_name='Customer',
            name='recycle_batch',
            field=fields.UUIDField(null=True, db_index=True),
        ),
        ops.AddField(
            model_name='Customer',
            name='recycle_warned_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Customer',
            name='taken_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddIndex(
            model_name='Customer',
            index=Index(fields=['pool_id', 'owner_id']),
        ),
    ]

from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from meihua.models.org import DataScope
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='Department',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('name', fields.CharField(max_length=100)),
                ('parent', fields.ForeignKeyField('models.Department', source_field='parent_id', null=True, db_index=True, db_constraint=True, to_field='id', related_name='children', on_delete=OnDelete.RESTRICT)),
                ('version', fields.IntField(default=1)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'department', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Role',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('name', fields.CharField(unique=True, max_length=100)),
                ('permissions', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('data_scope', fields.CharEnumField(default=DataScope.SELF, description='SELF: SELF\nSELF_AND_SUBORDINATES: SELF_AND_SUBORDINATES\nDEPARTMENT: DEPARTMENT\nDEPARTMENT_TREE: DEPARTMENT_TREE\nCUSTOM: CUSTOM\nALL: ALL', enum_type=DataScope, max_length=32)),
                ('departments', fields.ManyToManyField('models.Department', unique=True, db_constraint=True, through='role_department', forward_key='department_id', backward_key='role_id', related_name='custom_scope_roles', on_delete=OnDelete.CASCADE)),
                ('version', fields.IntField(default=1)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'role', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='User',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('username', fields.CharField(unique=True, max_length=64)),
                ('name', fields.CharField(max_length=100)),
                ('password_hash', fields.CharField(max_length=255)),
                ('department', fields.ForeignKeyField('models.Department', source_field='department_id', db_index=True, db_constraint=True, to_field='id', related_name='users', on_delete=OnDelete.RESTRICT)),
                ('manager', fields.ForeignKeyField('models.User', source_field='manager_id', null=True, db_index=True, db_constraint=True, to_field='id', related_name='subordinates', on_delete=OnDelete.RESTRICT)),
                ('roles', fields.ManyToManyField('models.Role', unique=True, db_constraint=True, through='user_role', forward_key='role_id', backward_key='users_id', related_name='users', on_delete=OnDelete.CASCADE)),
                ('is_super_admin', fields.BooleanField(default=False)),
                ('is_active', fields.BooleanField(default=True, db_index=True)),
                ('token_version', fields.IntField(default=1)),
                ('last_login_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('version', fields.IntField(default=1)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'users', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A team member. Never deleted: deactivated, or handed over by renaming.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Customer',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('name', fields.CharField(max_length=200)),
                ('name_key', fields.CharField(unique=True, max_length=200)),
                ('phone', fields.CharField(null=True, max_length=40)),
                ('phone_key', fields.CharField(null=True, unique=True, max_length=40)),
                ('industry', fields.CharField(null=True, max_length=100)),
                ('region', fields.CharField(null=True, max_length=100)),
                ('source', fields.CharField(null=True, max_length=100)),
                ('level', fields.CharField(null=True, max_length=20)),
                ('address', fields.CharField(null=True, max_length=300)),
                ('remarks', fields.TextField(null=True, unique=False)),
                ('owner', fields.ForeignKeyField('models.User', source_field='owner_id', null=True, db_index=True, db_constraint=True, to_field='id', related_name='owned_customers', on_delete=OnDelete.RESTRICT)),
                ('created_by', fields.ForeignKeyField('models.User', source_field='created_by_id', db_constraint=True, to_field='id', related_name='created_customers', on_delete=OnDelete.RESTRICT)),
                ('version', fields.IntField(default=1)),
                ('created_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'customer', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]

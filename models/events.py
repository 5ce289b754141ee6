"""The persisted event log: every live event, in commit order, for replay."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class Event(Model):
    # The id is the event's cursor: clients resume with `after: cursor`.
    id = fields.BigIntField(primary_key=True)
    kind = fields.CharField(max_length=64, db_index=True)
    record_type = fields.CharField(max_length=32)
    record_id = fields.IntField()
    # For visibility at delivery time: the record's owner and customer.
    owner_id = fields.IntField(null=True)
    customer_id = fields.IntField(null=True)
    # Someone the event is addressed to (personal notifications), if any.
    recipient_id = fields.IntField(null=True, db_index=True)
    actor_id = fields.IntField(null=True)
    payload = fields.JSONField(default=dict)
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)

    class Meta:
        table = "event"

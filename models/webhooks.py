"""Webhooks for integrators: endpoints admins register, and each delivery made to them."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from meihua.models.org import User


class WebhookDeliveryStatus(StrEnum):
    PENDING = "PENDING"  # not sent yet
    FAILED = "FAILED"  # the last attempt failed, another is scheduled
    SUCCEEDED = "SUCCEEDED"
    GAVE_UP = "GAVE_UP"  # every attempt failed


class Webhook(Model):
    """An endpoint that receives the events of the kinds it subscribes to, signed."""

    id = fields.IntField(primary_key=True)
    url = fields.CharField(max_length=2000)
    event_kinds = fields.JSONField(default=list)
    description = fields.CharField(max_length=200, default="")
    is_active = fields.BooleanField(default=True)
    # Shown to the admin once, on create and on rotation; signs every delivery.
    secret = fields.CharField(max_length=100)
    # The hook acts as its owner: it carries only events and data the owner may see.
    owner: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="webhooks", on_delete=fields.RESTRICT
    )
    # The last event of the log this hook has been given deliveries for.
    position = fields.BigIntField(default=0)
    version = fields.IntField(default=1)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "webhook"


class WebhookDelivery(Model):
    """One event sent to one hook: its body, and how the attempts went."""

    id = fields.BigIntField(primary_key=True)
    webhook: fields.ForeignKeyRelation[Webhook] = fields.ForeignKeyField(
        "models.Webhook", related_name="deliveries", on_delete=fields.CASCADE
    )
    # The event log is pruned, so the event is kept by its cursor and kind only.
    event_id = fields.BigIntField()
    event_kind = fields.CharField(max_length=64)
    body = fields.TextField()
    status = fields.CharEnumField(
        WebhookDeliveryStatus, max_length=16, default=WebhookDeliveryStatus.PENDING
    )
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField(null=True, db_index=True)
    response_code = fields.IntField(null=True)
    error = fields.CharField(max_length=500, null=True)
    duration_ms = fields.IntField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    last_attempt_at = fields.DatetimeField(null=True)
    delivered_at = fields.DatetimeField(null=True)

    class Meta:
        table = "webhook_delivery"
        unique_together = (("webhook", "event_id"),)

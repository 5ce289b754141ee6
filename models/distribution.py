"""Lead distribution rules (线索分配规则): who gets new and pooled leads."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from meihua.models.org import User


class DistributionStrategy(StrEnum):
    ROUND_ROBIN = "ROUND_ROBIN"
    LEAST_LOADED = "LEAST_LOADED"


class LeadDistributionRule(Model):
    """Leads matching every non-empty condition go to the rule users. The lowest position wins."""

    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=100)
    position = fields.IntField(db_index=True)
    # Empty list means any value. Matching ignores case and surrounding spaces.
    regions = fields.JSONField(default=list)
    industries = fields.JSONField(default=list)
    sources = fields.JSONField(default=list)
    users: fields.ManyToManyRelation[User] = fields.ManyToManyField(
        "models.User", related_name="lead_distribution_rules", through="lead_distribution_user"
    )
    strategy = fields.CharEnumField(
        DistributionStrategy, max_length=16, default=DistributionStrategy.ROUND_ROBIN
    )
    # Round robin: how many leads the rule has handed out so far.
    turns = fields.IntField(default=0)
    active = fields.BooleanField(default=True)
    version = fields.IntField(default=1)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "lead_distribution_rule"

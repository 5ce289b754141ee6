"""GraphQL API of automatic lead distribution (线索自动分配): the rules and running them."""

from __future__ import annotations

from datetime import datetime

import strawberry

from meihua import models
from meihua.resolvers import lead_distribution
from meihua.schema.context import Info
from meihua.schema.org import DeletePayload, User
from meihua.schema.relay import record_id, reference_ids, to_global_id

LeadDistributionStrategy = strawberry.enum(
    models.DistributionStrategy,
    name="LeadDistributionStrategy",
    description="ROUND_ROBIN: the rule's users in turn. LEAST_LOADED: the user owning the "
    "fewest open (NEW or FOLLOWING) leads.",
)


@strawberry.type(
    description="A lead distribution rule (线索分配规则): leads of the lead pool matching "
    "it go to its users. Active rules are tried by position; the first match wins."
)
class LeadDistributionRule:
    id: strawberry.ID
    name: str
    position: int = strawberry.field(description="Order among the rules, from 1.")
    regions: list[str] = strawberry.field(description="Empty: any region.")
    industries: list[str] = strawberry.field(description="Empty: any industry.")
    sources: list[str] = strawberry.field(description="Empty: any source.")
    strategy: LeadDistributionStrategy
    active: bool
    version: int
    created_at: datetime
    updated_at: datetime
    user_rows: strawberry.Private[list[models.User]]

    @classmethod
    def of(cls, row: models.LeadDistributionRule) -> LeadDistributionRule:
        return cls(
            id=to_global_id("LeadDistributionRule", row.id),
            name=row.name,
            position=row.position,
            regions=row.regions,
            industries=row.industries,
            sources=row.sources,
            strategy=row.strategy,
            active=row.active,
            version=row.version,
            created_at=row.created_at,
            updated_at=row.updated_at,
            user_rows=sorted(row.users, key=lambda user: user.id),
        )

    @strawberry.field(description="Who the leads go to; deactivated users are skipped.")
    def users(self) -> list[User]:
        return [User.of(row) for row in self.user_rows]


@strawberry.type(description="How many leads one user received.")
class LeadDistributionShare:
    count: int
    user_pk: strawberry.Private[int]

    @strawberry.field
    async def user(self, info: Info) -> User:
        return User.of(await info.context.loaders.user.load(self.user_pk))


@strawberry.type(description="What one run of the distribution rules did.")
class LeadDistributionReport:
    assigned: int = strawberry.field(description="Leads handed out.")
    per_user: list[LeadDistributionShare] = strawberry.field(description="By user id.")
    left_in_pool: int = strawberry.field(
        description="With `ids`: the named leads still in the lead pool. Without: the open "
        "leads still in the lead pool."
    )
    has_more: bool = strawberry.field(
        description="The run stopped at 1000 leads and more are waiting for a rule: run again."
    )

    @classmethod
    def of(cls, report: lead_distribution.DistributionReport) -> LeadDistributionReport:
        return cls(
            assigned=len(report.handed_out),
            per_user=[
                LeadDistributionShare(count=count, user_pk=pk) for pk, count in report.per_user()
            ],
            left_in_pool=report.left_in_pool,
            has_more=report.more_waiting,
        )


_CONDITIONS = "Trimmed; repeats (ignoring case) dropped; at most 50. Empty: any value."


@strawberry.input
class CreateLeadDistributionRuleInput:
    name: str
    user_ids: list[strawberry.ID] = strawberry.field(description="At least one, all active.")
    strategy: LeadDistributionStrategy = models.DistributionStrategy.ROUND_ROBIN
    regions: list[str] = strawberry.field(default_factory=list, description=_CONDITIONS)
    industries: list[str] = strawberry.field(default_factory=list, description=_CONDITIONS)
    sources: list[str] = strawberry.field(default_factory=list, description=_CONDITIONS)
    active: bool = True
    position: int | None = strawberry.field(
        default=None, description="From 1; the rules from there move down. Defaults to last."
    )


@strawberry.input(description="Send only what changes; an empty list matches any value.")
class UpdateLeadDistributionRuleInput:
    name: str | None = None
    user_ids: list[strawberry.ID] | None = None
    strategy: LeadDistributionStrategy | None = None
    regions: list[str] | None = None
    industries: list[str] | None = None
    sources: list[str] | None = None
    active: bool | None = None


def _rule_input(
    data: CreateLeadDistributionRuleInput | UpdateLeadDistributionRuleInput,
) -> lead_distribution.RuleInput:
    return lead_distribution.RuleInput(
        name=data.name,
        regions=data.regions,
        industries=data.industries,
        sources=data.sources,
        user_ids=reference_ids(data.user_ids, "User", "userIds")
        if data.user_ids is not None
        else None,
        strategy=data.strategy,
        active=data.active,
    )


@strawberry.type
class LeadDistributionQuery:
    @strawberry.field(description="The lead distribution rules, by position (`lead:distribute`).")
    async def lead_distribution_rules(self, info: Info) -> list[LeadDistributionRule]:
        rows = await lead_distribution.list_rules(info.context.viewer)
        return [LeadDistributionRule.of(row) for row in rows]


@strawberry.type
class LeadDistributionMutation:
    @strawberry.mutation(description="Add a distribution rule, last unless `position` says.")
    async def create_lead_distribution_rule(
        self, info: Info, input: CreateLeadDistributionRuleInput
    ) -> LeadDistributionRule:
        row = await lead_distribution.create_rule(
            info.context.viewer, _rule_input(input), input.position
        )
        return LeadDistributionRule.of(row)

    @strawberry.mutation(description="Fails with CONFLICT when `expectedVersion` is stale.")
    async def update_lead_distribution_rule(
        self,
        info: Info,
        id: strawberry.ID,
        input: UpdateLeadDistributionRuleInput,
        expected_version: int | None = None,
    ) -> LeadDistributionRule:
        row = await lead_distribution.update_rule(
            info.context.viewer,
            record_id(id, "LeadDistributionRule"),
            _rule_input(input),
            expected_version,
        )
        return LeadDistributionRule.of(row)

    @strawberry.mutation(description="Put the rules in this order; list every rule once.")
    async def reorder_lead_distribution_rules(
        self, info: Info, ids: list[strawberry.ID]
    ) -> list[LeadDistributionRule]:
        rows = await lead_distribution.reorder_rules(
            info.context.viewer, reference_ids(ids, "LeadDistributionRule", "ids")
        )
        return [LeadDistributionRule.of(row) for row in rows]

    @strawberry.mutation(description="Delete a rule; leads it handed out keep their owners.")
    async def delete_lead_distribution_rule(self, info: Info, id: strawberry.ID) -> DeletePayload:
        await lead_distribution.delete_rule(
            info.context.viewer, record_id(id, "LeadDistributionRule")
        )
        return DeletePayload(deleted_id=id)

    @strawberry.mutation(
        description="Run the distribution rules over the named leads of the lead pool, or "
        "over the whole pool (up to 1000 hand-outs a call). Each hand-out is an assignment "
        "to the rule's user; leads no rule takes stay in the pool."
    )
    async def distribute_leads(
        self, info: Info, ids: list[strawberry.ID] | None = None
    ) -> LeadDistributionReport:
        pks = None if ids is None else [record_id(i, "Lead") for i in ids]
        report = await lead_distribution.distribute_leads(info.context.viewer, pks)
        return LeadDistributionReport.of(report)

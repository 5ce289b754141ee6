"""GraphQL API of recycling (回收): which customers go back to their pools, and when."""

from __future__ import annotations

from datetime import UTC, datetime

import strawberry

from meihua import models
from meihua.resolvers import recycling
from meihua.schema.context import Info
from meihua.schema.customers import Customer

RecycleRule = strawberry.enum(
    models.RecycleRule, description="The pool rule that sends a customer back by itself."
)


@strawberry.type(description="A customer a recycle rule will send back to its pool.")
class RecycleDue:
    customer: Customer
    rule: RecycleRule
    due_at: datetime = strawberry.field(
        description="When the rule catches it; the next recycling pass after that moves it."
    )
    reason: str = strawberry.field(description="The rule in words.")

    @classmethod
    def of(cls, due: recycling.RecycleDue) -> RecycleDue:
        return cls(
            customer=Customer.of(due.customer),
            rule=due.rule,
            due_at=due.due_at,
            reason=due.reason,
        )


@strawberry.type
class RecyclingQuery:
    @strawberry.field(
        description=(
            "Owned customers in your data scope that recycling sends back to their pools "
            "before `before` (default: within each pool's warning window), soonest first; "
            f"at most {recycling.MAX_DUE}. Locked customers are never recycled."
        )
    )
    async def customers_due_for_recycling(
        self, info: Info, before: datetime | None = None
    ) -> list[RecycleDue]:
        viewer = info.context.viewer
        when = before.astimezone(UTC) if before is not None else None
        return [RecycleDue.of(due) for due in await recycling.customers_due(viewer, when)]

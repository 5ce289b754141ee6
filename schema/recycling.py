"""GraphQL API of recycling (回收): which customers go back to their pools, and when."""

from __future__ import annotations

from datetime import UTC, datetime

import strawberry

from meihua import models
from meihua.resolvers import recycling
from meihua.resolvers.pagination import Ordering, paginate
from meihua.schema.context import Info
from meihua.schema.customers import Customer
from meihua.schema.relay import Connection, reference_id

RecycleRule = strawberry.enum(
    models.RecycleRule, description="The pool rule that sends a customer back by itself."
)


@strawberry.type(description="A customer a recycle rule will send back to its pool.")
class RecycleDue:
    customer: Customer
    rule: RecycleRule = strawberry.field(
        description="The rule the recycling pass moves it by; its pool history will name it."
    )
    due_at: datetime = strawberry.field(
        description="When the rule catches it; the next recycling pass after that moves it."
    )
    reason: str = strawberry.field(description="The rule in words, e.g. days without follow-up.")

    @classmethod
    def of(cls, due: recycling.RecycleDue) -> RecycleDue:
        return cls(
            customer=Customer.of(due.customer),
            rule=due.rule,
            due_at=due.due_at,
            reason=due.reason,
        )


@strawberry.input(description="Narrow the recycle preview.")
class RecyclePreviewFilter:
    pool_id: strawberry.ID | None = None
    owner_id: strawberry.ID | None = None
    rule: RecycleRule | None = None

    def domain(self) -> recycling.PreviewFilter:
        return recycling.PreviewFilter(
            pool_id=None if self.pool_id is None else reference_id(self.pool_id, "Pool", "poolId"),
            owner_id=None
            if self.owner_id is None
            else reference_id(self.owner_id, "User", "ownerId"),
            rule=self.rule,
        )


@strawberry.type
class RecyclingQuery:
    @strawberry.field(
        description=(
            "Recycle preview (a dry run): the customers you may see that recycling sends back "
            "to their pools by `by` (default: within each pool's warning window), by which "
            "rule and why; exactly what a recycling pass at `by` would move. Locked customers "
            "are never recycled. In the order the customers were entered."
        )
    )
    async def recycle_preview(
        self,
        info: Info,
        by: datetime | None = None,
        filter: RecyclePreviewFilter | None = None,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[RecycleDue]:
        viewer = info.context.viewer
        where = (filter or RecyclePreviewFilter()).domain()
        when = by.astimezone(UTC) if by is not None else None
        dry_run = await recycling.preview(viewer, when, where)
        page = await paginate(
            dry_run.query,
            Ordering("id"),
            first=first,
            after=after,
            last=last,
            before=before,
            max_page=info.context.settings.page_size_max,
        )
        return Connection[RecycleDue].of(page, lambda row: RecycleDue.of(dry_run.explain(row)))

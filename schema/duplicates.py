"""GraphQL API of duplicates and merging (疑似重复 / 合并客户)."""

from __future__ import annotations

import strawberry

from meihua.models import Customer as CustomerRow
from meihua.resolvers import customer_merge, duplicates
from meihua.resolvers.errors import BadUserInput
from meihua.schema.context import Info
from meihua.schema.customers import Customer
from meihua.schema.relay import record_id, reference_id

DuplicateReason = strawberry.enum(
    duplicates.DuplicateReason, description="Why customers look like the same company."
)
MAX_GROUPS = 100


@strawberry.type(description="Customers that are probably one company, and why.")
class DuplicateGroup:
    customers: list[Customer]
    reasons: list[DuplicateReason]
    score: float = strawberry.field(description="How likely they are one company, 0 to 1.")


@strawberry.type
class DuplicateQuery:
    @strawberry.field(
        description=(
            "Likely duplicates among the customers you may see, likeliest first: the same "
            "name without company suffixes and punctuation, one name inside another, similar "
            "names, the same phone number or contact email. Compares your most recently "
            "updated customers (MEIHUA_DUPLICATE_SCAN_MAX); with `customerId`, only the "
            "groups that customer is in."
        )
    )
    async def likely_duplicates(
        self, info: Info, customer_id: strawberry.ID | None = None, first: int = 20
    ) -> list[DuplicateGroup]:
        viewer = info.context.viewer
        if not 0 <= first <= MAX_GROUPS:
            raise BadUserInput(f"`first` must be between 0 and {MAX_GROUPS}.", field="first")
        around = None if customer_id is None else record_id(customer_id, "Customer")
        groups = await duplicates.find_duplicates(
            viewer,
            scan_max=info.context.settings.duplicate_scan_max,
            limit=first,
            customer_id=around,
        )
        wanted = {pk for group in groups for pk in group.customer_ids}
        rows = {row.id: row for row in await CustomerRow.filter(id__in=wanted)}
        return [
            DuplicateGroup(
                customers=[Customer.of(rows[pk]) for pk in group.customer_ids],
                reasons=group.reasons,
                score=group.score,
            )
            for group in groups
        ]


@strawberry.type
class MergeMutation:
    @strawberry.mutation(
        description=(
            "Fold customers into the one you keep (合并): their contacts, opportunities, "
            "contracts, follow-ups, tasks, team, pool history, timeline and converted leads "
            "move to it, its empty fields are filled from them, and they are deleted; all or "
            "nothing. Needs customer:update on the kept customer and customer:delete on the "
            "merged ones. CONFLICT when `expectedVersion` (kept) or `mergeVersions` (one per "
            "merged customer, in order) is stale."
        )
    )
    async def merge_customers(
        self,
        info: Info,
        keep_id: strawberry.ID,
        merge_ids: list[strawberry.ID],
        expected_version: int | None = None,
        merge_versions: list[int] | None = None,
    ) -> Customer:
        viewer = info.context.viewer
        row = await customer_merge.merge_customers(
            viewer,
            record_id(keep_id, "Customer"),
            [reference_id(pk, "Customer", "mergeIds") for pk in merge_ids],
            expected_version,
            merge_versions,
        )
        return Customer.of(row)

"""The GraphQL schema: strawberry types, inputs and root types, one module per domain."""

from __future__ import annotations

import strawberry
from strawberry.extensions import DisableIntrospection
from strawberry.tools import merge_types

from meihua.schema.contacts import ContactMutation, ContactQuery
from meihua.schema.contracts import ContractMutation, ContractQuery
from meihua.schema.csv_io import CsvMutation, CsvQuery
from meihua.schema.customers import CustomerMutation, CustomerQuery
from meihua.schema.dashboard import DashboardQuery
from meihua.schema.dashboard_targets import SalesTargetMutation
from meihua.schema.duplicates import DuplicateQuery, MergeMutation
from meihua.schema.errors import ErrorCodes, escaped
from meihua.schema.extensions import OperationScope, SafeParserCache, validation_cache
from meihua.schema.field_permissions import FieldPermissionMutation, FieldPermissionQuery
from meihua.schema.followups import FollowUpMutation, FollowUpQuery
from meihua.schema.lead_distribution import LeadDistributionMutation, LeadDistributionQuery
from meihua.schema.leads import LeadMutation, LeadQuery
from meihua.schema.limits import Limits, OperationLimits
from meihua.schema.node import NodeQuery
from meihua.schema.nul_characters import NoNulCharacters
from meihua.schema.opportunities import OpportunityMutation, OpportunityQuery
from meihua.schema.org import OrgMutation, OrgQuery
from meihua.schema.payments import PaymentMutation, PaymentQuery
from meihua.schema.pipelines import PipelineMutation, PipelineQuery
from meihua.schema.pools import PoolMutation, PoolQuery
from meihua.schema.products import ProductMutation, ProductQuery
from meihua.schema.rate_limits import OperationBudget
from meihua.schema.recycling import RecyclingQuery
from meihua.schema.subscriptions import LiveEvent, Subscription
from meihua.schema.tasks import TaskMutation, TaskQuery
from meihua.schema.telemetry import OperationTelemetry
from meihua.schema.timeline import TimelineQuery
from meihua.schema.webhooks import WebhookMutation, WebhookQuery
from meihua.settings import Settings

Query = merge_types(
    "Query",
    (
        OrgQuery,
        NodeQuery,
        CustomerQuery,
        DuplicateQuery,
        PoolQuery,
        LeadQuery,
        LeadDistributionQuery,
        ContactQuery,
        OpportunityQuery,
        PipelineQuery,
        ProductQuery,
        ContractQuery,
        PaymentQuery,
        FollowUpQuery,
        TaskQuery,
        TimelineQuery,
        CsvQuery,
        DashboardQuery,
        RecyclingQuery,
        WebhookQuery,
        FieldPermissionQuery,
    ),
)
Mutation = merge_types(
    "Mutation",
    (
        OrgMutation,
        CustomerMutation,
        MergeMutation,
        PoolMutation,
        LeadMutation,
        LeadDistributionMutation,
        ContactMutation,
        OpportunityMutation,
        PipelineMutation,
        ProductMutation,
        ContractMutation,
        PaymentMutation,
        FollowUpMutation,
        TaskMutation,
        CsvMutation,
        SalesTargetMutation,
        WebhookMutation,
        FieldPermissionMutation,
    ),
)

DOCUMENT_CACHE_SIZE = 512


class MeihuaSchema(strawberry.Schema):
    def process_errors(self, errors, execution_context=None) -> None:
        """Silence strawberry's per-error tracebacks; schema.errors logs the real bugs."""

    async def execute(self, *args, **kwargs):
        """Mask what an extension's crash let past ErrorCodes (see schema.errors.escaped)."""
        result = await super().execute(*args, **kwargs)
        if result.errors:
            result.errors = [escaped(error) for error in result.errors]
        return result


def build_schema(settings: Settings | None = None) -> strawberry.Schema:
    # Extensions are passed as classes or factories: strawberry makes one per
    # operation, so nothing is shared between concurrent requests.
    limits = Limits.of(settings or Settings())
    extensions: list = [
        OperationTelemetry,  # first: it times all the others and sees the final codes
        OperationScope,
        OperationBudget,  # after OperationScope: charges the viewer it finds
        ErrorCodes,
        lambda: SafeParserCache(maxsize=DOCUMENT_CACHE_SIZE),
        validation_cache(DOCUMENT_CACHE_SIZE),
        NoNulCharacters,  # after the validation cache: it adds to the validation errors
        lambda: OperationLimits(limits),
    ]
    if settings is not None and not settings.introspection:
        extensions.append(DisableIntrospection)
    return MeihuaSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        types=[LiveEvent],
    )


def print_sdl() -> str:
    return build_schema().as_str() + "\n"

"""Tortoise models: the tables Meihua keeps.

Every model lives in the single tortoise app ``models`` so migrations stay in
one ordered history (``meihua.migrations``).
"""

from meihua.models.activity import (
    FollowUp,
    FollowUpMethod,
    OperationLog,
    RecordType,
    Task,
    TaskPriority,
    TaskStatus,
)
from meihua.models.company import CompanySettings
from meihua.models.contacts import Contact, DecisionRole
from meihua.models.contracts import (
    ApprovalDecision,
    ApprovalRecord,
    ApprovalStep,
    ApproverKind,
    Contract,
    ContractItem,
    ContractStatus,
    Payment,
    PaymentPlan,
)
from meihua.models.customers import Customer, CustomerTeamMember, DealStatus, TeamAccess
from meihua.models.distribution import DistributionStrategy, LeadDistributionRule
from meihua.models.events import Event
from meihua.models.field_permissions import FieldAccess, FieldMask, FieldPermission
from meihua.models.leads import Lead, LeadStatus
from meihua.models.org import DataScope, Department, Role, User
from meihua.models.pools import Pool, PoolMovement, PoolMovementKind, RecycleRule
from meihua.models.sales import (
    Opportunity,
    OpportunityProduct,
    OpportunityStage,
    OpportunityStageChange,
    OpportunityStatus,
    Pipeline,
    Product,
)
from meihua.models.targets import SalesTarget, TargetMetric
from meihua.models.webhooks import Webhook, WebhookDelivery, WebhookDeliveryStatus

__all__ = [
    "Pipeline",
    "SalesTarget",
    "TargetMetric",
    "RecycleRule",
    "PoolMovementKind",
    "PoolMovement",
    "Pool",
    "LeadDistributionRule",
    "DistributionStrategy",
    "ApprovalDecision",
    "ApprovalRecord",
    "ApprovalStep",
    "ApproverKind",
    "CompanySettings",
    "Contact",
    "Contract",
    "ContractItem",
    "ContractStatus",
    "Customer",
    "CustomerTeamMember",
    "DataScope",
    "DealStatus",
    "DecisionRole",
    "Department",
    "Event",
    "FieldAccess",
    "FieldMask",
    "FieldPermission",
    "FollowUp",
    "FollowUpMethod",
    "Lead",
    "LeadStatus",
    "OperationLog",
    "Opportunity",
    "OpportunityProduct",
    "OpportunityStage",
    "OpportunityStageChange",
    "OpportunityStatus",
    "Payment",
    "PaymentPlan",
    "Product",
    "RecordType",
    "Role",
    "Task",
    "TaskPriority",
    "TaskStatus",
    "TeamAccess",
    "User",
    "Webhook",
    "WebhookDelivery",
    "WebhookDeliveryStatus",
]

"""`node(id:)`: fetch any object by its global id, through the access layer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import strawberry
from tortoise.expressions import Subquery

from meihua import models
from meihua.resolvers.access import Viewer
from meihua.resolvers.contracts import get_contract, visible_contracts
from meihua.resolvers.customers import get_visible_customer
from meihua.resolvers.errors import NotFound
from meihua.resolvers.followups import get_visible_followup
from meihua.resolvers.opportunities import get_visible_opportunity
from meihua.resolvers.pools import get_visible_pool
from meihua.resolvers.records import get_visible
from meihua.resolvers.tasks import get_visible_task
from meihua.schema.contacts import Contact
from meihua.schema.context import Info
from meihua.schema.contracts import Contract, Payment, PaymentPlan
from meihua.schema.customers import Customer
from meihua.schema.followups import FollowUp
from meihua.schema.leads import Lead
from meihua.schema.opportunities import Opportunity, OpportunityStage
from meihua.schema.org import Department, Role, User
from meihua.schema.pipelines import Pipeline
from meihua.schema.pools import Pool
from meihua.schema.products import Product
from meihua.schema.relay import Node, from_global_id
from meihua.schema.tasks import Task


def _directory(model, wrap) -> Callable[[Viewer, int], Awaitable[Node | None]]:
    """Organization records every signed-in user may read."""

    async def load(viewer: Viewer, pk: int) -> Node | None:
        row = await model.get_or_none(id=pk)
        return wrap(row) if row is not None else None

    return load


async def _customer(viewer: Viewer, pk: int) -> Node:
    return Customer.of(await get_visible_customer(viewer, pk))


async def _lead(viewer: Viewer, pk: int) -> Node:
    return Lead.of(await get_visible(viewer, models.RecordType.LEAD, pk))


async def _contact(viewer: Viewer, pk: int) -> Node:
    return Contact.of(await get_visible(viewer, models.RecordType.CONTACT, pk))


async def _opportunity(viewer: Viewer, pk: int) -> Node:
    return Opportunity.of(await get_visible_opportunity(viewer, pk))


async def _contract(viewer: Viewer, pk: int) -> Node:
    return Contract.of(await get_contract(viewer, pk))


def _contract_part(model, wrap) -> Callable[[Viewer, int], Awaitable[Node | None]]:
    """Payment plans and payments: visible with their contract."""

    async def load(viewer: Viewer, pk: int) -> Node | None:
        contracts = Subquery((await visible_contracts(viewer)).values("id"))
        row = await model.filter(id=pk, contract_id__in=contracts).first()
        return wrap(row) if row is not None else None

    return load


async def _followup(viewer: Viewer, pk: int) -> Node:
    followup, _ = await get_visible_followup(viewer, pk)
    return FollowUp.of(followup)


async def _task(viewer: Viewer, pk: int) -> Node:
    return Task.of(await get_visible_task(viewer, pk))


async def _pool(viewer: Viewer, pk: int) -> Node:
    return Pool.of(await get_visible_pool(viewer, pk))


NODE_LOADERS: dict[str, Callable[[Viewer, int], Awaitable[Node | None]]] = {
    "User": _directory(models.User, User.of),
    "Department": _directory(models.Department, Department.of),
    "Role": _directory(models.Role, Role.of),
    "Customer": _customer,
    "Lead": _lead,
    "Contact": _contact,
    "Contract": _contract,
    "PaymentPlan": _contract_part(models.PaymentPlan, PaymentPlan.of),
    "Payment": _contract_part(models.Payment, Payment.of),
    "Opportunity": _opportunity,
    "OpportunityStage": _directory(models.OpportunityStage, OpportunityStage.of),
    "Pipeline": _directory(models.Pipeline, Pipeline.of),
    "Product": _directory(models.Product, Product.of),
    "FollowUp": _followup,
    "Task": _task,
    "Pool": _pool,
}


async def visible_node(viewer: Viewer, type_name: str, pk: int) -> Node | None:
    """The object if the viewer may see it, else None."""
    load = NODE_LOADERS.get(type_name)
    if load is None:
        return None
    try:
        return await load(viewer, pk)
    except NotFound:
        return None


@strawberry.type
class NodeQuery:
    @strawberry.field(description="Any object by its global id; NOT_FOUND when not visible.")
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        viewer = info.context.viewer
        try:
            type_name, pk = from_global_id(id)
        except ValueError:
            raise NotFound("No such object.") from None
        found = await visible_node(viewer, type_name, pk)
        if found is None:
            raise NotFound("No such object.")
        return found

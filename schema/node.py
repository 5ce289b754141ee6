"""`node(id:)`: fetch any object by its global id, through the access layer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import strawberry

from meihua import models
from meihua.resolvers.access import Viewer
from meihua.resolvers.customers import get_visible_customer
from meihua.resolvers.errors import NotFound
from meihua.schema.context import Info
from meihua.schema.customers import Customer
from meihua.schema.org import Department, Role, User
from meihua.schema.relay import Node, from_global_id


def _directory(model, wrap) -> Callable[[Viewer, int], Awaitable[Node | None]]:
    """Organization records every signed-in user may read."""

    async def load(viewer: Viewer, pk: int) -> Node | None:
        row = await model.get_or_none(id=pk)
        return wrap(row) if row is not None else None

    return load


async def _customer(viewer: Viewer, pk: int) -> Node:
    return Customer.of(await get_visible_customer(viewer, pk))


NODE_LOADERS: dict[str, Callable[[Viewer, int], Awaitable[Node | None]]] = {
    "User": _directory(models.User, User.of),
    "Department": _directory(models.Department, Department.of),
    "Role": _directory(models.Role, Role.of),
    "Customer": _customer,
}


@strawberry.type
class NodeQuery:
    @strawberry.field(description="Any object by its global id; NOT_FOUND when not visible.")
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        viewer = info.context.viewer
        try:
            type_name, pk = from_global_id(id)
        except ValueError:
            raise NotFound("No such object.") from None
        load = NODE_LOADERS.get(type_name)
        found = await load(viewer, pk) if load else None
        if found is None:
            raise NotFound("No such object.")
        return found

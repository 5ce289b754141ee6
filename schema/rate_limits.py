"""The operation budget as a schema extension: charged once per operation, before it runs.

It runs after parsing and validation (a rejected document costs nothing) and
after OperationScope has found the viewer. A subscription is charged once, when
it is subscribed, not per event.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from graphql import (
    DocumentNode,
    ExecutionResult,
    FragmentDefinitionNode,
    GraphQLError,
)
from graphql.utilities import get_operation_ast
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from meihua.resolvers.errors import LimitExceeded
from meihua.schema.measure import root_keys


def client_ip(context) -> str:
    """The caller's address; behind a proxy, uvicorn sets it from X-Forwarded-For.

    uvicorn believes that header only from the addresses in FORWARDED_ALLOW_IPS
    (127.0.0.1 by default), so a client cannot pick its own address.
    """
    client = context.request.client
    return client.host if client is not None else "unknown"


def root_fields(document: DocumentNode, operation_name: str | None) -> int:
    """How many root fields the operation executes: one per response key, aliases included."""
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        return 0
    fragments = {
        definition.name.value: definition
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
    return len(root_keys(operation.selection_set, fragments))


class OperationBudget(SchemaExtension):
    async def on_execute(self) -> AsyncIterator[None]:
        execution = self.execution_context
        context = execution.context
        viewer = context._viewer
        caller = f"user:{viewer.user.id}" if viewer is not None else f"ip:{client_ip(context)}"
        count = root_fields(execution.graphql_document, execution.operation_name)
        try:
            await context.rate_limits.spend(caller, count)
        except LimitExceeded as refusal:
            error = GraphQLError(refusal.message, extensions=refusal.extensions)
            if execution.operation_type is OperationType.SUBSCRIPTION:
                raise error from None  # strawberry sends it as the subscription's error
            # A result set here stands in for execution: the operation never runs.
            execution.result = ExecutionResult(data=None, errors=[error])
        yield

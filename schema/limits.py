"""Operation limits: every operation is bounded, and refused before it runs.

Tokens are counted while parsing; depth, aliases, root fields, cost
(schema/measure.py) and list literals during validation; list variables just
before execution, since validation never sees variable values. Each refusal is
a QUERY_TOO_COMPLEX error naming the limit and the value. An operation that
runs longer than the request timeout is cancelled, which rolls its
transaction back.

The validation rules are made once per set of limits: the validation cache
(schema/extensions.py) keys on the rule classes, so new ones per request would
never hit.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from graphql import (
    ArgumentNode,
    FragmentDefinitionNode,
    GraphQLError,
    ListValueNode,
    Node,
    ObjectValueNode,
    OperationDefinitionNode,
    ValidationRule,
    ValueNode,
    VariableDefinitionNode,
)
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from meihua.schema.measure import Measurer
from meihua.settings import Settings

CODE = "QUERY_TOO_COMPLEX"


@dataclass(frozen=True)
class Limits:
    depth: int
    aliases: int
    root_fields: int
    cost: int
    tokens: int
    list_items: int
    page_size: int
    timeout: float  # seconds; 0 runs without one

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(
            depth=settings.query_depth_max,
            aliases=settings.query_aliases_max,
            root_fields=settings.query_root_fields_max,
            cost=settings.query_cost_max,
            tokens=settings.query_tokens_max,
            list_items=settings.list_input_max,
            page_size=settings.page_size_max,
            timeout=settings.request_timeout,
        )


def too_complex(message: str, nodes: Node | list[Node] | None = None, **extensions) -> GraphQLError:
    return GraphQLError(message, nodes, extensions={"code": CODE, **extensions})


def _operation_name(operation: OperationDefinitionNode) -> str:
    return f"Operation '{operation.name.value}'" if operation.name else "The operation"


def _long_lists(value: ValueNode, path: str, most: int) -> Iterator[tuple[str, ListValueNode]]:
    """Every list in a literal longer than `most`, with its dotted path."""
    stack = [(value, path)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, ListValueNode):
            if len(node.values) > most:
                yield where, node
            stack.extend((item, where) for item in node.values)
        elif isinstance(node, ObjectValueNode):
            stack.extend((item.value, f"{where}.{item.name.value}") for item in node.fields)


def _long_variables(variables: dict[str, Any], most: int) -> Iterator[tuple[str, int]]:
    """Every list in the variables longer than `most`: (dotted path, length)."""
    stack = list(variables.items())
    while stack:
        where, value = stack.pop()
        if isinstance(value, list):
            if len(value) > most:
                yield where, len(value)
            stack.extend((where, item) for item in value)
        elif isinstance(value, dict):
            stack.extend((f"{where}.{key}", item) for key, item in value.items())


def _list_error(where: str, length: int, most: int, node: Node | None = None) -> GraphQLError:
    return too_complex(
        f"`{where}` has {length} items; a list input holds at most {most}.", node, field=where
    )


@functools.cache
def validation_rules(limits: Limits) -> tuple[type[ValidationRule], ...]:
    class OperationSize(ValidationRule):
        def enter_document(self, node, *_args) -> None:
            context = self.context
            fragments = {
                definition.name.value: definition
                for definition in node.definitions
                if isinstance(definition, FragmentDefinitionNode)
            }
            measurer = Measurer(context.schema, fragments, limits.page_size)
            for operation in node.definitions:
                if isinstance(operation, OperationDefinitionNode):
                    self.check(operation, measurer)

        def check(self, operation: OperationDefinitionNode, measurer: Measurer) -> None:
            measure = measurer.operation(operation)
            name = _operation_name(operation)
            checks = (
                ("depth", measure.depth, limits.depth, "is nested {} levels deep"),
                ("aliases", measure.aliases, limits.aliases, "uses {} aliases"),
                ("root fields", measure.root_fields, limits.root_fields, "selects {} root fields"),
                ("cost", measure.cost, limits.cost, "costs {} (fields times page sizes)"),
            )
            for limit, value, most, says in checks:
                if value > most:
                    self.report_error(
                        too_complex(
                            f"{name} {says.format(value)}; the {limit} limit is {most}.",
                            operation,
                        )
                    )

    class ListLiterals(ValidationRule):
        def enter_argument(self, node: ArgumentNode, *_args) -> None:
            self.check(node.value, node.name.value)

        def enter_variable_definition(self, node: VariableDefinitionNode, *_args) -> None:
            if node.default_value is not None:
                self.check(node.default_value, node.variable.name.value)

        def check(self, value: ValueNode, where: str) -> None:
            for path, items in _long_lists(value, where, limits.list_items):
                self.report_error(_list_error(path, len(items.values), limits.list_items, items))

    return (OperationSize, ListLiterals)


class OperationLimits(SchemaExtension):
    """Applies the limits to one operation (pass a factory: one instance per operation)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        context.parse_options["max_tokens"] = self.limits.tokens
        context.validation_rules = context.validation_rules + validation_rules(self.limits)
        yield

    async def on_execute(self) -> AsyncIterator[None]:
        context = self.execution_context
        most = self.limits.list_items
        too_long = next(_long_variables(context.variables or {}, most), None)
        if too_long is not None:
            raise _list_error(*too_long, most)
        seconds = self.limits.timeout
        if not seconds or context.operation_type is OperationType.SUBSCRIPTION:
            yield
            return
        timer = asyncio.timeout(seconds)
        try:
            async with timer:
                yield
        except TimeoutError:
            if not timer.expired():
                raise
            raise too_complex(
                f"The operation ran longer than the {seconds:g} s request timeout "
                "and was cancelled."
            ) from None

"""Refuse NUL characters in every text input, literal or variable, before execution.

PostgreSQL refuses U+0000 in text (the whole statement fails); SQLite stores
it, and C-string tools then cut the value short. No real name, phone or note
holds one. Checking here, once, turns it into BAD_USER_INPUT naming the field
instead of an INTERNAL from whichever resolver first hands it to PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from graphql import (
    ArgumentNode,
    DocumentNode,
    GraphQLError,
    ListValueNode,
    Node,
    ObjectValueNode,
    StringValueNode,
    ValueNode,
    VariableDefinitionNode,
    VariableNode,
    Visitor,
    visit,
)
from strawberry.extensions import SchemaExtension

NUL = "\x00"
Path = tuple[str | int, ...]


def field_name(path: Path) -> str:
    """The `extensions.field` resolvers use: `name` inside `input:`, `steps.0.userId`, `ids`.

    An input object argument (`input`, `filter`) is left out, and so is a
    trailing list index: the list as a whole is the field at fault.
    """
    if len(path) > 1 and isinstance(path[1], str):
        path = path[1:]
    while len(path) > 1 and isinstance(path[-1], int):
        path = path[:-1]
    return ".".join(str(part) for part in path)


def _in_json(value: Any, path: Path) -> Iterator[Path]:
    if isinstance(value, str):
        if NUL in value:
            yield path
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _in_json(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _in_json(item, (*path, index))


class _Arguments(Visitor):
    """Collects the document's arguments and its variables' default values."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[ArgumentNode] = []
        self.defaults: dict[str, ValueNode] = {}

    def enter_argument(self, node: ArgumentNode, *_args) -> None:
        self.found.append(node)

    def enter_variable_definition(self, node: VariableDefinitionNode, *_args) -> None:
        if node.default_value is not None:
            self.defaults[node.variable.name.value] = node.default_value


def first_nul(
    document: DocumentNode, variables: Mapping[str, Any] | None
) -> tuple[Path, Node] | None:
    """Where the first text input holding a NUL character is, or None."""
    arguments = _Arguments()
    visit(document, arguments)
    variables = variables or {}

    def walk(value: ValueNode, path: Path) -> Iterator[Path]:
        if isinstance(value, StringValueNode):
            if NUL in value.value:
                yield path
        elif isinstance(value, ListValueNode):
            for index, item in enumerate(value.values):
                yield from walk(item, (*path, index))
        elif isinstance(value, ObjectValueNode):
            for item in value.fields:
                yield from walk(item.value, (*path, item.name.value))
        elif isinstance(value, VariableNode):
            name = value.name.value
            if name in variables:
                yield from _in_json(variables[name], path)
            elif name in arguments.defaults:
                yield from walk(arguments.defaults[name], path)

    for argument in arguments.found:
        for path in walk(argument.value, (argument.name.value,)):
            return path, argument
    return None


def _may_hold_nul(query: str | None, variables: Mapping[str, Any] | None) -> bool:
    """A cheap first look, so most operations skip walking their document.

    A literal holds NUL as itself or through an escape (`\\u0000`, `\\u{0}`);
    a variable only in one of its strings.
    """
    if query is None or NUL in query or "\\u" in query:
        return True
    return any(True for _ in _in_json(variables or {}, ()))


class NoNulCharacters(SchemaExtension):
    """BAD_USER_INPUT (with `extensions.field`) for an operation sending a NUL character.

    Runs in the validation step so queries, mutations and subscriptions are
    all covered. It must come after the validation cache in the schema's extensions:
    that one sets the validation errors, this one adds to them.
    """

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is not None and _may_hold_nul(context.query, context.variables):
            found = first_nul(context.graphql_document, context.variables)
            if found is not None:
                path, node = found
                field = field_name(path)
                error = GraphQLError(
                    f"`{field}` must not contain NUL characters.",
                    nodes=[node],
                    extensions={"code": "BAD_USER_INPUT", "field": field},
                )
                context.pre_execution_errors = [*(context.pre_execution_errors or []), error]
        yield

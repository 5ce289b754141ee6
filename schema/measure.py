"""How big an operation is, measured on its document before it runs.

One pass per operation gives its depth, its aliases, its root fields and its
cost. Every field costs 1; a field that returns a page or a list multiplies
what is selected under it by how many items it can return: its `first` or
`last` argument (a variable counts as the largest page, since validation does
not see variable values), else that argument's default, else the default page
size. A connection's `edges` share their connection's multiplier.

Introspection (`__schema`, `__type`) costs 1 per field, lists or not, and its
`ofType` chains add no depth (they end at the schema's few type wrappers), so
GraphiQL's own query passes while nesting through types stays bounded.

Fragments are measured once each and reused: counting them again at every
spread would take time exponential in the number of fragments (strawberry's
QueryDepthLimiter and MaxAliasesLimiter do that; a 300-token document held a
core for minutes).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    get_nullable_type,
    type_from_ast,
)

PAGE_ARGUMENTS = ("first", "last")
# What a connection returns when neither `first` nor `last` is given
# (resolvers/pagination.py), and the length assumed for an unpaged list.
DEFAULT_PAGE = 20


@dataclass(frozen=True)
class Measure:
    depth: int = 0
    aliases: int = 0
    cost: int = 0
    root_fields: int = 0  # set on an operation's measure only

    def __add__(self, other: Measure) -> Measure:
        return Measure(
            depth=max(self.depth, other.depth),
            aliases=self.aliases + other.aliases,
            cost=self.cost + other.cost,
        )


EMPTY = Measure()


def root_keys(
    selection_set: SelectionSetNode, fragments: dict[str, FragmentDefinitionNode]
) -> frozenset[str]:
    """Response keys of an operation's top-level fields: a key selected twice runs once.

    Each fragment is read once, however often it is spread.
    """
    keys: set[str] = set()
    spread: set[str] = set()

    def collect(selections: SelectionSetNode) -> None:
        for selection in selections.selections:
            if isinstance(selection, FieldNode):
                keys.add((selection.alias or selection.name).value)
            elif isinstance(selection, InlineFragmentNode):
                collect(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if name in fragments and name not in spread:
                    spread.add(name)
                    collect(fragments[name].selection_set)

    collect(selection_set)
    return frozenset(keys)


class Measurer:
    """Measures the operations of one document; fragments are measured once."""

    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: dict[str, FragmentDefinitionNode],
        page_max: int,
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.page_max = page_max
        self._done: dict[str, Measure] = {}
        self._open: set[str] = set()  # fragments being measured: a cycle counts nothing

    def operation(self, operation: OperationDefinitionNode) -> Measure:
        root = {
            OperationType.QUERY: self.schema.query_type,
            OperationType.MUTATION: self.schema.mutation_type,
            OperationType.SUBSCRIPTION: self.schema.subscription_type,
        }[operation.operation]
        measure = self._selections(operation.selection_set, root)
        root_fields = len(root_keys(operation.selection_set, self.fragments))
        return replace(measure, root_fields=root_fields)

    def _selections(
        self, selection_set: SelectionSetNode, parent: GraphQLNamedType | None
    ) -> Measure:
        total = EMPTY
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += self._field(selection, parent)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                inner = type_from_ast(self.schema, condition) if condition else parent
                total += self._selections(selection.selection_set, inner)
            elif isinstance(selection, FragmentSpreadNode):
                total += self._fragment(selection.name.value)
        return total

    def _fragment(self, name: str) -> Measure:
        if name in self._done:
            return self._done[name]
        fragment = self.fragments.get(name)
        if fragment is None or name in self._open:
            return EMPTY  # unknown or cyclic: graphql-core's own rules report it
        self._open.add(name)
        measure = self._selections(
            fragment.selection_set, type_from_ast(self.schema, fragment.type_condition)
        )
        self._open.discard(name)
        self._done[name] = measure
        return measure

    def _field(self, node: FieldNode, parent: GraphQLNamedType | None) -> Measure:
        name = node.name.value
        aliases = 1 if node.alias else 0
        if node.selection_set is None:
            return Measure(aliases=aliases, cost=1)
        definition = None
        if isinstance(parent, (GraphQLObjectType, GraphQLInterfaceType)):
            definition = parent.fields.get(name)
        if name in ("__schema", "__type") or (parent and parent.name.startswith("__")):
            inner = self._selections(node.selection_set, self._field_type(name, parent))
            return Measure(
                depth=inner.depth if name == "ofType" else inner.depth + 1,
                aliases=aliases + inner.aliases,
                cost=1 + inner.cost,
            )
        if definition is None:
            return Measure(aliases=aliases, cost=1)  # FieldsOnCorrectTypeRule reports it
        inner = self._selections(node.selection_set, get_named_type(definition.type))
        size = self._size(node, definition, parent)
        return Measure(
            depth=inner.depth + 1,
            aliases=aliases + inner.aliases,
            cost=1 + size * inner.cost,
        )

    def _field_type(self, name: str, parent: GraphQLNamedType | None) -> GraphQLNamedType | None:
        if name == "__schema":
            return self.schema.get_type("__Schema")
        if name == "__type":
            return self.schema.get_type("__Type")
        if isinstance(parent, (GraphQLObjectType, GraphQLInterfaceType)) and name in parent.fields:
            return get_named_type(parent.fields[name].type)
        return None

    def _size(
        self, node: FieldNode, definition: GraphQLField, parent: GraphQLNamedType | None
    ) -> int:
        """How many items the field can return: 1 unless it is a page or a list."""
        given = {argument.name.value: argument.value for argument in node.arguments or ()}
        for name in PAGE_ARGUMENTS:
            value = given.get(name)
            if isinstance(value, IntValueNode):
                return max(0, min(int(value.value), self.page_max))
            if isinstance(value, VariableNode):
                return self.page_max
        for name in PAGE_ARGUMENTS:
            argument = definition.args.get(name)
            if argument is not None:
                default = argument.default_value
                return min(default, self.page_max) if isinstance(default, int) else DEFAULT_PAGE
        if not isinstance(get_nullable_type(definition.type), GraphQLList):
            return 1
        if isinstance(parent, GraphQLObjectType) and "pageInfo" in parent.fields:
            return 1  # a connection's edges: its page size is counted on the connection
        return DEFAULT_PAGE

"""Per-operation set-up (a fresh viewer and fresh DataLoaders) and the document caches.

Strawberry builds the context once per HTTP request but only once per
WebSocket *connection*; doing this per operation means a socket never keeps
stale rows in its loaders, and a user deactivated mid-connection is refused at
their next operation.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from functools import lru_cache
from typing import Any

from graphql import GraphQLError
from strawberry.extensions import ParserCache, SchemaExtension
from strawberry.schema.schema import validate_document

from meihua.resolvers.access import Viewer
from meihua.resolvers.auth import authenticate
from meihua.resolvers.errors import Unauthenticated
from meihua.schema.loaders import Loaders


class OperationScope(SchemaExtension):
    async def on_operation(self) -> AsyncIterator[None]:
        context = self.execution_context.context
        context.loaders = Loaders()
        context._viewer = None
        context._auth_error = None
        token = context.bearer_token()
        if token is not None:
            try:
                user = await authenticate(token, context.signer)
                context._viewer = await Viewer.load(user)
            except Unauthenticated as error:
                context._auth_error = error
        yield


class SafeParserCache(ParserCache):
    """ParserCache that leaves syntax errors to strawberry's own parse step.

    ParserCache parses in `on_parse`, outside strawberry's try block, so a
    syntax error escaped the operation and reached the client without the
    BAD_USER_INPUT code ErrorCodes gives it. Failures are not cached anyway.
    """

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        try:
            context.graphql_document = self.cached_parse_document(
                context.query, **context.parse_options
            )
        except GraphQLError:
            context.graphql_document = None  # strawberry parses again and reports it
        yield


class SchemaValidationCache(SchemaExtension):
    """strawberry's ValidationCache, with one LRU per schema instead of one per process.

    strawberry keeps its cache at module level with the schema in every key,
    so each schema built (one per app) stayed alive as long as any of its
    entries: the tests, building an app per test, held hundreds of schemas
    and spent seconds in each full garbage collection.
    """

    def __init__(self, validate: Callable[..., Any]) -> None:
        self.validate = validate

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        context.pre_execution_errors = self.validate(
            context.schema._schema, context.graphql_document, context.validation_rules
        )
        yield


def validation_cache(maxsize: int) -> Callable[[], SchemaValidationCache]:
    """A factory for one schema's extensions list, with that schema's own cache."""
    validate = lru_cache(maxsize=maxsize)(validate_document)
    return lambda: SchemaValidationCache(validate)

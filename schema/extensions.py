"""Per-operation set-up: a fresh viewer and fresh DataLoaders.

Strawberry builds the context once per HTTP request but only once per
WebSocket *connection*; doing this per operation means a socket never keeps
stale rows in its loaders, and a user deactivated mid-connection is refused at
their next operation.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from graphql import GraphQLError
from strawberry.extensions import ParserCache, SchemaExtension

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

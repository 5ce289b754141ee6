"""Turn every error into one with a spec `extensions.code`.

Domain errors keep their message and code; errors graphql-core raises before
execution (syntax, validation, variable coercion) are BAD_USER_INPUT; anything
else is a bug and reaches the client as a bare INTERNAL, with the details only
in the server log.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from meihua.resolvers.errors import MeihuaError

logger = logging.getLogger("meihua.errors")

INTERNAL_MESSAGE = "Internal server error."

# strawberry's QueryDepthLimiter reports a plain validation error; the spec's
# code for a query over the limits is QUERY_TOO_COMPLEX, not BAD_USER_INPUT.
_TOO_COMPLEX_MARKERS = ("exceeds maximum operation depth",)


def with_code(error: GraphQLError) -> GraphQLError:
    original = error.original_error
    if isinstance(original, MeihuaError):
        return GraphQLError(
            original.message,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            extensions=original.extensions,
        )
    if original is None or error.path is None:
        # Raised before execution: the document or its variables are at fault.
        if error.extensions and "code" in error.extensions:
            return error
        too_complex = any(marker in error.message for marker in _TOO_COMPLEX_MARKERS)
        return GraphQLError(
            error.message,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            extensions={
                **(error.extensions or {}),
                "code": "QUERY_TOO_COMPLEX" if too_complex else "BAD_USER_INPUT",
            },
        )
    logger.error("Unhandled error at %s", error.path, exc_info=original)
    return GraphQLError(
        INTERNAL_MESSAGE,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions={"code": "INTERNAL"},
    )


class ErrorCodes(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is not None and result.errors:
            result.errors = [with_code(error) for error in result.errors]

"""Turn every error into one with a spec `extensions.code`.

Domain errors keep their message and code; errors graphql-core raises before
execution (syntax, validation, variable coercion) are BAD_USER_INPUT; anything
else is a bug and reaches the client as a bare INTERNAL, with the details only
in the server log.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from meihua import db
from meihua.resolvers.errors import MeihuaError

logger = logging.getLogger("meihua.errors")

INTERNAL_MESSAGE = "Internal server error."
DATABASE_UNREACHABLE_MESSAGE = "The database cannot be reached right now; try again in a moment."

# graphql-core reports a document over the token limit (schema/limits.py) as a
# syntax error; the spec's code for it is QUERY_TOO_COMPLEX, not BAD_USER_INPUT.
_TOO_COMPLEX_MARKERS = ("tokens. Parsing aborted.",)
# PostgreSQL's query_canceled, which the statement timeout (db.py) raises.
_QUERY_CANCELED = "57014"
STATEMENT_TIMEOUT_MESSAGE = (
    "A database statement ran longer than the statement timeout and was cancelled; "
    "its transaction was rolled back. Ask for less at a time."
)
# graphql-core's "Did you mean 'customers'?" spells out the schema field by field;
# it goes when introspection is off. Suggested names never contain a "?".
_SUGGESTION = re.compile(r" ?Did you mean [^?]*\?")


def with_code(error: GraphQLError, *, hide_suggestions: bool = False) -> GraphQLError:
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
            _SUGGESTION.sub("", error.message) if hide_suggestions else error.message,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            extensions={
                **(error.extensions or {}),
                "code": "QUERY_TOO_COMPLEX" if too_complex else "BAD_USER_INPUT",
            },
        )
    if _statement_timed_out(original):
        logger.warning("Statement timeout at %s", error.path)
        return GraphQLError(
            STATEMENT_TIMEOUT_MESSAGE,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            extensions={"code": "QUERY_TOO_COMPLEX"},
        )
    return _internal(error)


def _statement_timed_out(error: BaseException | None) -> bool:
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if getattr(error, "sqlstate", None) == _QUERY_CANCELED:
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


def escaped(error: GraphQLError) -> GraphQLError:
    """An error that skipped ErrorCodes because an extension raised and ended the operation.

    strawberry answers those with the exception's own text; only a domain error keeps it.
    """
    if error.extensions and "code" in error.extensions:
        return error
    if isinstance(error.original_error, MeihuaError):
        return with_code(error)
    return _internal(error)


def _internal(error: GraphQLError) -> GraphQLError:
    if db.unreachable(error.original_error):
        # An outage, not a bug: one line per request, and a message the client can act on.
        logger.warning("Database unreachable at %s: %r", error.path, error.original_error)
        message = DATABASE_UNREACHABLE_MESSAGE
    else:
        logger.error("Unhandled error at %s", error.path, exc_info=error.original_error)
        message = INTERNAL_MESSAGE
    return GraphQLError(
        message,
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
            hide = not self.execution_context.context.settings.introspection
            result.errors = [with_code(error, hide_suggestions=hide) for error in result.errors]

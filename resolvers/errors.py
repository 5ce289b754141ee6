"""The errors clients see, one class per `extensions.code` of the spec.

Resolvers raise these; schema.errors turns them into GraphQL errors and masks
everything else as INTERNAL.
"""

from __future__ import annotations

from typing import Any


class MeihuaError(Exception):
    code = "INTERNAL"

    def __init__(self, message: str, *, field: str | None = None, **extensions: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extensions: dict[str, Any] = {"code": self.code, **extensions}
        if field is not None:
            self.extensions["field"] = field


class Unauthenticated(MeihuaError):
    code = "UNAUTHENTICATED"


class Forbidden(MeihuaError):
    code = "FORBIDDEN"


class NotFound(MeihuaError):
    code = "NOT_FOUND"


class BadUserInput(MeihuaError):
    code = "BAD_USER_INPUT"


class Duplicate(MeihuaError):
    code = "DUPLICATE"


class Conflict(MeihuaError):
    code = "CONFLICT"


class LimitExceeded(MeihuaError):
    code = "LIMIT_EXCEEDED"


class QueryTooComplex(MeihuaError):
    code = "QUERY_TOO_COMPLEX"


# Every `extensions.code` a client may see (SPEC §9): the classes above and INTERNAL.
CODES = frozenset({error.code for error in MeihuaError.__subclasses__()} | {"INTERNAL"})

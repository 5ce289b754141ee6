"""Per-operation metrics and log context: which operation, whose, how it ended, how long.

Operations are named by their first root field (`customers`, `claimCustomer`),
checked against the schema, so what clients send cannot grow the metrics'
label sets: a field the schema lacks counts as "other", introspection as
"introspection". The outcome is "ok" or the first error's `extensions.code`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterator

from graphql import FieldNode
from graphql.utilities import get_operation_ast
from starlette.websockets import WebSocket
from strawberry.extensions import SchemaExtension

from meihua import logs, metrics
from meihua.resolvers.errors import CODES, MeihuaError

logger = logging.getLogger("meihua.operations")


class OperationTelemetry(SchemaExtension):
    """Counts and times each operation; puts its name and user in the log context.

    Registered first, so it enters before and leaves after the other
    extensions: its clock covers them, and it sees the final error codes.
    """

    # Whether this operation is a live subscription (counted in SUBSCRIPTIONS).
    live = False

    def on_execute(self) -> Iterator[None]:
        # From here on resolvers run: their log lines name the operation and user.
        _, kind = self._label_logs()
        if kind == "subscription":
            self.live = True
            metrics.SUBSCRIPTIONS.inc()
        yield

    async def on_operation(self) -> AsyncIterator[None]:
        started = time.perf_counter()
        raised = None
        try:
            yield
        except MeihuaError as error:
            raised = error.code
            raise
        except Exception:
            raised = "INTERNAL"
            raise
        finally:
            self._finish(started, raised)

    def _label_logs(self) -> tuple[str, str]:
        name, kind = root_field(self.execution_context)
        logs.operation.set(name)
        # Set by OperationScope; getattr: the schema also runs without the app's Context.
        viewer = getattr(self.execution_context.context, "_viewer", None)
        if viewer is not None:
            logs.user_id.set(viewer.id)
        return name, kind

    def _finish(self, started: float, raised: str | None) -> None:
        seconds = time.perf_counter() - started
        if self.live:
            metrics.SUBSCRIPTIONS.dec()
        name, kind = self._label_logs()
        outcome = raised or outcome_of(self.execution_context.result)
        logs.outcome.set(outcome)
        metrics.OPERATIONS.labels(name, kind, outcome).inc()
        # A subscription lasts as long as the client listens: that is no latency.
        if kind != "subscription":
            metrics.OPERATION_SECONDS.labels(name, kind).observe(seconds)
        if isinstance(getattr(self.execution_context.context, "request", None), WebSocket):
            # HTTP requests get their access line; operations on a socket get this one.
            logger.info(
                "%s %s ended",
                kind,
                name,
                extra={"outcome": outcome, "duration_ms": round(seconds * 1000, 1)},
            )


def root_field(execution_context) -> tuple[str, str]:
    """(first root field or "other"/"introspection", operation type or "unknown")."""
    document = execution_context.graphql_document
    if document is None:
        return "other", "unknown"
    operation = get_operation_ast(document, execution_context.operation_name)
    if operation is None:
        return "other", "unknown"
    kind = operation.operation.value
    selections = operation.selection_set.selections
    if not selections or not isinstance(selections[0], FieldNode):
        return "other", kind
    name = selections[0].name.value
    if name.startswith("__"):
        return "introspection", kind
    root = execution_context.schema._schema.get_root_type(operation.operation)
    if root is None or name not in root.fields:
        return "other", kind
    return name, kind


def outcome_of(result) -> str:
    errors = getattr(result, "errors", None)
    if not errors:
        return "ok"
    code = (errors[0].extensions or {}).get("code")
    # Anything but the spec's codes counts as INTERNAL, so outcomes stay a bounded set.
    return code if code in CODES else "INTERNAL"

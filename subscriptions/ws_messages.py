"""Shape checks for messages a client sends over a GraphQL WebSocket.

Strawberry indexes a message as it reads it, so one of the wrong shape (a JSON
array, a `subscribe` without a payload, a list as an id) raised inside its
handler and ended the socket with 1011 and a server traceback. These checks
follow the graphql-transport-ws protocol's own (graphql-ws `validateMessage`)
and are applied before strawberry sees a message; the legacy `graphql-ws`
protocol gets the same checks for the messages it acts on.
"""

from __future__ import annotations

from typing import Any

# What a client may send; the rest of the protocol's types go server → client.
TRANSPORT_TYPES = ("connection_init", "ping", "pong", "subscribe", "complete")


def transport_problem(message: object) -> str | None:
    """Why a graphql-transport-ws message breaks the protocol, or None."""
    if not isinstance(message, dict):
        return "Message must be a JSON object"
    kind = message.get("type")
    if not isinstance(kind, str):
        return "Message needs a string `type`"
    if kind not in TRANSPORT_TYPES:
        return f"Unknown message type {kind[:40]!r}"
    if kind in ("connection_init", "ping", "pong"):
        return _object_or_null(message.get("payload"), f"{kind} payload")
    return _id_problem(message) or (_operation_problem(message) if kind == "subscribe" else None)


def legacy_problem(message: object) -> str | None:
    """Why a graphql-ws (legacy) message cannot be acted on, or None.

    Types the server does not act on are left to strawberry, which ignores them.
    """
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return "Message must be a JSON object with a string `type`"
    kind = message["type"]
    if kind == "connection_init":
        return _object_or_null(message.get("payload"), "connection_init payload")
    if kind in ("start", "stop"):
        return _id_problem(message) or (_operation_problem(message) if kind == "start" else None)
    return None


def _id_problem(message: dict[str, Any]) -> str | None:
    op_id = message.get("id")
    if not isinstance(op_id, str) or not op_id:
        return "Message needs a non-empty string `id`"
    return None


def _operation_problem(message: dict[str, Any]) -> str | None:
    payload = message.get("payload")
    if not isinstance(payload, dict):
        return "Operation payload must be an object"
    if not isinstance(payload.get("query"), str):
        return "Operation payload needs a string `query`"
    if payload.get("operationName") is not None and not isinstance(payload["operationName"], str):
        return "`operationName` must be a string or null"
    return _object_or_null(payload.get("variables"), "`variables`") or _object_or_null(
        payload.get("extensions"), "`extensions`"
    )


def _object_or_null(value: object, what: str) -> str | None:
    if value is not None and not isinstance(value, dict):
        return f"{what} must be an object or null"
    return None

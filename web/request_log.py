"""Request ids and access lines for every HTTP request and WebSocket connection.

A request keeps a valid incoming `X-Request-ID` (one a proxy or the client
made) or gets a new one; the response echoes it (a WebSocket's in its
handshake), and every line logged while the request runs carries it (see
meihua.logs). Each request then gets one access line with its status, time
taken, and the GraphQL operation and its outcome when there was one.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from contextvars import ContextVar

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from meihua import logs, metrics

logger = logging.getLogger("meihua.access")

HEADER = "X-Request-ID"
# Ids from UUIDs, hex strings and common proxies pass; nothing that could forge a log line.
VALID_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# Probes and scrapes come every few seconds: logged at DEBUG, so they don't drown the rest.
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
PER_REQUEST: tuple[ContextVar, ...] = (logs.operation, logs.user_id, logs.outcome)


def request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            given = value.decode("latin-1")
            if VALID_ID.fullmatch(given):
                return given
    return uuid.uuid4().hex


class RequestLog:
    """ASGI middleware: request id, access line, open-socket gauge."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        rid = request_id(scope)
        # Reset afterwards: under a test client the app runs in the caller's task.
        tokens = [(logs.request_id, logs.request_id.set(rid))]
        tokens += [(var, var.set(None)) for var in PER_REQUEST]
        try:
            if scope["type"] == "http":
                await self._http(scope, receive, send, rid)
            else:
                await self._websocket(scope, receive, send, rid)
        finally:
            for var, token in reversed(tokens):
                var.reset(token)

    async def _http(self, scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        started = time.perf_counter()
        status = 500  # what the server answers when the app raises before responding

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message).append(HEADER, rid)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            path = scope["path"]
            if path in QUIET_PATHS and status < 500:
                level = logging.DEBUG
            else:
                level = logging.ERROR if status >= 500 else logging.INFO
            logger.log(
                level,
                "%s %s %s",
                scope["method"],
                path,
                status,
                extra={
                    "method": scope["method"],
                    "path": path,
                    "status": status,
                    "outcome": logs.outcome.get(),
                    "duration_ms": _ms_since(started),
                },
            )

    async def _websocket(self, scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        started = time.perf_counter()
        accepted = False
        code: int | None = None

        async def send_with_id(message: Message) -> None:
            nonlocal accepted, code
            if message["type"] == "websocket.accept":
                headers = [*message.get("headers", []), (HEADER.lower().encode(), rid.encode())]
                message = {**message, "headers": headers}
                accepted = True
                metrics.OPEN_SOCKETS.inc()
            elif message["type"] == "websocket.close":
                code = message.get("code", 1000)
            await send(message)

        async def receive_watching() -> Message:
            nonlocal code
            message = await receive()
            if message["type"] == "websocket.disconnect" and code is None:
                code = message.get("code", 1005)
            return message

        try:
            await self.app(scope, receive_watching, send_with_id)
        finally:
            if accepted:
                metrics.OPEN_SOCKETS.dec()
            logger.info(
                "WebSocket %s closed (%s)",
                scope["path"],
                code,
                extra={
                    "path": scope["path"],
                    "close_code": code,
                    "accepted": accepted,
                    "duration_ms": _ms_since(started),
                },
            )


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)

"""Strawberry's two GraphQL WebSocket protocols, with the limits an open socket needs.

On top of strawberry (which already closes with 4401, 4403, 4406, 4408, 4409
and 4429 where graphql-transport-ws says so):

- a message of the wrong shape is a client error (4400 on graphql-transport-ws,
  an `error` message on legacy graphql-ws), never a server crash;
- a `ping`'s payload comes back in its `pong`, as the protocol's reference
  server does, and a null `connection_init` payload is allowed, as the protocol says;
- one socket runs at most `MEIHUA_WS_MAX_OPERATIONS` operations at once; one
  more gets an error for its id with `extensions.code` LIMIT_EXCEEDED and the
  socket stays open (4429 means "too many connection_init" in the protocol);
- legacy graphql-ws sockets also close (4408) when `connection_init` is late;
- a signed-in socket closes with 4403 when its token expires or its user is
  signed out (see ws_session);
- close reasons are cut to what a close frame holds.

What a slow reader can make the server hold is bounded: each operation sends
one message at a time and waits while the socket's write buffer is over its
high-water mark (uvicorn's flow control), and each subscription's events wait
in the hub's bounded queue (MEIHUA_SUBSCRIBER_QUEUE_SIZE), which ends that
subscription with LIMIT_EXCEEDED when it overflows.
"""

from __future__ import annotations

import asyncio
from contextlib import suppress
from typing import Any

from starlette.websockets import WebSocketDisconnect
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler

from meihua.resolvers.errors import BadUserInput, LimitExceeded, MeihuaError
from meihua.subscriptions.ws_messages import legacy_problem, transport_problem
from meihua.subscriptions.ws_session import watch_session

SIGNED_OUT = 4403
INIT_TIMEOUT = 4408
# On sign-out, how long running operations get to send their last message.
FLUSH_SECONDS = 1.0
# What a close frame holds (RFC 6455 §5.5: 125 bytes, 2 of them the code).
MAX_CLOSE_REASON = 123


class WebSocketAdapter(ASGIWebSocketAdapter):
    """Strawberry's adapter, with close reasons cut to fit a close frame.

    Reasons repeat client input (a duplicate operation id, a syntax error's
    token); a longer one made the close itself fail and the socket drop with 1006.
    """

    async def close(self, code: int, reason: str) -> None:
        fitted = reason.encode()[:MAX_CLOSE_REASON].decode(errors="ignore")
        await super().close(code, fitted)


def _formatted(error: MeihuaError) -> dict[str, Any]:
    return {"message": error.message, "extensions": error.extensions}


def _over_the_limit(limit: int) -> dict[str, Any]:
    return _formatted(
        LimitExceeded(
            f"This connection already runs {limit} operations; complete one first.",
            limit=limit,
        )
    )


async def _close(websocket: Any, code: int, reason: str) -> None:
    # The socket may have closed meanwhile (the client left, or another part
    # of the server closed it first).
    with suppress(RuntimeError, WebSocketDisconnect):
        await websocket.close(code=code, reason=reason)


async def _let_finish(tasks: list[asyncio.Task]) -> None:
    running = [task for task in tasks if not task.done()]
    if running:
        await asyncio.wait(running, timeout=FLUSH_SECONDS)


class TransportHandler(BaseGraphQLTransportWSHandler):
    """graphql-transport-ws."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.session: asyncio.Task | None = None

    async def handle_message(self, message: Any) -> None:
        problem = transport_problem(message)
        if problem is not None:
            await self.handle_invalid_message(problem)
            return
        await super().handle_message(message)

    async def handle_connection_init(self, message: Any) -> None:
        if message.get("payload") is None:
            message = {**message, "payload": {}}
        await super().handle_connection_init(message)
        if self.connection_acknowledged and self.session is None:
            self.session = watch_session(self.context, self.end_session)

    async def handle_ping(self, message: Any) -> None:
        pong: dict[str, Any] = {"type": "pong"}
        if message.get("payload"):
            pong["payload"] = message["payload"]
        await self.send_message(pong)

    async def handle_subscribe(self, message: Any) -> None:
        limit = self.max_subscriptions_per_connection
        if (
            self.connection_acknowledged
            and message["id"] not in self.operations
            and limit is not None
            and len(self.operations) >= limit
        ):
            error = {"id": message["id"], "type": "error", "payload": [_over_the_limit(limit)]}
            await self.send_message(error)
            return
        await super().handle_subscribe(message)

    async def end_session(self, reason: str, flush: bool) -> None:
        if flush:
            await _let_finish([op.task for op in self.operations.values() if op.task])
        await _close(self.websocket, SIGNED_OUT, reason)

    async def shutdown(self) -> None:
        if self.session is not None:
            self.session.cancel()
        await super().shutdown()


class LegacyHandler(BaseGraphQLWSHandler):
    """graphql-ws, the protocol of Apollo's retired subscriptions-transport-ws."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.session: asyncio.Task | None = None
        self.init_received = False

    async def handle(self) -> None:
        timer = asyncio.create_task(self._close_unless_initialised())
        try:
            await super().handle()
        finally:
            timer.cancel()
            if self.session is not None:
                self.session.cancel()

    async def _close_unless_initialised(self) -> None:
        await asyncio.sleep(self.view.connection_init_wait_timeout.total_seconds())
        if not self.init_received:
            await _close(self.websocket, INIT_TIMEOUT, "Connection initialisation timeout")

    async def handle_message(self, message: Any) -> None:
        problem = legacy_problem(message)
        if problem is None:
            await super().handle_message(message)
            return
        error: dict[str, Any] = {"type": "error", "payload": _formatted(BadUserInput(problem))}
        if isinstance(message, dict) and isinstance(message.get("id"), str):
            error["id"] = message["id"]
        await self.send_message(error)

    async def handle_connection_init(self, message: Any) -> None:
        self.init_received = True
        await super().handle_connection_init(message)
        if self.connection_acknowledged and self.session is None:
            self.session = watch_session(self.context, self.end_session)

    async def handle_start(self, message: Any) -> None:
        limit = self.max_subscriptions_per_connection
        if (
            self.connection_acknowledged
            and message["id"] not in self.tasks
            and limit is not None
            and len(self.tasks) >= limit
        ):
            error = {"type": "error", "id": message["id"], "payload": _over_the_limit(limit)}
            await self.send_message(error)
            return
        await super().handle_start(message)

    async def end_session(self, reason: str, flush: bool) -> None:
        if flush:
            await _let_finish(list(self.tasks.values()))
        await _close(self.websocket, SIGNED_OUT, reason)

"""Graceful shutdown: what happens from the moment SIGTERM (or SIGINT) arrives.

The app drains first, which takes a moment:

- from then on, a request that still reaches it (a new connection before
  the listener closes, the next request on a keep-alive one) is answered
  503 with `Retry-After` and `Connection: close`, so the client sends it
  again to a server that is staying;
- every WebSocket is closed with 1001 (going away), so clients reconnect
  elsewhere and resume with `after:` at once. (uvicorn on its own would
  close them with 1012, service restart.)

Then uvicorn takes over: it stops accepting connections, lets the requests
in flight finish (up to MEIHUA_SHUTDOWN_TIMEOUT seconds) and runs the
lifespan shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import signal
import threading
from collections.abc import Iterator

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("meihua")

GOING_AWAY = 1001
CLOSE_WAIT = 2.0  # seconds the close frames may take before uvicorn takes over
DRAINING_MESSAGE = "The server is shutting down; send the request again."
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Socket:
    """One WebSocket's `send`, through which the drain can close it from outside the app."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.going_away = False

    async def send(self, message: Message) -> None:
        if self.going_away:
            return  # closed by the drain: what the app still sends has nowhere to go
        try:
            await self._send(message)
        except Exception:
            if not self.going_away:
                raise
            # the app's send lost the race with the drain's close

    async def go_away(self) -> None:
        self.going_away = True
        await self._send(
            {"type": "websocket.close", "code": GOING_AWAY, "reason": "server shutting down"}
        )


class Drain:
    """Whether the server is shutting down, and the sockets to close when it is."""

    def __init__(self) -> None:
        self.draining = False
        self._sockets: set[_Socket] = set()
        self._signalled: set[asyncio.Task] = set()

    async def begin(self) -> None:
        """Refuse new requests from now on, and close every socket with 1001."""
        if self.draining:
            return
        self.draining = True
        logger.info("Shutting down: refusing new requests, closing %d sockets", len(self._sockets))
        closing = [socket.go_away() for socket in self._sockets]
        # A client that stopped reading can hold a close frame up; don't wait for it.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_WAIT):
                await asyncio.gather(*closing, return_exceptions=True)

    @contextlib.contextmanager
    def on_signals(self) -> Iterator[None]:
        """On SIGTERM or SIGINT, drain first, then hand the signal to the server's handler.

        In that order, the sockets are closed with 1001 before uvicorn gets
        to close them with 1012. Only signals the server already handles in
        Python (uvicorn does) are taken over; a default or ignored one is
        left alone.
        """
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        loop = asyncio.get_running_loop()
        chained = {}

        async def drain_then_stop(signum: int) -> None:
            try:
                await self.begin()
            finally:
                chained[signum](signum, None)

        def start(signum: int) -> None:
            task = loop.create_task(drain_then_stop(signum))
            self._signalled.add(task)  # kept until done, so it is not collected midway
            task.add_done_callback(self._signalled.discard)

        def handler(signum, frame) -> None:
            # In a context of its own, not that of whatever request the signal interrupted.
            loop.call_soon_threadsafe(start, signum, context=contextvars.Context())

        for signum in SIGNALS:
            current = signal.getsignal(signum)
            if callable(current):
                chained[signum] = current
                signal.signal(signum, handler)
        try:
            yield
        finally:
            for signum, previous in chained.items():
                signal.signal(signum, previous)

    @contextlib.contextmanager
    def tracking(self, send: Send) -> Iterator[Send]:
        socket = _Socket(send)
        self._sockets.add(socket)
        try:
            yield socket.send
        finally:
            self._sockets.discard(socket)


class DrainMiddleware:
    def __init__(self, app: ASGIApp, drain: Drain) -> None:
        self.app = app
        self.drain = drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.drain.draining:
            await self._refuse(scope, receive, send)
        elif scope["type"] == "websocket":
            if self.drain.draining:
                await self._refuse_socket(scope, receive, send)
                return
            with self.drain.tracking(send) as tracked_send:
                await self.app(scope, receive, tracked_send)
        else:
            await self.app(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = {"message": DRAINING_MESSAGE, "extensions": {"code": "INTERNAL"}}
        response = JSONResponse(
            {"errors": [error]},
            status_code=503,
            headers={"Retry-After": "1", "Connection": "close"},
        )
        await response(scope, receive, send)

    async def _refuse_socket(self, scope: Scope, receive: Receive, send: Send) -> None:
        if "websocket.http.response" in scope.get("extensions", {}):
            await self._refuse(scope, receive, send)  # as a handshake denial
        else:
            await send({"type": "websocket.close", "code": GOING_AWAY})

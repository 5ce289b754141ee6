"""The ASGI application: GraphQL (HTTP, GraphiQL, WebSocket), health checks, the pool board."""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError

from meihua import db, pages
from meihua.clock import Clock
from meihua.resolvers.auth import TokenSigner, authenticate
from meihua.resolvers.errors import Unauthenticated
from meihua.schema import build_schema
from meihua.schema.context import Context
from meihua.settings import Settings
from meihua.subscriptions import events
from meihua.subscriptions.bus import EventBus
from meihua.subscriptions.hub import EventHub

logger = logging.getLogger("meihua")


class MeihuaGraphQL(GraphQL):
    def __init__(self, settings: Settings, hub: EventHub) -> None:
        super().__init__(
            build_schema(settings),
            graphql_ide="graphiql" if settings.graphiql else None,
            allowed_origins=settings.cors_origins,
        )
        self.settings = settings
        self.hub = hub
        self.signer = TokenSigner(
            settings.secret_key, timedelta(minutes=settings.token_lifetime_minutes)
        )

    async def get_context(self, request: Request | WebSocket, response) -> Context:
        return Context(
            request=request,
            response=response,
            settings=self.settings,
            signer=self.signer,
            hub=self.hub,
        )

    async def on_ws_connect(self, context: Context):
        """Authenticate a socket from its `connection_init` payload (4403 otherwise)."""
        try:
            await authenticate(context.bearer_token(), self.signer)
        except Unauthenticated as error:
            raise ConnectionRejectionError({"message": error.message}) from None
        return None


def create_app(settings: Settings | None = None, *, open_database: bool = True) -> Starlette:
    """The app. Tests pass `open_database=False` and bring their own tortoise context."""
    settings = settings or Settings.from_env()
    bus = EventBus(settings.broadcast_url)
    hub = EventHub(bus, queue_size=settings.subscriber_queue_size)
    clock = Clock(settings)
    graphql = MeihuaGraphQL(settings, hub)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        settings.warn_if_insecure()
        if open_database:
            await db.open_database(settings.database_url)
        await bus.connect()
        events.use_bus(bus)
        await hub.start()
        clock.start()
        try:
            yield
        finally:
            await clock.stop()
            await hub.stop()
            events.use_bus(None)
            await bus.disconnect()
            if open_database:
                await db.close_database()

    async def healthz(request: Request) -> Response:
        try:
            await db.ping()
        except Exception:
            logger.exception("health check: database unreachable")
            return JSONResponse({"status": "unavailable", "database": "down"}, status_code=503)
        return JSONResponse({"status": "ok", "database": "up"})

    app = Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            Route("/healthz", healthz),
            Route("/pool", pages.pool_board),
            Mount("/static", pages.assets(), name="static"),
        ],
        middleware=[
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.cors_origins),
                allow_methods=["GET", "POST", "OPTIONS"],
                allow_headers=["Authorization", "Content-Type"],
                max_age=600,
            )
        ],
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.bus = bus
    app.state.hub = hub
    return app


def serve_app() -> Starlette:
    """The app as `meihua serve` runs it, once per worker process."""
    # With a thousand sockets open, the default thresholds run the cyclic
    # collector almost nonstop (bench/: it doubled event latency). Collect
    # young objects less often, and keep what start-up made out of it.
    gc.set_threshold(100_000, 50, 1000)
    app = create_app()
    gc.freeze()
    return app

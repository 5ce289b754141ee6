"""The ASGI application: GraphQL (HTTP, GraphiQL, WebSocket), health checks, the pool board."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator
from datetime import timedelta

from cross_web import HTTPException
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError

from meihua import db, metrics, pages
from meihua.clock import Clock
from meihua.resolvers.auth import TokenSigner, authenticate
from meihua.resolvers.errors import Unauthenticated
from meihua.resolvers.rate_limits import RateLimits
from meihua.schema import build_schema
from meihua.schema.context import Context
from meihua.settings import Settings
from meihua.subscriptions import events
from meihua.subscriptions.bus import EventBus
from meihua.subscriptions.hub import EventHub
from meihua.subscriptions.webhook_worker import WebhookWorker
from meihua.subscriptions.ws_handlers import LegacyHandler, TransportHandler, WebSocketAdapter
from meihua.web import csrf, health
from meihua.web.body_limit import BodySizeLimit, request_error
from meihua.web.request_log import HEADER as REQUEST_ID
from meihua.web.request_log import RequestLog
from meihua.web.secure_headers import SecureHeaders
from meihua.web.shutdown import Drain, DrainMiddleware


class MeihuaGraphQL(GraphQL):
    graphql_transport_ws_handler_class = TransportHandler
    graphql_ws_handler_class = LegacyHandler
    websocket_adapter_class = WebSocketAdapter

    def __init__(self, settings: Settings, hub: EventHub, rate_limits: RateLimits) -> None:
        super().__init__(
            build_schema(settings),
            graphql_ide="graphiql" if settings.graphiql else None,
            allowed_origins=settings.cors_origins,
            connection_init_wait_timeout=timedelta(seconds=settings.ws_init_timeout),
            max_subscriptions_per_connection=settings.ws_max_operations,
        )
        self.settings = settings
        self.hub = hub
        self.rate_limits = rate_limits
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
            rate_limits=self.rate_limits,
        )

    async def __call__(self, scope, receive, send) -> None:
        """As strawberry's, but a refused HTTP request (a batch, bad JSON) gets a JSON error."""
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        try:
            response = await self.run(Request(scope=scope, receive=receive))
        except HTTPException as error:
            code = "NOT_FOUND" if error.status_code == 404 else "BAD_USER_INPUT"
            response = request_error(error.status_code, error.reason, code)
        await response(scope, receive, send)

    async def on_ws_connect(self, context: Context):
        """Authenticate a socket from its `connection_init` payload (4403 otherwise)."""
        try:
            await authenticate(context.bearer_token(), self.signer)
        except Unauthenticated as error:
            raise ConnectionRejectionError({"message": error.message}) from None
        return None


def create_app(
    settings: Settings | None = None, *, open_database: bool = True, drain_on_signals: bool = False
) -> Starlette:
    """The app. Tests pass `open_database=False` and bring their own tortoise context.

    `meihua serve` passes `drain_on_signals=True`: see web/shutdown.py.
    """
    settings = settings or Settings.from_env()
    drain = Drain()
    bus = EventBus(settings.broadcast_url)
    hub = EventHub(
        bus,
        queue_size=settings.subscriber_queue_size,
        watch_limit=settings.subscription_watch_limit,
    )
    clock = Clock(settings)
    webhooks = WebhookWorker(settings)
    rate_limits = RateLimits.for_settings(settings)
    graphql = MeihuaGraphQL(settings, hub, rate_limits)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        settings.warn_if_insecure()
        # Stopped in reverse order, each step even when one before it fails: a
        # database left open keeps aiosqlite's thread, and the process, alive.
        async with contextlib.AsyncExitStack() as started:
            if open_database:
                await db.open_database(settings.database_url, settings.statement_timeout)
                started.push_async_callback(db.close_database)
            started.push_async_callback(rate_limits.close)
            await bus.connect()
            started.push_async_callback(bus.disconnect)
            events.use_bus(bus)
            started.callback(events.use_bus, None)
            await hub.start()
            started.push_async_callback(hub.stop)
            clock.start()
            started.push_async_callback(clock.stop)
            webhooks.start()
            started.push_async_callback(webhooks.stop)
            with drain.on_signals() if drain_on_signals else contextlib.nullcontext():
                yield

    app = Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            Route("/healthz", health.healthz),
            Route("/readyz", health.readyz),
            *([Route("/metrics", metrics.endpoint)] if metrics.served(settings) else []),
            Route("/pool", pages.pool_board),
            Mount("/static", pages.assets(), name="static"),
        ],
        middleware=[
            Middleware(RequestLog),  # outermost: every response gets its request id
            Middleware(SecureHeaders, production=settings.production),
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.cors_origins),
                allow_methods=["GET", "POST", "OPTIONS"],
                allow_headers=["Authorization", "Content-Type", *csrf.HEADERS, REQUEST_ID],
                expose_headers=[REQUEST_ID],  # so a page can quote it when something fails
                max_age=600,
            ),
            Middleware(DrainMiddleware, drain=drain),
            Middleware(csrf.CsrfGuard),
            Middleware(BodySizeLimit, max_bytes=settings.body_bytes_max),
        ],
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.bus = bus
    app.state.hub = hub
    app.state.rate_limits = rate_limits
    return app


def serve_app() -> Starlette:
    """The app as `meihua serve` runs it, once per worker process."""
    # With a thousand sockets open, the default thresholds run the cyclic
    # collector almost nonstop (bench/: it doubled event latency). Collect
    # young objects less often, and keep what start-up made out of it.
    gc.set_threshold(100_000, 50, 1000)
    app = create_app(drain_on_signals=True)
    gc.freeze()
    return app

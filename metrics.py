"""Prometheus metrics: what Meihua counts, and `GET /metrics`.

With several worker processes (`meihua serve --workers N`) each keeps its
figures in files under PROMETHEUS_MULTIPROC_DIR, and a scrape of any worker
reports them all. prometheus_client reads that variable when it is imported,
so `meihua serve` sets it before it starts the workers.
"""

from __future__ import annotations

import functools
import hmac
import os
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import ParamSpec, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from meihua.resolvers.errors import Conflict
from meihua.settings import Settings

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"

OPERATIONS = Counter(
    "meihua_graphql_operations",
    "GraphQL operations by root field, type and outcome (ok, or the first error's code).",
    ["operation", "type", "outcome"],
)
OPERATION_SECONDS = Histogram(
    "meihua_graphql_operation_duration_seconds",
    "Time to answer a query or mutation, by root field.",
    ["operation", "type"],
)
OPEN_SOCKETS = Gauge(
    "meihua_websockets_open", "WebSocket connections open.", multiprocess_mode="livesum"
)
SUBSCRIPTIONS = Gauge(
    "meihua_subscriptions_active", "Live subscriptions being fed.", multiprocess_mode="livesum"
)
DELIVERY_LAG = Histogram(
    "meihua_event_delivery_lag_seconds",
    "From an event's creation to its being queued for every subscriber of this process "
    "who may see it.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
POOL_CLAIMS = Counter(
    "meihua_pool_claims",
    "Claims of pool customers: claimed, or lost to someone faster (CONFLICT).",
    ["outcome"],
)

P = ParamSpec("P")
T = TypeVar("T")


def counts_claims(claim: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Count a claim function's successes and its CONFLICT losses."""

    @functools.wraps(claim)
    async def counted(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            taken = await claim(*args, **kwargs)
        except Conflict:
            POOL_CLAIMS.labels("conflict").inc()
            raise
        POOL_CLAIMS.labels("claimed").inc()
        return taken

    return counted


def delivered(events: Iterable) -> None:
    """Record the delivery lag of events just queued for their subscribers."""
    now = datetime.now(UTC)
    for event in events:
        created = event.created_at
        if created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        # Clocks of different hosts may disagree a little; a lag is never negative.
        DELIVERY_LAG.observe(max((now - created).total_seconds(), 0.0))


def exposition() -> bytes:
    """Every metric in the text format; all workers' figures in multiprocess mode."""
    if os.environ.get(MULTIPROCESS_DIR):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def served(settings: Settings) -> bool:
    """Production serves /metrics only behind a token; development always does."""
    return settings.metrics_token is not None or not settings.production


async def endpoint(request: Request) -> Response:
    token = request.app.state.settings.metrics_token
    if token is not None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), token.encode()
        ):
            return PlainTextResponse(
                "GET /metrics needs Authorization: Bearer <MEIHUA_METRICS_TOKEN>.",
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
    return Response(exposition(), media_type=CONTENT_TYPE_LATEST)

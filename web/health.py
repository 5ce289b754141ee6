"""Liveness (`GET /healthz`) and readiness (`GET /readyz`) for load balancers.

Liveness checks nothing outside the process: a database outage should take
instances out of rotation (not ready), not get them restarted (not alive).
Readiness answers 503 naming what is down: the database, and Redis when
BROADCAST_URL points at one.
"""

from __future__ import annotations

import asyncio
import logging

from redis import asyncio as redis
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from meihua import db

logger = logging.getLogger("meihua.health")

# A dependency that takes longer than this to answer counts as down.
PROBE_TIMEOUT = 2.0


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    checks = {"database": _database()}
    broadcast_url = request.app.state.settings.broadcast_url
    if broadcast_url.startswith(("redis://", "rediss://")):
        checks["redis"] = _redis(broadcast_url)
    results = dict(zip(checks, await asyncio.gather(*checks.values()), strict=True))
    ready = all(results.values())
    body = {"status": "ok" if ready else "unavailable"}
    body.update({name: "up" if up else "down" for name, up in results.items()})
    return JSONResponse(body, status_code=200 if ready else 503)


async def _database() -> bool:
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            await db.ping()
    except Exception as error:
        logger.warning("readiness: database unreachable: %r", error)
        return False
    return True


async def _redis(url: str) -> bool:
    client = redis.from_url(url, socket_connect_timeout=PROBE_TIMEOUT, socket_timeout=PROBE_TIMEOUT)
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            await client.ping()
    except Exception as error:
        logger.warning("readiness: Redis unreachable: %r", error)
        return False
    finally:
        await client.aclose()
    return True

"""Pages served beside the API: the live pool board (公海看板) and its assets.

Plain files, no build step and nothing from other origins, so the browser can
be told to run only what this server sends.
"""

from __future__ import annotations

import re
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parent / "static"
# A Host header is the client's to choose; only a plain host[:port] goes into the policy.
PLAIN_HOST = re.compile(r"^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")


def _content_security_policy(request: Request) -> str:
    # 'self' does not cover WebSocket URLs in every browser, so name them.
    host = request.headers.get("host", "")
    sockets = f" ws://{host} wss://{host}" if PLAIN_HOST.match(host) else ""
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self'",
            f"connect-src 'self'{sockets}",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


async def pool_board(request: Request) -> Response:
    """The pool board: sign in, watch the pool live, claim with one click."""
    return FileResponse(
        STATIC / "pool.html",
        headers={
            "Content-Security-Policy": _content_security_policy(request),
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-cache",
        },
    )


class Assets(StaticFiles):
    """The board's scripts and styles, never sniffed into another type."""

    def file_response(self, *args, **kwargs) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def assets() -> Assets:
    return Assets(directory=STATIC)

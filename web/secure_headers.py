"""Security headers on every HTTP response.

Headers a route sets itself win (the pool board sends its own Content-Security-
Policy and Cache-Control). Starlette writes the 500 of an unhandled exception
outside every middleware, so this one writes that response itself: a bare
JSON INTERNAL error, with the headers, and never a traceback.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from meihua.schema.errors import INTERNAL_MESSAGE

ALWAYS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
# JSON and assets need nothing from anywhere; a page (GraphiQL loads its scripts
# from a CDN) is only kept out of frames.
API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
PAGE_POLICY = "frame-ancestors 'none'"
# Browsers keep to HTTPS for a year once they saw this over HTTPS; only production
# is surely served over TLS (a development server on http:// would be unreachable).
STRICT_TRANSPORT = "max-age=31536000; includeSubDomains"
# Answers hold one user's data; no shared or browser cache keeps them.
NO_STORE_PATHS = frozenset({"/graphql"})


class SecureHeaders:
    def __init__(self, app: ASGIApp, *, production: bool) -> None:
        self.app = app
        self.production = production

    def secure(self, scope: Scope, message: Message) -> None:
        headers = MutableHeaders(scope=message)
        for name, value in ALWAYS.items():
            headers.setdefault(name, value)
        html = headers.get("content-type", "").startswith("text/html")
        headers.setdefault("Content-Security-Policy", PAGE_POLICY if html else API_POLICY)
        if scope["path"] in NO_STORE_PATHS:
            headers.setdefault("Cache-Control", "no-store")
        if self.production:
            headers.setdefault("Strict-Transport-Security", STRICT_TRANSPORT)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_secured(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                self.secure(scope, message)
            await send(message)

        try:
            await self.app(scope, receive, send_secured)
        except Exception:
            if not started:
                error = {"message": INTERNAL_MESSAGE, "extensions": {"code": "INTERNAL"}}
                await JSONResponse({"errors": [error]}, status_code=500)(
                    scope, receive, send_secured
                )
            raise  # to the server's log, with the traceback

"""Cross-site request forgery guard for bodies a browser can send without asking.

A page on any site can make the browser POST a form or a `fetch` with a
"simple" content type (form-urlencoded, multipart/form-data, text/plain, or
none) without a CORS preflight. So a body that is not JSON (which always
needs a preflight cross-site) is refused unless the request carries one of
`HEADERS`: a page may only add those after a preflight this server's CORS
allowlist approved. With a header, a text/plain, form-urlencoded or untyped
body is read as JSON, for clients that cannot set the content type.

Safe methods (GET, HEAD, OPTIONS) pass: strawberry runs only queries over GET.
"""

from __future__ import annotations

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

# Either one, with any non-empty value. Apollo Client's upload link sends the second.
HEADERS = ("X-Meihua-CSRF", "Apollo-Require-Preflight")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
JSON = "application/json"
# Simple content types Meihua reads as JSON once the request proves it was preflighted.
READ_AS_JSON = frozenset({"", "text/plain", "application/x-www-form-urlencoded"})

REFUSAL = (
    "This request could come from a cross-site form: send the body as application/json, "
    f"or add the header {HEADERS[0]}: 1."
)


def media_type(headers: Headers) -> str:
    return headers.get("content-type", "").split(";", 1)[0].strip().lower()


class CsrfGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        kind = media_type(headers)
        # Only JSON passes unasked: it is the one type here a browser always preflights,
        # and comparing the parsed type leaves no room for look-alikes.
        if kind != JSON:
            if not any(headers.get(name, "").strip() for name in HEADERS):
                response = JSONResponse(
                    {"errors": [{"message": REFUSAL, "extensions": {"code": "BAD_USER_INPUT"}}]},
                    status_code=415,
                )
                await response(scope, receive, send)
                return
            if kind in READ_AS_JSON:
                scope = dict(scope)
                MutableHeaders(scope=scope)["content-type"] = JSON
        await self.app(scope, receive, send)

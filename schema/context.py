"""The typed context every resolver receives as `info.context`."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.types import Info as StrawberryInfo

from meihua.resolvers.access import Viewer
from meihua.resolvers.auth import TokenSigner
from meihua.resolvers.errors import Unauthenticated
from meihua.resolvers.rate_limits import RateLimits
from meihua.schema.loaders import Loaders
from meihua.settings import Settings
from meihua.subscriptions.hub import EventHub


@dataclass
class Context:
    request: Request | WebSocket
    response: Response | WebSocket | None
    settings: Settings
    signer: TokenSigner
    # This app's operation budget and login throttling.
    rate_limits: RateLimits
    # This process's event hub (subscriptions follow it); None outside the app.
    hub: EventHub | None = None
    token: str | None = None
    # WebSocket clients authenticate in `connection_init`; strawberry fills this.
    connection_params: dict | None = None
    # Set per operation by schema.extensions.OperationScope.
    loaders: Loaders = field(default_factory=Loaders)
    _viewer: Viewer | None = None
    _auth_error: Unauthenticated | None = None

    @property
    def viewer(self) -> Viewer:
        """The signed-in caller; UNAUTHENTICATED when there is none."""
        if self._viewer is None:
            raise self._auth_error or Unauthenticated("Sign in first.")
        return self._viewer

    def bearer_token(self) -> str | None:
        if self.connection_params is not None:
            raw = self.connection_params.get("Authorization") or self.connection_params.get(
                "authorization"
            )
        else:
            raw = self.request.headers.get("authorization")
        if not isinstance(raw, str):
            return None
        scheme, _, token = raw.partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None


Info = StrawberryInfo[Context, None]

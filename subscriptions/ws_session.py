"""Ending a signed-in socket when its sign-in ends.

A socket authenticates once, in `connection_init`. It is closed with 4403 when
the token it signed in with expires, or when the user is signed out everywhere
(deactivated, password changed, roles revoked by an admin). Both are scheduled,
never checked per message: one timer for the expiry, and one feed on the event
hub that accepts no event but is ended by the hub, as every feed of the user
is, when the user's sign-in is revoked. (Each operation on the socket checks
the token again as well, so nothing slips through before the hub notices.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from meihua.resolvers.errors import Unauthenticated

if TYPE_CHECKING:
    from meihua.models import Event
    from meihua.resolvers.sight import Sight
    from meihua.schema.context import Context
    from meihua.subscriptions.hub import Batch, EventHub

logger = logging.getLogger("meihua.ws")

End = Callable[[str, bool], Awaitable[None]]
"""Close the socket with 4403: (reason, whether to let running operations finish first)."""


def watch_session(context: Context, end: End) -> asyncio.Task:
    """Start watching the socket's sign-in; cancel the task when the socket closes."""
    task = asyncio.create_task(_watch(context, end), name="meihua-ws-session")
    task.add_done_callback(_report_failure)
    return task


async def _watch(context: Context, end: End) -> None:
    token = context.bearer_token()
    try:
        user_id, _ = context.signer.read(token or "")
    except Unauthenticated:  # expired between the handshake and now
        await end("Token expired", False)
        return
    remaining = (context.signer.expires_at(token) - datetime.now(UTC)).total_seconds()
    try:
        async with asyncio.timeout(max(remaining, 0.0)):
            await _until_signed_out(context.hub, user_id)
    except TimeoutError:
        await end("Token expired", False)
    except Unauthenticated:
        # The user's subscriptions end with an UNAUTHENTICATED error; let it go out.
        await end("Signed out", True)


async def _until_signed_out(hub: EventHub | None, user_id: int) -> None:
    """Wait until the hub signs the user out (it raises Unauthenticated then)."""
    if hub is None:  # outside the app: only the expiry applies
        await asyncio.Event().wait()
    else:
        async for _ in hub.follow(user_id, _no_event, None):
            pass


def _no_event(sight: Sight, event: Event, batch: Batch) -> bool:
    return False


def _report_failure(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("socket session watch failed", exc_info=task.exception())

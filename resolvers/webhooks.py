"""Webhooks (admin side): registering endpoints, rotating secrets, redelivering.

Hooks are company-wide configuration guarded by `settings:manage`. A hook is
owned by the admin who registered it and acts as them: it carries only the
events, and the record data, its owner may see (resolvers/webhook_payloads.py).
The secret is made here and shown once, when the hook is created and when it
is rotated. Sending is the delivery worker's job (subscriptions/webhook_worker.py).
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from tortoise.queryset import QuerySet

from meihua.models import Event, Webhook, WebhookDelivery, WebhookDeliveryStatus
from meihua.resolvers.access import Viewer
from meihua.resolvers.errors import BadUserInput, NotFound
from meihua.resolvers.versioning import update_versioned
from meihua.subscriptions.events import transaction

SETTINGS_MANAGE = "settings:manage"
URL_MAX = 2000
DESCRIPTION_MAX = 200

# The events an integrator may subscribe to: changes to CRM records. The
# organization's own events (users, roles, departments, pool settings) stay
# inside the server.
WEBHOOK_EVENT_KINDS = (
    "customer.changed",
    "customer.deleted",
    "customer.transferred",
    "customer.team_changed",
    "customer.recycle_warning",
    "pool.released",
    "pool.claimed",
    "pool.assigned",
    "pool.recycled",
    "contact.changed",
    "contact.deleted",
    "lead.changed",
    "lead.deleted",
    "lead.assigned",
    "lead.released",
    "lead.transferred",
    "lead.converted",
    "opportunity.updated",
    "opportunity.stage_changed",
    "opportunity.transferred",
    "opportunity.deleted",
    "contract.changed",
    "contract.deleted",
    "contract.transferred",
    "approval.requested",
    "approval.decided",
    "followup.created",
    "followup.changed",
    "followup.deleted",
    "task.assigned",
    "task.completed",
)


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def clean_event_kinds(kinds: list[str]) -> list[str]:
    unknown = sorted(set(kinds) - set(WEBHOOK_EVENT_KINDS))
    if unknown:
        raise BadUserInput(
            f"Unknown event kinds: {', '.join(unknown)}; see `webhookEventKinds`.",
            field="eventKinds",
        )
    if not kinds:
        raise BadUserInput("Subscribe to at least one event kind.", field="eventKinds")
    return sorted(set(kinds))


def _is_private(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is loopback too
    return not ip.is_global or ip.is_multicast


async def private_target(host: str) -> bool:
    """Whether `host` is, or resolves to, an address inside the network (or none at all)."""
    try:
        return _is_private(host)
    except ValueError:
        pass  # a name, not an address
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return True
    return any(_is_private(str(info[4][0])) for info in infos)


async def clean_url(url: str, allow_private: bool) -> str:
    """An absolute http(s) URL; outside the server's network unless private targets are allowed."""
    url = url.strip()
    if len(url) > URL_MAX:
        raise BadUserInput(f"`url` is longer than {URL_MAX} characters.", field="url")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise BadUserInput("`url` is not a valid URL.", field="url") from None
    if parts.scheme not in ("http", "https") or not host:
        raise BadUserInput("`url` must be an absolute http:// or https:// URL.", field="url")
    if parts.username or parts.password:
        raise BadUserInput("`url` must not carry credentials; use the secret.", field="url")
    if not allow_private and await private_target(host):
        raise BadUserInput(
            "`url` points inside the server's network (or does not resolve); "
            "webhooks go to public addresses.",
            field="url",
        )
    return url


def clean_description(value: str) -> str:
    value = value.strip()
    if len(value) > DESCRIPTION_MAX:
        raise BadUserInput(
            f"`description` is longer than {DESCRIPTION_MAX} characters.", field="description"
        )
    return value


async def _log_end() -> int:
    """The newest event's cursor: a hook starts with what happens after it."""
    latest = await Event.all().order_by("-id").first().values_list("id", flat=True)
    return latest or 0


def list_webhooks(viewer: Viewer) -> QuerySet[Webhook]:
    viewer.require(SETTINGS_MANAGE)
    return Webhook.all()


async def get_webhook(viewer: Viewer, pk: int) -> Webhook:
    viewer.require(SETTINGS_MANAGE)
    hook = await Webhook.get_or_none(id=pk)
    if hook is None:
        raise NotFound("No such webhook.")
    return hook


@dataclass
class WebhookInput:
    url: str | None = None
    event_kinds: list[str] | None = None
    description: str | None = None
    is_active: bool | None = None


async def _changes(data: WebhookInput, allow_private: bool) -> dict:
    changes: dict = {}
    if data.url is not None:
        changes["url"] = await clean_url(data.url, allow_private)
    if data.event_kinds is not None:
        changes["event_kinds"] = clean_event_kinds(data.event_kinds)
    if data.description is not None:
        changes["description"] = clean_description(data.description)
    if data.is_active is not None:
        changes["is_active"] = data.is_active
    return changes


async def create_webhook(
    viewer: Viewer, data: WebhookInput, allow_private: bool
) -> tuple[Webhook, str]:
    """A new hook owned by the caller, and its secret (shown this once)."""
    viewer.require(SETTINGS_MANAGE)
    if data.url is None:
        raise BadUserInput("`url` is required.", field="url")
    if data.event_kinds is None:
        raise BadUserInput("`eventKinds` is required.", field="eventKinds")
    changes = await _changes(data, allow_private)
    secret = new_secret()
    async with transaction():
        hook = await Webhook.create(
            **changes, secret=secret, owner_id=viewer.id, position=await _log_end()
        )
    return hook, secret


async def update_webhook(
    viewer: Viewer,
    pk: int,
    data: WebhookInput,
    expected_version: int | None,
    allow_private: bool,
) -> Webhook:
    """Change a hook; one switched back on starts with the events after now."""
    changes = await _changes(data, allow_private)
    async with transaction():
        hook = await get_webhook(viewer, pk)
        if changes.get("is_active") and not hook.is_active:
            changes["position"] = await _log_end()
        return await update_versioned(hook, expected_version, **changes)


async def rotate_webhook_secret(
    viewer: Viewer, pk: int, expected_version: int | None
) -> tuple[Webhook, str]:
    """A new secret for the hook; deliveries sent from now on are signed with it."""
    secret = new_secret()
    async with transaction():
        hook = await get_webhook(viewer, pk)
        return await update_versioned(hook, expected_version, secret=secret), secret


async def delete_webhook(viewer: Viewer, pk: int) -> int:
    """Delete a hook with its delivery log; nothing more is sent to it."""
    async with transaction():
        hook = await get_webhook(viewer, pk)
        await hook.delete()
    return pk


def deliveries_of(hook: Webhook, status: WebhookDeliveryStatus | None) -> QuerySet:
    query = WebhookDelivery.filter(webhook_id=hook.id)
    if status is not None:
        query = query.filter(status=status)
    return query


async def redeliver(viewer: Viewer, pk: int) -> WebhookDelivery:
    """Send a delivery again, now, with a fresh set of attempts (same body, new signature)."""
    viewer.require(SETTINGS_MANAGE)
    async with transaction():
        delivery = await WebhookDelivery.get_or_none(id=pk)
        if delivery is None:
            raise NotFound("No such webhook delivery.")
        # Resetting `attempts` also voids an attempt under way: its outcome is
        # recorded only while `attempts` is what it claimed (see the worker).
        await WebhookDelivery.filter(id=pk).update(
            status=WebhookDeliveryStatus.PENDING,
            attempts=0,
            next_attempt_at=datetime.now(UTC),
        )
        await delivery.refresh_from_db()
        return delivery

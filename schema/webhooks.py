"""GraphQL API of webhooks: endpoints admins register, and their delivery log."""

from __future__ import annotations

from datetime import datetime

import strawberry

from meihua import models
from meihua.resolvers import webhooks
from meihua.resolvers.pagination import Ordering
from meihua.schema.context import Info
from meihua.schema.org import DeletePayload, User
from meihua.schema.relay import Connection, connection, record_id, to_global_id

WebhookDeliveryStatus = strawberry.enum(
    models.WebhookDeliveryStatus,
    description="PENDING: not sent yet. FAILED: the last attempt failed, another is "
    "scheduled. SUCCEEDED: answered 2xx. GAVE_UP: every attempt failed.",
)


@strawberry.type(description="One event sent to one webhook, and how its attempts went.")
class WebhookDelivery:
    id: strawberry.ID = strawberry.field(description="Sent as the `X-Meihua-Delivery` header.")
    event_cursor: str = strawberry.field(description="The event's cursor in the event log.")
    event_kind: str
    status: WebhookDeliveryStatus
    attempts: int
    next_attempt_at: datetime | None = strawberry.field(
        description="When the next attempt is due; null once it succeeded or gave up."
    )
    response_code: int | None = strawberry.field(description="The last attempt's HTTP status.")
    error: str | None = strawberry.field(description="Why the last attempt failed.")
    duration_ms: int | None = strawberry.field(description="How long the last attempt took.")
    created_at: datetime
    last_attempt_at: datetime | None
    delivered_at: datetime | None

    @classmethod
    def of(cls, row: models.WebhookDelivery) -> WebhookDelivery:
        return cls(
            id=to_global_id("WebhookDelivery", row.id),
            event_cursor=str(row.event_id),
            event_kind=row.event_kind,
            status=row.status,
            attempts=row.attempts,
            next_attempt_at=row.next_attempt_at,
            response_code=row.response_code,
            error=row.error,
            duration_ms=row.duration_ms,
            created_at=row.created_at,
            last_attempt_at=row.last_attempt_at,
            delivered_at=row.delivered_at,
        )


@strawberry.type(description="An endpoint that receives signed events (`settings:manage`).")
class Webhook:
    id: strawberry.ID
    url: str
    event_kinds: list[str]
    description: str
    is_active: bool
    version: int
    created_at: datetime
    updated_at: datetime
    row: strawberry.Private[models.Webhook]

    @classmethod
    def of(cls, row: models.Webhook) -> Webhook:
        return cls(
            id=to_global_id("Webhook", row.id),
            url=row.url,
            event_kinds=row.event_kinds,
            description=row.description,
            is_active=row.is_active,
            version=row.version,
            created_at=row.created_at,
            updated_at=row.updated_at,
            row=row,
        )

    @strawberry.field(description="The admin who registered it; it sees what they see.")
    async def owner(self, info: Info) -> User:
        return User.of(await info.context.loaders.user.load(self.row.owner_id))

    @strawberry.field(description="Its deliveries, newest first.")
    async def deliveries(
        self,
        info: Info,
        status: WebhookDeliveryStatus | None = None,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[WebhookDelivery]:
        return await connection(
            info,
            webhooks.deliveries_of(self.row, status),
            Ordering("id", descending=True),
            WebhookDelivery,
            first=first,
            after=after,
            last=last,
            before=before,
        )


@strawberry.type(description="A webhook with its signing secret, shown this once.")
class WebhookWithSecret:
    webhook: Webhook
    secret: str = strawberry.field(
        description="Signs every delivery (see the README); keep it, it is not shown again."
    )


@strawberry.input
class CreateWebhookInput:
    url: str = strawberry.field(description="An http(s) URL that receives POSTed events.")
    event_kinds: list[str] = strawberry.field(description="Some of `webhookEventKinds`.")
    description: str = ""
    is_active: bool = True


@strawberry.input(description="Send only what changes.")
class UpdateWebhookInput:
    url: str | None = None
    event_kinds: list[str] | None = None
    description: str | None = None
    is_active: bool | None = strawberry.field(
        default=None, description="A hook switched back on gets the events from then on."
    )


def _input(data: CreateWebhookInput | UpdateWebhookInput) -> webhooks.WebhookInput:
    return webhooks.WebhookInput(
        url=data.url,
        event_kinds=data.event_kinds,
        description=data.description,
        is_active=data.is_active,
    )


@strawberry.type
class WebhookQuery:
    @strawberry.field(description="The registered webhooks (`settings:manage`).")
    async def webhooks(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[Webhook]:
        return await connection(
            info,
            webhooks.list_webhooks(info.context.viewer),
            Ordering("id"),
            Webhook,
            first=first,
            after=after,
            last=last,
            before=before,
        )

    @strawberry.field(description="One webhook with its delivery log (`settings:manage`).")
    async def webhook(self, info: Info, id: strawberry.ID) -> Webhook:
        viewer = info.context.viewer
        return Webhook.of(await webhooks.get_webhook(viewer, record_id(id, "Webhook")))

    @strawberry.field(description="The event kinds a webhook may subscribe to.")
    def webhook_event_kinds(self, info: Info) -> list[str]:
        info.context.viewer.require(webhooks.SETTINGS_MANAGE)
        return list(webhooks.WEBHOOK_EVENT_KINDS)


@strawberry.type
class WebhookMutation:
    @strawberry.mutation(description="Register a webhook owned by you (`settings:manage`).")
    async def create_webhook(self, info: Info, input: CreateWebhookInput) -> WebhookWithSecret:
        context = info.context
        hook, secret = await webhooks.create_webhook(
            context.viewer, _input(input), context.settings.allows_private_webhook_targets
        )
        return WebhookWithSecret(webhook=Webhook.of(hook), secret=secret)

    @strawberry.mutation(description="Fails with CONFLICT when `expectedVersion` is stale.")
    async def update_webhook(
        self,
        info: Info,
        id: strawberry.ID,
        input: UpdateWebhookInput,
        expected_version: int | None = None,
    ) -> Webhook:
        context = info.context
        hook = await webhooks.update_webhook(
            context.viewer,
            record_id(id, "Webhook"),
            _input(input),
            expected_version,
            context.settings.allows_private_webhook_targets,
        )
        return Webhook.of(hook)

    @strawberry.mutation(description="A new secret; the old one stops signing at once.")
    async def rotate_webhook_secret(
        self, info: Info, id: strawberry.ID, expected_version: int | None = None
    ) -> WebhookWithSecret:
        hook, secret = await webhooks.rotate_webhook_secret(
            info.context.viewer, record_id(id, "Webhook"), expected_version
        )
        return WebhookWithSecret(webhook=Webhook.of(hook), secret=secret)

    @strawberry.mutation(description="Delete a webhook and its delivery log.")
    async def delete_webhook(self, info: Info, id: strawberry.ID) -> DeletePayload:
        await webhooks.delete_webhook(info.context.viewer, record_id(id, "Webhook"))
        return DeletePayload(deleted_id=id)

    @strawberry.mutation(description="Send a delivery again now, with a fresh set of attempts.")
    async def redeliver_webhook_delivery(self, info: Info, id: strawberry.ID) -> WebhookDelivery:
        delivery = await webhooks.redeliver(info.context.viewer, record_id(id, "WebhookDelivery"))
        return WebhookDelivery.of(delivery)

"""The webhook worker: turns committed events into signed HTTP deliveries.

It runs in the background of every server process and never inside a
mutation: a mutation only writes its events to the log (in its transaction),
and each round here reads what is new from the log, so a slow or dead
endpoint cannot hold a mutation up. A round has two steps:

1. Fan-out: for every active hook, the new events of the kinds it subscribes
   to, that its owner may see, become `WebhookDelivery` rows (with the body,
   made once, so retries resend the same bytes). The rows and the hook's new
   position in the log are written together; a unique (hook, event) pair
   makes a second worker doing the same round harmless.
2. Sending: due deliveries are claimed one by one with a conditional UPDATE
   (the claim counts the attempt and leases the row for a while), so however
   many workers run, only the one whose UPDATE matched sends it. A worker
   that dies mid-send leaves a lease that runs out: the row is sent again.
   Delivery is therefore at least once; receivers deduplicate on
   `X-Meihua-Delivery`.

A failed attempt (no 2xx answer in time) is retried with exponential backoff
and jitter until `webhook_max_attempts`, then the delivery GAVE_UP. Pending
rows live in the database, so a restart picks them up where they were.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import httpx
from tortoise.transactions import in_transaction

from meihua.models import Event, Webhook, WebhookDelivery, WebhookDeliveryStatus
from meihua.resolvers.sight import Sight
from meihua.resolvers.webhook_payloads import webhook_payload
from meihua.resolvers.webhook_signing import sign
from meihua.resolvers.webhooks import private_target
from meihua.schema.relay import to_global_id
from meihua.settings import Settings
from meihua.subscriptions.hub import Batch, may_see

logger = logging.getLogger("meihua.webhooks")

FAN_OUT_BATCH = 200  # events read per round
SEND_BATCH = 20  # deliveries sent (at once) per round
LEASE_MARGIN = 60.0  # seconds a claim outlives the request timeout
ERROR_MAX = 500


def backoff(settings: Settings, attempts: int) -> float:
    """Seconds before the next attempt, after `attempts` failed ones: doubling, half jittered."""
    delay = min(settings.webhook_backoff * 2 ** (attempts - 1), settings.webhook_backoff_max)
    return delay / 2 + random.uniform(0, delay / 2)


def headers(delivery: WebhookDelivery, secret: str, timestamp: int) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": "Meihua-Webhooks/1",
        "X-Meihua-Event": delivery.event_kind,
        "X-Meihua-Delivery": str(to_global_id("WebhookDelivery", delivery.id)),
        "X-Meihua-Timestamp": str(timestamp),
        "X-Meihua-Signature": sign(secret, delivery.body.encode(), timestamp),
    }


async def fan_out() -> bool:
    """Deliveries for the events after the hooks' positions; True when there may be more."""
    hooks = list(await Webhook.filter(is_active=True).order_by("id"))
    if not hooks:
        return False
    start = min(hook.position for hook in hooks)
    events = list(await Event.filter(id__gt=start).order_by("id").limit(FAN_OUT_BATCH))
    if not events:
        return False
    batch = await Batch.load(events)
    sights = {pk: await Sight.load(pk) for pk in {hook.owner_id for hook in hooks}}
    rows = []
    now = datetime.now(UTC)
    for hook in hooks:
        sight = sights[hook.owner_id]
        for event in events:
            wanted = event.id > hook.position and event.kind in hook.event_kinds
            if wanted and may_see(sight, event, batch):
                body = json.dumps(await webhook_payload(sight.viewer, event), ensure_ascii=False)
                rows.append(
                    WebhookDelivery(
                        webhook_id=hook.id,
                        event_id=event.id,
                        event_kind=event.kind,
                        body=body,
                        next_attempt_at=now,
                    )
                )
    end = events[-1].id
    async with in_transaction() as connection:
        await WebhookDelivery.bulk_create(rows, ignore_conflicts=True, using_db=connection)
        for hook in hooks:
            if hook.position < end:
                # Conditional: a worker that got further first is not set back.
                await (
                    Webhook.filter(id=hook.id, position=hook.position)
                    .using_db(connection)
                    .update(position=end)
                )
    return len(events) == FAN_OUT_BATCH


async def claim_due(settings: Settings) -> list[WebhookDelivery]:
    """Due deliveries this worker won: each claim is one conditional UPDATE."""
    now = datetime.now(UTC)
    due = await (
        WebhookDelivery.filter(next_attempt_at__lte=now, webhook__is_active=True)
        .order_by("next_attempt_at", "id")
        .limit(SEND_BATCH)
        .values_list("id", "attempts")
    )
    lease = now + timedelta(seconds=settings.webhook_timeout + LEASE_MARGIN)
    won = []
    for pk, attempts in due:
        claimed = await WebhookDelivery.filter(
            id=pk, attempts=attempts, next_attempt_at__lte=now
        ).update(attempts=attempts + 1, next_attempt_at=lease, last_attempt_at=now)
        if claimed:
            won.append(pk)
    if not won:
        return []
    return list(await WebhookDelivery.filter(id__in=won).select_related("webhook").order_by("id"))


class WebhookSender:
    """Sends claimed deliveries and records how each attempt went."""

    def __init__(self, settings: Settings, client: Callable[[], httpx.AsyncClient]) -> None:
        self.settings = settings
        self.client = client

    async def send_due(self) -> bool:
        """One round of sending; True when there may be more due."""
        claimed = await claim_due(self.settings)
        await asyncio.gather(*(self.attempt(delivery) for delivery in claimed))
        return len(claimed) == SEND_BATCH

    async def attempt(self, delivery: WebhookDelivery) -> None:
        hook: Webhook = delivery.webhook
        started = time.monotonic()
        code, error = None, None
        try:
            code, error = await self._post(hook, delivery)
        except Exception as failure:  # whatever went wrong is the attempt's outcome
            error = f"{type(failure).__name__}: {failure}"
        duration_ms = round((time.monotonic() - started) * 1000)
        await self._record(delivery, code, error, duration_ms)

    async def _post(
        self, hook: Webhook, delivery: WebhookDelivery
    ) -> tuple[int | None, str | None]:
        host = urlsplit(hook.url).hostname or ""
        if not self.settings.allows_private_webhook_targets and await private_target(host):
            # Checked again at sending: the name may resolve elsewhere now.
            return None, "refused: the URL resolves to an address inside the network"
        timeout = self.settings.webhook_timeout
        try:
            async with asyncio.timeout(timeout):
                request = self.client().stream(
                    "POST",
                    hook.url,
                    content=delivery.body.encode(),
                    headers=headers(delivery, hook.secret, int(time.time())),
                )
                async with request as response:  # the answer's body is not read
                    code = response.status_code
        except TimeoutError:
            return None, f"no answer within {timeout:g} seconds"
        except httpx.HTTPError as failure:
            return None, f"{type(failure).__name__}: {failure}".rstrip(": ")
        return code, None if 200 <= code < 300 else f"answered HTTP {code}"

    async def _record(
        self, delivery: WebhookDelivery, code: int | None, error: str | None, duration_ms: int
    ) -> None:
        now = datetime.now(UTC)
        outcome: dict = {"response_code": code, "duration_ms": duration_ms}
        if error is None:
            outcome |= {
                "status": WebhookDeliveryStatus.SUCCEEDED,
                "error": None,
                "next_attempt_at": None,
                "delivered_at": now,
            }
        elif delivery.attempts >= self.settings.webhook_max_attempts:
            outcome |= {
                "status": WebhookDeliveryStatus.GAVE_UP,
                "error": error[:ERROR_MAX],
                "next_attempt_at": None,
            }
        else:
            delay = backoff(self.settings, delivery.attempts)
            outcome |= {
                "status": WebhookDeliveryStatus.FAILED,
                "error": error[:ERROR_MAX],
                "next_attempt_at": now + timedelta(seconds=delay),
            }
        # Only while the claim stands: a redelivery meanwhile reset `attempts`.
        await WebhookDelivery.filter(id=delivery.id, attempts=delivery.attempts).update(**outcome)


class WebhookWorker:
    """The worker as a background task of a server process; off when the poll interval is 0."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._task: asyncio.Task | None = None
        self._client: httpx.AsyncClient | None = None

    def start(self) -> None:
        if self.settings.webhook_poll_interval <= 0:
            return
        self._task = asyncio.create_task(self._run(), name="meihua-webhooks")

    def _http(self) -> httpx.AsyncClient:
        # Made at the first delivery: loading the CA bundle takes tens of
        # milliseconds that a server without webhooks need not spend.
        if self._client is None:
            # No redirects: a hook is sent where it was registered, not where it points next.
            self._client = httpx.AsyncClient(
                timeout=self.settings.webhook_timeout, follow_redirects=False
            )
        return self._client

    async def stop(self) -> None:
        """Stop at once; an attempt cut short is sent again when its lease runs out."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def tick(self) -> bool:
        """One round; True when work is left for the next one right away."""
        more_events = await fan_out()
        more_due = await WebhookSender(self.settings, self._http).send_due()
        return more_events or more_due

    async def _run(self) -> None:
        while True:
            busy = False
            try:
                busy = await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("webhook round failed; retrying")
            if not busy:
                await asyncio.sleep(self.settings.webhook_poll_interval)

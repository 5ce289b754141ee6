"""Webhooks: admins register endpoints; a real local HTTP server receives signed deliveries."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from meihua.clock import prune_webhook_deliveries
from meihua.models import DataScope, Webhook, WebhookDelivery, WebhookDeliveryStatus
from meihua.resolvers.errors import BadUserInput
from meihua.resolvers.webhook_signing import verify_signature
from meihua.resolvers.webhooks import clean_url
from meihua.schema.relay import to_global_id
from meihua.settings import Settings
from meihua.subscriptions.webhook_worker import WebhookWorker, backoff
from tests.conftest import SECRET, serving

MAX_ATTEMPTS = 3

CREATE_HOOK = """
mutation($input: CreateWebhookInput!) {
  createWebhook(input: $input) {
    secret
    webhook { id url eventKinds isActive version owner { id } }
  }
}
"""
UPDATE_HOOK = """
mutation($id: ID!, $input: UpdateWebhookInput!, $v: Int) {
  updateWebhook(id: $id, input: $input, expectedVersion: $v) { id url isActive version }
}
"""
ROTATE = "mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret webhook { version } } }"
DELETE_HOOK = "mutation($id: ID!) { deleteWebhook(id: $id) { deletedId } }"
REDELIVER = """
mutation($id: ID!) { redeliverWebhookDelivery(id: $id) { id status attempts } }
"""
HOOKS = "{ webhooks(first: 10) { edges { node { id url } } } }"
DELIVERIES = """
query($id: ID!) {
  webhook(id: $id) {
    deliveries(first: 50) {
      edges { node {
        id eventCursor eventKind status attempts responseCode error durationMs nextAttemptAt
      } }
    }
  }
}
"""
HIDE_FIELDS = """
mutation($role: ID!, $entries: [FieldPermissionInput!]!) {
  setFieldPermissions(roleId: $role, entries: $entries) { field }
}
"""
CREATE_CUSTOMER = "mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id } }"
UPDATE_CUSTOMER = """
mutation($id: ID!, $input: UpdateCustomerInput!) { updateCustomer(id: $id, input: $input) { id } }
"""


@pytest.fixture
def settings(db: str) -> Settings:
    """Quick rounds and tiny backoffs, so retries happen within a test."""
    return Settings(
        database_url=db,
        secret_key=SECRET,
        webhook_poll_interval=0.05,
        webhook_backoff=0.05,
        webhook_backoff_max=0.2,
        webhook_max_attempts=MAX_ATTEMPTS,
        webhook_timeout=3.0,
    )


# --- the receiving end -------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A real HTTP server on a thread: answers each path with scripted status codes."""

    requests: list[Received] = field(default_factory=list)
    # path -> the status codes to answer in turn (then 200)
    script: dict[str, list[int]] = field(default_factory=dict)
    # Requests to /gate wait until it opens.
    gate: threading.Event = field(default_factory=threading.Event)
    server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append(Received(self.path, dict(self.headers), body))
                if self.path == "/gate":
                    receiver.gate.wait(10)
                codes = receiver.script.get(self.path) or [200]
                code = codes.pop(0) if len(codes) > 1 else codes[0]
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def to(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]

    def stop(self) -> None:
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    server.start()
    yield server
    server.stop()


def dead_url() -> str:
    """A local port nothing listens on: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


async def eventually(check: Callable[[], Awaitable[bool] | bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        outcome = check()
        if asyncio.iscoroutine(outcome):
            outcome = await outcome
        if outcome:
            return
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.05)


# --- helpers ---------------------------------------------------------------------


async def register(gql, admin, url: str, kinds: list[str]) -> tuple[str, str]:
    """(hook id, secret)"""
    data = await gql.ok(CREATE_HOOK, {"input": {"url": url, "eventKinds": kinds}}, as_user=admin)
    return data["createWebhook"]["webhook"]["id"], data["createWebhook"]["secret"]


async def new_customer(gql, user, name: str) -> str:
    data = await gql.ok(CREATE_CUSTOMER, {"input": {"name": name}}, as_user=user)
    return data["createCustomer"]["id"]


async def deliveries(gql, admin, hook_id: str) -> list[dict]:
    data = await gql.ok(DELIVERIES, {"id": hook_id}, as_user=admin)
    return [edge["node"] for edge in data["webhook"]["deliveries"]["edges"]]


def finished(gql, admin, hook_id: str, count: int, status: str = "SUCCEEDED"):
    async def check() -> bool:
        rows = await deliveries(gql, admin, hook_id)
        return len(rows) == count and all(row["status"] == status for row in rows)

    return check


# --- delivering --------------------------------------------------------------------


async def test_a_delivery_is_signed_and_describes_the_record(gql, org, receiver):
    team = await org.sales_team()
    hook_id, secret = await register(gql, team.admin, receiver.url("/crm"), ["customer.changed"])
    customer_id = await new_customer(gql, team.an, "Acme Webhooks")

    await eventually(finished(gql, team.admin, hook_id, 1))
    [request] = receiver.requests
    timestamp = request.headers["X-Meihua-Timestamp"]
    signature = request.headers["X-Meihua-Signature"]
    assert signature.startswith("sha256=")
    assert verify_signature(secret, request.body, timestamp, signature)
    assert not verify_signature("whsec_wrong", request.body, timestamp, signature)
    assert not verify_signature(secret, request.body + b" ", timestamp, signature)
    # A captured delivery replayed ten minutes later is refused.
    assert not verify_signature(secret, request.body, timestamp, signature, now=time.time() + 600)

    [row] = await deliveries(gql, team.admin, hook_id)
    assert request.headers["X-Meihua-Event"] == "customer.changed"
    assert request.headers["X-Meihua-Delivery"] == row["id"]
    body = request.json
    assert body["event"] == "customer.changed"
    assert body["cursor"] == row["eventCursor"]
    assert body["actorId"] is not None and body["occurredAt"]
    assert body["record"]["type"] == "Customer"
    assert body["record"]["id"] == customer_id
    assert body["record"]["data"]["name"] == "Acme Webhooks"
    assert body["record"]["data"]["version"] == 1
    assert row["attempts"] == 1 and row["responseCode"] == 200
    assert row["error"] is None and row["durationMs"] is not None
    assert row["nextAttemptAt"] is None


async def test_a_failed_attempt_is_retried_until_it_succeeds(gql, org, receiver):
    team = await org.sales_team()
    receiver.script["/flaky"] = [500, 200]
    hook_id, secret = await register(gql, team.admin, receiver.url("/flaky"), ["customer.changed"])
    await new_customer(gql, team.an, "Retry Co")

    await eventually(finished(gql, team.admin, hook_id, 1))
    [row] = await deliveries(gql, team.admin, hook_id)
    assert row["attempts"] == 2 and row["responseCode"] == 200 and row["error"] is None
    first, second = receiver.to("/flaky")
    # The same delivery and body, each attempt signed afresh.
    assert first.headers["X-Meihua-Delivery"] == second.headers["X-Meihua-Delivery"] == row["id"]
    assert first.body == second.body
    for attempt in (first, second):
        headers = attempt.headers
        assert verify_signature(
            secret, attempt.body, headers["X-Meihua-Timestamp"], headers["X-Meihua-Signature"]
        )


async def test_a_dead_endpoint_gives_up_after_the_capped_attempts(gql, org, receiver):
    team = await org.sales_team()
    hook_id, _ = await register(gql, team.admin, dead_url(), ["customer.changed"])
    await new_customer(gql, team.an, "Nobody Home Ltd")

    await eventually(finished(gql, team.admin, hook_id, 1, "GAVE_UP"))
    [row] = await deliveries(gql, team.admin, hook_id)
    assert row["attempts"] == MAX_ATTEMPTS
    assert row["responseCode"] is None and "ConnectError" in row["error"]
    assert row["nextAttemptAt"] is None

    # Pointed at a live endpoint, the delivery goes out again on request.
    await gql.ok(
        UPDATE_HOOK, {"id": hook_id, "input": {"url": receiver.url("/x")}}, as_user=team.admin
    )
    again = await gql.ok(REDELIVER, {"id": row["id"]}, as_user=team.admin)
    assert again["redeliverWebhookDelivery"]["attempts"] == 0
    await eventually(finished(gql, team.admin, hook_id, 1))
    assert receiver.to("/x")[0].json["record"]["data"]["name"] == "Nobody Home Ltd"


async def test_an_endpoint_that_answers_500_gives_up_with_its_code(gql, org, receiver):
    team = await org.sales_team()
    receiver.script["/broken"] = [503]
    hook_id, _ = await register(gql, team.admin, receiver.url("/broken"), ["customer.changed"])
    await new_customer(gql, team.an, "Broken Pipe Co")

    await eventually(finished(gql, team.admin, hook_id, 1, "GAVE_UP"))
    [row] = await deliveries(gql, team.admin, hook_id)
    assert row["responseCode"] == 503 and row["attempts"] == MAX_ATTEMPTS
    assert len(receiver.to("/broken")) == MAX_ATTEMPTS


async def test_a_slow_endpoint_does_not_hold_up_mutations(gql, org, receiver):
    team = await org.sales_team()
    hook_id, _ = await register(gql, team.admin, receiver.url("/gate"), ["customer.changed"])

    customer_id = await new_customer(gql, team.an, "Patience Inc")
    # The mutation returned before its delivery was even answered.
    assert not await WebhookDelivery.filter(status=WebhookDeliveryStatus.SUCCEEDED).exists()
    await eventually(lambda: len(receiver.requests) == 1)
    # While the endpoint holds the delivery, further mutations go through at once.
    started = time.monotonic()
    async with asyncio.timeout(2):
        await gql.ok(
            UPDATE_CUSTOMER, {"id": customer_id, "input": {"region": "East"}}, as_user=team.an
        )
    assert time.monotonic() - started < 2
    assert not receiver.gate.is_set()
    assert not await WebhookDelivery.filter(status=WebhookDeliveryStatus.SUCCEEDED).exists()

    receiver.gate.set()
    await eventually(finished(gql, team.admin, hook_id, 2))


async def test_only_subscribed_kinds_are_delivered(gql, org, receiver):
    team = await org.sales_team()
    stages, _ = await register(gql, team.admin, receiver.url("/stages"), ["pool.claimed"])
    customers, _ = await register(gql, team.admin, receiver.url("/customers"), ["customer.changed"])
    await new_customer(gql, team.an, "Only Customers Co")

    await eventually(finished(gql, team.admin, customers, 1))
    await asyncio.sleep(0.3)  # a few more rounds of the worker
    assert receiver.to("/stages") == []
    assert await deliveries(gql, team.admin, stages) == []
    assert [r.json["event"] for r in receiver.to("/customers")] == ["customer.changed"]


async def test_a_hook_carries_only_what_its_owner_may_see(gql, org, receiver):
    team = await org.sales_team()
    config = await org.role("North admin", DataScope.DEPARTMENT, ["settings:manage"])
    north_admin = await org.user("nadia", department=team.north, roles=[config])
    hook_id, _ = await register(gql, north_admin, receiver.url("/north"), ["customer.changed"])

    await new_customer(gql, team.an, "East Secret Co")  # East: outside Nadia's scope
    await new_customer(gql, team.olga, "North Open Co")

    await eventually(finished(gql, north_admin, hook_id, 1))
    await asyncio.sleep(0.3)
    names = [r.json["record"]["data"]["name"] for r in receiver.requests]
    assert names == ["North Open Co"]


async def test_a_hook_masks_the_fields_its_owner_may_not_read(gql, org, receiver):
    team = await org.sales_team()
    config = await org.role("Integrations", DataScope.ALL, ["settings:manage"])
    integrator = await org.user("ivan", roles=[config])
    hidden = {"recordType": "CUSTOMER", "field": "phone", "access": "HIDDEN", "mask": "PHONE"}
    await gql.ok(HIDE_FIELDS, {"role": to_global_id("Role", config.id), "entries": [hidden]},
                 as_user=team.admin)  # fmt: skip
    hook_id, _ = await register(gql, integrator, receiver.url("/erp"), ["customer.changed"])

    await gql.ok(CREATE_CUSTOMER, {"input": {"name": "Acme", "phone": "13812345678"}},
                 as_user=team.an)  # fmt: skip

    await eventually(finished(gql, integrator, hook_id, 1))
    [delivery] = receiver.to("/erp")
    assert delivery.json["record"]["data"]["phone"] == "138****5678"
    assert b"12345678" not in delivery.body


async def test_two_workers_never_send_one_delivery_twice(gql, org, receiver, settings):
    team = await org.sales_team()
    hook_id, _ = await register(gql, team.admin, receiver.url("/both"), ["customer.changed"])
    # The app's own worker runs; a second one, as another process would, polls harder.
    other = WebhookWorker(replace(settings, webhook_poll_interval=0.01))
    other.start()
    try:
        for number in range(8):
            await new_customer(gql, team.an, f"Twice Co {number}")
        await eventually(finished(gql, team.admin, hook_id, 8))
        await asyncio.sleep(0.3)
    finally:
        await other.stop()
    ids = [r.headers["X-Meihua-Delivery"] for r in receiver.requests]
    assert len(ids) == 8 and len(set(ids)) == 8
    assert all(row["attempts"] == 1 for row in await deliveries(gql, team.admin, hook_id))


async def test_events_committed_while_no_worker_runs_are_delivered_later(
    gql, org, receiver, settings
):
    team = await org.sales_team()
    hook_id, _ = await register(gql, team.admin, receiver.url("/later"), ["customer.changed"])
    asleep = replace(settings, webhook_poll_interval=0)
    async with serving(asleep) as http:  # an app without a worker
        reply = await http.post(
            "/graphql",
            json={"query": CREATE_CUSTOMER, "variables": {"input": {"name": "Night Shift Co"}}},
            headers={"Authorization": f"Bearer {gql.token(team.an)}"},
        )
        assert "errors" not in reply.json()
    worker = WebhookWorker(settings)
    worker.start()  # as a restarted server would
    try:
        await eventually(finished(gql, team.admin, hook_id, 1))
    finally:
        await worker.stop()
    assert receiver.to("/later")[0].json["record"]["data"]["name"] == "Night Shift Co"


async def test_a_rotated_secret_signs_what_follows(gql, org, receiver):
    team = await org.sales_team()
    hook_id, old = await register(gql, team.admin, receiver.url("/rot"), ["customer.changed"])
    data = await gql.ok(ROTATE, {"id": hook_id}, as_user=team.admin)
    new = data["rotateWebhookSecret"]["secret"]
    assert new != old and data["rotateWebhookSecret"]["webhook"]["version"] == 2
    await new_customer(gql, team.an, "Rotation Co")

    await eventually(lambda: len(receiver.requests) == 1)
    [request] = receiver.requests
    timestamp, signature = (
        request.headers["X-Meihua-Timestamp"],
        request.headers["X-Meihua-Signature"],
    )
    assert verify_signature(new, request.body, timestamp, signature)
    assert not verify_signature(old, request.body, timestamp, signature)


async def test_a_switched_off_or_deleted_hook_gets_nothing(gql, org, receiver):
    team = await org.sales_team()
    hook_id, _ = await register(gql, team.admin, receiver.url("/off"), ["customer.changed"])
    await gql.ok(UPDATE_HOOK, {"id": hook_id, "input": {"isActive": False}}, as_user=team.admin)
    await new_customer(gql, team.an, "Quiet Co")
    await asyncio.sleep(0.3)
    assert receiver.requests == []

    # Switched back on, it gets what happens from then on, not what it missed.
    await gql.ok(UPDATE_HOOK, {"id": hook_id, "input": {"isActive": True}}, as_user=team.admin)
    await new_customer(gql, team.an, "Loud Co")
    await eventually(lambda: len(receiver.requests) == 1)
    assert receiver.requests[0].json["record"]["data"]["name"] == "Loud Co"

    await gql.ok(DELETE_HOOK, {"id": hook_id}, as_user=team.admin)
    assert not await Webhook.exists() and not await WebhookDelivery.exists()


# --- the admin API -----------------------------------------------------------------


async def test_webhooks_need_settings_manage(gql, org, receiver):
    team = await org.sales_team()
    hook_id, _ = await register(gql, team.admin, receiver.url("/a"), ["customer.changed"])
    for user in (team.mei, team.an):
        refused = await gql(
            CREATE_HOOK,
            {"input": {"url": receiver.url("/b"), "eventKinds": ["customer.changed"]}},
            as_user=user,
        )
        assert refused.codes == ["FORBIDDEN"]
        assert (await gql(HOOKS, as_user=user)).codes == ["FORBIDDEN"]
        assert (await gql(DELIVERIES, {"id": hook_id}, as_user=user)).codes == ["FORBIDDEN"]
        assert (await gql(ROTATE, {"id": hook_id}, as_user=user)).codes == ["FORBIDDEN"]
        assert (await gql(DELETE_HOOK, {"id": hook_id}, as_user=user)).codes == ["FORBIDDEN"]
    assert await Webhook.all().count() == 1
    listed = await gql.ok(HOOKS, as_user=team.admin)
    assert [e["node"]["id"] for e in listed["webhooks"]["edges"]] == [hook_id]


@pytest.mark.parametrize(
    ("url", "kinds", "field_"),
    [
        ("ftp://example.com/hook", ["customer.changed"], "url"),
        ("not a url", ["customer.changed"], "url"),
        ("https://user:pw@example.com/hook", ["customer.changed"], "url"),
        ("https://example.com/hook", ["customer.exploded"], "eventKinds"),
        ("https://example.com/hook", ["org.changed"], "eventKinds"),
        ("https://example.com/hook", [], "eventKinds"),
    ],
)
async def test_bad_hooks_are_refused(gql, org, url, kinds, field_):
    admin = await org.admin()
    refused = await gql(CREATE_HOOK, {"input": {"url": url, "eventKinds": kinds}}, as_user=admin)
    assert refused.codes == ["BAD_USER_INPUT"]
    assert refused.error["extensions"]["field"] == field_
    assert not await Webhook.exists()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
    ],
)
async def test_production_refuses_private_targets(url):
    assert Settings().allows_private_webhook_targets
    assert not Settings(env="production").allows_private_webhook_targets
    with pytest.raises(BadUserInput):
        await clean_url(url, allow_private=False)
    assert await clean_url(url, allow_private=True) == url


def test_the_private_target_setting_reads_from_the_environment():
    production = {"MEIHUA_ENV": "production", "SECRET_KEY": "x" * 40}
    assert not Settings.from_env(production).allows_private_webhook_targets
    opened = {**production, "MEIHUA_WEBHOOK_PRIVATE_TARGETS": "true"}
    assert Settings.from_env(opened).allows_private_webhook_targets
    assert Settings.from_env({"MEIHUA_WEBHOOK_MAX_ATTEMPTS": "4"}).webhook_max_attempts == 4


def test_retries_back_off_exponentially_with_jitter_up_to_the_cap():
    settings = Settings(webhook_backoff=10, webhook_backoff_max=60)
    for attempts, full in ((1, 10), (2, 20), (3, 40), (4, 60), (9, 60)):
        delays = [backoff(settings, attempts) for _ in range(50)]
        assert all(full / 2 <= delay <= full for delay in delays), (attempts, delays)
        assert len(set(delays)) > 1  # jittered: workers do not retry in lockstep


async def test_the_clock_prunes_finished_deliveries_after_the_retention_window(org):
    admin = await org.admin()
    hook = await Webhook.create(url="https://example.com/", secret="s", owner=admin)
    now = datetime.now(UTC)

    async def delivery(event_id: int, age_days: int, pending: bool) -> None:
        row = await WebhookDelivery.create(
            webhook=hook, event_id=event_id, event_kind="customer.changed", body="{}",
            next_attempt_at=now if pending else None,
        )  # fmt: skip
        await WebhookDelivery.filter(id=row.id).update(created_at=now - timedelta(days=age_days))

    await delivery(1, 9, pending=False)
    await delivery(2, 9, pending=True)  # still to be sent: kept
    await delivery(3, 1, pending=False)
    assert await prune_webhook_deliveries(timedelta(days=7), now) == 1
    assert sorted(await WebhookDelivery.all().values_list("event_id", flat=True)) == [2, 3]

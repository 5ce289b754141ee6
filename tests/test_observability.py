"""Observability: request ids, structured log lines, Prometheus metrics, liveness and
readiness probes."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tortoise.context import TortoiseContext

from meihua import db as meihua_db
from meihua import logs
from meihua.app import create_app
from meihua.models import Customer, Pool
from meihua.resolvers.customers import normalize_name
from meihua.schema.relay import to_global_id
from meihua.settings import ConfigurationError, Settings
from meihua.subscriptions import delivery
from meihua.subscriptions.hub import EventHub

SECRET = "test-secret-key-of-at-least-32-bytes"
REDIS_URL = os.environ.get("MEIHUA_TEST_REDIS_URL")
TOKEN = "scrape-me-please-0123456789"
MEIHUA = str(Path(sys.executable).with_name("meihua"))  # the installed console script
ME = "query Me { me { id } }"
CLAIM = "mutation($id: ID!) { claimCustomer(id: $id) { id } }"
POOL_EVENTS = "subscription { poolEvents { kind customer { name } } }"


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _client(app) -> httpx.AsyncClient:
    """A client for an app whose lifespan is not run (probes and /metrics need none)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def scrape(http: httpx.AsyncClient) -> dict[tuple[str, frozenset], float]:
    reply = await http.get("/metrics")
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(reply.text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def eventually(http: httpx.AsyncClient, name: str, expected: float, **labels) -> None:
    """Scrape until the metric reaches `expected` (sockets close in the background)."""
    async with asyncio.timeout(5):
        while value(await scrape(http), name, **labels) != expected:
            await asyncio.sleep(0.02)


async def following_pool_events(hub: EventHub) -> None:
    """Until the hub feeds a pool-events subscription (so the next claim reaches it live)."""
    async with asyncio.timeout(5):
        while not any(feed.accept is delivery.pool_event for feed in hub._feeds):
            await asyncio.sleep(0.01)


@pytest.fixture
def json_lines() -> Iterator[list]:
    """The JSON lines Meihua's loggers write while the test runs, parsed."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonLinesFormatter())
    handler.addFilter(logs.RequestContext())
    meihua = logging.getLogger("meihua")
    level = meihua.level
    meihua.addHandler(handler)
    meihua.setLevel(logging.INFO)
    lines: list[dict] = []

    def read() -> list[dict]:
        lines[:] = [json.loads(line) for line in stream.getvalue().splitlines()]
        return lines

    try:
        yield read
    finally:
        meihua.removeHandler(handler)
        meihua.setLevel(level)


# ------------------------------------------------------------------------ request ids


async def test_a_valid_request_id_is_echoed_and_others_are_replaced(http):
    given = await http.get("/healthz", headers={"X-Request-ID": "lb-7f3a.42"})
    assert given.headers["x-request-id"] == "lb-7f3a.42"

    made = (await http.get("/healthz")).headers["x-request-id"]
    assert len(made) == 32 and int(made, 16) >= 0

    forged = await http.get("/healthz", headers={"X-Request-ID": 'x" level=ERROR'})
    assert forged.headers["x-request-id"] != 'x" level=ERROR'
    assert len(forged.headers["x-request-id"]) == 32

    too_long = await http.get("/healthz", headers={"X-Request-ID": "a" * 129})
    assert too_long.headers["x-request-id"] != "a" * 129


async def test_a_single_page_app_may_send_and_read_the_request_id():
    spa = "https://crm.example.com"
    settings = Settings(database_url="sqlite://:memory:", secret_key=SECRET, cors_origins=(spa,))
    async with _client(create_app(settings, open_database=False)) as client:
        preflight = await client.options(
            "/graphql",
            headers={
                "Origin": spa,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type, x-request-id",
            },
        )
        assert preflight.status_code == 200
        assert "x-request-id" in preflight.headers["access-control-allow-headers"].lower()
        reply = await client.get("/healthz", headers={"Origin": spa, "X-Request-ID": "spa-1"})
    assert reply.headers["x-request-id"] == "spa-1"
    assert "x-request-id" in reply.headers["access-control-expose-headers"].lower()


async def test_a_graphql_request_logs_one_json_line_with_its_id_operation_and_user(
    http, gql, org, json_lines
):
    admin = await org.admin()
    reply = await http.post(
        "/graphql",
        json={"query": ME},
        headers={"Authorization": f"Bearer {gql.token(admin)}", "X-Request-ID": "req-one"},
    )
    assert reply.headers["x-request-id"] == "req-one"
    assert "errors" not in reply.json()

    mine = [line for line in json_lines() if line.get("request_id") == "req-one"]
    assert len(mine) == 1, json_lines()
    line = mine[0]
    assert line["logger"] == "meihua.access"
    assert line["level"] == "INFO"
    assert line["message"] == "POST /graphql 200"
    assert (line["operation"], line["user_id"], line["outcome"]) == ("me", admin.id, "ok")
    assert line["status"] == 200 and line["duration_ms"] >= 0
    assert datetime.fromisoformat(line["time"]).tzinfo is not None

    await http.post("/graphql", json={"query": ME}, headers={"X-Request-ID": "req-two"})
    (anonymous,) = [line for line in json_lines() if line.get("request_id") == "req-two"]
    assert anonymous["outcome"] == "UNAUTHENTICATED"
    assert "user_id" not in anonymous  # unknown, so left out


def test_text_lines_show_the_request_id_and_operation():
    formatter = logs.TextFormatter()
    record = logging.makeLogRecord(
        {"name": "meihua.access", "levelname": "INFO", "msg": "POST /graphql 200"}
    )
    record.request_id, record.operation, record.user_id = "req-9", "customers", 7
    line = formatter.format(record)
    assert "INFO meihua.access [req-9] POST /graphql 200" in line
    assert "operation=customers user_id=7" in line

    bare = logging.makeLogRecord({"name": "meihua", "levelname": "INFO", "msg": "started"})
    assert "[-] started" in formatter.format(bare)


def test_log_settings():
    assert Settings.from_env({}).log_format == "text"
    production = {"MEIHUA_ENV": "production", "SECRET_KEY": "s" * 40}
    assert Settings.from_env(production).log_format == "json"
    assert Settings.from_env({**production, "MEIHUA_LOG_FORMAT": "TEXT"}).log_format == "text"
    with pytest.raises(ConfigurationError, match="MEIHUA_LOG_FORMAT"):
        Settings.from_env({"MEIHUA_LOG_FORMAT": "xml"})
    with pytest.raises(ConfigurationError, match="MEIHUA_LOG_LEVEL"):
        Settings.from_env({"MEIHUA_LOG_LEVEL": "loud"})
    with pytest.raises(ConfigurationError, match="MEIHUA_METRICS_TOKEN"):
        Settings.from_env({"MEIHUA_METRICS_TOKEN": "short"})


# ------------------------------------------------------------------------ metrics


async def test_operations_are_counted_by_root_field_and_outcome(gql, http, org):
    admin = await org.admin()
    before = await scrape(http)
    await gql.ok(ME, as_user=admin)
    await gql(ME)  # signed out
    await gql("{ noSuchField }", as_user=admin)
    after = await scrape(http)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    total = "meihua_graphql_operations_total"
    assert moved(total, operation="me", type="query", outcome="ok") == 1
    assert moved(total, operation="me", type="query", outcome="UNAUTHENTICATED") == 1
    # A field the schema lacks is not a label of its own.
    assert moved(total, operation="other", type="query", outcome="BAD_USER_INPUT") == 1
    assert not any(dict(labels).get("operation") == "noSuchField" for _, labels in after)

    histogram = "meihua_graphql_operation_duration_seconds"
    assert moved(f"{histogram}_count", operation="me", type="query") == 2
    assert moved(f"{histogram}_bucket", operation="me", type="query", le="+Inf") == 2
    assert value(after, f"{histogram}_sum", operation="me", type="query") > 0


async def test_claims_and_conflicts_are_counted(gql, http, org):
    rep = await org.default_role("Sales Rep")
    alice = await org.user("alice", roles=[rep])
    bob = await org.user("bob", roles=[rep])
    pool = await Pool.get(company_wide=True)
    acme = await Customer.create(
        name="Acme",
        name_key=normalize_name("Acme"),
        created_by_id=alice.id,
        pool_id=pool.id,
        pool_entered_at=datetime.now(UTC) - timedelta(days=1),
    )
    before = await scrape(http)
    await gql.ok(CLAIM, {"id": to_global_id("Customer", acme.id)}, as_user=alice)
    lost = await gql(CLAIM, {"id": to_global_id("Customer", acme.id)}, as_user=bob)
    assert lost.codes == ["CONFLICT"]
    after = await scrape(http)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("meihua_pool_claims_total", outcome="claimed") == 1
    assert moved("meihua_pool_claims_total", outcome="conflict") == 1
    total = "meihua_graphql_operations_total"
    assert moved(total, operation="claimCustomer", type="mutation", outcome="CONFLICT") == 1


async def test_sockets_subscriptions_and_delivery_lag(app, gql, http, live, org):
    rep = await org.default_role("Sales Rep")
    alice = await org.user("alice", roles=[rep])
    pool = await Pool.get(company_wide=True)
    acme = await Customer.create(
        name="Acme",
        name_key=normalize_name("Acme"),
        created_by_id=alice.id,
        pool_id=pool.id,
        pool_entered_at=datetime.now(UTC) - timedelta(days=1),
    )
    before = await scrape(http)
    sockets = value(before, "meihua_websockets_open")
    feeds = value(before, "meihua_subscriptions_active")
    lag = value(before, "meihua_event_delivery_lag_seconds_count")

    watcher = await live(alice)
    assert value(await scrape(http), "meihua_websockets_open") == sockets + 1
    watching = await watcher.subscribe(POOL_EVENTS)
    await eventually(http, "meihua_subscriptions_active", feeds + 1)
    await following_pool_events(app.state.hub)

    await gql.ok(CLAIM, {"id": to_global_id("Customer", acme.id)}, as_user=alice)
    event = (await watcher.next(watching))["poolEvents"]
    assert event == {"kind": "CLAIMED", "customer": {"name": "Acme"}}
    assert value(await scrape(http), "meihua_event_delivery_lag_seconds_count") == lag + 1

    await watcher.close()
    await eventually(http, "meihua_subscriptions_active", feeds)
    await eventually(http, "meihua_websockets_open", sockets)


@pytest.mark.postgres_only
async def test_several_workers_report_their_figures_together(db, tmp_path):
    """Whichever worker a scrape reaches, it counts the operations all workers answered."""
    if not REDIS_URL:
        pytest.skip("Several workers need Redis: set MEIHUA_TEST_REDIS_URL to run it")
    port = _unused_port()
    env = {**os.environ, "DATABASE_URL": db, "BROADCAST_URL": REDIS_URL, "SECRET_KEY": SECRET}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    server = subprocess.Popen(
        [MEIHUA, "serve", "--port", str(port), "--workers", "2"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    # A new connection per request, so the kernel spreads them over both workers.
    close = {"Connection": "close"}
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=close) as client:
            async with asyncio.timeout(60):
                while True:
                    assert server.poll() is None, server.stderr.read().decode()
                    try:
                        if (await client.get("/readyz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.2)
            await asyncio.gather(*(client.post("/graphql", json={"query": ME}) for _ in range(40)))
            for _ in range(6):
                samples = await scrape(client)
                labels = {"operation": "me", "type": "query", "outcome": "UNAUTHENTICATED"}
                assert value(samples, "meihua_graphql_operations_total", **labels) == 40
    finally:
        server.terminate()
        server.wait(timeout=20)


async def test_metrics_need_the_token_when_one_is_set():
    settings = Settings(database_url="sqlite://:memory:", secret_key=SECRET, metrics_token=TOKEN)
    async with _client(create_app(settings, open_database=False)) as client:
        assert (await client.get("/metrics")).status_code == 401
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer not-the-token"})
        assert wrong.status_code == 401
        right = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert right.status_code == 200
        assert "meihua_graphql_operations_total" in right.text


async def test_production_serves_metrics_only_with_a_token():
    production = Settings(database_url="sqlite://:memory:", secret_key=SECRET, env="production")
    async with _client(create_app(production, open_database=False)) as client:
        assert (await client.get("/metrics")).status_code == 404


# ------------------------------------------------------------------------ probes


async def test_liveness_and_readiness_with_everything_up(http):
    alive = await http.get("/healthz")
    assert (alive.status_code, alive.json()) == (200, {"status": "ok"})
    ready = await http.get("/readyz")
    assert (ready.status_code, ready.json()) == (200, {"status": "ok", "database": "up"})


async def test_an_unreachable_database_makes_the_server_unready_but_alive(json_lines):
    closed = f"postgres://postgres@127.0.0.1:{_unused_port()}/meihua"
    app = create_app(Settings(database_url=closed, secret_key=SECRET), open_database=False)
    # The app's connections are the ones of the tortoise context it runs in.
    async with TortoiseContext() as context, _client(app) as client:
        await context.init(config=meihua_db.tortoise_config(closed))
        ready = await client.get("/readyz", headers={"X-Request-ID": "probe-1"})
        assert ready.status_code == 503
        assert ready.json() == {"status": "unavailable", "database": "down"}
        assert (await client.get("/healthz")).status_code == 200
        await context.close_connections()
    # Logged while the request ran: it carries the request id.
    (warning,) = [line for line in json_lines() if line["logger"] == "meihua.health"]
    assert warning["request_id"] == "probe-1"
    assert "database unreachable" in warning["message"]


async def test_redis_down_makes_the_server_unready(db):
    unused = f"redis://127.0.0.1:{_unused_port()}/0"
    settings = Settings(database_url=db, secret_key=SECRET, broadcast_url=unused)
    async with _client(create_app(settings, open_database=False)) as client:
        ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json() == {"status": "unavailable", "database": "up", "redis": "down"}


async def test_redis_up_is_reported(db):
    if not REDIS_URL:
        pytest.skip("Redis readiness: set MEIHUA_TEST_REDIS_URL to run it")
    settings = Settings(database_url=db, secret_key=SECRET, broadcast_url=REDIS_URL)
    async with _client(create_app(settings, open_database=False)) as client:
        ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "database": "up", "redis": "up"}

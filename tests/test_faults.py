"""Faults a real deployment meets, against real `meihua serve` processes.

Redis goes away and comes back while subscribers listen and mutations run;
the database is cut off for a moment; the server gets SIGTERM under load.
The shared Redis and PostgreSQL are never touched: each test starts its own
Redis, or puts its own TCP proxy in front of PostgreSQL, and breaks that.
Every wait has a timeout, so a hang fails the test instead of stalling it.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from redis import asyncio as redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from meihua.models import Customer, Pool, User
from meihua.schema.errors import DATABASE_UNREACHABLE_MESSAGE
from meihua.schema.relay import to_global_id
from meihua.settings import ConfigurationError, Settings
from meihua.subscriptions.events import EVENTS_CHANNEL

MEIHUA = str(Path(sys.executable).with_name("meihua"))
CLAIM = "mutation($id: ID!) { claimCustomer(id: $id) { name } }"
POOL_EVENTS = (
    "subscription($after: String) { poolEvents(after: $after) { cursor kind customer { name } } }"
)
ME = "{ me { username } }"
SHUTDOWN_TIMEOUT = 10


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@asynccontextmanager
async def meihua_serve(database_url: str, secret: str, **env: str) -> AsyncIterator[tuple]:
    """`meihua serve` on a free port: yields (base URL, process)."""
    port = _free_port()
    server = subprocess.Popen(
        [MEIHUA, "serve", "--port", str(port)],
        env={
            **os.environ,
            "DATABASE_URL": database_url,
            "SECRET_KEY": secret,
            "MEIHUA_RECYCLE_INTERVAL": "0",
            "MEIHUA_SHUTDOWN_TIMEOUT": str(SHUTDOWN_TIMEOUT),
            **env,
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(600):
                assert server.poll() is None, "meihua serve exited during start-up"
                with suppress(httpx.TransportError):
                    if (await client.get(f"{url}/healthz")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("meihua serve did not start within 60 s")
        yield url, server
    finally:
        if server.poll() is None:
            server.terminate()
            try:
                server.wait(timeout=SHUTDOWN_TIMEOUT + 5)
            except subprocess.TimeoutExpired:
                server.kill()
                raise


async def subscribe(url: str, token: str, after: str | None = None) -> ClientConnection:
    ws_url = url.replace("http", "ws") + "/graphql"
    ws = await connect(ws_url, subprotocols=["graphql-transport-ws"])
    init = {"Authorization": f"Bearer {token}"}
    await ws.send(json.dumps({"type": "connection_init", "payload": init}))
    assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "connection_ack"
    payload = {"query": POOL_EVENTS, "variables": {"after": after}}
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
    return ws


async def pool_team(org, count: int) -> tuple[User, list[User], list[str]]:
    """A watcher, `count` reps and as many customers waiting in the company pool."""
    sales = await org.department("Sales")
    rep = await org.default_role("Sales Rep")
    watcher = await org.user("watcher", department=sales, roles=[rep])
    reps = [await org.user(f"rep{n:02}", department=sales, roles=[rep]) for n in range(count)]
    pool = await Pool.get(company_wide=True)
    ids = []
    for n in range(count):
        customer = await Customer.create(
            name=f"Pooled {n:02}",
            name_key=f"pooled {n:02}",
            owner_id=None,
            pool_id=pool.id,
            pool_entered_at=datetime.now(UTC),
            created_by_id=watcher.id,
        )
        ids.append(to_global_id("Customer", customer.id))
    return watcher, reps, ids


# -- Redis stopped and restarted ---------------------------------------------------


class RedisServer:
    """A Redis of the test's own on a free port, that it may stop and start again."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    async def start(self) -> None:
        self.process = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                *("--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.from_url(self.url)
        try:
            for _ in range(100):
                with suppress(redis.ConnectionError):
                    await client.ping()
                    return
                await asyncio.sleep(0.05)
            raise AssertionError("redis-server did not start")
        finally:
            await client.aclose()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)

    async def listeners(self) -> int:
        """How many connections are subscribed to the event bus channel."""
        client = redis.from_url(self.url)
        try:
            return dict(await client.pubsub_numsub(EVENTS_CHANNEL)).get(EVENTS_CHANNEL.encode(), 0)
        finally:
            await client.aclose()


@pytest.fixture
async def own_redis() -> AsyncIterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = RedisServer()
    await server.start()
    try:
        yield server
    finally:
        server.kill()


async def test_redis_restart_loses_no_commit_and_no_event(db, settings, org, gql, own_redis):
    watcher, reps, customers = await pool_team(org, 9)
    async with (
        meihua_serve(db, settings.secret_key, BROADCAST_URL=own_redis.url) as (url, _),
        httpx.AsyncClient(base_url=url, timeout=15) as http,
    ):

        async def claim(n: int) -> None:
            reply = await http.post(
                "/graphql",
                json={"query": CLAIM, "variables": {"id": customers[n]}},
                headers={"Authorization": f"Bearer {gql.token(reps[n])}"},
            )
            assert reply.status_code == 200, reply.text
            assert reply.json() == {"data": {"claimCustomer": {"name": f"Pooled {n:02}"}}}

        received: list[dict] = []
        feed = Feed(url, gql.token(watcher), received)
        await feed.open()
        try:
            for n in range(3):
                await claim(n)
            await feed.wait_for(3)

            own_redis.kill()
            for n in range(3, 6):
                await claim(n)  # committed although the bus is down
            await feed.wait_for(6)  # the hub reads them from the log meanwhile

            await own_redis.start()
            await until(own_redis.listeners, "the server to subscribe to Redis again")
            for n in range(6, 9):
                await claim(n)
            await feed.wait_for(9)
        finally:
            await feed.close()

    assert [e["customer"]["name"] for e in received] == [f"Pooled {n:02}" for n in range(9)]
    assert {e["kind"] for e in received} == {"CLAIMED"}
    cursors = [int(e["cursor"]) for e in received]
    assert cursors == sorted(set(cursors))


class Feed:
    """A poolEvents subscriber that, when its socket is closed, comes back with `after:`."""

    def __init__(self, url: str, token: str, received: list[dict]) -> None:
        self.url, self.token, self.received = url, token, received
        self.ws: ClientConnection | None = None

    async def open(self) -> None:
        after = self.received[-1]["cursor"] if self.received else None
        self.ws = await subscribe(self.url, self.token, after)

    async def wait_for(self, count: int, timeout: float = 20) -> None:
        async with asyncio.timeout(timeout):
            while len(self.received) < count:
                try:
                    message = json.loads(await self.ws.recv())
                except ConnectionClosed:
                    message = {"type": "closed"}
                if message["type"] == "next" and not message["payload"].get("errors"):
                    self.received.append(message["payload"]["data"]["poolEvents"])
                elif message["type"] in ("next", "error", "complete", "closed"):
                    # Ended cleanly: resume from the last cursor.
                    await self.close()
                    await self.open()

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()


async def until(probe: Callable, what: str, timeout: float = 30) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not await probe():
                await asyncio.sleep(0.2)
    except TimeoutError:
        raise AssertionError(f"gave up after {timeout} s waiting for {what}") from None


# -- the database cut off for a moment -----------------------------------------------


class TcpProxy:
    """Forwards a local port to PostgreSQL; `cut()` drops every connection and refuses new ones."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = _free_port()
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._connected, "127.0.0.1", self.port)

    async def cut(self) -> None:
        self.server.close()
        for writer in list(self.writers):
            writer.transport.abort()
        self.writers.clear()
        await asyncio.sleep(0.1)  # let the aborted connections finish closing

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.writers |= {writer, upstream_writer}
        await asyncio.gather(
            self._pipe(reader, upstream_writer),
            self._pipe(upstream_reader, writer),
            return_exceptions=True,
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            self.writers.discard(writer)
            writer.transport.abort()


@pytest.fixture
async def postgres_proxy(db) -> AsyncIterator[tuple[TcpProxy, str]]:
    """A proxy in front of the test database, and the database URL through it."""
    database = urlsplit(db)
    proxy = TcpProxy(database.hostname, database.port or 5432)
    await proxy.start()
    netloc = f"{database.username}@127.0.0.1:{proxy.port}"
    try:
        yield proxy, database._replace(netloc=netloc).geturl()
    finally:
        proxy.server.close()


@pytest.mark.postgres_only
async def test_database_outage_gives_clear_errors_and_the_server_recovers(
    postgres_proxy, settings, org, gql
):
    proxy, through_proxy = postgres_proxy
    admin = await org.admin()
    headers = {"Authorization": f"Bearer {gql.token(admin)}"}
    async with (
        meihua_serve(through_proxy, settings.secret_key) as (url, server),
        httpx.AsyncClient(base_url=url, timeout=15, headers=headers) as http,
    ):

        async def ask(query: str) -> httpx.Response:
            return await http.post("/graphql", json={"query": query})

        assert (await ask(ME)).json() == {"data": {"me": {"username": "root"}}}

        await proxy.cut()
        create = 'mutation { createCustomer(input: {name: "Lost Ltd"}) { id } }'
        for query in (ME, ME, create):
            reply = await ask(query)
            assert reply.status_code == 200, reply.text
            assert reply.json()["data"] is None
            assert reply.json()["errors"][0]["message"] == DATABASE_UNREACHABLE_MESSAGE
            assert reply.json()["errors"][0]["extensions"] == {"code": "INTERNAL"}
            for leak in ("Traceback", "asyncpg", "SELECT", "Error"):
                assert leak not in reply.text

        await proxy.start()

        async def answers() -> bool:
            return (await ask(ME)).json() == {"data": {"me": {"username": "root"}}}

        await until(answers, "the server to reach the database again", timeout=20)
        assert server.poll() is None  # the same process, never restarted
    assert not await Customer.filter(name="Lost Ltd").exists()


# -- SIGTERM under load ----------------------------------------------------------------


async def test_sigterm_drains_in_flight_requests_and_closes_sockets_going_away(
    db, settings, org, gql
):
    admin = await org.admin()
    token = gql.token(admin)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    body = json.dumps({"query": ME}).encode()
    async with meihua_serve(db, settings.secret_key) as (url, server):
        ws = await subscribe(url, token)
        signalled = asyncio.Event()
        # (answered after SIGTERM?, status or transport error)
        outcomes: list[tuple[bool, int | str]] = []

        async def keep_asking() -> None:
            async with httpx.AsyncClient(base_url=url, timeout=15, headers=headers) as http:
                while server.poll() is None:
                    try:
                        reply = await http.post("/graphql", content=body)
                    except httpx.TransportError as error:
                        outcomes.append((signalled.is_set(), type(error).__name__))
                        await asyncio.sleep(0.05)
                        continue
                    after = signalled.is_set()
                    if reply.status_code == 503:
                        assert reply.headers["retry-after"]
                    else:
                        assert reply.json() == {"data": {"me": {"username": "root"}}}
                    outcomes.append((after, reply.status_code))

        # One request in flight across the signal: its body arrives in two halves.
        started, finish = asyncio.Event(), asyncio.Event()

        async def slow_body() -> AsyncIterator[bytes]:
            yield body[:10]
            started.set()
            await finish.wait()
            yield body[10:]

        async def slow_request() -> httpx.Response:
            async with httpx.AsyncClient(base_url=url, timeout=30, headers=headers) as http:
                return await http.post("/graphql", content=slow_body())

        load = [asyncio.create_task(keep_asking()) for _ in range(4)]
        in_flight = asyncio.create_task(slow_request())
        await asyncio.wait_for(started.wait(), 10)
        await asyncio.sleep(0.5)  # the load runs, and the slow request has reached the app

        server.send_signal(signal.SIGTERM)
        signalled.set()
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        assert not in_flight.done()  # the socket did not wait for the request to finish

        finish.set()
        reply = await asyncio.wait_for(in_flight, 10)
        assert reply.status_code == 200
        assert reply.json() == {"data": {"me": {"username": "root"}}}

        code = await asyncio.wait_for(asyncio.to_thread(server.wait), SHUTDOWN_TIMEOUT + 5)
        assert code == 0
        await asyncio.wait_for(asyncio.gather(*load), 20)

    before = [outcome for after, outcome in outcomes if not after]
    during = [outcome for after, outcome in outcomes if after]
    assert before and set(before) == {200}, before
    assert all(outcome in (200, 503) or isinstance(outcome, str) for outcome in during), during


def test_shutdown_timeout_setting_is_checked():
    assert Settings.from_env({}).shutdown_timeout == 30
    assert Settings.from_env({"MEIHUA_SHUTDOWN_TIMEOUT": "5"}).shutdown_timeout == 5
    for value in ("0", "soon", "7200"):
        with pytest.raises(ConfigurationError, match="MEIHUA_SHUTDOWN_TIMEOUT"):
            Settings.from_env({"MEIHUA_SHUTDOWN_TIMEOUT": value})
